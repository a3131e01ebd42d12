"""Shared helpers of the classical denoisers: lattice views, padding, separable convolution,
footprints, radius checks, per-image numpy loops and geometric default grids.

Not a denoiser: the registry test skips this module and :mod:`.base`.
"""

from __future__ import annotations

import itertools
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Lattice = Optional[tuple[tuple[int, ...], int]]  # (offset per spatial dim, stride) or None


def _lattice_view(x: torch.Tensor, lattice: Lattice) -> torch.Tensor:
    """The pixels of ``x`` on ``lattice`` (all of ``x`` for ``None``)."""
    if lattice is None:
        return x
    offset, stride = lattice
    return x[(slice(None), slice(None)) + tuple(slice(o, None, stride) for o in offset)]


def _lattice_shape(shape: Sequence[int], lattice: Lattice) -> tuple[int, ...]:
    if lattice is None:
        return tuple(shape)
    offset, stride = lattice
    return tuple(-(-(n - o) // stride) for n, o in zip(shape, offset))


def _shifted(xp: torch.Tensor, shift: Sequence[int], out_shape: Sequence[int], lattice: Lattice,
             pad: int) -> torch.Tensor:
    """``x[p + shift]`` for every output pixel ``p`` (``xp`` is ``x`` padded by ``pad``)."""
    offset, stride = lattice if lattice is not None else ((0,) * len(shift), 1)
    idx = tuple(
        slice(pad + o + s, pad + o + s + (n - 1) * stride + 1, stride)
        for o, s, n in zip(offset, shift, out_shape)
    )
    return xp[(slice(None), slice(None)) + idx]


def _pad(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.pad(x, (r, r) * (x.ndim - 2), mode="replicate") if r else x


def _separable(x: torch.Tensor, kernels: torch.Tensor, lattice: Lattice) -> torch.Tensor:
    """Apply ``P`` separable kernels (``(P, K)``, same 1D kernel on every axis) at once."""
    nd = x.ndim - 2
    p, k = kernels.shape
    r = (k - 1) // 2
    conv = F.conv2d if nd == 2 else F.conv3d
    fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
    offset, stride = lattice if lattice is not None else ((0,) * nd, 1)
    y = _pad(x, r)
    if p == 1:  # one kernel: shifted multiply-adds beat a 1-channel convolution ~5x on CPU
        taps = [(k, float(v)) for k, v in enumerate(kernels[0].tolist()) if v != 0.0]
        for d in range(nd):
            dim = 2 + d
            n_out = -(-(y.shape[dim] - 2 * r - offset[d]) // stride)
            acc = None
            for k, v in taps:
                idx = [slice(None)] * y.ndim
                idx[dim] = slice(offset[d] + k, offset[d] + k + (n_out - 1) * stride + 1, stride)
                acc = y[tuple(idx)] * v if acc is None else acc.add_(y[tuple(idx)], alpha=v)
            y = acc
        return y.contiguous()
    for d in range(nd):
        dim = 2 + d
        y = y.narrow(dim, offset[d], y.shape[dim] - offset[d])
        shape = [1] * nd
        shape[d] = k
        strides = [1] * nd
        strides[d] = stride
        w = kernels.to(x.dtype).reshape([p, 1] + shape)
        # channels-last convolutions are several times faster on CPU (see core/device.py)
        y = conv(y.contiguous(memory_format=fmt), w, stride=strides, groups=1 if d == 0 else p)
    return y.contiguous()


def _footprint(radius: int, nd: int, exclude_centre: bool) -> list[tuple[int, ...]]:
    """Offsets of a disk / ball of ``radius`` (scikit-image's ``disk`` / ``ball``)."""
    r = int(radius)
    offs = [
        d for d in itertools.product(range(-r, r + 1), repeat=nd)
        if sum(v * v for v in d) <= r * r
    ]
    if exclude_centre:
        offs.remove((0,) * nd)
    return offs


def _check_radius(values: Sequence[float]) -> list[int]:
    radii = [round(v) for v in values]
    if any(abs(r - v) > 1e-6 or r < 1 for r, v in zip(radii, values)):
        raise ValueError(f"radii must be positive integers, got {list(values)}")
    return radii


def _numpy_loop(fn: Callable[[np.ndarray, float], np.ndarray], x: torch.Tensor,
                values: Sequence[float]) -> torch.Tensor:
    arr = x[:, 0].detach().cpu().numpy()
    out = np.stack([np.stack([fn(a, float(v)) for v in values]) for a in arr])
    return torch.from_numpy(out.astype(np.float32)).to(x.device)


def _geom(lo: float, hi: float, n: int, scale: float = 1.0) -> list[float]:
    return [float(f"{v:.4g}") for v in np.geomspace(lo * scale, hi * scale, n)]
