"""Batch runs of a dock widget: its current settings applied to the selected layers or to
a folder of files (:func:`napari_selfdenoise.core.presets.run_batch`), outputs shown as
layers or written to a folder."""

from __future__ import annotations

from typing import Any, Generator, Optional

from qtpy.QtWidgets import QFileDialog, QMessageBox

from ..core import presets
from ..core.provenance import PROVENANCE_KEY, make_provenance
from . import _common


class BatchRuns:
    """Mixin of :class:`~._base.DockWidget` (before ``QWidget``): the "Batch run…" menu's
    actions. Uses the widget's ``settings``, ``launch``, ``set_progress``, ``notify``,
    ``guarded``, ``viewer`` and ``kind``."""

    def run_batch(self, inputs: list, out_dir: Optional[str] = None,
                  overwrite: bool = False) -> bool:
        """Apply the current settings to ``inputs`` (paths or (name, array, axes) tuples).

        With ``out_dir`` None the outputs become layers ``"<name> [<tag>]"``; else one file
        per input is written there (existing ones only with ``overwrite``). Bad inputs are
        reported at the end.
        """
        settings = self.settings()
        model = self.batch_model()
        tag = batch_tag(settings, model)

        def make(stop: Any) -> Generator:
            return presets.run_batch(settings, inputs, out_dir, stop=stop, model=model,
                                     overwrite=overwrite)

        def on_event(progress: presets.BatchProgress) -> None:
            done = progress.index + (progress.status in ("done", "failed"))
            self.set_progress(done / max(progress.total, 1),
                              f"batch {progress.index + 1}/{progress.total}: {progress.name} "
                              f"{progress.status} {progress.message}".strip())
            if progress.status == "done" and out_dir is None:
                self.add_batch_layer(progress.name, progress.output, settings, tag)

        def on_done(report: presets.BatchReport) -> None:
            self.last_batch_report = report
            self.notify(f"batch run: {report.summary()}",
                        "warning" if report.failures else "info")

        return self.launch(make, on_event, on_done, f"batch run over {len(inputs)} inputs")

    def batch_model(self) -> Any:
        """The model a predict batch uses (None for the other kinds)."""
        return None

    def add_batch_layer(self, name: str, data: Any, settings: Any, tag: str) -> None:
        """Show one in-memory batch output as ``"<name> [<tag>]"`` next to its source."""
        source = self.viewer.layers[name] if name in self.viewer.layers else None
        meta = {PROVENANCE_KEY: make_provenance(f"batch {self.kind}", name, settings)}
        if source is not None:
            _common.add_or_update_image(self.viewer, f"{name} [{tag}]", data, source, meta)
        else:
            self.viewer.add_image(data, name=f"{name} [{tag}]", metadata=meta)

    def _batch_layers_clicked(self) -> None:
        def go() -> bool:
            layers = [lay for lay in self.viewer.layers.selection
                      if lay in _common.image_layers(self.viewer)]
            if not layers:
                raise ValueError("select one or more image layers in the layer list first")
            inputs = [(lay.name, _common.snapshot(lay), _common.layer_axes(lay))
                      for lay in layers]
            return self.run_batch(inputs)

        self.guarded(go)

    def _batch_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to process")
        if not folder:
            return
        out = QFileDialog.getExistingDirectory(self, "Folder for the outputs")
        if out:
            self.guarded(lambda: self.batch_to_folder(presets.expand_inputs([folder]), out))

    def batch_to_folder(self, inputs: list, out_dir: str) -> bool:
        """Run a batch into ``out_dir``, asking first when it would replace earlier outputs
        (the widget's ``--overwrite``); collisions and inputs as outputs are refused."""
        planned = presets.plan_outputs(self.settings(), inputs, out_dir,
                                       model=self.batch_model(), overwrite=True)
        existing = [p for files in planned.values() for p in files if p.exists()]
        if existing:
            answer = QMessageBox.question(
                self, "Replace earlier outputs?",
                f"{len(existing)} output file(s) in {out_dir} exist already (e.g. "
                f"{existing[0].name}). Replace them?")
            if answer != QMessageBox.StandardButton.Yes:
                self.set_progress(None, "batch run cancelled: the earlier outputs are kept")
                return False
        return self.run_batch(inputs, out_dir, overwrite=bool(existing))


def batch_tag(settings: Any, model: Any) -> str:
    """The ``[tag]`` of batch outputs: the method, or the denoiser asked for."""
    if model is not None:
        return model.method
    if isinstance(settings, presets.TrainSettings):
        return settings.train.method
    return settings.calibrate.denoiser
