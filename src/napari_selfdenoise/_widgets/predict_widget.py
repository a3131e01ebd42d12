"""Predict dock widget: denoise a layer with a trained model (tiled, in a thread worker).

The model comes from this session's training, from a model file, or from any layer whose
metadata carries one (listed by name). The output is a new layer in memory, a zarr
store or an OME-Zarr multiscale image (with the layer's scale, translation and units) on
disk, opened back lazily, so stacks larger than memory work.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Generator, Optional

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ..core import events, ome_zarr
from ..core.inference import inference_bundle
from ..core.bundle import METADATA_KEY, ModelBundle
from ..core.config import PredictConfig
from ..core.presets import PredictSettings
from ..core.provenance import PROVENANCE_KEY, make_provenance
from . import _common
from ._base import DockWidget, refill
from .predict_options import (
    file_of, ome_output, pixel_shuffle_box, pixel_shuffle_value, show_pixel_shuffle,
)
from .train_options import combo, parse_shape, set_combo, spin

SESSION_PREFIX = "trained: "
LAYER_PREFIX = "layer: "
FILE_ITEM = "model file…"


class PredictWidget(DockWidget):
    """Apply a model to an image layer, writing a new layer or a zarr store."""

    kind = "predict"

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(napari_viewer, parent)
        self._memory_budget_mb: Optional[float] = None  # a preset's; no field of its own
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Model trained in this session, a layer's model, or a file")
        self.model_file = QLineEdit()
        self.model_file.setPlaceholderText("path/to/model.sdmodel")
        self.browse_button = QPushButton("…")
        self.auto_tiles = QCheckBox("auto (from free memory)")
        self.auto_tiles.setChecked(True)
        self.tile_shape = QLineEdit()
        self.tile_shape.setPlaceholderText("e.g. 256, 256")
        self.overlap = QLineEdit()
        self.overlap.setPlaceholderText("auto (receptive field)")
        self.border = QLineEdit()
        self.border.setPlaceholderText("auto (as the model was trained)")
        self.border.setToolTip("voxels mirrored beyond the image's edges, per spatial axis")
        self.batch = spin(0, 4096, 0, tip="Tiles per batch (0: auto)")
        self.tta = QCheckBox("test-time augmentation (8 flips/rotations)")
        self.j_invariant = combo({None: "follow the model", True: "on", False: "off"},
                                 "Masked inference, each output never from its own pixel "
                                 "(J-invariant grid; complementary masks for ams)")
        self.r3 = QCheckBox("R3 refinement (8 passes, 16 % noisy pixels)")
        self.r3.setToolTip(PredictConfig.model_fields["r3"].description)
        self.pixel_shuffle = pixel_shuffle_box()
        self.precision = combo({"auto": "auto", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"})
        self.device = QLineEdit("auto")
        self.output = combo({"layer": "new layer (in memory)",
                             "zarr": "zarr store on disk (opened lazily)",
                             "ome-zarr": "OME-Zarr on disk (multiscale, opened lazily)"})
        self.ome_version = combo({"0.5": "NGFF 0.5", "0.4": "NGFF 0.4"},
                                 PredictConfig.model_fields["ome_zarr_version"].description)
        self.zarr_path = QLineEdit()
        self.zarr_path.setPlaceholderText("output.zarr")
        self.overwrite = QCheckBox("overwrite")
        self.run_on = combo({"here": "this process", "workers": "local workers",
                             "scheduler": "dask scheduler"},
                            "Where the tiles run. Workers and a dask scheduler read the "
                            "layer's file and write a zarr store (see docs/prediction.md)")
        self.n_workers = spin(1, 256, 2, tip=PredictConfig.model_fields["workers"].description)
        self.scheduler = QLineEdit()
        self.scheduler.setPlaceholderText("tcp://host:8786")
        self.run_button = QPushButton("Run")
        self.stop_button = QPushButton("Stop")
        self._layout()
        self.model_combo.currentIndexChanged.connect(self._model_source_changed)
        self.model_file.editingFinished.connect(self._model_changed)
        self.auto_tiles.toggled.connect(self._tiles_changed)
        self.output.currentIndexChanged.connect(self._output_changed)
        self.run_on.currentIndexChanged.connect(self._output_changed)
        self.browse_button.clicked.connect(self._browse_clicked)
        self.run_button.clicked.connect(lambda: self.guarded(self.run))
        self.stop_button.clicked.connect(self.stop)
        _common.SESSION.connect(self.reset_choices)
        self.ready()

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("model", self.model_combo)
        row = QHBoxLayout()
        row.addWidget(self.model_file, 1)
        row.addWidget(self.browse_button)
        form.addRow("model file", row)
        form.addRow("tiling", self.auto_tiles)
        form.addRow("tile shape", self.tile_shape)
        form.addRow("overlap", self.overlap)
        form.addRow("border", self.border)
        form.addRow("batch", self.batch)
        form.addRow("", self.tta)
        form.addRow("J-invariant", self.j_invariant)
        form.addRow("", self.r3)
        form.addRow("pixel shuffle", self.pixel_shuffle)
        form.addRow("precision", self.precision)
        form.addRow("device", self.device)
        form.addRow("output", self.output)
        row = QHBoxLayout()
        row.addWidget(self.zarr_path, 1)
        row.addWidget(self.ome_version)
        row.addWidget(self.overwrite)
        form.addRow("zarr store", row)
        row = QHBoxLayout()
        row.addWidget(self.run_on)
        row.addWidget(self.n_workers)
        row.addWidget(self.scheduler, 1)
        form.addRow("run on", row)
        self.build_layout(form, [self.run_button, self.stop_button])

    # ---------------------------------------------------------------- model choices
    def layer_filter(self, layer: Any) -> bool:
        return not getattr(layer, "rgb", False)

    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        items = [SESSION_PREFIX + name for name in reversed(list(_common.SESSION.models))]
        items += [LAYER_PREFIX + lay.name for lay in _common.layers_with_models(self.viewer)]
        refill(self.model_combo, items + [FILE_ITEM])
        self._model_source_changed()

    def _model_choice(self) -> tuple[str, Optional[str]]:
        text = self.model_combo.currentText()
        if text.startswith(SESSION_PREFIX):
            return "session", text[len(SESSION_PREFIX):]
        if text.startswith(LAYER_PREFIX):
            return "layer", text[len(LAYER_PREFIX):]
        return "file", None

    def _model_source_changed(self, *_: Any) -> None:
        is_file = self._model_choice()[0] == "file"
        self.model_file.setEnabled(is_file and not self.runner.running)
        self.browse_button.setEnabled(is_file and not self.runner.running)
        self._model_changed()

    def _model_changed(self, *_: Any) -> None:
        """The pixel-shuffle box follows the chosen model (enabled with pixel shuffle)."""
        source, name = self._model_choice()
        try:
            bundle = self.load_model(PredictSettings(
                model_source=source, model_name=name,
                model_file=self.model_file.text().strip() or None))
        except (ValueError, OSError):  # no model chosen yet, or not readable (yet)
            bundle = None
        show_pixel_shuffle(self.pixel_shuffle, bundle, self.runner.running)

    def _tiles_changed(self, *_: Any) -> None:
        manual = not self.auto_tiles.isChecked() and not self.runner.running
        for widget in (self.tile_shape, self.overlap, self.border, self.batch):
            widget.setEnabled(manual)

    def _output_changed(self, *_: Any) -> None:
        kind = self.output.currentData()
        zarr = kind in ("zarr", "ome-zarr") and not self.runner.running
        self.zarr_path.setPlaceholderText("output.ome.zarr" if kind == "ome-zarr"
                                          else "output.zarr")
        self.zarr_path.setEnabled(zarr)
        self.ome_version.setEnabled(kind == "ome-zarr" and not self.runner.running)
        self.overwrite.setEnabled(zarr)
        where = self.run_on.currentData() if not self.runner.running else None
        self.n_workers.setEnabled(where == "workers")
        self.scheduler.setEnabled(where == "scheduler")

    def _browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model file", "",
            "napari-selfdenoise models, bioimage.io packages (*.sdmodel *.zip);;All (*)")
        if path:
            self.model_file.setText(path)
            self._model_changed()

    def load_model(self, settings: PredictSettings) -> ModelBundle:
        """The model the settings name (``ValueError`` with a clear message otherwise)."""
        if settings.model_source == "file":
            if not settings.model_file:
                raise ValueError("choose a model file (or train a model first)")
            return ModelBundle.load(settings.model_file)
        if settings.model_source == "layer":
            name = settings.model_name
            if name not in self.viewer.layers:
                raise ValueError(f"no layer named {name!r} carries a model")
            return ModelBundle.from_metadata(self.viewer.layers[name].metadata.get(METADATA_KEY))
        if settings.model_name in _common.SESSION.models:
            return _common.SESSION.models[settings.model_name]
        latest = _common.SESSION.latest()
        if latest is None:
            raise ValueError("no model trained in this session: train one, or choose a model "
                             "file or a layer that carries a model")
        return latest[1]

    def batch_model(self) -> Any:
        return self.load_model(self.settings())

    # ------------------------------------------------------------------- settings
    def settings(self) -> PredictSettings:
        source, name = self._model_choice()
        manual = not self.auto_tiles.isChecked()
        config = PredictConfig(
            tile_shape=parse_shape(self.tile_shape.text()) if manual else None,
            overlap=parse_shape(self.overlap.text()) if manual else None,
            border=parse_shape(self.border.text()) if manual else None,
            batch_size=(self.batch.value() or None) if manual else None,
            tta=self.tta.isChecked(), j_invariant=self.j_invariant.currentData(),
            r3=self.r3.isChecked(), pixel_shuffle_infer=pixel_shuffle_value(self.pixel_shuffle),
            precision=self.precision.currentData(), memory_budget_mb=self._memory_budget_mb,
            device=self.device.text().strip() or "auto", overwrite=self.overwrite.isChecked(),
            ome_zarr_version=self.ome_version.currentData(), **self._cluster())
        return PredictSettings(
            model_source=source, model_name=name,
            model_file=self.model_file.text().strip() or None,
            axes=self.axes_edit.text().strip() or None, predict=config,
            output=self.output.currentData(), zarr_path=self.zarr_path.text().strip() or None)

    def _cluster(self) -> dict:
        """``PredictConfig`` fields of the 'run on' choice."""
        where = self.run_on.currentData()
        if where == "workers":
            return {"workers": self.n_workers.value()}
        if where == "scheduler":
            return {"scheduler": self.scheduler.text().strip() or None}
        return {}

    def set_settings(self, settings: PredictSettings) -> None:
        prefix = {"session": SESSION_PREFIX, "layer": LAYER_PREFIX}.get(settings.model_source)
        if prefix and settings.model_name:
            index = self.model_combo.findText(prefix + settings.model_name)
            if index >= 0:
                self.model_combo.setCurrentIndex(index)
        elif settings.model_source == "file":
            self.model_combo.setCurrentText(FILE_ITEM)
        self.model_file.setText(settings.model_file or "")
        p = settings.predict
        self.auto_tiles.setChecked(p.tile_shape is None and p.overlap is None
                                   and p.border is None and p.batch_size is None)
        self.tile_shape.setText(", ".join(map(str, p.tile_shape or ())))
        self.overlap.setText(", ".join(map(str, p.overlap or ())))
        self.border.setText(", ".join(map(str, p.border or ())))
        self.batch.setValue(p.batch_size or 0)
        self.tta.setChecked(p.tta)
        set_combo(self.j_invariant, p.j_invariant)
        self.r3.setChecked(p.r3)
        self.pixel_shuffle.setValue(p.pixel_shuffle_infer or 0)
        self._model_changed()  # back to "as trained" for a model without pixel shuffle
        set_combo(self.precision, p.precision)
        self._memory_budget_mb = p.memory_budget_mb
        self.device.setText(p.device)
        self.overwrite.setChecked(p.overwrite)
        set_combo(self.run_on, "scheduler" if p.scheduler else
                  "workers" if p.workers else "here")
        self.n_workers.setValue(p.workers or 2)
        self.scheduler.setText(p.scheduler or "")
        set_combo(self.ome_version, p.ome_zarr_version)
        set_combo(self.output, settings.output)
        self.zarr_path.setText(settings.zarr_path or "")
        if settings.axes:
            self.axes_edit.setText(settings.axes)

    def _controls(self) -> list:
        return super()._controls() + [
            self.model_combo, self.auto_tiles, self.tta, self.j_invariant, self.r3, self.precision,
            self.device, self.output, self.run_on, self.run_button, self.save_preset_button]

    def _set_running(self, running: bool) -> None:
        super()._set_running(running)
        self.stop_button.setEnabled(running)
        self._model_source_changed()
        self._tiles_changed()
        self._output_changed()

    # ----------------------------------------------------------------------- runs
    def run(self) -> bool:
        """Denoise the picked layer with the chosen model."""
        from ..core.inference import predict

        layer = self.selected_layer()
        axes = self.selected_axes(layer)
        settings = self.settings()
        # the factor asked for, checked before any work; the layer carries what ran
        bundle = inference_bundle(self.load_model(settings), settings.predict)
        self._execution: Optional[dict] = None  # device and precision, from PredictStarted
        out: Any = None
        if settings.output in ("zarr", "ome-zarr"):
            if not settings.zarr_path:
                raise ValueError("give a path for the zarr store (e.g. denoised.zarr)")
            out = settings.zarr_path
            if Path(out).exists() and not settings.predict.overwrite:
                raise FileExistsError(f"{out} exists: tick 'overwrite' or choose another path")
        if settings.output == "ome-zarr":
            out = ome_output(out, layer, axes)
        data = (file_of(layer, settings) if settings.predict.distributed
                else _common.snapshot(layer))
        source = layer.name

        def make(stop: threading.Event) -> Generator:
            return predict(bundle, data, axes=axes, config=settings.predict, out=out, stop=stop)

        def on_done(result: Any) -> None:
            self._finished(source, settings, bundle, result)

        return self.launch(make, self._on_event, on_done,
                           f"denoising {source} with a {bundle.method} model…")

    def _on_event(self, event: Any) -> None:
        if isinstance(event, events.TileDone):
            self.set_progress(
                event.tiles_done / max(event.tiles_total, 1),
                f"tile {event.tiles_done}/{event.tiles_total} · "
                f"{event.voxels_per_s / 1e6:.2f} Mvoxel/s · "
                f"elapsed {_common.format_duration(event.elapsed_s)} · "
                f"ETA {_common.format_duration(event.eta_s)}")
        elif isinstance(event, events.PredictStarted):
            self._execution = event.execution
        elif isinstance(event, events.Message):
            self.on_message(event)

    def _finished(self, source: str, settings: PredictSettings, bundle: ModelBundle,
                  result: Any) -> None:
        if result is None:
            self.set_progress(None, "stopped: no output")
            return
        multiscale = {}
        if isinstance(result, (str, Path)) and ome_zarr.is_ome_zarr_store(result):
            from .._reader import read_ome_zarr

            data = read_ome_zarr(result)[0][0]  # every level, lazily
            multiscale = {"multiscale": isinstance(data, list)}
            if f"{source} [{bundle.method}]" in self.viewer.layers:  # replaced whole
                self.viewer.layers.remove(f"{source} [{bundle.method}]")
        elif isinstance(result, (str, Path)):
            from ..core.io import open_image

            data, _ = open_image(result)
        else:
            data = result
        name = f"{source} [{bundle.method}]"
        meta = {
            METADATA_KEY: bundle.to_metadata(),
            PROVENANCE_KEY: make_provenance(
                "predict", source, settings, bundle=bundle,
                output_path=str(result) if settings.output != "layer" else None,
                execution=self._execution),
        }
        self.output_layer = _common.show_result(self.viewer, name, data, source, meta,
                                                **multiscale)
        self.set_progress(1.0, f"done: {name}")

    def shutdown(self) -> None:
        _common.SESSION.disconnect(self.reset_choices)
        super().shutdown()

