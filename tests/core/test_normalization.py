"""Normalisation statistics and the CSBDeep-style comparison helpers."""

import numpy as np
import pytest

from napari_selfdenoise.core.config import NormalizationConfig
from napari_selfdenoise.core.normalization import (
    compute_normalization, norm_minmse, normalize_percentile,
)


def test_percentile_statistics_per_channel_over_all_images():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, size=(2, 2, 50, 50)).astype(np.float32)
    b = rng.uniform(0, 100, size=(1, 2, 30, 70)).astype(np.float32)
    b[:, 1] *= 10
    off, scale = compute_normalization([a, b], NormalizationConfig(kind="percentile", pmin=1, pmax=99))
    both0 = np.concatenate([a[:, 0].ravel(), b[:, 0].ravel()])
    both1 = np.concatenate([a[:, 1].ravel(), b[:, 1].ravel()])
    for c, v in enumerate([both0, both1]):
        lo, hi = np.percentile(v, [1, 99])
        assert off[c] == pytest.approx(lo, rel=1e-6) and scale[c] == pytest.approx(hi - lo, rel=1e-6)
    assert scale[1] > 2 * scale[0]


def test_meanstd_and_none():
    x = np.random.default_rng(1).normal(5, 2, size=(1, 1, 100, 100))
    off, scale = compute_normalization([x], NormalizationConfig(kind="meanstd"))
    assert off[0] == pytest.approx(x.mean()) and scale[0] == pytest.approx(x.std())
    assert compute_normalization([x], NormalizationConfig(kind="none")) == ([0.0], [1.0])


def test_sparse_image_falls_back_to_full_range_and_constant_raises():
    x = np.zeros((1, 1, 100, 100), np.float32)
    x[0, 0, 0, 0] = 7.0  # 99.8th percentile is still 0
    off, scale = compute_normalization([x], NormalizationConfig(kind="percentile"))
    assert (off[0], scale[0]) == (0.0, 7.0)
    with pytest.raises(ValueError, match="constant"):
        compute_normalization([np.ones((1, 1, 8, 8))])


def test_norm_minmse_undoes_an_affine_change():
    rng = np.random.default_rng(2)
    gt = rng.uniform(0, 1000, size=(64, 64))
    gt_n, fit = norm_minmse(gt, 3.0 * gt - 50.0)
    assert np.allclose(gt_n, normalize_percentile(gt), atol=1e-6)
    assert np.allclose(fit, gt_n, atol=1e-4)
    assert np.percentile(gt_n, 0.1) == pytest.approx(0, abs=1e-6)
    assert np.percentile(gt_n, 99.9) == pytest.approx(1, abs=1e-5)


def test_default_is_standardisation():
    """Zero mean / unit variance by default (Noise2Same's sqrt term assumes that scale)."""
    x = np.random.default_rng(3).gamma(2.0, 50.0, size=(1, 1, 64, 64))
    off, scale = compute_normalization([x])
    assert off[0] == pytest.approx(x.mean()) and scale[0] == pytest.approx(x.std())
