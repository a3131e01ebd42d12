"""Tile plans and blending windows (pure numpy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_selfdenoise.core.tiling import (
    make_plan, plan_axis, ramp, read_reflected, reflect_index, round_up,
)


@pytest.mark.parametrize("n,p", [(1, 5), (2, 7), (7, 3), (7, 20), (13, 40)])
def test_reflect_index_matches_numpy_reflect_padding(n, p):
    x = np.arange(n) * 10
    np.testing.assert_array_equal(x[reflect_index(np.arange(-p, n + p), n)],
                                  np.pad(x, p, mode="reflect") if n > 1 else np.zeros(n + 2 * p))


def test_ramp_is_a_partition_of_unity_and_smooth():
    r = ramp(16)
    np.testing.assert_allclose(r + r[::-1], 1.0)
    assert np.all(np.diff(r) > 0) and np.max(np.abs(np.diff(r))) < 0.11


@pytest.mark.parametrize("border", [None, 0, 4])
@pytest.mark.parametrize("shape,tile", [
    ((101,), (48,)), ((37, 53), (32, 40)), ((9, 64, 31), (24, 40, 28)), ((5, 7), (64, 64)),
    ((130,), (64,)), ((99,), (24,)),
])
def test_weights_sum_to_one_and_chunks_tile_the_image(shape, tile, border):
    context = [8] * len(shape)
    plan = make_plan(shape, tile, context, multiple=4,
                     border=None if border is None else [border] * len(shape))
    total = np.zeros(shape)
    cover = np.zeros(shape, int)
    fed = {}
    for idx in plan.tiles():
        w = plan.tile_weights(idx)
        assert w.shape == plan.tile_shape
        assert all(e % 4 == 0 for e in plan.tile_shape)
        for a, i in zip(plan.axes, idx):
            # origins aligned with the pooling grid of the network run on the padded image
            assert (a.tile_start(i) + a.border) % 4 == 0
            # tiles stay on the padded image
            assert -a.border <= a.tile_start(i) and a.tile_start(i) + a.extent <= a.padded_stop
        for chunk, t_sl, c_sl in plan.pieces(idx):
            region = plan.chunk_slices(chunk)
            dst = tuple(slice(r.start + c.start, r.start + c.stop) for r, c in zip(region, c_sl))
            total[dst] += w[t_sl]
            fed[chunk] = fed.get(chunk, 0) + 1
            # the piece has the full context on each side, except where the tile ends
            # with the padded image (where the whole-image run has no context either)
            for s, a, i in zip(t_sl, plan.axes, idx):
                start = a.tile_start(i)
                lo = 0 if start == -a.border else a.context
                hi = a.extent if start + a.extent == a.padded_stop else a.extent - a.context
                assert lo <= s.start and s.stop <= hi
    for chunk in itertools.product(*(range(n) for n in plan.grid)):
        cover[plan.chunk_slices(chunk)] += 1
        assert fed[chunk] == plan.contributions(chunk)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    np.testing.assert_array_equal(cover, 1)


def test_small_axes_get_one_tile_rounded_to_the_multiple():
    a = plan_axis(13, 256, 30, 16, 8)
    assert a.n_tiles == 1 and a.stride == 16 and a.context == 32 and a.blend == 0
    assert a.extent == 16 + 64


def test_border_sets_the_padding_of_the_whole_axis():
    # one tile: the axis rounded up to the multiple plus the border on each side
    a = plan_axis(13, 256, 30, 16, 8, border=3)
    assert (a.n_tiles, a.border, a.extent, a.tile_start(0)) == (1, 8, 16 + 16, -8)
    assert plan_axis(13, 256, 30, 16, 8, border=0).extent == 16
    assert plan_axis(13, 256, 30, 16, 8, border=100).border == 32  # at most the context
    # an axis fits in one tile as soon as its padded length does
    assert plan_axis(60, 64, 32, 16, 4, border=0).n_tiles == 1
    # several tiles: the end tiles are shifted onto the padded image's ends
    a = plan_axis(1000, 256, 32, 16, 4, border=0)
    assert a.n_tiles > 1 and a.tile_start(0) == 0
    assert a.tile_start(a.n_tiles - 1) + a.extent == 1000


def test_stride_is_balanced_and_blend_bounded():
    a = plan_axis(1000, 512, 32, 16, 4)
    assert a.n_tiles == 3 and a.stride == 336 and a.stride * 3 >= 1000
    assert a.extent <= 512 and a.extent % 4 == 0


def test_too_small_tiles_are_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        plan_axis(100, 60, 32, 16, 4)


def test_tiles_for_chunks_are_exactly_the_feeding_tiles():
    plan = make_plan((50, 70), (24, 24), (4, 4), multiple=4)
    for chunk in [(0, 0), (1, 2), (plan.grid[0] - 1, plan.grid[1] - 1)]:
        feeders = sorted(idx for idx in plan.tiles()
                         if any(c == chunk for c, _, _ in plan.pieces(idx)))
        assert plan.tiles_for_chunks([chunk]) == feeders


class CountingArray:
    """A sliceable array that records the voxels it hands out."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.voxels = arr, arr.shape, arr.dtype, 0

    def __getitem__(self, idx):
        out = self.arr[idx]
        self.voxels += out.size
        return out


def test_read_reflected_reads_only_the_bounding_box():
    rng = np.random.default_rng(0)
    img = rng.random((3, 20, 30))
    src = CountingArray(img)
    block = read_reflected(src, [1, None, None], [(-4, 12), (26, 38)], [1, 2], (20, 30))
    ref = np.pad(img[1], 8, mode="reflect")[8 - 4 : 8 + 12, 26 + 8 : 38 + 8]
    np.testing.assert_array_equal(block, ref)
    assert src.voxels == 12 * 9  # rows 0..11, columns 21..29
    assert round_up(13, 4) == 16
