"""Train dock widget: self-supervised training with a live loss plot and preview.

Start trains on a snapshot of the picked layer in a thread worker, then denoises the
whole layer with the result and adds ``"<name> [method]"`` carrying the model and its
provenance in metadata. Stop keeps the model so far; Continue trains it further.
"""

from __future__ import annotations

import threading
from typing import Any, Generator, Optional

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QPushButton, QWidget

from ..core import events
from ..core.bundle import METADATA_KEY
from ..core.config import PredictConfig
from ..core.methods import get_method
from ..core.preload import preload_optimiser
from ..core.presets import TrainSettings
from ..core.provenance import PROVENANCE_KEY, make_provenance
from . import _common, _view
from ._base import DockWidget
from .loss_plot import LossPlot
from .quality_view import NOISE_PENDING, QUALITY_PENDING, QualityView
from .train_options import TrainOptions

__all__ = ["TrainWidget", "train_and_denoise", "PREVIEW_SUFFIX", "NOISE_PENDING",
           "QUALITY_PENDING"]

PREVIEW_SUFFIX = " [preview]"
#: the live preview follows the view this long after the last pan / zoom / slice change
VIEW_SETTLE_MS = 300


def train_and_denoise(data: Any, settings: TrainSettings, axes: str, stop: threading.Event,
                      preview: Any = None, init: Any = None,
                      closing: Optional[threading.Event] = None,
                      target: Any = None) -> Generator[Any, None, tuple]:
    """Train on ``data``, then denoise it with the model: returns ``(bundle, denoised)``.

    When ``stop`` ends training, ``data`` is still denoised with the model so far (``stop``
    is cleared, so setting it again stops the denoising); when ``closing`` is set too,
    nothing is denoised (``denoised`` is None). ``target``: the second acquisition a
    method such as Noise2Noise trains towards.
    """
    from ..core.inference import predict
    from ..core.training import train

    cfg = settings.train
    bundle = yield from train(data, cfg, axes=axes, stop=stop, preview=preview, init=init,
                              target=target)
    if closing is not None and closing.is_set():
        return bundle, None
    stop.clear()
    pcfg = PredictConfig(device=cfg.device, precision=cfg.precision)
    denoised = yield from predict(bundle, data, axes=axes, config=pcfg)
    return bundle, denoised


class TrainWidget(DockWidget):
    """Train a self-supervised denoiser (any registered method) on an image layer."""

    kind = "train"

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(napari_viewer, parent)
        self.options = TrainOptions()
        self.loss_plot = LossPlot()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.continue_button = QPushButton("Continue")
        self.save_model_button = QPushButton("Save model…")
        self.export_button = QPushButton("Export bioimage.io…")
        self.export_button.setToolTip("Write the model as a tested bioimage.io package (.zip) "
                                      "for the Model Zoo, deepImageJ or Fiji")
        self.quality = QualityView()
        self.noise_label = self.quality.noise_label
        self.quality_label = self.quality.quality_label
        self.start_button.setToolTip("Train a new model on the layer")
        self.stop_button.setToolTip("Stop now and keep the model trained so far")
        self.continue_button.setToolTip("Train the last model further (same settings)")
        self.bundle: Any = None
        self.bundle_source = ""
        self.first_preview_s: Optional[float] = None
        self._time_budget_s: Optional[float] = None
        self._source = ""
        self._step_offset = 0
        self._live: Any = None  # core.training.LivePreview of the running training
        self._live_args: tuple = ()
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(VIEW_SETTLE_MS)
        self._view_timer.timeout.connect(self._follow_view)
        self._layout()
        self.start_button.clicked.connect(lambda: self.guarded(self.start))
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(lambda: self.guarded(self.continue_training))
        self.save_model_button.clicked.connect(self._save_model_clicked)
        self.export_button.clicked.connect(self._export_clicked)
        self.ready()
        preload_optimiser()  # torch's one-time optimiser import, before Start

    def _layout(self) -> None:
        self.build_layout(self.options,
                          [self.start_button, self.stop_button, self.continue_button],
                          [self.quality, self.loss_plot,
                           self.save_model_button, self.export_button])

    def reset_choices(self, *_: Any) -> None:
        """Also refresh the target layers (methods that train towards a second image)."""
        super().reset_choices()
        if hasattr(self, "options"):  # not yet while the base class is built
            self.options.set_target_layers(
                [lay.name for lay in _common.image_layers(self.viewer)])

    def _target(self, settings: TrainSettings, source: str) -> Any:
        """A snapshot of the target layer, when the method needs one and one is chosen."""
        name = self.options.target_layer.currentData()
        if not get_method(settings.train.method).needs_target or name is None:
            return None
        if name == source:
            raise ValueError("the target layer must be a second acquisition, not the layer "
                             "itself (or choose 'none' and a pairs-along axis)")
        if name not in self.viewer.layers:
            raise ValueError(f"the target layer {name!r} is gone")
        return _common.snapshot(self.viewer.layers[name])

    # ------------------------------------------------------------------- settings
    def settings(self) -> TrainSettings:
        axes = self.axes_edit.text().strip() or None
        return self.options.settings(axes)

    def set_settings(self, settings: TrainSettings) -> None:
        self.options.set_settings(settings)
        if settings.train.axes:
            self.axes_edit.setText(settings.train.axes)

    def _controls(self) -> list:
        return super()._controls() + [self.options, self.start_button, self.continue_button,
                                      self.save_preset_button]

    def _set_running(self, running: bool) -> None:
        super()._set_running(running)
        self.stop_button.setEnabled(running)
        self.continue_button.setEnabled(not running and self.bundle is not None)
        self.save_model_button.setEnabled(not running and self.bundle is not None)
        self.export_button.setEnabled(not running and self.bundle is not None)
        if not running and self._live is not None:
            self._watch_view(False)
            self._live, self._live_args = None, ()

    def shutdown(self) -> None:
        """Also forget the camera / slice events of a running live preview."""
        super().shutdown()
        if self._live is not None:
            self._watch_view(False)
            self._live, self._live_args = None, ()

    # --------------------------------------------------------------- live preview
    def _watch_view(self, on: bool) -> None:
        """(Dis)connect the camera and slice events that move the live preview."""
        emitters = [_view.camera_of(self.viewer).events.center,
                    _view.camera_of(self.viewer).events.zoom,
                    self.viewer.dims.events.current_step]
        for emitter in emitters:
            if on:
                emitter.connect(self._view_changed)
            else:
                emitter.disconnect(self._view_changed)
        if not on:
            self._view_timer.stop()

    def _view_changed(self, _event: Any = None) -> None:
        self._view_timer.start()  # restarts: one snapshot once the view settles

    def _follow_view(self) -> None:
        """Snapshot the region now in view (main thread) for the running training."""
        if self._live is None or not self._live_args:
            return
        layer, axes, settings = self._live_args
        if layer.name not in self.viewer.layers:
            return
        try:
            self._live.update(self._preview_request(layer, axes, settings))
        except ValueError as exc:  # e.g. the view left the data: keep the last region
            self.status.setText(f"preview not moved: {exc}")

    # ----------------------------------------------------------------------- runs
    def start(self) -> bool:
        """Train a new model on the picked layer."""
        return self._train(init=None)

    def continue_training(self) -> bool:
        """Train the last model further, for another budget."""
        if self.bundle is None:
            raise ValueError("nothing to continue: train a model first")
        return self._train(init=self.bundle)

    def _train(self, init: Any) -> bool:
        layer = self.selected_layer()
        axes = self.selected_axes(layer)
        settings = self.options.settings(axes)
        data = _common.snapshot(layer)
        target = self._target(settings, layer.name)
        preview = None
        if settings.preview:
            from ..core.training import LivePreview

            preview = self._live = LivePreview(self._preview_request(layer, axes, settings))
            self._live_args = (layer, axes, settings)
            self._watch_view(True)
        if init is None:
            self.loss_plot.reset()
        self._reset_run_labels(init)
        # a continued run counts its steps from 0: plot them after the previous ones
        self._step_offset = self.loss_plot.steps[-1] if self.loss_plot.steps else 0
        self.first_preview_s = None
        self._time_budget_s = settings.train.time_budget_s
        source = self._source = layer.name

        def make(stop: threading.Event) -> Generator:
            return train_and_denoise(data, settings, axes, stop, preview, init,
                                     self.runner.closing, target)

        def on_done(result: tuple) -> None:
            self._finished_training(source, settings, *result)

        label = f"training {settings.train.method} on {source}…"
        return self.launch(make, self._on_event, on_done, label)

    def _reset_run_labels(self, init: Any) -> None:
        """The labels describe the run starting now: no quality estimate yet, and the noise
        model of the continued model (a new run estimates its own)."""
        self.quality.start_run(None if init is None else init.info.get("noise_model"),
                               continued=init is not None)

    def _preview_request(self, layer: Any, axes: str, settings: TrainSettings) -> Any:
        from ..core.training import PreviewRequest

        central = self.window().centralWidget() if hasattr(self.window(), "centralWidget") \
            else None
        canvas_px = max(central.width(), central.height()) if central is not None else 512
        image, index, image_axes = _view.view_region(self.viewer, layer, axes,
                                                     canvas_px=canvas_px)
        return PreviewRequest(image=image, axes=image_axes, every_s=settings.preview_every_s,
                              region=index)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, events.TrainStep):
            self.loss_plot.add(event.step + self._step_offset, event.loss, event.val_loss)
            self._show_step(event)
            if event.estimated_psnr is not None:
                self.quality.show_estimate(event.estimated_psnr, event.estimated_psnr_range,
                                           event.step + self._step_offset)
        elif isinstance(event, events.TrainPreview):
            self._show_preview(event)
        elif isinstance(event, events.TileDone):
            self.set_progress(event.tiles_done / max(event.tiles_total, 1),
                              f"denoising the layer: tile {event.tiles_done}/{event.tiles_total}")
        elif isinstance(event, events.TrainFinished):
            self.status.setText(f"training ended ({event.reason}) at step {event.step}; "
                                "denoising the layer…")
        elif isinstance(event, events.Message):
            if event.topic == events.NOISE_CORRELATION:
                self.quality.show_warning(event.text)
            self.on_message(event)

    def _show_step(self, e: events.TrainStep) -> None:
        budget = self._time_budget_s
        if budget:
            fraction = e.elapsed_s / budget
            eta = max(budget - e.elapsed_s, 0.0)
        else:
            fraction = e.step / max(e.total_steps, 1)
            eta = e.eta_s
        val = "" if e.val_loss is None else f", val {e.val_loss:.4g}"
        total = "" if budget else f"/{e.total_steps}"
        self.set_progress(fraction, (
            f"step {e.step}{total} · loss {e.loss:.4g}{val} · {e.patches_per_s:.0f} patches/s"
            f" · elapsed {_common.format_duration(e.elapsed_s)}"
            f" · ETA {_common.format_duration(eta)}"))

    def _show_preview(self, event: events.TrainPreview) -> None:
        import time

        if self._source not in self.viewer.layers:
            return
        layer = self.viewer.layers[self._source]
        if self.first_preview_s is None:
            self.first_preview_s = time.perf_counter() - self.run_started
        image = _view.expand_to_layer(event.image, event.region)
        geometry = _common.output_layer_kwargs(layer)
        geometry.update(_view.region_geometry(layer, event.region))
        name = layer.name + PREVIEW_SUFFIX
        meta = {"preview_step": event.step}
        if name in self.viewer.layers:
            preview = self.viewer.layers[name]
            preview.data = image
            preview.translate = geometry["translate"]
            preview.metadata.update(meta)
        else:
            self.viewer.add_image(image, name=name, metadata=meta, colormap=layer.colormap.name,
                                  contrast_limits=layer.contrast_limits, **geometry)

    def _finished_training(self, source: str, settings: TrainSettings, bundle: Any,
                           denoised: Any) -> None:
        self.bundle = bundle
        if denoised is None:  # the widget is closing
            return
        self.quality.show_noise_model(bundle.info.get("noise_model"))
        self.bundle_source = source
        bundle.info.setdefault("source_layer", source)
        name = f"{source} [{bundle.method}]"
        _common.SESSION.add(name, bundle)
        meta = {
            METADATA_KEY: bundle.to_metadata(),
            PROVENANCE_KEY: make_provenance("train", source, settings, bundle=bundle),
        }
        if source in self.viewer.layers:
            src = self.viewer.layers[source]
            layer = _common.add_or_update_image(
                self.viewer, name, denoised, src, meta, colormap=src.colormap.name)
            preview = source + PREVIEW_SUFFIX
            if preview in self.viewer.layers:
                self.viewer.layers.remove(preview)
        else:
            layer = self.viewer.add_image(denoised, name=name, metadata=meta)
        self.output_layer = layer
        if settings.save_model_to:
            path = bundle.save(settings.save_model_to)
            self.notify(f"model saved to {path}")
        self.set_progress(1.0, f"done: {name}")
        self._set_running(False)

    def _save_model_clicked(self) -> None:
        if self.bundle is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save model", f"{self.bundle_source}_{self.bundle.method}.sdmodel",
            "napari-selfdenoise models (*.sdmodel)")
        if path:
            saved = self.guarded(lambda: self.bundle.save(path))
            if saved:
                self.notify(f"model saved to {saved}")

    # ------------------------------------------------------------ bioimage.io export
    def _export_clicked(self) -> None:
        if self.bundle is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export bioimage.io package",
            f"{self.bundle_source}_{self.bundle.method}.zip", "bioimage.io packages (*.zip)")
        if path:
            self.guarded(lambda: self.export_bioimageio(path))

    def export_bioimageio(self, path: str) -> bool:
        """Export the current model to ``path`` in a worker (tested before it is written);
        the training layer, when still open, gives the test image and the cover."""
        from ..core.bioimageio import require_bioimageio
        from ..core.bioimageio.export import check_destination, export_bioimageio

        require_bioimageio()
        check_destination(path, overwrite=True)  # mistakes as a message, before any work
        bundle, name = self.bundle, self.bundle_source
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        sample = None
        if layer is not None and not getattr(layer, "multiscale", False) \
                and layer.data.ndim == len(bundle.axes):
            sample = (layer.data, bundle.axes)

        def make(stop: Any) -> Any:
            return export_bioimageio(bundle, path, sample=sample,
                                     sample_name=name if sample else None, overwrite=True)

        def done(out: Any) -> None:
            self.last_export = out
            self.notify(f"bioimage.io package written to {out} (its test passed)")

        return self.launch(make, self.on_message, done, "exporting to bioimage.io…")
