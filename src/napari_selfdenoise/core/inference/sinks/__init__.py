"""Output sinks, registered by output kind.

To add an output format: one module with a :class:`~.base.Sink` subclass (``kind``,
``matches``, ``open``, ``write``, ``finish``) and one entry in :data:`SINKS`. An output
path takes the first registered kind whose ``matches`` accepts it, so a kind with a more
specific suffix (``.ome.zarr``) goes before the one it refines (``.zarr``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .array import ArraySink
from .base import Sink, SinkRequest
from .npy import NpySink
from .ome_zarr import OmeZarrSink
from .tiff import TiffSink
from .zarr import ZarrSink

#: output kind -> sink class; ``"array"`` is the in-memory result (no output path)
SINKS: dict[str, type[Sink]] = {
    "ome-zarr": OmeZarrSink,  # before "zarr": .ome.zarr refines .zarr
    "zarr": ZarrSink,
    "tiff": TiffSink,
    "npy": NpySink,
    "array": ArraySink,
}

IN_MEMORY = "array"


def output_kind(out: Any) -> Optional[str]:
    """The registered kind of output path ``out``; None for an in-memory result."""
    if out is None:
        return None
    p = Path(out)
    for kind, cls in SINKS.items():
        if cls.matches(p):
            return kind
    raise ValueError(f"output {p} must end in .zarr, .ome.zarr, .tif, .tiff or .npy")


def sink_class(kind: Optional[str]) -> type[Sink]:
    """The sink class of output kind ``kind`` (None: in memory)."""
    return SINKS[IN_MEMORY if kind is None else kind]


def make_sink(kind: Optional[str], req: SinkRequest) -> tuple[Sink, Any]:
    """The output sink for ``req`` and the tile plan to run (a resumed output keeps its own)."""
    return sink_class(kind).open(req)


__all__ = ["SINKS", "Sink", "SinkRequest", "make_sink", "output_kind", "sink_class",
           "ArraySink", "NpySink", "OmeZarrSink", "ZarrSink", "TiffSink"]
