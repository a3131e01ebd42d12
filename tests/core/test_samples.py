"""Synthetic phantoms (deterministic, Poisson-Gaussian, PSF-limited) and the bundled crop."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfdenoise.core import samples


def test_phantom_2d_is_seeded_and_typed(phantom2d):
    again = samples.phantom_2d((96, 96), seed=0)
    other = samples.phantom_2d((96, 96), seed=1)
    assert phantom2d.axes == "YX"
    assert phantom2d.noisy.shape == phantom2d.clean.shape == (96, 96)
    assert phantom2d.noisy.dtype == phantom2d.clean.dtype == np.float32
    np.testing.assert_array_equal(phantom2d.noisy, again.noisy)
    np.testing.assert_array_equal(phantom2d.clean, again.clean)
    assert not np.array_equal(phantom2d.clean, other.clean)


def test_ground_truth_spans_background_to_peak(phantom2d):
    clean = phantom2d.clean
    assert clean.min() >= phantom2d.background - 1e-5
    assert clean.max() == pytest.approx(phantom2d.background + phantom2d.photons, rel=1e-5)
    # sparse bright structures on a dim background, as in fluorescence
    signal = (clean - phantom2d.background) / phantom2d.photons
    assert 0.002 < np.mean(signal > 0.5) < 0.1
    assert np.mean(signal < 0.2) > 0.6


def test_noise_is_poisson_gaussian():
    """Mean = expected signal; variance = expected photo-electrons + read noise^2."""
    clean = np.full((400, 400), 0.5, np.float32)
    noisy, expected = samples.add_poisson_gaussian(
        clean, photons=40.0, background=2.0, read_noise=3.0, seed=3
    )
    assert np.all(expected == pytest.approx(22.0))
    residual = noisy.astype(np.float64) - expected
    assert abs(residual.mean()) < 0.05
    assert residual.var() == pytest.approx(22.0 + 9.0, rel=0.03)
    # independent pixels: neighbours are uncorrelated
    corr = np.corrcoef(residual[:, :-1].ravel(), residual[:, 1:].ravel())[0, 1]
    assert abs(corr) < 0.01


def test_noise_scales_with_signal(phantom2d):
    """Shot noise: brighter pixels are noisier."""
    residual = phantom2d.noisy - phantom2d.clean
    dim = phantom2d.clean < phantom2d.background + 0.1 * phantom2d.photons
    bright = phantom2d.clean > phantom2d.background + 0.5 * phantom2d.photons
    assert residual[bright].var() > 3 * residual[dim].var()


def test_structures_are_blurred_by_the_psf(phantom3d):
    """No edge is sharper than a PSF of sigma ~1.2 px allows; the axial PSF is wider."""
    clean = (phantom3d.clean - phantom3d.background) / phantom3d.photons
    gz, gy, gx = (np.abs(g) for g in np.gradient(clean.astype(np.float64)))
    # the steepest slope of a unit Gaussian profile of sigma s is 0.61 / s
    assert gy.max() < 0.61 / 1.2 * 1.3 and gx.max() < 0.61 / 1.2 * 1.3
    assert np.mean(gz**2) < 0.5 * np.mean(gy**2)
    assert phantom3d.axes == "ZYX" and phantom3d.noisy.shape == (16, 64, 64)


def test_default_phantom_noise_level():
    phantom = samples.phantom_2d()
    assert phantom.noisy.shape == (256, 256)
    assert 18.0 < samples.psnr(phantom.clean, phantom.noisy) < 23.0


@pytest.mark.parametrize("bad", [(8,), (4, 4, 4, 4), (2, 64)])
def test_bad_shapes_are_rejected(bad):
    with pytest.raises(ValueError, match="phantom shape"):
        samples.render_clean(bad)


def test_wrong_dimensionality_for_phantom_kind():
    with pytest.raises(ValueError, match="phantom_2d"):
        samples.phantom_2d((8, 64, 64))
    with pytest.raises(ValueError, match="phantom_3d"):
        samples.phantom_3d((64, 64))


def test_bad_noise_parameters_are_rejected():
    with pytest.raises(ValueError, match="photons"):
        samples.add_poisson_gaussian(np.zeros((8, 8)), photons=0.0)


def test_psnr_known_values():
    ref = np.zeros((10, 10))
    ref[0, 0] = 1.0
    assert samples.psnr(ref, ref + 0.1) == pytest.approx(20.0)
    assert samples.psnr(ref, ref + 0.1, data_range=10.0) == pytest.approx(40.0)
    assert samples.psnr(ref, ref) == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        samples.psnr(ref, ref[:5])


def test_bundled_lysosome_crop_loads_with_axes():
    data, axes = samples.load_lysosome()
    assert axes == "TYX"
    assert data.shape == (10, 128, 128) and data.dtype == np.uint16
    assert 50 < data.min() < data.mean() < data.max()
    attribution = samples.lysosome_path().parent / "ATTRIBUTION.md"
    text = attribution.read_text()
    assert "MIT License" in text and "BoHuangLab/Transfer-Learning-Denoising" in text


def test_bundled_crop_is_the_first_frames_of_the_source(shared_data):
    import tifffile

    source = tifffile.imread(shared_data / "lysosome_confocal_timelapse_noisy" / "lysosome_1.tif")
    data, _ = samples.load_lysosome()
    np.testing.assert_array_equal(data, source[:10])


def test_correlated_phantom_keeps_the_variance_and_correlates_neighbours():
    from napari_selfdenoise.core.samples import phantom_correlated

    p = phantom_correlated((256, 256), seed=0)
    q = phantom_correlated((256, 256), seed=0)
    assert np.array_equal(p.noisy, q.noisy)  # seeded
    plain = samples.phantom_2d((256, 256), seed=0)
    assert np.array_equal(p.clean, plain.clean)
    n_corr = (p.noisy - p.clean).astype(np.float64)
    n_plain = (plain.noisy - plain.clean).astype(np.float64)
    assert n_corr.var() == pytest.approx(n_plain.var(), rel=0.05)
    rho = np.corrcoef(n_corr[:, :-1].ravel(), n_corr[:, 1:].ravel())[0, 1]
    assert rho == pytest.approx(2 / 3, abs=0.03)  # binomial [1, 2, 1] kernel
    rho_plain = np.corrcoef(n_plain[:, :-1].ravel(), n_plain[:, 1:].ravel())[0, 1]
    assert abs(rho_plain) < 0.03
