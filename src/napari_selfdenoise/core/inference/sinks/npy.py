"""``.npy`` output through a memory map, renamed into place when complete."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ... import outputs
from .array import ArraySink
from .base import SinkRequest


class NpySink(ArraySink):
    """A ``.npy`` file written through a memory map, renamed into place when complete."""

    kind = "npy"

    def __init__(self, layout, n_chunks, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.part")
        arr = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=layout.shape)
        try:  # a full disk fails here, not later with a bus error in the memory map
            with open(self.tmp, "r+b") as fh:
                outputs.reserve(fh.fileno(), os.path.getsize(self.tmp), path)
        except BaseException:
            del arr
            os.unlink(self.tmp)
            raise
        super().__init__(layout, n_chunks, arr)

    @classmethod
    def matches(cls, path: Path) -> bool:
        return path.suffix.lower() == ".npy"

    @classmethod
    def open(cls, req: SinkRequest):
        return cls(req.layout, req.n_chunks, outputs.prepare_parent(req.out)), req.plan

    def finish(self, complete):
        self.array.flush()
        del self.array
        if complete:
            os.replace(self.tmp, self.path)
            return self.path
        os.unlink(self.tmp)
        return None
