"""Poisson-Gaussian noise model estimated from a single image.

Fluorescence cameras measure ``y = a * Poisson(x / a) + N(0, b)`` to a good
approximation, so the noise variance grows linearly with the signal:
``var(y | x) = a * x + b`` (Foi et al. 2008). :func:`estimate_noise_model` finds
``(a, b)`` per channel from one noisy image: a high-pass residual (the pixel minus the
mean of its 8 neighbours, whose variance is ``9/8`` of the noise variance on a locally
flat signal) gives the local noise variance, a smoothed image the local signal; both are
summarised over 8 x 8 blocks, the half of the blocks with the least structure for their
noise (spread of the smoothed signal over the residual variance) is kept, and a line is
fitted to the medians of intensity bins. ``b`` is only well determined when the image
has dim regions where it is a sizeable part of the variance; on the 3D phantoms the
error is typically under 5 % (up to 15 % for ``a`` on a small, sparse 2D image).

References
----------
Foi, Trimeche, Katkovnik, Egiazarian. Practical Poissonian-Gaussian noise modeling and
fitting for single-image raw-data. IEEE TIP 17(10), 2008.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

#: variance of (pixel - mean of its 8 neighbours) over the noise variance (white noise)
RESIDUAL_GAIN = 1.0 + 1.0 / 8.0

_NEIGHBOURS = np.ones((3, 3)) / 8.0
_NEIGHBOURS[1, 1] = 0.0


def neighbour_residual(plane: np.ndarray) -> np.ndarray:
    """One 2D plane minus the mean of each pixel's 8 neighbours (mirrored at the border).

    On flat signal its variance is :data:`RESIDUAL_GAIN` times the noise variance; the
    noise-model fit here and the quality estimate of ``core.scoring`` both build on it.
    """
    return plane - ndimage.convolve(plane, _NEIGHBOURS, mode="mirror")


@dataclass(frozen=True)
class NoiseModel:
    """``var = a * signal + b`` per channel, in the units of the image it describes.

    Attributes
    ----------
    a, b : tuple of float
        Gain (variance per unit of signal) and signal-independent variance per channel.
    """

    a: tuple[float, ...]
    b: tuple[float, ...]

    def variance(self, signal: np.ndarray, channel: int = 0) -> np.ndarray:
        """Noise variance at ``signal`` (never below 0)."""
        return np.maximum(self.a[channel] * np.asarray(signal) + self.b[channel], 0.0)

    def normalised(self, offsets: list[float], scales: list[float]) -> "NoiseModel":
        """The same model for ``(image - offset) / scale`` (per channel)."""
        a = tuple(ai / s for ai, s in zip(self.a, scales))
        b = tuple((ai * o + bi) / s**2 for ai, bi, o, s in zip(self.a, self.b, offsets, scales))
        return NoiseModel(a, b)

    def to_dict(self) -> dict:
        """JSON-safe form (stored in ``ModelBundle.info["noise_model"]``)."""
        return {"a": [float(v) for v in self.a], "b": [float(v) for v in self.b]}

    def describe(self) -> str:
        """One line, e.g. ``var = 1.02 * signal + 3.9``; one part per channel."""
        parts = [f"var = {a:.4g} * signal {'+' if b >= 0 else '-'} {abs(b):.4g}"
                 for a, b in zip(self.a, self.b)]
        if len(parts) == 1:
            return parts[0]
        return "; ".join(f"channel {i}: {p}" for i, p in enumerate(parts))


def _block_stats(plane: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block of one 2D plane: mean signal, noise variance, structure (signal spread)."""
    residual = neighbour_residual(plane)
    smooth = ndimage.uniform_filter(plane, 5, mode="mirror")
    h, w = (plane.shape[0] - 2) // block * block, (plane.shape[1] - 2) // block * block
    if h == 0 or w == 0:
        return np.empty(0), np.empty(0), np.empty(0)

    def blocks(a: np.ndarray) -> np.ndarray:
        a = a[1:1 + h, 1:1 + w]
        return a.reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(
            -1, block * block)

    r, s = blocks(residual), blocks(smooth)
    var = r.var(axis=1) / RESIDUAL_GAIN
    return s.mean(axis=1), var, s.std(axis=1)


def _fit_line(mean: np.ndarray, var: np.ndarray, spread: np.ndarray,
              n_bins: int) -> tuple[float, float]:
    """``(a, b)`` of ``var = a * mean + b`` from the smoothest blocks, binned by mean."""
    ratio = spread**2 / np.maximum(var, 1e-12)
    keep = ratio <= np.quantile(ratio, 0.5)
    mean, var = mean[keep], var[keep]
    edges = np.unique(np.quantile(mean, np.linspace(0, 1, n_bins + 1)))
    xs, ys, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mean >= lo) & (mean <= hi)
        if sel.sum() < 3:
            continue
        xs.append(float(np.median(mean[sel])))
        ys.append(float(np.median(var[sel])))
        ws.append(float(sel.sum()))
    if len(xs) < 2:
        return 0.0, float(np.median(var)) if len(var) else 0.0
    x, y, w = np.asarray(xs), np.asarray(ys), np.sqrt(np.asarray(ws))
    a, b = np.polyfit(x, y, 1, w=w / np.maximum(y, 1e-12))  # relative error of each bin
    return float(a), float(b)


def estimate_noise_model(image: np.ndarray, *, channel_axis: int | None = None,
                         block: int = 8, n_bins: int = 12) -> NoiseModel:
    """Estimate ``var = a * signal + b`` per channel from one noisy image.

    Parameters
    ----------
    image : np.ndarray
        2D or 3D (and more) image; every 2D plane along the last two axes is used.
    channel_axis : int, optional
        Axis of the channels (one model each); None: one channel.
    block : int
        Side of the blocks over which signal and variance are summarised.
    n_bins : int
        Intensity bins of the line fit.

    Returns
    -------
    NoiseModel
        In the image's units. ``a`` is 0 for pure Gaussian noise (within the estimate's
        error); a negative ``b`` can happen when the signal has an offset.

    Examples
    --------
    >>> from napari_selfdenoise.core.samples import phantom_3d
    >>> nm = estimate_noise_model(phantom_3d((16, 128, 128), read_noise=2, seed=3).noisy)
    >>> abs(nm.a[0] - 1) < 0.1 and abs(nm.b[0] - 4) < 0.4  # photo-electrons: a = 1, b = 4
    True
    """
    arr = np.asarray(image, dtype=np.float64)
    channels = [arr] if channel_axis is None else list(np.moveaxis(arr, channel_axis, 0))
    a_out, b_out = [], []
    for ch in channels:
        planes = ch.reshape((-1,) + ch.shape[-2:])
        stats = [_block_stats(p, block) for p in planes]
        mean = np.concatenate([s[0] for s in stats])
        var = np.concatenate([s[1] for s in stats])
        spread = np.concatenate([s[2] for s in stats])
        if mean.size == 0:
            raise ValueError(f"image {arr.shape} too small to estimate its noise "
                             f"(needs planes of at least {block + 2} x {block + 2})")
        a, b = _fit_line(mean, var, spread, n_bins)
        a_out.append(a)
        b_out.append(b)
    return NoiseModel(tuple(a_out), tuple(b_out))


# ------------------------------------------------------------ a bounded sample of a lazy image
#: pixels per channel read for an estimate from a (possibly larger than memory) image
NOISE_PIXELS = 4_000_000
#: side of the tiles taken from a plane larger than the budget
SAMPLE_TILE = 256


def _starts(n: int, t: int, k: int) -> list[int]:
    """``k`` starts of length-``t`` windows spread evenly over ``n`` (centred when one)."""
    if k <= 1:
        return [(n - t) // 2]
    return [int(s) for s in np.linspace(0, n - t, k).round()]


def sample_regions(h: int, w: int, max_pixels: int) -> list[tuple[slice, slice]]:
    """The (Y, X) regions of one plane the estimate reads: the whole plane when it fits in
    ``max_pixels``, else tiles of side :data:`SAMPLE_TILE` spread evenly over it."""
    if h * w <= max_pixels:
        return [(slice(0, h), slice(0, w))]
    t = max(16, min(SAMPLE_TILE, math.isqrt(max_pixels)))
    ty, tx = min(h, t), min(w, t)
    n = max(1, max_pixels // (ty * tx))
    ky = max(1, min(h // ty, math.isqrt(n)))
    kx = max(1, min(w // tx, n // ky))
    return [(slice(y, y + ty), slice(x, x + tx))
            for y in _starts(h, ty, ky) for x in _starts(w, tx, kx)]


def read_noise_sample(image: Any, axes: str, max_pixels: int = NOISE_PIXELS) -> np.ndarray:
    """A bounded sample of a (lazy) image for :func:`estimate_noise_model`.

    Reads at most about ``max_pixels`` pixels per channel, one region at a time: whole 2D
    planes (along Y, X; every S, T, Z index is a plane) evenly spaced through the image
    when a plane fits in the budget, else evenly spread tiles of planes. An image within
    the budget is read whole (the estimate is then the whole image's).

    Parameters
    ----------
    image : array-like
        numpy, zarr, dask or memory-mapped data; only the sample is read.
    axes : str
        Its axes (``C`` for channels; ``Y`` and ``X`` required).
    max_pixels : int
        Pixel budget per channel.

    Returns
    -------
    np.ndarray
        float32 ``(C, P, h, w)``: estimate with ``channel_axis=0``.
    """
    shape = tuple(int(s) for s in np.shape(image))
    if len(axes) != len(shape) or "Y" not in axes or "X" not in axes:
        raise ValueError(f"axes {axes!r} do not fit an image of shape {shape}")
    yi, xi = axes.index("Y"), axes.index("X")
    plane_dims = [i for i, a in enumerate(axes) if a not in "CYX"]
    planes = list(np.ndindex(*[shape[i] for i in plane_dims]))
    regions = sample_regions(shape[yi], shape[xi], max(1, int(max_pixels)))
    per_plane = sum((r[0].stop - r[0].start) * (r[1].stop - r[1].start) for r in regions)
    n = max(1, min(len(planes), int(max_pixels) // per_plane))
    kept = [a for a in axes if a in "CYX"]
    order = [kept.index(a) for a in "CYX" if a in kept]
    parts = []
    for plane in planes[::-(-len(planes) // n)]:
        index: list[Any] = [slice(None)] * len(shape)
        for d, i in zip(plane_dims, plane):
            index[d] = i
        for ry, rx in regions:
            index[yi], index[xi] = ry, rx
            block = np.transpose(np.asarray(image[tuple(index)], dtype=np.float32), order)
            parts.append(block if "C" in kept else block[None])
    return np.stack(parts, axis=1)
