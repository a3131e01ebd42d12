"""The :class:`Denoiser` record every entry module of :mod:`..denoisers` registers.

Not a denoiser: the registry test skips this module and :mod:`.helpers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .helpers import Lattice, _lattice_view


@dataclass(frozen=True)
class Denoiser:
    """One classical denoiser and how it is calibrated.

    Attributes
    ----------
    name, parameter : str
        Registry name and the name of its single parameter.
    donut : bool
        ``True``: the J-invariant version excludes the centre (no masking needed);
        ``False``: J-invariance comes from grid masking.
    local : bool
        Supports ``lattice=`` (evaluate on a sub-lattice only).
    integer : bool
        The parameter is an integer (a radius).
    cost : float
        Rough relative cost per value and pixel (chooses chunking of the grid).
    """

    name: str
    parameter: str
    fn: Callable[..., torch.Tensor]
    grid: Callable[[float, int], list[float]]
    halo_fn: Callable[[float, int], int]
    donut: bool = False
    local: bool = False
    integer: bool = False
    cost: float = 1.0

    def __call__(self, x: torch.Tensor, values: Sequence[float], *,
                 exclude_centre: bool = False, lattice: Lattice = None) -> torch.Tensor:
        """Denoise ``x`` (B, 1, *S) with every value: ``(B, P, *S')``."""
        if not values:
            raise ValueError(f"{self.name}: empty parameter grid")
        if exclude_centre and not self.donut:
            raise ValueError(f"{self.name} has no donut form; use grid masking")
        if lattice is not None and not self.local:
            return _lattice_view(self.fn(x, values), lattice)
        if self.donut:
            return self.fn(x, values, exclude_centre=exclude_centre, lattice=lattice)
        return self.fn(x, values, lattice=lattice) if self.local else self.fn(x, values)

    def default_values(self, sigma: float, spatial_dims: int) -> list[float]:
        """The default grid for data with noise ``sigma`` (data units)."""
        return self.grid(max(float(sigma), 1e-12), spatial_dims)

    def halo(self, value: float, spatial_dims: int) -> int:
        """Context (pixels) needed around a tile for the output to match the whole image."""
        return int(self.halo_fn(float(value), spatial_dims))
