"""The noise's correlation range without ground truth (issue #13, pixel shuffle ``auto``):
the per-axis autocorrelation at lags 1..L, its block standard error, and the range on
phantoms whose kernel fixes the truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfdenoise.core import noise_correlation as nc
from napari_selfdenoise.core import noise_level
from napari_selfdenoise.core.samples import phantom_2d, phantom_correlated

BINOMIAL_3 = np.outer([1.0, 2, 1], [1.0, 2, 1])
BINOMIAL_5 = np.outer([1.0, 4, 6, 4, 1], [1.0, 4, 6, 4, 1])
#: noise plus 0.08 of its right neighbour: lag-1 correlation 0.08 along X only (the FMD
#: confocal images measure 0.05-0.09 along X)
WEAK_X = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.08], [0.0, 0.0, 0.0]])


def _truth(taps: list[float]) -> np.ndarray:
    """Autocorrelation at lags 1.. of noise filtered by ``taps`` (one axis)."""
    t = np.asarray(taps, float)
    full = np.correlate(t, t, mode="full")[t.size - 1:]
    return full[1:] / full[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_white_noise_has_range_zero(seed):
    y = phantom_2d((256, 256), seed=seed).noisy
    assert nc.correlation_range(y) == 0
    for lc in nc.lag_correlations(y).values():
        assert np.all(np.abs(lc.rho) < 0.03)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binomial_3x3_has_range_two_and_its_correlations(seed):
    """[1, 2, 1] per axis: 0.67 and 0.17 at lags 1 and 2, 0 from lag 3 on."""
    found = nc.lag_correlations(phantom_correlated((256, 256), seed=seed).noisy)
    truth = _truth([1, 2, 1])
    assert set(found) == {-1, -2}
    for lc in found.values():
        assert lc.range == 2
        np.testing.assert_allclose(lc.rho[:2], truth[:2], atol=0.03)
        assert np.all(np.abs(lc.rho[2:]) < 0.03)
    assert nc.correlation_range(phantom_correlated((256, 256), seed=seed).noisy) == 2


def test_binomial_5x5_range_is_what_the_autocorrelation_can_show():
    """[1, 4, 6, 4, 1]: 0.80, 0.40, 0.11, 0.014 at lags 1-4. The fourth is below
    MIN_CORRELATION (too weak to matter for a blind spot), so the range is 3; with a
    looser floor the 512 x 512 image shows lag 4 as well."""
    truth = _truth([1, 4, 6, 4, 1])
    assert truth[3] < nc.MIN_CORRELATION < truth[2]
    for seed in (0, 1):
        y = phantom_correlated((256, 256), kernel=BINOMIAL_5, seed=seed).noisy
        assert nc.correlation_range(y) == 3
        for lc in nc.lag_correlations(y).values():
            np.testing.assert_allclose(lc.rho[:3], truth[:3], atol=0.04)


def test_weak_lag_one_along_x_has_range_one_along_x_only():
    for seed in (0, 1, 2):
        found = nc.lag_correlations(phantom_correlated((256, 256), kernel=WEAK_X,
                                                       seed=seed).noisy)
        assert found[-1].range == 1 and found[-2].range == 0
        assert 0.05 < found[-1].rho[0] < 0.11


def test_lag_one_agrees_with_axis_correlations():
    y = phantom_correlated((192, 160), seed=3).noisy
    found, lag1 = nc.lag_correlations(y), noise_level.axis_correlations(y)
    for axis in (-1, -2):
        assert abs(found[axis].rho[0] - lag1[axis]) < 0.01


def test_standard_error_matches_theory_on_white_gaussian_noise():
    """Under white noise the lag products of one row are independent, but rows are
    correlated by the high-pass across them: var(rho_k) = sum(a**2) / n with ``a`` the
    high-pass's normalised autocorrelation. The block estimate must find that (within
    the sampling error of 64 blocks), and the z-scores must look standard normal."""
    a = np.correlate(noise_level.HIGH_PASS, noise_level.HIGH_PASS, mode="full")
    a /= a.max()
    zs = []
    for seed in range(4):
        y = np.random.default_rng(seed).normal(10.0, 3.0, (262, 263))
        lc = nc.lag_correlations(y)[-1]
        n = 256 * (263 - nc.MAX_LAG)  # rows after the high-pass x the left pixels
        theory = np.sqrt(np.sum(a**2) / n)
        np.testing.assert_allclose(lc.se, theory, rtol=0.3)
        zs.extend(lc.rho / lc.se)
    assert 0.6 < np.std(zs) < 1.4 and abs(np.mean(zs)) < 0.6


def test_too_small_or_flat_regions_measure_nothing():
    assert nc.lag_correlations(np.ones((64, 64))) == {}
    assert nc.lag_correlations(phantom_2d((64, 64), seed=0).noisy[:10]).keys() <= {-1}
    assert nc.correlation_range(np.zeros((8, 8))) == 0


def test_data_range_is_the_largest_of_the_images():
    white = phantom_2d((128, 128), seed=0).noisy[None, None]
    corr = phantom_correlated((128, 128), seed=0).noisy[None, None]
    reach, text = nc.data_correlation_range([white, corr])
    assert reach == 2 and text.startswith("X 0.6")
    assert nc.data_correlation_range([white])[0] == 0
    assert nc.data_correlation_range([np.ones((1, 1, 8, 8))]) == (0, "")
