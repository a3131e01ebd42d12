"""Small matplotlib canvases for the dock widgets.

:class:`PlotCanvas` owns a figure styled like napari's dark theme; subclasses override
:meth:`~PlotCanvas.clear` and :meth:`~PlotCanvas.draw` only (cf. napari-matplotlib's
``base.py``). Data arrive through cheap appends; :meth:`~PlotCanvas.request_redraw`
coalesces redraws with a timer whose interval adapts to the measured render time, so the
plot never takes more than about a tenth of the event loop however slow the machine.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QSpinBox, QVBoxLayout, QWidget

FOREGROUND = "#d6d0ce"
BACKGROUND = "#262930"
TRAIN_COLOUR = "#ff9f43"
VAL_COLOUR = "#48dbfb"


class PlotCanvas(QWidget):
    """A matplotlib canvas in a QWidget; subclasses implement ``clear`` and ``draw``."""

    min_interval_ms = 500
    max_share = 0.1  # at most this fraction of the main thread goes to rendering

    def __init__(self, parent: Optional[QWidget] = None, height: float = 2.4) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4, height), facecolor=BACKGROUND)
        self.figure.subplots_adjust(left=0.24, right=0.97, bottom=0.2, top=0.95)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(height * 70))
        self.axes = self.figure.add_subplot(111)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        self.interval_ms = self.min_interval_ms
        self.last_render_ms = 0.0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.refresh()

    def clear(self) -> None:
        """Remove everything from the axes (subclasses may extend)."""
        self.axes.clear()

    def draw(self) -> None:
        """Draw the current data on ``self.axes`` (subclasses override)."""

    def refresh(self) -> None:
        """Clear, draw and render now; the next timed redraw waits in proportion."""
        t0 = time.perf_counter()
        self.clear()
        self._style()
        self.draw()
        self.canvas.draw()
        self.last_render_ms = (time.perf_counter() - t0) * 1000
        self.interval_ms = max(self.min_interval_ms, self.last_render_ms / self.max_share)

    def request_redraw(self) -> None:
        """Redraw soon (after ``interval_ms``; appends in between are coalesced)."""
        if not self._timer.isActive():
            self._timer.start(int(self.interval_ms))

    def _style(self) -> None:
        ax = self.axes
        ax.set_facecolor(BACKGROUND)
        for spine in ax.spines.values():
            spine.set_color(FOREGROUND)
        ax.tick_params(colors=FOREGROUND, labelsize=8)
        ax.xaxis.label.set_color(FOREGROUND)
        ax.yaxis.label.set_color(FOREGROUND)
        ax.title.set_color(FOREGROUND)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (NaNs ignored); same length."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or values.size == 0:
        return values
    ok = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    count = ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[idx] - csum[lo]) / np.maximum(count, 1), np.nan)


class LossPlot(PlotCanvas):
    """Training and validation loss per step, smoothed, with an optional log scale."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []
        super().__init__(parent)
        self.log_scale = QCheckBox("log scale")
        self.log_scale.setChecked(True)
        self.smoothing = QSpinBox()
        self.smoothing.setRange(1, 200)
        self.smoothing.setValue(5)
        self.smoothing.setPrefix("smooth ")
        self.smoothing.setToolTip("Moving average over this many logged points")
        row = QHBoxLayout()
        row.addWidget(self.log_scale)
        row.addWidget(self.smoothing)
        row.addStretch(1)
        self.layout().addLayout(row)
        self.log_scale.toggled.connect(self.refresh)
        self.smoothing.valueChanged.connect(self.refresh)

    def reset(self) -> None:
        """Forget all points (a new run)."""
        for values in (self.steps, self.losses, self.val_steps, self.val_losses):
            values.clear()
        self.refresh()

    def add(self, step: int, loss: float, val_loss: Optional[float] = None) -> None:
        """Append one logged step (and its validation loss, when computed)."""
        self.steps.append(int(step))
        self.losses.append(float(loss))
        if val_loss is not None and np.isfinite(val_loss):
            self.val_steps.append(int(step))
            self.val_losses.append(float(val_loss))
        self.request_redraw()

    def draw(self) -> None:
        ax = self.axes
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("loss", fontsize=8)
        if not self.steps:
            return
        window = self.smoothing.value() if hasattr(self, "smoothing") else 1
        ax.plot(self.steps, self.losses, color=TRAIN_COLOUR, alpha=0.25, lw=0.8)
        ax.plot(self.steps, smooth(np.array(self.losses), window), color=TRAIN_COLOUR,
                lw=1.5, label="training")
        if self.val_steps:
            ax.plot(self.val_steps, self.val_losses, "o-", color=VAL_COLOUR, ms=3, lw=1.2,
                    label="validation")
        positive = all(v > 0 for v in self.losses + self.val_losses)
        if getattr(self, "log_scale", None) is not None and self.log_scale.isChecked() and positive:
            ax.set_yscale("log")
        legend = ax.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND)
        for text in legend.get_texts():
            text.set_color(FOREGROUND)


class CalibrationPlot(PlotCanvas):
    """Self-supervised loss against the parameter, one curve per denoiser, best marked."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        self.curves: dict[str, tuple[str, list[float], list[float]]] = {}
        self.best: Optional[tuple[str, float, float]] = None
        super().__init__(parent)

    def reset(self) -> None:
        self.curves.clear()
        self.best = None
        self.refresh()

    def add(self, denoiser: str, parameter: str, value: float, loss: float) -> None:
        """Append one tried parameter value."""
        _, xs, ys = self.curves.setdefault(denoiser, (parameter, [], []))
        xs.append(float(value))
        ys.append(float(loss))
        self.request_redraw()

    def mark(self, denoiser: str, value: float, loss: float) -> None:
        """Mark the chosen point."""
        self.best = (denoiser, float(value), float(loss))
        self.refresh()

    def draw(self) -> None:
        """One curve per denoiser; with several denoisers (different parameters) each is
        drawn against its position in its own grid, on a log loss axis."""
        ax = self.axes
        ax.set_ylabel("self-supervised loss", fontsize=8)
        if not self.curves:
            return
        single = len(self.curves) == 1
        for denoiser, (parameter, xs, ys) in self.curves.items():
            x, y = self._positions(xs, single), np.asarray(ys)[np.argsort(xs)]
            ax.plot(x, y, "o-", ms=3, lw=1.2, label=f"{denoiser} ({parameter})")
        if single:
            ax.set_xlabel(next(iter(self.curves.values()))[0], fontsize=8)
        else:
            ax.set_xlabel("position in each denoiser's parameter grid", fontsize=8)
            if all(v > 0 for _, _, ys in self.curves.values() for v in ys):
                ax.set_yscale("log")
        if self.best is not None and self.best[0] in self.curves:
            denoiser, value, loss = self.best
            ranked = sorted(self.curves[denoiser][1])
            x = value if single else ranked.index(value) / max(len(ranked) - 1, 1)
            ax.plot([x], [loss], "*", color="#ff4757", ms=14, label=f"chosen: {denoiser}")
        legend = ax.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND)
        for text in legend.get_texts():
            text.set_color(FOREGROUND)

    @staticmethod
    def _positions(xs: list, values: bool) -> np.ndarray:
        """Sorted parameter values, or their positions 0..1 in the grid."""
        order = np.sort(np.asarray(xs, dtype=float))
        if values:
            return order
        return np.linspace(0.0, 1.0, len(order)) if len(order) > 1 else np.zeros(1)
