"""Wavelet soft thresholding of all detail coefficients (``sym4``, PyWavelets)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import Denoiser
from .helpers import _geom, _numpy_loop

WAVELET = "sym4"


def wavelet_levels(shape: Sequence[int]) -> int:
    """Decomposition levels: scikit-image's rule (the maximum level minus 3) on the
    *largest* side, capped at the smallest side's maximum. So a band cropped from an image
    (compare's scoring region) is decomposed as deeply as the image it came from; on the
    smallest side, as scikit-image does, a 135-row band of a 512 x 512 image got one level
    less, and its output on the band differed from the image's by 2-12 dB (W2S)."""
    import pywt

    length = pywt.Wavelet(WAVELET).dec_len
    deepest = pywt.dwt_max_level(max(shape), length) - 3
    return max(min(deepest, pywt.dwt_max_level(min(shape), length)), 1)


def _wavelet_one(a: np.ndarray, threshold: float) -> np.ndarray:
    import pywt

    level = wavelet_levels(a.shape)
    coeffs = pywt.wavedecn(a, WAVELET, level=level, mode="symmetric")
    shrunk = [coeffs[0]] + [
        {k: pywt.threshold(v, threshold, mode="soft") for k, v in detail.items()}
        for detail in coeffs[1:]
    ]
    rec = pywt.waverecn(shrunk, WAVELET, mode="symmetric")
    return rec[tuple(slice(0, n) for n in a.shape)]


def wavelet(x: torch.Tensor, values: Sequence[float], **_: object) -> torch.Tensor:
    """Soft thresholding of all detail coefficients (``sym4``, levels as scikit-image)."""
    if any(v < 0 for v in values):
        raise ValueError(f"wavelet thresholds must be >= 0, got {list(values)}")
    return _numpy_loop(_wavelet_one, x, values)


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "wavelet", "threshold", wavelet, lambda s, nd: _geom(0.5, 6.0, 8, s),
    lambda v, nd: 32, cost=4.0)
