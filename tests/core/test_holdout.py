"""Compare's scoring bands (issue #14): spread over the image, disjoint from training."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfdenoise.core.holdout import CONTEXT, MIN_PIECE, HoldoutError, plan


def _covered(hold) -> np.ndarray:
    """How many times each row is a band row or a training row."""
    count = np.zeros(hold.height, int)
    for s, e in list(hold.bands) + hold.pieces_rows():
        count[s:e] += 1
    return count


@pytest.mark.parametrize("height", [96, 160, 288, 400, 512, 1024])
def test_bands_and_pieces_partition_the_rows(height):
    hold = plan(height, 0.2)
    assert (_covered(hold) == 1).all()  # every row exactly once: nothing scored is trained on
    rows = [e - s for s, e in hold.bands]
    assert len(set(rows)) == 1 and sum(rows) >= 0.2 * height
    assert all(e - s >= MIN_PIECE for s, e in hold.pieces_rows())
    up, down = hold.context
    assert all(s - up >= 0 and e + down <= height for s, e in hold.bands)


def test_a_512_row_image_is_scored_on_four_bands_spread_over_it():
    hold = plan(512, 0.2)
    assert len(hold.bands) == 4 and hold.context == (CONTEXT, CONTEXT)
    starts = [s for s, _ in hold.bands]
    assert starts[0] < 128 and starts[-1] > 384  # top and bottom quarters both sampled


def test_a_small_image_keeps_one_band_at_the_end():
    hold = plan(96, 0.2)
    assert hold.bands == ((64, 96),) and hold.context == (CONTEXT, 0)
    assert hold.pieces_rows() == [(0, 64)]


def test_too_small_an_image_is_one_clear_error():
    with pytest.raises(HoldoutError, match="80 pixels along Y"):
        plan(80, 0.2)


def test_region_crops_and_strip_agree_in_2d_and_3d():
    rng = np.random.default_rng(0)
    for shape in [(2, 512, 40), (1, 3, 512, 24)]:
        arr = rng.normal(size=shape).astype(np.float32)
        hold = plan(shape[-2], 0.2)
        region, crops = hold.region(arr), hold.crops(arr)
        k = len(hold.bands)
        assert region.shape == (k * shape[0],) + shape[1:-2] + (hold.band_rows, shape[-1])
        np.testing.assert_array_equal(hold.strip(crops), region)
        s, e = hold.bands[1]
        np.testing.assert_array_equal(region[shape[0]:2 * shape[0]], arr[..., s:e, :])
        joined = hold.joined(arr)
        assert joined.shape[-2] == shape[-2] - k * hold.band_rows
        assert sum(p.shape[-2] for p in hold.pieces(arr)) == joined.shape[-2]
