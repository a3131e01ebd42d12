"""Mean over a box of side ``2 r + 1``; with ``exclude_centre`` the Noise2Self donut mean."""

from __future__ import annotations

from typing import Sequence

import torch

from .base import Denoiser
from .helpers import Lattice, _check_radius, _lattice_view, _separable


def mean(x: torch.Tensor, values: Sequence[float], *, exclude_centre: bool = False,
         lattice: Lattice = None) -> torch.Tensor:
    """Mean over a box of side ``2 r + 1``; ``exclude_centre``: the donut mean."""
    nd = x.ndim - 2
    radii = _check_radius(values)
    rmax = max(radii)
    kernels = torch.zeros((len(radii), 2 * rmax + 1), dtype=torch.float64)
    for i, r in enumerate(radii):
        kernels[i, rmax - r : rmax + r + 1] = 1.0
    total = _separable(x, kernels, lattice)
    n = torch.tensor([(2 * r + 1) ** nd for r in radii], dtype=x.dtype, device=x.device)
    n = n.reshape((1, -1) + (1,) * nd)
    if exclude_centre:
        return (total - _lattice_view(x, lattice)) / (n - 1)
    return total / n


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "mean", "radius", mean, lambda s, nd: [1, 2, 3, 4, 5, 6] if nd == 2 else [1, 2, 3, 4],
    lambda v, nd: int(v), donut=True, local=True, integer=True, cost=0.5)
