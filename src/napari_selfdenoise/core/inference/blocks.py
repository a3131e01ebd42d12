"""Blocks of distributed prediction: groups of output chunks, each computed by one task.

A block is one sample's run of neighbouring output chunks (``CHUNKS_PER_AXIS`` per spatial
axis, fewer at the image's ends), minus the chunks already done. Its task runs the tiles
that feed those chunks (each tile is its chunk plus the network's halo as context; with
blending a chunk also needs its lower neighbour's tile), stitches them exactly as the
threaded backend does and writes only the block's own chunks. A tile feeding chunks of
two blocks is computed by both: along an axis a block of ``k`` chunks runs at most
``k + 1`` tiles, so the extra work is at most ``(k + 1) / k`` per axis.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..tiling import TilePlan
from .layout import Layout

#: chunks per block along each spatial axis, by spatial rank
CHUNKS_PER_AXIS = {2: 4, 3: 2}


@dataclass(frozen=True)
class Block:
    """The chunks one task computes and writes: ``chunk_ids`` index the completion record
    (``sample * n_tiles + chunk``), ``chunks`` are the spatial chunk indices."""

    sample: int
    chunks: tuple[tuple[int, ...], ...]
    chunk_ids: tuple[int, ...]


def chunk_id(plan: TilePlan, sample: int, chunk: tuple[int, ...]) -> int:
    """The chunk's position in the completion record."""
    return sample * plan.n_tiles + int(np.ravel_multi_index(chunk, plan.grid))


def make_blocks(layout: Layout, plan: TilePlan, done: np.ndarray,
                per_axis: int | None = None) -> list[Block]:
    """The blocks still to compute (chunks in ``done`` are left out), sample by sample."""
    nd = len(plan.grid)
    g = per_axis or CHUNKS_PER_AXIS.get(nd, 2)
    starts = [range(0, n, g) for n in plan.grid]
    blocks = []
    for s in range(layout.n_samples):
        for origin in itertools.product(*starts):
            ranges = [range(o, min(o + g, n)) for o, n in zip(origin, plan.grid)]
            chunks, ids = [], []
            for chunk in itertools.product(*ranges):
                cid = chunk_id(plan, s, chunk)
                if not done[cid]:
                    chunks.append(tuple(int(c) for c in chunk))
                    ids.append(cid)
            if chunks:
                blocks.append(Block(s, tuple(chunks), tuple(ids)))
    return blocks


def block_voxels(plan: TilePlan, block: Block) -> int:
    """Output voxels (per channel) of ``block``."""
    return sum(math.prod(s.stop - s.start for s in plan.chunk_slices(c)) for c in block.chunks)
