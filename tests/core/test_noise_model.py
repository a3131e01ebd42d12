"""The Poisson-Gaussian noise estimate recovers known (a, b) on phantoms."""

import numpy as np
import pytest

from napari_selfdenoise.core.noise_model import NoiseModel, estimate_noise_model
from napari_selfdenoise.core.samples import phantom_3d


@pytest.mark.parametrize("photons, read_noise, seed", [(30, 2, 0), (30, 2, 3), (100, 3, 1)])
@pytest.mark.parametrize("gain", [1.0, 0.2])
def test_estimate_within_10_percent(photons, read_noise, seed, gain):
    # photo-electrons scaled by `gain`: var = gain * signal + gain**2 * read_noise**2
    p = phantom_3d((16, 128, 128), photons=photons, read_noise=read_noise, seed=seed)
    nm = estimate_noise_model(p.noisy * gain)
    assert nm.a[0] == pytest.approx(gain, rel=0.1)
    assert nm.b[0] == pytest.approx(gain**2 * read_noise**2, rel=0.1)


def test_per_channel_and_pure_gaussian():
    rng = np.random.default_rng(0)
    flat = np.full((2, 256, 256), 50.0)
    noisy = flat + rng.normal(0, [[[3.0]], [[6.0]]], flat.shape)
    nm = estimate_noise_model(noisy, channel_axis=0)
    assert len(nm.a) == 2
    # a flat image fixes one point of the line: the variance there is what counts
    assert nm.variance(50.0, 0) == pytest.approx(9.0, rel=0.1)
    assert nm.variance(50.0, 1) == pytest.approx(36.0, rel=0.1)


def test_normalised_units():
    nm = NoiseModel((2.0,), (5.0,))
    off, scale = 10.0, 4.0
    n = nm.normalised([off], [scale])
    x = np.array([0.0, 3.0, 100.0])
    np.testing.assert_allclose(n.variance((x - off) / scale), nm.variance(x) / scale**2)
    assert "var = 2 * signal + 5" == nm.describe()
