"""Intensity normalisation statistics, computed once on the training data.

A model stores ``offset`` and ``scale`` per channel and works on ``(x - offset) / scale``
(see :meth:`~napari_selfdenoise.core.bundle.ModelBundle.normalize`): by default the
mean and standard deviation (zero mean, unit variance); percentile normalisation maps the
``pmin`` / ``pmax`` percentiles to 0 / 1.
Also here: the CSBDeep-style percentile + affine fit used to compare a prediction with a
ground truth of another scale (:func:`norm_minmse`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .config import NormalizationConfig

#: values per channel used to estimate the statistics (a strided subsample beyond this)
MAX_SAMPLES = 4_000_000


def _channel_samples(arrays: Sequence[np.ndarray], channel: int) -> np.ndarray:
    """Values of one channel of canonical ``(N, C, *S)`` arrays, subsampled to a bound."""
    total = sum(int(np.prod(a.shape)) // a.shape[1] for a in arrays)
    step = max(1, int(np.ceil(total / MAX_SAMPLES)))
    parts = [np.asarray(a[:, channel], dtype=np.float64).reshape(-1)[::step] for a in arrays]
    return np.concatenate(parts)


def compute_normalization(
    arrays: Sequence[np.ndarray], config: NormalizationConfig = NormalizationConfig()
) -> tuple[list[float], list[float]]:
    """Per-channel ``(offset, scale)`` over canonical ``(N, C, *S)`` arrays.

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        The training images, all with the same channel count.
    config : NormalizationConfig
        ``percentile`` (offset = pmin-th percentile, scale = pmax - pmin percentiles),
        ``meanstd`` (mean, standard deviation) or ``none`` (0, 1).

    Raises
    ------
    ValueError
        When a channel is constant (nothing to denoise, and no scale to learn).
    """
    n_channels = arrays[0].shape[1]
    offsets: list[float] = []
    scales: list[float] = []
    for c in range(n_channels):
        if config.kind == "none":
            offsets.append(0.0)
            scales.append(1.0)
            continue
        v = _channel_samples(arrays, c)
        if config.kind == "percentile":
            lo, hi = np.percentile(v, [config.pmin, config.pmax])
            off, scale = float(lo), float(hi - lo)
            if scale <= 0:  # very sparse images: fall back to the full range
                off, scale = float(v.min()), float(v.max() - v.min())
        else:
            off, scale = float(v.mean()), float(v.std())
        if not scale > 0:
            raise ValueError(
                f"channel {c} of the training data is constant (every value is {off:g}); "
                "there is no signal or noise to learn from"
            )
        offsets.append(off)
        scales.append(scale)
    return offsets, scales


def normalize_percentile(
    x: np.ndarray, pmin: float = 0.1, pmax: float = 99.9, eps: float = 1e-20
) -> np.ndarray:
    """Map the ``pmin`` / ``pmax`` percentiles of ``x`` to 0 / 1 (float32)."""
    lo, hi = np.percentile(x, [pmin, pmax])
    return ((np.asarray(x, dtype=np.float64) - lo) / (hi - lo + eps)).astype(np.float32)


def norm_minmse(gt: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSBDeep ``norm_minmse``: percentile-normalise ``gt`` (0.1, 99.9) and fit ``x`` to it.

    ``x`` is mapped by the least-squares affine map ``a * x + b`` onto the normalised
    ground truth, since a self-supervised method cannot know the ground truth's scale.

    Returns
    -------
    gt_n, x_fit : numpy.ndarray
        float32 arrays to compare (e.g. PSNR with data range 1).
    """
    gt_n = normalize_percentile(gt).astype(np.float64)
    xv = np.asarray(x, dtype=np.float64)
    xv = xv - xv.mean()
    g = gt_n - gt_n.mean()
    a = float((xv * g).sum() / max((xv * xv).sum(), 1e-30))
    x_fit = a * xv + gt_n.mean()
    return gt_n.astype(np.float32), x_fit.astype(np.float32)

