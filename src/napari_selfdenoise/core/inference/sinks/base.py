"""The output sink protocol: where finished chunks go.

A sink receives finished chunks ``(C, *spatial)`` (de-normalised, canonical order) from
the stitcher, puts them into its output in the data's axis order, keeps ``done`` (one flag
per chunk, ``sample * n_tiles + chunk``) and, if it is resumable, persists it
(:mod:`..progress`). A sink class is registered under its output kind in
:data:`napari_selfdenoise.core.inference.sinks.SINKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import numpy as np

from ...bundle import ModelBundle
from ...config import PredictConfig
from ...tiling import TilePlan
from ..layout import Layout


@dataclass
class SinkRequest:
    """Everything a sink class needs to open its output (see :meth:`Sink.open`)."""

    out: Any
    layout: Layout
    plan: TilePlan
    bundle: ModelBundle
    config: PredictConfig
    provenance: Optional[dict]
    j_invariant: bool
    input_id: Optional[dict]
    execution: dict

    @property
    def n_chunks(self) -> int:
        return self.layout.n_samples * self.plan.n_tiles


class Sink(ABC):
    """Receives finished chunks ``(C, *spatial)`` and puts them into the output."""

    #: output kind (the registry key)
    kind: ClassVar[str] = ""
    #: keeps a completion record: a rerun with the same settings continues it
    resumable: ClassVar[bool] = False
    #: the output is a folder (a store), not a file
    directory: ClassVar[bool] = False
    #: worker processes can write their own chunks into it concurrently (distributed
    #: prediction; the completion record is kept by the client)
    shared_store: ClassVar[bool] = False

    def __init__(self, layout: Layout, n_chunks: int):
        self.layout = layout
        self.done = np.zeros(n_chunks, dtype=bool)
        self.nonfinite = 0  # NaN pixels written (input NaN / Inf, see validation)
        self.count_nan = False
        self._has_c = "C" in layout.axes
        # canonical ([C], spatial) -> data order of the block letters
        letters = ("C" if self._has_c else "") + layout.spatial
        self._perm = [letters.index(a) for a in layout.block_letters]

    @classmethod
    def matches(cls, path: Path) -> bool:
        """Whether an output ``path`` is of this kind (in-memory sinks: never)."""
        return False

    @classmethod
    @abstractmethod
    def open(cls, req: SinkRequest) -> tuple["Sink", TilePlan]:
        """The sink for ``req`` and the tile plan to run (a resumed output keeps its own)."""

    def index(self, sample: int, spatial: tuple[slice, ...],
              axes: Optional[str] = None) -> tuple:
        """Where a chunk goes in an array whose axes are ``axes`` (default: the input's)."""
        values = dict(self.layout.sample_index(sample))
        values.update(zip(self.layout.spatial, spatial))
        values["C"] = slice(None)
        return tuple(values[a] for a in (axes or self.layout.axes))

    def put(self, array: Any, sample: int, spatial: tuple[slice, ...], block: np.ndarray,
            axes: Optional[str] = None) -> None:
        """Write one finished chunk into ``array`` whose axes are ``axes`` (default: the
        input's; another order, e.g. OME-Zarr's, gets the chunk transposed)."""
        data = self._out(block)
        if axes is not None and axes != self.layout.axes:
            letters = self.layout.block_letters
            data = np.transpose(data, [letters.index(a) for a in axes if a in letters])
        array[self.index(sample, spatial, axes)] = data

    def to_data_order(self, block: np.ndarray) -> np.ndarray:
        return np.transpose(block if self._has_c else block[0], self._perm)

    def _out(self, block: np.ndarray) -> np.ndarray:
        """The block in data order, counting its NaN pixels (non-finite input pixels)."""
        arr = self.to_data_order(block)
        if self.count_nan:
            self.nonfinite += int(np.count_nonzero(np.isnan(arr)))
        return arr

    @abstractmethod
    def write(self, sample: int, spatial: tuple[slice, ...], block: np.ndarray) -> None:
        """Put one finished chunk of one sample at ``spatial`` (image coordinates)."""

    def record(self, final: bool = False) -> None:
        """Persist which chunks are done (resumable outputs)."""

    # ------------------------------------------------- distributed runs (shared stores)
    #: set by a backend whose workers write the chunks: the sink then never reads them
    remote_writes: bool = False

    def worker_target(self) -> tuple[str, str]:
        """The zarr array the workers write their chunks into, and its axes."""
        raise NotImplementedError(f"{type(self).__name__} is not a shared store")

    def remote_finish(self) -> Optional[tuple[Callable[..., Any], tuple]]:
        """Work that one worker runs once every chunk is written, as ``(function, args)``
        (picklable; it opens the store itself), e.g. an OME-Zarr pyramid; None: none."""
        return None

    def remote_finished(self) -> None:
        """:meth:`remote_finish`'s work has succeeded."""

    @abstractmethod
    def finish(self, complete: bool) -> Any:
        """Close the output; the result of the prediction (array or path) or None."""
