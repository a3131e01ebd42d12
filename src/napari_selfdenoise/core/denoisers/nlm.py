"""Non-local means (scikit-image, fast mode; patch 5 / distance 6, 3D: 3 / 2)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import Denoiser
from .helpers import _geom, _numpy_loop


def _nlm_one(a: np.ndarray, h: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    size, dist = (5, 6) if a.ndim == 2 else (3, 2)
    return denoise_nl_means(a, h=h, patch_size=size, patch_distance=dist, fast_mode=True)


def nlm(x: torch.Tensor, values: Sequence[float], **_: object) -> torch.Tensor:
    """Non-local means (scikit-image, fast mode; patch 5 / distance 6, 3D: 3 / 2)."""
    if any(v <= 0 for v in values):
        raise ValueError(f"NL-means h values must be positive, got {list(values)}")
    return _numpy_loop(_nlm_one, x, values)


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "nlm", "h", nlm, lambda s, nd: _geom(0.3, 2.0, 7, s),
    lambda v, nd: 8 if nd == 2 else 3, cost=60.0)
