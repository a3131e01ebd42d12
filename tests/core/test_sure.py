"""Stein's unbiased risk estimate of outputs that are not J-invariant (issue #14): the
delivered output of a network, on phantoms with ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_selfdenoise.core import scoring, sure
from napari_selfdenoise.core.config import default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d
from napari_selfdenoise.core.training import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _true_psnr(out: np.ndarray, clean: np.ndarray, peak: float) -> float:
    err = np.asarray(out, np.float64)[..., 1:-1, 1:-1] - np.asarray(clean, np.float64)[..., 1:-1, 1:-1]
    return float(10 * np.log10(peak**2 / np.mean(err**2)))


def _estimate(fn, y: np.ndarray, ref: np.ndarray, peak: float):
    fy = fn(y)
    div = sure.divergence(fn, y, fy, sure.EPS_FRACTION * sure.noise_std(y))
    return fy, div, scoring.estimate_quality(y, fy, ref, peak, divergence=div)


@pytest.mark.parametrize("dims", [2, 3])
def test_plain_filters_are_estimated_within_half_a_db(dims):
    """A plain Gaussian filter (it uses its own pixel): the estimate with the divergence is
    within 0.5 dB of the truth; without it, the copied noise would look like signal."""
    ph = phantom_2d((192, 192), seed=5) if dims == 2 else phantom_3d((12, 96, 96), seed=5)
    y, clean = ph.noisy[None].astype(np.float32), ph.clean[None]
    peak = scoring.data_range(y)
    ref = scoring.invariant_filter("gaussian", 1.5, y)
    for sigma in (0.7, 1.2, 2.5):
        def fn(a, s=sigma):
            return ndimage.gaussian_filter(a, (0,) * (a.ndim - 2) + (s, s), mode="reflect")

        fy, div, q = _estimate(fn, y, ref, peak)
        assert abs(q.psnr - _true_psnr(fy, clean, peak)) < 0.5, sigma
        without = scoring.estimate_quality(y, fy, ref, peak)
        assert without.psnr > q.psnr + 1.0  # the naive estimate is badly optimistic
        assert div.mean() > 0


def test_identity_is_estimated_as_the_noise_and_invariant_output_has_no_divergence():
    ph = phantom_2d((128, 128), seed=2)
    y, clean = ph.noisy[None].astype(np.float32), ph.clean[None]
    peak = scoring.data_range(y)
    ref = scoring.invariant_filter("gaussian", 1.5, y)
    fy, div, q = _estimate(lambda a: a.copy(), y, ref, peak)
    np.testing.assert_allclose(div, 1.0, rtol=1e-3)  # d y_i / d y_i (fp32 rounding)
    assert abs(q.psnr - _true_psnr(y, clean, peak)) < 0.3  # not the 0 of the naive score
    jinv = scoring.invariant_filter("gaussian", 1.2, y)
    d = sure.divergence(lambda a: scoring.invariant_filter("gaussian", 1.2, a), y, jinv,
                        sure.EPS_FRACTION * sure.noise_std(y))
    assert abs(d.mean()) < 0.01  # J-invariant: no output pixel depends on its own input


def test_linear_filter_divergence_is_its_centre_weight():
    """For a linear filter ``f = k * y`` the divergence is the kernel's centre tap."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(1, 96, 96)).astype(np.float32)
    k = np.array([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]], np.float32)

    def fn(a):
        return ndimage.convolve(a, k[None], mode="reflect")

    d = sure.divergence(fn, y, fn(y), 0.01, probes=4)
    assert d.mean() == pytest.approx(0.4, abs=0.01)


def test_network_plain_output_on_unseen_rows_is_estimated_within_half_a_db():
    """A network trained on the top of the image, its delivered (plain) output on rows it
    never saw: the estimate with the divergence is within 0.5 dB of the truth (the region
    must not be tiny: the noise variance's error of a few % is a large error in the MSE)."""
    ph = phantom_2d((288, 160), seed=9)
    cfg = default_config("n2s", steps=60, seed=0, precision="fp32", patch_size=(32, 32),
                         batch_size=8, val_fraction=0.0, network={"base_filters": 8})
    bundle = run_to_end(train(ph.noisy[:96], cfg))
    y, clean = ph.noisy[None, 96:].astype(np.float32), ph.clean[None, 96:]
    peak = scoring.data_range(ph.noisy)
    out, div = sure.network_delivered(bundle, y, "YX")
    ref = scoring.invariant_network(bundle, y)
    q = scoring.estimate_quality(y, out, ref, peak, divergence=div)
    assert abs(q.psnr - _true_psnr(out, clean, peak)) < 0.5
    assert 0.0 < div.mean() < 1.0


def test_bad_step_is_refused():
    with pytest.raises(ValueError, match="eps"):
        sure.divergence(lambda a: a, np.zeros((1, 8, 8), np.float32),
                        np.zeros((1, 8, 8), np.float32), 0.0)


def test_blend_weights_match_the_oracle_and_beat_both_parts():
    """SURE-LET: the weights fitted without the clean image are those a least-squares fit
    against the clean image gives, and the blend beats both of its parts."""
    from napari_selfdenoise.core.blend import fit_blend

    ph = phantom_2d((256, 256), seed=11)
    y, clean = ph.noisy[None].astype(np.float32), ph.clean[None].astype(np.float64)
    peak = scoring.data_range(y)

    def plain(a):
        return ndimage.gaussian_filter(a, (0, 0.8, 0.8), mode="reflect")

    fy = plain(y)
    div = sure.divergence(plain, y, fy, sure.EPS_FRACTION * sure.noise_std(y))
    med = scoring.invariant_filter("median", 2, y)
    ref = scoring.invariant_filter("gaussian", 1.5, y)
    mix = fit_blend(y, ("gauss", "median"), [fy, med], [div, None], ref)
    # the oracle: least squares against the clean image on the same pixels
    cols = [o[..., 1:-1, 1:-1].ravel().astype(np.float64) for o in (fy, med)]
    a = np.stack(cols + [np.ones_like(cols[0])], axis=1)
    oracle = np.linalg.lstsq(a, clean[..., 1:-1, 1:-1].ravel(), rcond=None)[0]
    np.testing.assert_allclose(mix.weights, oracle[:2], atol=0.05)
    out = mix.apply([fy, med])
    best_part = max(_true_psnr(fy, clean, peak), _true_psnr(med, clean, peak))
    assert _true_psnr(out, clean, peak) > best_part
    q = scoring.estimate_quality(y, out, ref, peak, divergence=mix.divergence([div, None]))
    assert abs(q.psnr - _true_psnr(out, clean, peak)) < 0.5


def test_blend_weights_are_never_negative():
    """Parts ``x + e`` and ``x + 2e`` (a fixed error pattern ``e``): the unconstrained
    optimum ``2 * first - second`` extrapolates with a negative weight; the fit drops that
    part and refits the rest."""
    from napari_selfdenoise.core.blend import fit_blend

    ph = phantom_2d((128, 128), seed=12)
    y, x = ph.noisy[None].astype(np.float32), ph.clean[None].astype(np.float32)
    ramp = np.linspace(-1.0, 1.0, 128, dtype=np.float32)[None, :, None] * np.ones((1, 1, 128))
    e = 0.5 * float(x.std()) * ramp * np.sin(np.arange(128) / 9.0)[None, None, :]
    first, second = x + e, x + 2 * e
    cols = [o[..., 1:-1, 1:-1].ravel() for o in (first, second)]
    a = np.stack(cols + [np.ones_like(cols[0])], axis=1).astype(np.float64)
    free = np.linalg.lstsq(a, y[..., 1:-1, 1:-1].ravel().astype(np.float64), rcond=None)[0]
    assert free[1] < 0  # the unconstrained blend would extrapolate
    ref = scoring.invariant_filter("gaussian", 1.5, y)
    mix = fit_blend(y, ("first", "second"), [first, second], [None, None], ref)
    assert mix.parts == ("first",) and mix.weights[0] > 0  # "second" dropped
    alone = fit_blend(y, ("first",), [first], [None], ref)
    assert mix.weights[0] == pytest.approx(alone.weights[0])
    assert mix.offset == pytest.approx(alone.offset)
