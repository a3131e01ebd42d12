"""Bilateral filter: spatial sigma :data:`BILATERAL_SIGMA_SPATIAL`, one output per range sigma."""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch

from .base import Denoiser
from .helpers import Lattice, _geom, _lattice_shape, _lattice_view, _pad, _shifted

BILATERAL_SIGMA_SPATIAL = 1.0


def bilateral(x: torch.Tensor, values: Sequence[float], *, lattice: Lattice = None,
              **_: object) -> torch.Tensor:
    """Bilateral filter (spatial sigma 1, window radius 3 in 2D / 2 in 3D) per range sigma."""
    nd = x.ndim - 2
    if any(v <= 0 for v in values):
        raise ValueError(f"bilateral range sigmas must be positive, got {list(values)}")
    r = 3 if nd == 2 else 2
    out_shape = _lattice_shape(x.shape[2:], lattice)
    xp = _pad(x, r)
    centre = _lattice_view(x, lattice)
    inv = torch.tensor([0.5 / v**2 for v in values], dtype=x.dtype, device=x.device)
    inv = inv.reshape((1, -1) + (1,) * nd)
    num = torch.zeros((x.shape[0], len(values)) + out_shape, dtype=x.dtype, device=x.device)
    den = torch.zeros_like(num)
    for d in itertools.product(range(-r, r + 1), repeat=nd):
        ws = math.exp(-0.5 * sum(v * v for v in d) / BILATERAL_SIGMA_SPATIAL**2)
        xq = _shifted(xp, d, out_shape, lattice, r)
        w = torch.exp(-((xq - centre) ** 2) * inv) * ws
        num += w * xq
        den += w
    return num / den


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "bilateral", "range_sigma", bilateral, lambda s, nd: _geom(0.5, 8.0, 8, s),
    lambda v, nd: 3 if nd == 2 else 2, local=True, cost=8.0)
