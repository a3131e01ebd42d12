"""Small matplotlib canvases for the dock widgets.

:class:`PlotCanvas` owns a figure styled like napari's dark theme; subclasses override
:meth:`~PlotCanvas.clear` and :meth:`~PlotCanvas.draw` only (cf. napari-matplotlib's
``base.py``). Data arrive through cheap appends; :meth:`~PlotCanvas.request_redraw`
coalesces redraws with a timer, so a fast stream of events never blocks the event loop.
"""

from __future__ import annotations

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

    min_interval_ms = 400

    def __init__(self, parent: Optional[QWidget] = None, height: float = 2.4) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4, height), facecolor=BACKGROUND, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(height * 70))
        self.axes = self.figure.add_subplot(111)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
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
        """Clear, draw and repaint now."""
        self.clear()
        self._style()
        self.draw()
        self.canvas.draw_idle()

    def request_redraw(self) -> None:
        """Redraw soon (at most every ``min_interval_ms``)."""
        if not self._timer.isActive():
            self._timer.start(self.min_interval_ms)

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
        ax = self.axes
        ax.set_ylabel("self-supervised loss", fontsize=8)
        if not self.curves:
            return
        names = []
        for denoiser, (parameter, xs, ys) in self.curves.items():
            order = np.argsort(xs)
            ax.plot(np.array(xs)[order], np.array(ys)[order], "o-", ms=3, lw=1.2,
                    label=f"{denoiser} ({parameter})")
            names.append(parameter)
        if len(set(names)) == 1:
            ax.set_xlabel(names[0], fontsize=8)
        else:  # different parameters: compare positions, not values
            ax.set_xlabel("parameter value", fontsize=8)
        if self.best is not None:
            denoiser, value, loss = self.best
            ax.plot([value], [loss], "*", color="#ff4757", ms=14, label=f"chosen: {denoiser}")
        legend = ax.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND)
        for text in legend.get_texts():
            text.set_color(FOREGROUND)
