"""Blocks of distributed prediction: every missing chunk in exactly one block."""

from __future__ import annotations

import numpy as np

from napari_selfdenoise.core.inference.blocks import block_voxels, chunk_id, make_blocks
from napari_selfdenoise.core.inference.layout import Layout
from napari_selfdenoise.core.tiling import make_plan


def test_blocks_partition_the_missing_chunks():
    layout = Layout("TYX", (3, 300, 410), "YX", "T")
    plan = make_plan((300, 410), (64, 64), (8, 8))
    n = layout.n_samples * plan.n_tiles
    done = np.zeros(n, bool)
    done[np.random.default_rng(0).choice(n, n // 3, replace=False)] = True
    blocks = make_blocks(layout, plan, done)
    ids = [c for b in blocks for c in b.chunk_ids]
    assert sorted(ids) == sorted(np.flatnonzero(~done).tolist())  # each once, none done
    for b in blocks:
        assert [chunk_id(plan, b.sample, c) for c in b.chunks] == list(b.chunk_ids)
        span = np.ptp(np.array(b.chunks), axis=0) + 1
        assert (span <= 4).all()  # at most 4 x 4 chunks
    full = make_blocks(layout, plan, np.zeros(n, bool))
    assert sum(block_voxels(plan, b) for b in full) == 300 * 410 * 3
    assert make_blocks(layout, plan, np.ones(n, bool)) == []
