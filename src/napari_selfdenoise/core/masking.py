"""Masking schemes and losses of the self-supervised methods (see algorithms.md).

* Noise2Void / N2V2 / structN2V: :func:`~napari_selfdenoise.core.n2v_masking.n2v_mask`
  (its own module; re-exported here).
* Noise2Self / Noise2Same: :func:`grid_mask` and :func:`grid_masked_input` (one of the
  ``grid ** ndim`` subsets of a regular grid, replaced by an interpolation of its
  neighbours or by zero), :func:`j_invariant_apply` for J-invariant inference.
* Losses: :func:`masked_mse`, :func:`noise2same_loss`.

All functions work on torch tensors shaped ``(B, C, [Z], Y, X)`` on any device;
:func:`grid_mask` and :func:`grid_masked_input` also accept numpy arrays.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .n2v_masking import n2v_cell_size, n2v_mask  # noqa: F401  (re-exported)


# ---------------------------------------------------------------- Noise2Self grid
def grid_mask(
    shape: Sequence[int], offset: Sequence[int], grid: int, device: Any = None
) -> torch.Tensor:
    """Boolean mask of the grid subset ``J`` selected by ``offset``.

    Parameters
    ----------
    shape : sequence of int
        Shape of the mask; ``offset`` applies to its last ``len(offset)`` dimensions.
    offset : sequence of int
        One value in ``range(grid)`` per spatial dimension.
    grid : int
        Grid width ``w``: pixel ``p`` is in ``J`` when ``p[i] % w == offset[i]`` for every i.

    Returns
    -------
    torch.Tensor
        ``bool`` tensor of ``shape`` (a broadcast view; call ``.clone()`` to write to it).
    """
    shape = tuple(int(s) for s in shape)
    offset = tuple(int(o) for o in offset)
    nd = len(offset)
    if nd < 1 or nd > len(shape):
        raise ValueError(f"offset {offset} does not fit shape {shape}")
    if any(o < 0 or o >= grid for o in offset):
        raise ValueError(f"every offset must lie in range({grid}), got {offset}")
    mask: Optional[torch.Tensor] = None
    for i, (n, o) in enumerate(zip(shape[-nd:], offset)):
        line = (torch.arange(n, device=device) % grid) == o
        line = line.reshape((n,) + (1,) * (nd - 1 - i))
        mask = line if mask is None else mask & line
    assert mask is not None
    return mask.expand(shape)


def interpolation_kernel(spatial_dims: int) -> torch.Tensor:
    """Normalised neighbour-interpolation kernel with a zero centre.

    2D: ``[[0.5, 1, 0.5], [1, 0, 1], [0.5, 1, 0.5]] / 6``; 3D: faces 1, edges 0.5,
    corners 0.25 (the same rule: weight halves per extra non-zero offset), normalised.
    """
    k = torch.zeros((3,) * spatial_dims, dtype=torch.float64)
    for idx in itertools.product(range(3), repeat=spatial_dims):
        nonzero = sum(i != 1 for i in idx)
        if nonzero:
            k[idx] = 0.5 ** (nonzero - 1)
    return (k / k.sum()).float()


def interpolate_neighbours(x: torch.Tensor) -> torch.Tensor:
    """Each pixel replaced by the weighted mean of its neighbours (reflect borders).

    ``x`` is ``(B, C, *S)``; channels are interpolated independently.
    """
    nd = x.ndim - 2
    c = x.shape[1]
    k = interpolation_kernel(nd).to(device=x.device, dtype=x.dtype)
    k = k.expand((c, 1) + k.shape)
    pad = (1, 1) * nd
    mode = "reflect" if min(x.shape[2:]) > 1 else "replicate"
    xp = F.pad(x, pad, mode=mode)
    return (F.conv2d if nd == 2 else F.conv3d)(xp, k, groups=c)


def grid_masked_input(x: Any, offset: Sequence[int], grid: int, mode: str = "interpolate") -> Any:
    """``x`` with the grid subset ``J`` (see :func:`grid_mask`) hidden.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        ``(B, C, *S)`` float data (numpy in, numpy out).
    offset, grid :
        The subset, as in :func:`grid_mask` (one offset per spatial dimension).
    mode : {"interpolate", "zero"}
        Replace ``x_J`` by the interpolation of its neighbours (none of which is in ``J``)
        or by zero. Either way the result does not depend on ``x_J``.
    """
    is_numpy = isinstance(x, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) if is_numpy else x
    if t.ndim < 3:
        raise ValueError("x must be shaped (B, C, [Z], Y, X)")
    if len(offset) != t.ndim - 2:
        raise ValueError(f"need one offset per spatial dimension ({t.ndim - 2}), got {offset}")
    out = apply_grid_mask(t, grid_mask(t.shape, offset, grid, device=t.device), mode)
    return out.numpy() if is_numpy else out


def apply_grid_mask(x: torch.Tensor, mask: torch.Tensor, mode: str = "interpolate") -> torch.Tensor:
    """Replace the pixels where ``mask`` (broadcastable to ``x``) is true.

    ``mode`` ``"interpolate"`` uses :func:`interpolate_neighbours` (valid when no
    neighbour of a masked pixel is masked, as for a grid subset), ``"zero"`` uses 0.
    """
    if mode == "interpolate":
        return torch.where(mask, interpolate_neighbours(x), x)
    if mode == "zero":
        return x.masked_fill(mask, 0.0)
    raise ValueError(f"mode must be 'interpolate' or 'zero', got {mode!r}")


def random_grid_mask(
    x: torch.Tensor, grid: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """A random grid subset per sample: ``bool`` mask ``(B, 1, *S)`` for batch ``x``."""
    b, nd = x.shape[0], x.ndim - 2
    offsets = torch.randint(0, grid, (b, nd), device=x.device, generator=generator)
    mask = torch.ones((b, 1) + tuple(x.shape[2:]), dtype=torch.bool, device=x.device)
    for i, n in enumerate(x.shape[2:]):
        shape = (b, 1) + tuple(n if j == i else 1 for j in range(nd))
        pos = torch.arange(n, device=x.device).reshape((1, 1) + shape[2:])
        mask = mask & ((pos % grid) == offsets[:, i].reshape((b,) + (1,) * (nd + 1)))
    return mask


def grid_offsets(spatial_dims: int, grid: int) -> list[tuple[int, ...]]:
    """All ``grid ** spatial_dims`` subset offsets."""
    return list(itertools.product(range(grid), repeat=spatial_dims))


def grid_phase(spatial: Sequence[int], grid: int, device: Any = None) -> torch.Tensor:
    """Grid-subset id of every pixel, ``(1, 1, *spatial)`` int64.

    Subset ids follow :func:`grid_offsets`: the offset ``(o_0, .., o_n)`` has id
    ``sum(o_i * grid ** (n - i))``, so pixel ``p`` is in subset ``phase[p]``.
    """
    ids = torch.zeros((), dtype=torch.int64, device=device)
    for n in spatial:
        line = torch.arange(int(n), device=device) % grid
        ids = ids[..., None] * grid + line
    return ids[None, None]


def invariant_apply(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, phase: torch.Tensor,
    n_subsets: int, fill: str = "interpolate", *, batch: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` so that no output pixel depends on its own input value.

    The one implementation of J-invariant (and complementary-mask) application, used by
    network inference, calibration of classical denoisers and tests. For each subset
    ``s`` in ``range(n_subsets)`` the pixels with ``phase == s`` are hidden (replaced by
    the interpolation of their neighbours, or zero) and ``fn``'s output is kept there.

    Parameters
    ----------
    fn : callable
        Maps a ``(k * B, C, *S)`` batch to outputs of the same shape.
    x : torch.Tensor
        ``(B, C, *S)`` input.
    phase : torch.Tensor
        Integer subset id per pixel, broadcastable to ``x``. ``"interpolate"`` is valid
        only when no neighbour of a hidden pixel is hidden with it (grid subsets).
    n_subsets : int
        Number of subsets (``grid ** ndim``, or the number of complementary masks).
    fill : {"interpolate", "zero"}
        What hidden pixels become.
    batch : int
        Masked copies of ``x`` per call of ``fn``.
    """
    if fill == "interpolate":
        filler = interpolate_neighbours(x)
    elif fill == "zero":
        filler = torch.zeros_like(x)
    else:
        raise ValueError(f"fill must be 'interpolate' or 'zero', got {fill!r}")
    out = torch.zeros_like(x)
    b = x.shape[0]
    for start in range(0, n_subsets, batch):
        hides = [phase == s for s in range(start, min(start + batch, n_subsets))]
        pred = fn(torch.cat([torch.where(h, filler, x) for h in hides], dim=0))
        for i, hide in enumerate(hides):
            out = torch.where(hide, pred[i * b : (i + 1) * b].to(out.dtype), out)
    return out


@torch.no_grad()
def j_invariant_apply(
    net: torch.nn.Module, x: torch.Tensor, grid: int = 4, mode: str = "interpolate",
    *, batch: int = 4,
) -> torch.Tensor:
    """J-invariant prediction: run each masked input and keep the output on its own subset.

    The value predicted at every pixel is computed from an input in which that pixel is
    hidden, so it does not depend on the pixel's own value. Costs ``grid ** ndim``
    forward passes (``batch`` masked copies per pass). The network is padded to its
    ``size_multiple`` (:func:`~napari_selfdenoise.core.models.apply_padded`).
    """
    from .models import apply_padded

    nd = x.ndim - 2
    return invariant_apply(lambda t: apply_padded(net, t), x,
                           grid_phase(x.shape[2:], grid, x.device), grid ** nd, mode,
                           batch=batch)


def complementary_phase(coords: Sequence[np.ndarray], n_masks: int) -> np.ndarray:
    """Which of ``n_masks`` complementary masks each pixel belongs to, at inference.

    A fixed pseudo-random assignment computed from the pixel's image coordinates (one
    index array per spatial axis, combined as an outer product), so every tile of an
    image sees the same partition and a tiled prediction equals an untiled one.
    """
    h = np.zeros((), dtype=np.uint64)
    for axis, c in enumerate(coords):
        c = np.asarray(c, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15 >> (axis * 7))
        h = np.add.outer(h * np.uint64(0x100000001B3), c)
    h = h ^ (h >> np.uint64(29))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(32))
    return (h % np.uint64(n_masks)).astype(np.int16)


# --------------------------------------------------------------------- losses
def masked_mse(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels (all channels); ``mask`` broadcasts."""
    m = mask.to(out.dtype).expand_as(out)
    return ((out - target) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def noise2same_loss(
    out_full: torch.Tensor,
    out_masked: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor,
    lambda_inv: float = 2.0,
) -> torch.Tensor:
    """Noise2Same loss (Xie et al. 2020).

    ``mean_all((f(x) - x)^2) + lambda_inv * sqrt(mean_J((f(x)_J - f(x_masked)_J)^2))``,
    where ``out_full = f(x)`` and ``out_masked = f(x_masked)`` are both real forward
    passes with gradient, and ``mask`` marks ``J``.
    """
    rec = ((out_full - x) ** 2).mean()
    inv = masked_mse(out_full, out_masked, mask)
    return rec + lambda_inv * torch.sqrt(inv)
