"""The result of a calibration: the loss curve of every denoiser tried and the choice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .limits import GRID


@dataclass
class DenoiserCurve:
    """Self-supervised loss of one denoiser over its parameter grid."""

    denoiser: str
    parameter: str
    values: list[float]
    losses: list[float]

    @property
    def best_index(self) -> int:
        """Index of the lowest loss."""
        return int(np.argmin(self.losses))

    @property
    def best_value(self) -> float:
        """Parameter value with the lowest loss."""
        return self.values[self.best_index]

    @property
    def best_loss(self) -> float:
        """The lowest loss."""
        return self.losses[self.best_index]

    def sort(self) -> None:
        """Order the tried values increasingly (extensions may append lower ones)."""
        pairs = sorted(zip(self.values, self.losses))
        self.values = [v for v, _ in pairs]
        self.losses = [loss for _, loss in pairs]

    def to_dict(self) -> dict:
        """JSON-safe form."""
        return {"denoiser": self.denoiser, "parameter": self.parameter,
                "values": [float(v) for v in self.values],
                "losses": [float(v) for v in self.losses],
                "best_value": float(self.best_value), "best_loss": float(self.best_loss)}


@dataclass
class CalibrationResult:
    """What :func:`calibrate` returns.

    Attributes
    ----------
    denoiser, parameter : str
        The chosen denoiser and the name of its parameter.
    values, losses : list of float
        Its grid and self-supervised loss per value (mean squared error on masked pixels).
    best_value, best_loss : float
        The chosen value and its loss.
    image : array or None
        The denoised image in the input's axes and shape (``None`` when stopped).
    j_invariant : bool
        Whether ``image`` is the J-invariant output (else the plain denoiser's).
    curves : dict
        ``{name: DenoiserCurve}`` for every denoiser tried (several for ``"auto"``).
    noise_sigma : float
        Estimated noise standard deviation of the crop (data units).
    """

    denoiser: str
    parameter: str
    values: list[float]
    losses: list[float]
    best_value: float
    best_loss: float
    image: Any = field(default=None, repr=False)
    j_invariant: bool = False
    curves: dict[str, DenoiserCurve] = field(default_factory=dict)
    noise_sigma: float = float("nan")
    axes: str = ""
    crop_shape: tuple[int, ...] = ()
    loss_pixels: int = 0
    stopped: bool = False
    calibration_s: float = 0.0
    elapsed_s: float = 0.0

    def to_report(self) -> dict:
        """JSON-safe summary: the choice, every curve, timings (no pixel data)."""
        return {
            "denoiser": self.denoiser, "parameter": self.parameter,
            "best_value": float(self.best_value), "best_loss": float(self.best_loss),
            "values": [float(v) for v in self.values],
            "losses": [float(v) for v in self.losses],
            "j_invariant_output": bool(self.j_invariant),
            "curves": {k: c.to_dict() for k, c in self.curves.items()},
            "noise_sigma": float(self.noise_sigma), "axes": self.axes,
            "crop_shape": [int(s) for s in self.crop_shape],
            "loss_pixels": int(self.loss_pixels), "grid": GRID, "stopped": self.stopped,
            "calibration_s": round(self.calibration_s, 4),
            "elapsed_s": round(self.elapsed_s, 4),
        }

