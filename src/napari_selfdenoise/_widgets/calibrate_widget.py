"""Calibrate dock widget: choose a classical denoiser's parameter by Noise2Self.

Run calibrates on a snapshot of the picked layer in a thread worker, draws the
self-supervised loss against the parameter (one curve per denoiser, the chosen point
marked) and adds ``"<name> [<denoiser>]"`` with the choice and its curves in metadata.
"""

from __future__ import annotations

import threading
from typing import Any, Generator, Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from ..core import events
from ..core.config import CalibrateConfig
from ..core.presets import CalibrateSettings
from ..core.provenance import PROVENANCE_KEY, make_provenance
from . import _common
from ._base import DockWidget
from .loss_plot import CalibrationPlot
from .train_options import combo, set_combo, spin

CALIBRATION_KEY = "napari_selfdenoise_calibration"


def parameter_grid(lo: float, hi: float, n: int, log: bool) -> list[float]:
    """``n`` values from ``lo`` to ``hi``, geometric (``log``) or even."""
    if n < 2 or hi <= lo:
        raise ValueError("the parameter range needs from < to and at least 2 values")
    if log and lo <= 0:
        raise ValueError("a log-spaced range must start above 0")
    grid = np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)
    return [float(v) for v in grid]


class CalibrateWidget(DockWidget):
    """J-invariant calibration of median / mean / Gaussian / ... denoisers (or Auto)."""

    kind = "calibrate"

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(napari_viewer, parent)
        from ..core.denoisers import DENOISERS

        names = {"auto": "Auto (try all, lowest loss wins)"}
        names.update({k: f"{k} ({d.parameter})" for k, d in DENOISERS.items()})
        self.denoiser = combo(names, "Denoiser to calibrate")
        self.auto_range = QCheckBox("from the estimated noise level")
        self.auto_range.setChecked(True)
        self.range_from = spin(0, 1e6, 0.5, decimals=3, step=0.5)
        self.range_to = spin(0, 1e6, 4.0, decimals=3, step=0.5)
        self.range_n = spin(2, 100, 8)
        self.range_log = QCheckBox("log")
        self.range_log.setChecked(True)
        self.j_invariant = QCheckBox("J-invariant output")
        self.crop = spin(0, 100_000, 512, tip="Calibrate on a central crop (0: whole image)")
        self.device = QLineEdit("auto")
        self.run_button = QPushButton("Run")
        self.stop_button = QPushButton("Stop")
        self.plot = CalibrationPlot()
        self.result: Any = None
        self._layout()
        self.denoiser.currentIndexChanged.connect(self._range_enabled)
        self.auto_range.toggled.connect(self._range_enabled)
        self.run_button.clicked.connect(lambda: self.guarded(self.run))
        self.stop_button.clicked.connect(self.stop)
        self.ready()

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("denoiser", self.denoiser)
        form.addRow("parameter range", self.auto_range)
        row = QHBoxLayout()
        for widget in (self.range_from, self.range_to, self.range_n, self.range_log):
            row.addWidget(widget)
        self.range_from.setPrefix("from ")
        self.range_to.setPrefix("to ")
        self.range_n.setSuffix(" values")
        form.addRow(row)
        form.addRow("output", self.j_invariant)
        form.addRow("crop side", self.crop)
        form.addRow("device", self.device)
        self.build_layout(form, [self.run_button, self.stop_button], [self.plot])
        self._range_enabled()

    def _range_enabled(self, *_: Any) -> None:
        auto_denoiser = self.denoiser.currentData() == "auto"
        self.auto_range.setEnabled(not auto_denoiser and not self.runner.running)
        custom = not auto_denoiser and not self.auto_range.isChecked()
        for widget in (self.range_from, self.range_to, self.range_n, self.range_log):
            widget.setEnabled(custom and not self.runner.running)

    # ------------------------------------------------------------------- settings
    def settings(self) -> CalibrateSettings:
        denoiser = self.denoiser.currentData()
        values = None
        if denoiser != "auto" and not self.auto_range.isChecked():
            values = parameter_grid(self.range_from.value(), self.range_to.value(),
                                    self.range_n.value(), self.range_log.isChecked())
        return CalibrateSettings(calibrate=CalibrateConfig(
            denoiser=denoiser, values=values, axes=self.axes_edit.text().strip() or None,
            j_invariant_output=self.j_invariant.isChecked(),
            crop=self.crop.value() or None, device=self.device.text().strip() or "auto"))

    def set_settings(self, settings: CalibrateSettings) -> None:
        c = settings.calibrate
        set_combo(self.denoiser, c.denoiser)
        self.auto_range.setChecked(not c.values)
        if c.values:
            lo, hi, n = c.values[0], c.values[-1], len(c.values)
            self.range_from.setValue(lo)
            self.range_to.setValue(hi)
            self.range_n.setValue(n)
            self.range_log.setChecked(lo > 0 and np.allclose(np.geomspace(lo, hi, n), c.values))
        self.j_invariant.setChecked(c.j_invariant_output)
        self.crop.setValue(c.crop or 0)
        self.device.setText(c.device)
        if c.axes:
            self.axes_edit.setText(c.axes)
        self._range_enabled()

    def _controls(self) -> list:
        return super()._controls() + [self.denoiser, self.j_invariant, self.crop, self.device,
                                      self.run_button, self.save_preset_button]

    def _set_running(self, running: bool) -> None:
        super()._set_running(running)
        self.stop_button.setEnabled(running)
        self._range_enabled()

    # ----------------------------------------------------------------------- runs
    def run(self) -> bool:
        """Calibrate on the picked layer and add the denoised layer."""
        from ..core.calibration import calibrate

        layer = self.selected_layer()
        axes = self.selected_axes(layer)
        settings = self.settings()
        config = settings.calibrate.model_copy(update={"axes": axes})
        data = _common.snapshot(layer)
        self.plot.reset()
        source = layer.name

        def make(stop: threading.Event) -> Generator:
            return calibrate(data, config, axes=axes, stop=stop)

        def on_done(result: Any) -> None:
            self._finished(source, settings, result)

        return self.launch(make, self._on_event, on_done, f"calibrating on {source}…")

    def _on_event(self, event: Any) -> None:
        if isinstance(event, events.CalibrationStep):
            self.plot.add(event.denoiser, event.parameter, event.value, event.loss)
            self.set_progress((event.index + 1) / max(event.total, 1),
                              f"{event.denoiser} {event.parameter}={event.value:.3g}: "
                              f"loss {event.loss:.4g} ({event.index + 1}/{event.total}, "
                              f"{_common.format_duration(event.elapsed_s)})")
        elif isinstance(event, events.Message):
            self.on_message(event)

    def _finished(self, source: str, settings: CalibrateSettings, result: Any) -> None:
        self.result = result
        self.plot.mark(result.denoiser, result.best_value, result.best_loss)
        choice = f"{result.denoiser} {result.parameter}={result.best_value:.4g}"
        if result.image is None:
            self.set_progress(None, f"stopped: best so far {choice} (no image made)")
            return
        name = f"{source} [{result.denoiser}]"
        report = result.to_report()
        meta = {
            CALIBRATION_KEY: report,
            PROVENANCE_KEY: make_provenance(
                "calibrate", source, settings, denoiser=result.denoiser,
                parameter=result.parameter, value=float(result.best_value)),
        }
        self.output_layer = _common.show_result(self.viewer, name, result.image, source, meta)
        self.set_progress(1.0, f"done: {choice} (noise sigma {result.noise_sigma:.3g})")
