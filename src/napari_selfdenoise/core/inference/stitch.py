"""Stitching: weighted tile outputs summed per chunk, in tile order, each chunk written
(de-normalised) when its last contributing tile lands."""

from __future__ import annotations

import numpy as np

from ..bundle import ModelBundle
from ..tiling import TilePlan
from .sinks.base import Sink


class Stitcher:
    """Accumulates weighted tile outputs per chunk; writes a chunk when its last tile lands."""

    def __init__(self, plan: TilePlan, sink: Sink, bundle: ModelBundle):
        self.plan = plan
        self.sink = sink
        self.pending: dict[tuple, list] = {}
        self.offset = np.asarray(bundle.norm_offset, np.float32).reshape(
            (-1,) + (1,) * len(plan.shape))
        self.scale = np.asarray(bundle.norm_scale, np.float32).reshape(self.offset.shape)
        self.n_channels = bundle.n_channels
        self._grid = plan.grid

    def chunk_id(self, sample: int, chunk: tuple[int, ...]) -> int:
        return sample * self.plan.n_tiles + int(np.ravel_multi_index(chunk, self._grid))

    def add(self, sample: int, tile: tuple[int, ...], y: np.ndarray) -> None:
        w = self.plan.tile_weights(tile)
        for chunk, t_sl, c_sl in self.plan.pieces(tile):
            cid = self.chunk_id(sample, chunk)
            if self.sink.done[cid]:
                continue
            entry = self.pending.get(cid)
            if entry is None:
                region = self.plan.chunk_slices(chunk)
                shape = (self.n_channels,) + tuple(r.stop - r.start for r in region)
                entry = self.pending[cid] = [np.zeros(shape, np.float32), 0]
            entry[0][(slice(None),) + c_sl] += y[(slice(None),) + t_sl] * w[t_sl]
            entry[1] += 1
            if entry[1] == self.plan.contributions(chunk):
                block = entry[0] * self.scale + self.offset
                self.sink.write(sample, self.plan.chunk_slices(chunk), block)
                self.sink.done[cid] = True
                del self.pending[cid]
