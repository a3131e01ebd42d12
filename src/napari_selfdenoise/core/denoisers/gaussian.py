"""Gaussian filter (replicate borders, truncated at 4 sigma as scipy), all sigmas at once."""

from __future__ import annotations

from typing import Sequence

import torch

from .base import Denoiser
from .helpers import Lattice, _geom, _separable


def gaussian_kernels(sigmas: Sequence[float]) -> torch.Tensor:
    """``(P, K)`` normalised 1D Gaussians truncated at 4 sigma (as scipy), zero-padded."""
    if any(s <= 0 for s in sigmas):
        raise ValueError(f"Gaussian sigmas must be positive, got {list(sigmas)}")
    radii = [int(4.0 * s + 0.5) for s in sigmas]
    rmax = max(radii)
    t = torch.arange(-rmax, rmax + 1, dtype=torch.float64)
    kernels = torch.zeros((len(sigmas), 2 * rmax + 1), dtype=torch.float64)
    for i, (s, r) in enumerate(zip(sigmas, radii)):
        k = torch.exp(-0.5 * (t / s) ** 2) * (t.abs() <= r)
        kernels[i] = k / k.sum()
    return kernels


def gaussian(x: torch.Tensor, values: Sequence[float], *, lattice: Lattice = None,
             **_: object) -> torch.Tensor:
    """Gaussian filter for each sigma (replicate borders, truncated at 4 sigma)."""
    return _separable(x, gaussian_kernels(values), lattice)


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "gaussian", "sigma", gaussian,
    lambda s, nd: _geom(0.5, 4.0, 8) if nd == 2 else _geom(0.5, 3.0, 7),
    lambda v, nd: int(4.0 * v + 0.5), local=True, cost=0.5)
