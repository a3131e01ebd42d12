"""The execution backend protocol: what runs the tiles of one prediction.

:func:`~napari_selfdenoise.core.inference.api.predict` resolves the input, the axes, the
output kind and the predictor into a :class:`Job`; the backend chosen by
:func:`~napari_selfdenoise.core.inference.backends.backend_for` then sets up where the
network runs (:meth:`Backend.setup`: the device type and memory budget the tile plan is
made for, and the execution record stored in the output), and runs the planned tiles into
the opened sink (:meth:`Backend.run`, a generator of events returning the result).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Generator, Optional, Protocol

from ...bundle import ModelBundle
from ...config import PredictConfig
from ...tiling import TilePlan
from ..layout import Layout
from ..sinks.base import Sink


@dataclass
class Job:
    """One prediction, resolved: what to run on what, and where the result goes."""

    bundle: ModelBundle
    data: Any  # the opened input (lazy where it came from a file)
    source: Optional[str]  # the input's path, if it came from one
    layout: Layout
    config: PredictConfig
    kind: Optional[str]  # output kind (None: in memory)
    out: Any
    stop: Optional[threading.Event]
    predictor: str  # "plain", "j_invariant" or "complementary"
    grid: int  # J-invariant grid (1 otherwise)
    mode: str  # fill of masked pixels
    n_subsets: int
    net: Any  # the network with batch norm folded (CPU, for planning)

    @property
    def j_invariant(self) -> bool:
        return self.predictor != "plain"


@dataclass
class Setup:
    """Where the network runs: the tile plan is made for it."""

    device_type: str
    budget: float  # bytes for one batch
    execution: dict  # device.execution_record (stored in file outputs)


class Backend(Protocol):
    """Runs a :class:`Job`'s tiles. Registered in ``backends.BACKENDS`` by name."""

    name: str

    def setup(self, job: Job) -> Setup:
        """Prepare the workers (device, network); errors here come before any output."""
        ...

    def input_identity(self, job: Job) -> dict:
        """The input's identity for the resume record (``resume.input_identity``), read
        where the backend reads the input."""
        ...

    def run(self, job: Job, sink: Sink, plan: TilePlan, batch: int
            ) -> Generator[Any, None, Any]:
        """Run the tiles still missing in ``sink`` and return ``sink.finish(...)``.

        Yields :class:`~napari_selfdenoise.core.events.PredictStarted` first, then
        :class:`~napari_selfdenoise.core.events.TileDone` / ``Message``."""
        ...

    def close(self) -> None:
        """Release what :meth:`setup` acquired (always called)."""
        ...
