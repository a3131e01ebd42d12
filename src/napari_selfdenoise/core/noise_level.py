"""The noise level of a region without ground truth: its mean noise variance, and whether
the noise is correlated between pixels (the terms of :mod:`.scoring`'s estimate).

The noise variance over the region is estimated from the residual of every pixel against
the mean of its 8 in-plane neighbours (variance ``9/8`` of the noise variance on flat
signal), corrected by the same residual of the best candidate's output (the signal's own
curvature). This is the region's mean noise variance whatever the noise model
(signal-dependent Poisson-Gaussian noise included: the mean of ``a * x + b`` over the
region). Where the signal has structure at the pixel scale that the reference does not
reproduce (fine filaments in confocal images), that structure stays in the residual and
the estimate runs high; a second, reference-free estimate caps it
(:func:`directional_noise_variance`: a 6th-order finite difference along one axis, which
passes the highest frequencies of that axis, where an optically blurred signal has
almost no power, and every frequency of the other axis, so noise correlated along that
other axis does not bias it; the larger of the Y and X estimates is taken). The estimated
MSE is a small difference of two large numbers, so a 5 % error in the noise variance
would be a 50 % error in the MSE at a 10 dB gain (docs/benchmarks.md section 8).

**Assumption: pixel-independent noise.** With spatially correlated noise both the score
(a masked pixel's neighbours then predict its noise) and the noise estimates are biased;
:func:`axis_correlations` measures the lag-1 autocorrelation of the noise along each axis
(of the image high-passed along the other axis, no reference needed) and
:data:`CORRELATION_WARN` flags it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
from scipy import ndimage

from .noise_model import _NEIGHBOURS, RESIDUAL_GAIN, neighbour_residual

#: side of the blocks over which the standard error of the estimated MSE is computed
BLOCK = 16
#: lag-1 noise autocorrelation above which the estimated quality is called biased
CORRELATION_WARN = 0.05
#: the 6th-order finite difference (binomial coefficients, alternating signs): its gain
#: ``(2 sin(pi f)) ** 12`` passes the top of the frequency band and almost nothing below
#: a quarter of it
HIGH_PASS = np.array([1.0, -6.0, 15.0, -20.0, 15.0, -6.0, 1.0])
#: standard errors of the gap by which the high-pass estimate must undercut the residual
#: estimate to replace it
CAP_SIGNIFICANCE = 2.0
#: the systematic error of the noise variance, as a fraction of its curvature correction
CORRECTION_ERROR = 0.5


# ---------------------------------------------------------------------- statistics
def residual(y: np.ndarray) -> np.ndarray:
    """Each pixel minus the mean of its 8 in-plane neighbours, 1-pixel border cut off.

    ``y`` is ``(..., Y, X)``; every 2D plane is treated on its own.
    """
    a = np.asarray(y, dtype=np.float64)
    planes = a.reshape((-1,) + a.shape[-2:])
    out = np.stack([neighbour_residual(p) for p in planes])
    return out.reshape(a.shape)[..., 1:-1, 1:-1]


def per_pixel_noise(y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each interior pixel's noise-variance estimate: ``y``'s squared residual less the
    ``reference``'s (the signal's own curvature), over :data:`RESIDUAL_GAIN`, scaled so
    that its mean is :func:`noise_variance` (where the cap applies). Its local mean is
    Stein's ``v_i`` (:mod:`.sure`)."""
    return noise_terms(y, reference)[0]


def _interior(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)[..., 1:-1, 1:-1]


def _block_se(d: np.ndarray) -> float:
    """Standard error of ``d.mean()`` from the means of ``BLOCK`` x ``BLOCK`` blocks."""
    h, w = d.shape[-2] // BLOCK * BLOCK, d.shape[-1] // BLOCK * BLOCK
    if h == 0 or w == 0:
        return float(np.std(d) / math.sqrt(max(d.size, 1)))
    planes = d.reshape((-1,) + d.shape[-2:])[:, :h, :w]
    means = planes.reshape(planes.shape[0], h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(
        axis=(2, 4)).ravel()
    if means.size < 2:
        return float(np.std(d) / math.sqrt(max(d.size, 1)))
    return float(np.std(means, ddof=1) / math.sqrt(means.size))


def _high_pass(y: np.ndarray, axis: int) -> Optional[np.ndarray]:
    """``y`` filtered by :data:`HIGH_PASS` along ``axis`` (valid part only; None when the
    axis is shorter than twice the filter)."""
    a = np.asarray(y, dtype=np.float64)
    k = HIGH_PASS.size
    if a.shape[axis] < 2 * k:
        return None
    out = ndimage.correlate1d(a, HIGH_PASS, axis=axis, mode="constant")
    return np.take(out, np.arange(k // 2, a.shape[axis] - k // 2), axis=axis)


def _directional_maps(y: np.ndarray) -> list[np.ndarray]:
    """Per-pixel noise-variance estimates from :data:`HIGH_PASS` along Y and along X,
    cut to the pixels both have (a border of 3)."""
    if min(y.shape[-2:]) < 2 * HIGH_PASS.size:
        return []
    energy, k = float(np.sum(HIGH_PASS**2)), HIGH_PASS.size // 2
    return [(h * h / energy)[(Ellipsis,) + cut] for h, cut in (
        (_high_pass(y, -2), (slice(None), slice(k, -k))),
        (_high_pass(y, -1), (slice(k, -k), slice(None))))]


def _autocorrelation(k: np.ndarray) -> np.ndarray:
    """Full 2D autocorrelation of stencil ``k`` (lags -(n-1)..n-1 per axis)."""
    (ny, nx) = k.shape
    out = np.zeros((2 * ny - 1, 2 * nx - 1))
    padded = np.pad(k, ((ny - 1, ny - 1), (nx - 1, nx - 1)))
    for dy in range(2 * ny - 1):
        for dx in range(2 * nx - 1):
            out[dy, dx] = float(np.sum(padded[dy:dy + ny, dx:dx + nx] * k))
    return out


@lru_cache(maxsize=1)
def _gap_lags() -> float:
    """``sum(c**2)`` over the 2D lags of ``c = a_h - a_r``: ``a_h`` the normalised
    autocorrelation of :data:`HIGH_PASS` (along one axis), ``a_r`` that of the
    8-neighbour residual's stencil. A mean of squared filter outputs over independent
    noise is the quadratic form with kernel ``a``; its variance is
    ``2 sum(a**2) mean(v**2) / n``, and for the difference of the two estimates the
    lag-0 terms (each pixel's own squared noise, which the score shares) cancel."""
    h = HIGH_PASS[:, None] / np.sqrt(np.sum(HIGH_PASS**2))
    r = -_NEIGHBOURS.copy()  # the stencil of noise_model.neighbour_residual
    r[1, 1] = 1.0
    r /= np.sqrt(np.sum(r**2))
    a_h, a_r = _autocorrelation(h), _autocorrelation(r)  # (13, 1) and (5, 5)
    c = np.zeros((a_h.shape[0], a_r.shape[1]))
    c[:, a_r.shape[1] // 2] = a_h[:, 0]
    mid = a_h.shape[0] // 2
    c[mid - 2:mid + 3, :] -= a_r
    return float(np.sum(c**2))


def _gap_se(per_pixel: np.ndarray) -> float:
    """Standard error of (residual estimate - high-pass estimate) under independent
    noise, from the high-pass map ``z**2`` (``mean(v**2) = mean(z**4) / 3`` for Gaussian
    ``z``): ``sqrt(2 * _gap_lags() * mean(v**2) / n)``, 0.75 of the high-pass estimate's
    own standard error."""
    return math.sqrt(2.0 * _gap_lags() * float(np.mean(per_pixel**2)) / (3.0 * per_pixel.size))


def directional_noise_variance(y: np.ndarray) -> Optional[float]:
    """Reference-free mean noise variance of region ``y`` (``(..., Y, X)``).

    The mean square of :data:`HIGH_PASS` along Y over its energy, and the same along X;
    the larger of the two (positively correlated noise along an axis lowers that axis'
    figure, structure at the pixel scale raises both). None if the region is too small.
    """
    maps = _directional_maps(y)
    return max(float(m.mean()) for m in maps) if maps else None


def _residual_map(y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (residual(y) ** 2 - residual(reference) ** 2) / RESIDUAL_GAIN


def noise_variance(y: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean noise variance of region ``y`` and its systematic error.

    The residual estimate (8-neighbour residual less the reference's), replaced by
    :func:`directional_noise_variance` where that is lower by more than
    :data:`CAP_SIGNIFICANCE` standard errors of the gap under independent noise
    (pixel-scale structure the reference misses; a smaller gap may be the high-pass
    estimate's sampling noise, which the residual estimate shares with the score and the
    cap does not: 1-2.4 % of the variance on compare's bands of a 512 x 512 image, up to
    1 dB of estimated PSNR at a 12 dB gain).

    Parameters
    ----------
    y : numpy.ndarray
        The noisy region, ``(..., Y, X)``.
    reference : numpy.ndarray
        A good denoised version of ``y`` (the best candidate's J-invariant output): its
        residual estimates the signal's part of ``y``'s residual.

    Returns
    -------
    (variance, error) : tuple of float
        ``error`` is :data:`CORRECTION_ERROR` times the curvature correction, or half the
        gap between the two estimates when the cap applies, whichever is larger.
    """
    return noise_terms(y, reference)[1:]


def noise_terms(y: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float, float]:
    """:func:`per_pixel_noise`, and :func:`noise_variance`'s variance and error, computed
    once (what :func:`~napari_selfdenoise.core.scoring.estimate_quality` needs)."""
    ref_res = residual(reference) ** 2
    resid = (residual(y) ** 2 - ref_res) / RESIDUAL_GAIN
    mean = float(resid.mean())
    var, err = max(mean, 0.0), CORRECTION_ERROR * float(ref_res.mean()) / RESIDUAL_GAIN
    maps = _directional_maps(y)
    if maps:
        best = max(maps, key=lambda m: float(m.mean()))
        cap = float(best.mean())
        if var - cap > CAP_SIGNIFICANCE * _gap_se(best):
            err, var = max(err, 0.5 * (var - cap)), cap
    return (resid * (var / mean) if var < mean else resid), var, err


def axis_correlations(y: np.ndarray) -> dict[int, float]:
    """Lag-1 noise autocorrelation of region ``y`` per axis: along X (key -1) of ``y``
    high-passed along Y (:data:`HIGH_PASS`: the signal removed, the X structure of the
    noise kept), and along Y (key -2) of ``y`` high-passed along X. An axis too short to
    measure is left out."""
    found = {}
    for across, along in ((-2, -1), (-1, -2)):
        h = _high_pass(y, across)
        if h is None or h.shape[along] < 2:
            continue
        h = h - h.mean()
        n = h.shape[along]
        lag = float(np.mean(np.take(h, np.arange(1, n), axis=along)
                            * np.take(h, np.arange(n - 1), axis=along)))
        var = float(np.mean(h * h))
        if var > 0:
            found[along] = lag / var
    return found


def noise_correlation(y: np.ndarray) -> float:
    """The larger of :func:`axis_correlations` (0 if none can be measured).

    About 0 for pixel-independent noise (within +-0.03 on the W2S widefield images), 0.05
    to 0.09 along X on the FMD confocal images, 0.4 and more after a 3 x 3 blur of the
    noise (``samples.phantom_correlated``).
    """
    return max(axis_correlations(y).values(), default=0.0)


def correlation_warning(rho: float, axis: Optional[str] = None) -> Optional[str]:
    """The warning for a lag-1 noise autocorrelation ``rho`` along ``axis`` ("x" or "y";
    None: not known), with what suits such noise (None below the threshold)."""
    if rho <= CORRELATION_WARN:
        return None
    where = f" along {axis.upper()}" if axis else ""
    struct = f"--struct-axis {axis}" if axis else "--struct-axis"
    return (f"the noise looks spatially correlated{where} (lag-1 autocorrelation {rho:.2f} > "
            f"{CORRELATION_WARN}): the self-supervised scores and the estimated PSNR assume "
            "pixel-independent noise and are biased (too optimistic) here; for such noise "
            f"train n2v2 with structN2V masks ({struct}) or bsn with pixel shuffle")


def noise_warning(y: np.ndarray) -> Optional[str]:
    """:func:`correlation_warning` for region ``y``, naming the axis of its strongest
    correlation (:func:`axis_correlations`); None if none is measurable or it is weak."""
    found = axis_correlations(y)
    if not found:
        return None
    axis = max(found, key=found.get)
    return correlation_warning(found[axis], {-1: "x", -2: "y"}[axis])
