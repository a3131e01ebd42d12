"""Compare dock widget: which denoiser for this image? (core.compare)

Run trains the candidate networks and calibrates the classical filters on a snapshot of
the picked layer within one budget, keeps a live table of every candidate (score,
estimated PSNR with its range, what it is), draws the filters' calibration curves and the
current network's loss curve, and adds ``"<name> [compare: <pick>]"`` with the ranking in
its metadata.
"""

from __future__ import annotations

import threading
from typing import Any, Generator, Optional

from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QLineEdit, QPushButton, QTableWidget,
    QTableWidgetItem, QWidget,
)

from ..core import events
from ..core.config import CompareConfig
from ..core.preload import preload_optimiser
from ..core.presets import CompareSettings
from ..core.provenance import PROVENANCE_KEY, make_provenance
from . import _common
from ._base import DockWidget
from .loss_plot import CalibrationPlot, LossPlot
from .train_options import spin

RANKING_KEY = "napari_selfdenoise_ranking"
COLUMNS = ("candidate", "kind", "score", "est. PSNR (dB)", "range",
           "J-inv. est. PSNR", "detail")


class CompareWidget(DockWidget):
    """Rank networks and classical filters on the layer; the winner becomes a layer."""

    kind = "compare"

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(napari_viewer, parent)
        self.budget = spin(5, 24 * 3600, 120, tip="Total seconds for every candidate")
        self.clock = QComboBox()
        self.clock.addItem("wall-clock seconds", "wall")
        self.clock.addItem("CPU seconds of this process", "cpu")
        self.methods = QLineEdit(" ".join(CompareConfig().methods))
        self.methods.setToolTip("Candidate networks, e.g. 'n2s' (measured default) or "
                                "'n2s n2v2'")
        self.filters = QCheckBox("calibrate every classical filter")
        self.filters.setChecked(True)
        self.blend = QCheckBox("rank the blend of the best network and the best filter")
        self.blend.setChecked(True)
        self.blend.setToolTip(CompareConfig.model_fields["blend"].description)
        self.device = QLineEdit("auto")
        self.run_button = QPushButton("Compare")
        self.stop_button = QPushButton("Stop")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setToolTip("Score: J-invariant self-supervised loss on one held-out "
                              "region (lower is better, comparable across candidates). "
                              "Estimated PSNR: of the output each candidate hands out, "
                              "against the unknown clean image (Stein's estimate where "
                              "that output is not J-invariant).")
        self.filter_plot = CalibrationPlot()
        self.loss_plot = LossPlot()
        self.result: Any = None
        self._training = ""
        self._warned = ""  # the correlated-noise warning already notified in this run
        form = QFormLayout()
        form.addRow("budget (s)", self.budget)
        form.addRow("clock", self.clock)
        form.addRow("networks", self.methods)
        form.addRow("filters", self.filters)
        form.addRow("blend", self.blend)
        form.addRow("device", self.device)
        self.build_layout(form, [self.run_button, self.stop_button],
                          [self.table, self.filter_plot, self.loss_plot])
        self.run_button.clicked.connect(lambda: self.guarded(self.run))
        self.stop_button.clicked.connect(self.stop)
        self.ready()
        preload_optimiser()  # torch's one-time optimiser import, before Start

    # ------------------------------------------------------------------- settings
    def settings(self) -> CompareSettings:
        return CompareSettings(compare=CompareConfig(
            budget_s=float(self.budget.value()), clock=self.clock.currentData(),
            methods=self.methods.text().split(), filters=self.filters.isChecked(),
            blend=self.blend.isChecked(), device=self.device.text().strip() or "auto"))

    def set_settings(self, settings: CompareSettings) -> None:
        c = settings.compare
        self.budget.setValue(int(round(c.budget_s)))
        self.clock.setCurrentIndex(max(self.clock.findData(c.clock), 0))
        self.methods.setText(" ".join(c.methods))
        self.filters.setChecked(c.filters)
        self.blend.setChecked(c.blend)
        self.device.setText(c.device)

    def _controls(self) -> list:
        return super()._controls() + [self.budget, self.clock, self.methods, self.filters,
                                      self.blend, self.device, self.run_button, self.save_preset_button]

    def _set_running(self, running: bool) -> None:
        super()._set_running(running)
        self.stop_button.setEnabled(running)

    # ----------------------------------------------------------------------- runs
    def run(self) -> bool:
        """Compare on the picked layer and add the winner's output as a layer."""
        from ..core.compare import compare

        layer = self.selected_layer()
        axes = self.selected_axes(layer)
        settings = self.settings()
        data = _common.snapshot(layer)
        self.table.setRowCount(0)
        self._warned = ""
        self.filter_plot.reset()
        self.loss_plot.reset()
        source = layer.name

        def make(stop: threading.Event) -> Generator:
            return compare(data, settings.compare, axes=axes, stop=stop)

        def on_done(result: Any) -> None:
            self._finished(source, settings, result)

        return self.launch(make, self._on_event, on_done, f"comparing on {source}…")

    def _on_event(self, event: Any) -> None:
        if isinstance(event, events.CompareRanking):
            self.show_ranking(event.rows)
            self.set_progress(event.elapsed_s / max(event.budget_s, 1e-9),
                              f"leader: {event.pick} ({event.elapsed_s:.0f}/"
                              f"{event.budget_s:.0f} s)")
            self._warn(event.warning)
        elif isinstance(event, events.CalibrationStep):
            self.filter_plot.add(event.denoiser, event.parameter, event.value, event.loss)
        elif isinstance(event, events.CompareTraining):
            self._on_training(event)
        elif isinstance(event, events.Message):
            if event.topic == events.NOISE_CORRELATION:
                self._warn(event.text)
            else:
                self.on_message(event)

    def _warn(self, text: Any) -> None:
        """Notify the correlated-noise warning once a run (every ranking carries it)."""
        if text and text != self._warned:
            self._warned = text
            self.notify(text, "warning")

    def _on_training(self, event: events.CompareTraining) -> None:
        e = event.event
        if not isinstance(e, events.TrainStep):
            return
        if event.candidate != self._training:
            self._training = event.candidate
            self.loss_plot.reset()
        self.loss_plot.add(e.step, e.loss, e.val_loss)
        est = "" if e.estimated_psnr is None else f" · est. PSNR {e.estimated_psnr:.1f} dB"
        self.status.setText(f"training {event.candidate}: step {e.step} · loss {e.loss:.4g}"
                            f"{est}")

    def show_ranking(self, rows: Any) -> None:
        """Fill the table with ``rows`` (CandidateScore, best first)."""
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            q, d = r.quality, r.best
            cells = (r.name, r.kind, f"{q.score:.5g}", f"{d.psnr:.2f}",
                     f"{d.psnr_low:.1f}-{d.psnr_high:.1f}", f"{q.psnr:.2f}",
                     f"{r.detail}; {r.scored_as}")
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))

    def _finished(self, source: str, settings: CompareSettings, result: Any) -> None:
        self.result = result
        self.show_ranking(result.ranking)
        report = result.report()
        name = f"{source} [compare: {result.pick}]"
        meta = {RANKING_KEY: report,
                PROVENANCE_KEY: make_provenance("compare", source, settings,
                                                bundle=result.bundle, ranking=report)}
        self.output_layer = _common.show_result(self.viewer, name, result.image, source, meta)
        best = result.ranking[0]
        kind = "a classical filter is estimated best" if result.kind == "filter" else "a network"
        self.set_progress(1.0, f"pick: {result.pick} ({kind}, {best.best.describe()})")
