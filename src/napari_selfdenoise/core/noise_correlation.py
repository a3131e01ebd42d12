"""How far the noise is correlated between pixels, without ground truth: the per-axis noise
autocorrelation at lags 1..L and the correlation range (the pixel-shuffle factor that
makes sub-image pixels independent is the range plus one, AP-BSN).

Like :func:`~.noise_level.axis_correlations` (lag 1), the correlation along X is measured
on the image high-passed along Y (:data:`~.noise_level.HIGH_PASS`: the blurred signal
removed, the X structure of the noise kept) and vice versa. For noise made by a separable
kernel (``k = a (x) b``) the ratio is exactly the noise's own autocorrelation along that
axis, whatever the high-pass does along the other.

**Standard error.** Each lag's correlation is a ratio ``sum(h_i h_{i+k}) / sum(h_i^2)``;
its standard error is estimated from :data:`BLOCK` x :data:`BLOCK` blocks (the ratio
estimator's linearisation over the blocks' sums), so the high-pass's own correlation,
the noise's correlation and signal-dependent (Poisson) variance all enter it without a
model. A lag counts as correlated when its correlation exceeds :data:`SIGNIFICANCE`
standard errors *and* :data:`MIN_CORRELATION` (on large images the standard error gets
so small that a correlation no method would notice becomes "significant").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .noise_level import _high_pass

#: the largest lag measured (pixel-shuffle factors go up to 8)
MAX_LAG = 7
#: side of the blocks whose sums give the standard error (a quarter of it on regions too
#: small for MIN_BLOCKS blocks; fewer than that: not measured)
BLOCK = 32
MIN_BLOCKS = 8
#: standard errors a lag's correlation must exceed to count (one-sided, 2 axes x 7 lags:
#: no false range on 1000 Gaussian white-noise images and 200 phantom_2d, 256 x 256)
SIGNIFICANCE = 4.0
#: and the correlation it must exceed (the FMD confocal images' lag-1 X correlation is
#: 0.05 to 0.09; the W2S widefield images' stays within 0.03)
MIN_CORRELATION = 0.03
#: at most this many pixels are measured (evenly spaced planes of a stack)
MAX_PIXELS = 4_000_000


@dataclass(frozen=True)
class LagCorrelations:
    """The noise autocorrelation along one axis at lags ``1 .. len(rho)``.

    Attributes
    ----------
    rho, se : numpy.ndarray
        The correlation at each lag and its standard error (block estimate).
    """

    rho: np.ndarray
    se: np.ndarray

    def significant(self) -> np.ndarray:
        """Whether each lag's correlation is above zero (see the module docstring)."""
        return (self.rho > SIGNIFICANCE * self.se) & (self.rho > MIN_CORRELATION)

    @property
    def range(self) -> int:
        """The largest significantly correlated lag (0: none)."""
        hits = np.flatnonzero(self.significant())
        return int(hits[-1]) + 1 if hits.size else 0


def _planes(y: np.ndarray) -> np.ndarray:
    """``y`` as ``(P, Y, X)`` float64 planes, at most :data:`MAX_PIXELS` of them."""
    a = np.asarray(y)
    planes = a.reshape((-1,) + a.shape[-2:])
    step = max(1, math.ceil(planes.shape[0] * planes[0].size / MAX_PIXELS))
    return np.asarray(planes[::step], dtype=np.float64)


def _along_x(h: np.ndarray, max_lag: int) -> Optional[LagCorrelations]:
    """The lag correlations along the last axis of high-passed planes ``h`` (P, Y, X)."""
    p, ny, nx = h.shape
    nx -= max_lag  # every lag uses the same left pixels
    side = BLOCK if p * (ny // BLOCK) * (nx // BLOCK) >= MIN_BLOCKS else BLOCK // 4
    by, bx = max(1, ny // side), max(1, nx // side)
    sy, sx = ny // by, nx // bx  # blocks of about `side` pixels covering the plane
    if sx < 1 or sy < 1 or p * by * bx < MIN_BLOCKS:
        return None
    h = h - h.mean(axis=(1, 2), keepdims=True)
    left = h[:, :by * sy, :bx * sx]

    def block_sums(a: np.ndarray) -> np.ndarray:
        return a.reshape(p, by, sy, bx, sx).sum(axis=(2, 4)).ravel()

    q = block_sums(left * left)
    if q.sum() <= 0:
        return None
    rho, se = np.zeros(max_lag), np.zeros(max_lag)
    nb = q.size
    for k in range(1, max_lag + 1):
        s = block_sums(left * h[:, :by * sy, k:k + bx * sx])
        r = s.sum() / q.sum()
        e = s - r * q
        rho[k - 1] = r
        se[k - 1] = math.sqrt(nb / (nb - 1) * float(np.sum(e * e))) / q.sum()
    return LagCorrelations(rho, se)


def lag_correlations(y: np.ndarray, max_lag: int = MAX_LAG) -> dict[int, LagCorrelations]:
    """The noise autocorrelation of region ``y`` (``(..., Y, X)``) at lags ``1..max_lag``
    along X (key -1, of ``y`` high-passed along Y) and along Y (key -2, high-passed along
    X). An axis too short to measure is left out; lag 1 equals
    :func:`~.noise_level.axis_correlations` up to the mean's and border's handling."""
    planes = _planes(y)
    found = {}
    for across, along in ((-2, -1), (-1, -2)):
        h = _high_pass(planes, across)
        if h is None or h.shape[along] < max_lag + 2:
            continue
        if along == -2:
            h = np.swapaxes(h, -1, -2)
        lc = _along_x(h, max_lag)
        if lc is not None:
            found[along] = lc
    return found


def correlation_range(y: np.ndarray, max_lag: int = MAX_LAG) -> int:
    """The noise's correlation range in ``y``: the largest lag (along Y or X, up to
    ``max_lag``) whose correlation is significantly above zero; 0 for pixel-independent
    noise (or a region too small to tell). A 3 x 3 binomial kernel on white noise gives
    2 (correlations 0.67 and 0.17 at lags 1 and 2, 0 from 3 on)."""
    return range_of(lag_correlations(y, max_lag))


def range_of(found: dict[int, LagCorrelations]) -> int:
    """The longest range of the axes of :func:`lag_correlations` (0 if none measured)."""
    return max((lc.range for lc in found.values()), default=0)


def describe(found: dict[int, LagCorrelations], lags: int = 3) -> str:
    """``"X 0.67, 0.17, 0.00; Y ..."``: the first ``lags`` correlations per axis."""
    names = {-1: "X", -2: "Y"}
    return "; ".join(f"{names[axis]} " + ", ".join(f"{r:.2f}" for r in lc.rho[:lags])
                     for axis, lc in sorted(found.items(), reverse=True))


def data_correlation_range(arrays: Sequence[np.ndarray]) -> tuple[int, str]:
    """The correlation range of training ``arrays`` (each ``(N, C, *S)``, its YX planes
    pooled, at most :data:`MAX_PIXELS` of each) and, for the report, the first lags'
    correlations of the image with the longest range (:func:`describe`; ``""`` when
    nothing could be measured). The largest range of the images counts."""
    best: tuple[int, str] = (0, "")
    for a in arrays:
        found = lag_correlations(a)
        reach = range_of(found)
        if found and (reach > best[0] or not best[1]):
            best = (reach, describe(found))
    return best
