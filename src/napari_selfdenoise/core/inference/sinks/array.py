"""In-memory output: a float32 numpy array shaped like the input."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ... import validation
from ..layout import Layout
from .base import Sink, SinkRequest


class ArraySink(Sink):
    """Chunks go into a numpy array (NaN where nothing was written)."""

    kind = "array"

    def __init__(self, layout: Layout, n_chunks: int, array: Optional[np.ndarray] = None):
        super().__init__(layout, n_chunks)
        self.array = array if array is not None else np.full(layout.shape, np.nan, np.float32)

    @classmethod
    def open(cls, req: SinkRequest):
        validation.check_fits_in_memory(4 * math.prod(req.layout.shape), "the denoised image",
                                        "write it to a .zarr or .tif output instead")
        return cls(req.layout, req.n_chunks), req.plan

    def write(self, sample, spatial, block):
        self.put(self.array, sample, spatial, block)

    def finish(self, complete):
        return self.array
