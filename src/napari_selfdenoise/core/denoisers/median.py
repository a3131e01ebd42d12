"""Median over a disk (2D) / ball (3D); with ``exclude_centre`` the Noise2Self donut median.

Windows up to :data:`NETWORK_MEDIAN_MAX` values use a pruned Batcher sorting network
(:func:`median_network`), larger ones ``torch.median`` of the stacked window.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator, Sequence

import torch

from .base import Denoiser
from .helpers import Lattice, _check_radius, _footprint, _lattice_shape, _pad, _shifted

NETWORK_MEDIAN_MAX = 128  # windows up to this size use a sorting network, larger ones sort
_MAX_ELEMENTS = 2**24  # largest stacked neighbourhood tensor (elements) built at once


def _middle(stack: torch.Tensor) -> torch.Tensor:
    """Median along the last dim (mean of the two middle values for an even count)."""
    if stack.shape[-1] % 2:
        return stack.median(dim=-1).values
    # torch gives the lower middle value; the upper one is minus the lower of -stack
    return 0.5 * (stack.median(dim=-1).values - (-stack).median(dim=-1).values)


def _batcher_merge(lo: int, hi: int, r: int) -> Iterator[tuple[int, int]]:
    step = r * 2
    if step < hi - lo:
        yield from _batcher_merge(lo, hi, step)
        yield from _batcher_merge(lo + r, hi, step)
        yield from ((i, i + r) for i in range(lo + r, hi - r, step))
    else:
        yield (lo, lo + r)


def _batcher_sort(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    if hi - lo >= 1:
        mid = lo + (hi - lo) // 2
        yield from _batcher_sort(lo, mid)
        yield from _batcher_sort(mid + 1, hi)
        yield from _batcher_merge(lo, hi, 1)


@functools.lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs that put the middle value(s) of ``n`` values in place.

    Batcher's odd-even merge sort for the next power of two (pairs reaching past ``n`` act
    on +inf padding and are dropped), pruned to the pairs the middle positions depend on.
    """
    size = 1 << max(0, (n - 1).bit_length())
    pairs = [(i, j) for i, j in _batcher_sort(0, size - 1) if j < n]
    need = {n // 2} if n % 2 else {n // 2 - 1, n // 2}
    kept = []
    for i, j in reversed(pairs):
        if i in need or j in need:
            kept.append((i, j))
            need |= {i, j}
    return tuple(reversed(kept))


def _network_median(values: list[torch.Tensor]) -> torch.Tensor:
    """Median of equally shaped tensors (mean of the two middle ones for an even count)."""
    v = list(values)
    n = len(v)
    for i, j in median_network(n):
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def median(x: torch.Tensor, values: Sequence[float], *, exclude_centre: bool = False,
           lattice: Lattice = None) -> torch.Tensor:
    """Median over a disk (2D) / ball (3D) of each radius; ``exclude_centre``: donut."""
    nd = x.ndim - 2
    out_shape = _lattice_shape(x.shape[2:], lattice)
    outs = []
    for r in _check_radius(values):
        offs = _footprint(r, nd, exclude_centre)
        xp = _pad(x, r)
        # chunk along the first output dimension so the stacked window stays bounded
        per_row = len(offs) * x.shape[0] * math.prod(out_shape[1:])
        rows = max(1, _MAX_ELEMENTS // max(per_row, 1))
        parts = []
        stride = lattice[1] if lattice is not None else 1
        off0 = lattice[0] if lattice is not None else (0,) * nd
        for start in range(0, out_shape[0], rows):
            n0 = min(rows, out_shape[0] - start)
            sub = ((off0[0] + start * stride,) + tuple(off0[1:]), stride)
            shape = (n0,) + tuple(out_shape[1:])
            views = [_shifted(xp, d, shape, sub, r) for d in offs]
            if len(views) <= NETWORK_MEDIAN_MAX:  # a sorting network: 2-4x faster than sort
                parts.append(_network_median(views))
            else:
                parts.append(_middle(torch.stack(views, dim=-1)))
        outs.append(torch.cat(parts, dim=2))
    return torch.cat(outs, dim=1)


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "median", "radius", median, lambda s, nd: [1, 2, 3, 4, 5, 6] if nd == 2 else [1, 2, 3],
    lambda v, nd: int(v), donut=True, local=True, integer=True, cost=4.0)
