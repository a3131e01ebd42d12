"""Typed progress events yielded by long-running work (training, prediction, calibration).

Long work is a generator ``Generator[Event, None, Result]``: the GUI, the CLI and the
tests all drive the same code and read the result from ``StopIteration.value``
(see :func:`run_to_end`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Optional, TypeVar

import numpy as np

R = TypeVar("R")


#: :attr:`Message.topic` of the warning that the noise is correlated between pixels
#: (core.noise_level), which breaks the assumption of every masking method and score
NOISE_CORRELATION = "noise-correlation"


@dataclass(frozen=True)
class Message:
    """A human-readable note (``level`` is ``"info"`` or ``"warning"``); ``topic`` names
    what it is about (e.g. :data:`NOISE_CORRELATION`) for a front end that shows it in a
    place of its own, and is empty for a passing note."""

    text: str
    level: str = "info"
    topic: str = ""


@dataclass(frozen=True)
class TrainStep:
    """Logged every ``log_every`` steps (and at validation steps)."""

    step: int
    total_steps: int
    loss: float
    val_loss: Optional[float]
    patches_per_s: float
    elapsed_s: float
    eta_s: Optional[float]
    learning_rate: float
    best_val_loss: Optional[float] = None
    #: estimated PSNR (dB) against the unknown clean image and its range, at validation
    #: steps (core.live_quality); None elsewhere
    estimated_psnr: Optional[float] = None
    estimated_psnr_range: Optional[tuple] = None


@dataclass(frozen=True)
class TrainPreview:
    """A denoised preview of the requested region, in the data's original units."""

    step: int
    image: np.ndarray = field(repr=False)
    region: tuple = ()


@dataclass(frozen=True)
class TrainFinished:
    """Training ended; ``reason`` is ``"steps"``, ``"time"`` or ``"stopped"``."""

    step: int
    reason: str
    elapsed_s: float
    best_val_loss: Optional[float]


@dataclass(frozen=True)
class TileDone:
    """One batch of tiles written during prediction (distributed: one block of chunks).

    ``tiles_done`` / ``tiles_total`` count output chunks (one per tile). ``block`` is the
    distributed backend's report of the block that finished: ``chunk_ids``, ``tiles`` run,
    ``elements_read`` from the input, the worker's ``pid`` and its ``model_loads``."""

    tiles_done: int
    tiles_total: int
    voxels_per_s: float
    elapsed_s: float
    eta_s: Optional[float]
    skipped: int = 0
    block: Optional[dict] = field(default=None, repr=False)


@dataclass(frozen=True)
class PredictStarted:
    """Prediction's execution settings, yielded once before the first tile.

    ``execution`` is :func:`~napari_selfdenoise.core.device.execution_record` (device, its
    name, precision, memory format, torch version): callers store it in provenance.
    """

    execution: dict
    tile_shape: tuple
    batch_size: int
    tiles_total: int


@dataclass(frozen=True)
class CalibrationStep:
    """One tried parameter of one denoiser during calibration."""

    denoiser: str
    parameter: str
    value: float
    loss: float
    index: int
    total: int
    elapsed_s: float


Event = Any  # one of the dataclasses above


def tap(gen: Generator[Any, None, R], on_event: Callable[[Any], None]) -> Generator[Any, None, R]:
    """Re-yield every event of ``gen`` after passing it to ``on_event``; return its result.

    ``result = yield from tap(predict(...), seen.append)`` lets a generator that drives
    another one look at its events without consuming them.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        on_event(event)
        yield event


def run_to_end(
    gen: Generator[Any, None, R], on_event: Optional[Callable[[Any], None]] = None
) -> R:
    """Drive a work generator to completion and return its result.

    Parameters
    ----------
    gen : generator
        A generator such as ``train(...)`` or ``predict(...)``.
    on_event : callable, optional
        Called with every yielded event.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)


@dataclass(frozen=True)
class CompareTraining:
    """A candidate network's training event (``event``: TrainStep, Message...)."""

    candidate: str
    event: Any


@dataclass(frozen=True)
class CompareRanking:
    """The live ranking of a comparison: every candidate scored so far, best first.

    ``rows`` are :class:`~napari_selfdenoise.core.compare.CandidateScore` records (score,
    estimated PSNR with its range, how it was scored); ``warning`` flags correlated noise.
    """

    rows: tuple
    pick: str
    noise_variance: float
    elapsed_s: float
    budget_s: float
    warning: Optional[str] = None
