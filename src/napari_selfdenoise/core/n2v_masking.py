"""Noise2Void / N2V2 / structN2V masking (see algorithms.md): :func:`n2v_mask` chooses one
pixel per cell of a regular grid and replaces it by a random neighbour (N2V) or by the
median of its window without the centre (N2V2); structN2V also masks a line through it.

Works on torch tensors shaped ``(B, C, [Z], Y, X)`` on any device.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def n2v_cell_size(masked_fraction: float, spatial_dims: int) -> int:
    """Side of the stratification cell holding one masked pixel (~``1 / fraction`` pixels)."""
    return max(1, int(round((1.0 / masked_fraction) ** (1.0 / spatial_dims))))


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    idx = idx.abs()
    return torch.where(idx >= n, 2 * (n - 1) - idx, idx).clamp(0, n - 1)


def _window_offsets(k: int, nd: int, device: Any) -> torch.Tensor:
    """All offsets of a ``k``-wide window except the centre, shaped (k**nd - 1, nd)."""
    r = k // 2
    grids = torch.meshgrid(*[torch.arange(-r, r + 1, device=device)] * nd, indexing="ij")
    offs = torch.stack([g.reshape(-1) for g in grids], dim=1)
    return offs[(offs != 0).any(dim=1)]


def n2v_mask(
    x: torch.Tensor,
    *,
    masked_fraction: float,
    neighbourhood: int = 5,
    replacement: str = "random",
    generator: Optional[torch.Generator] = None,
    struct_axis: Optional[str] = None,
    struct_span: int = 5,
    struct_range: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Void masking of a batch ``x`` (B, C, *S).

    One pixel per cell of a regular grid (cell side from ``masked_fraction``) is chosen at
    a random position in its cell and replaced, in every channel, by

    * ``"random"``: the value of a random other pixel of the ``neighbourhood`` window (N2V);
    * ``"median"``: the median of the window without its centre (N2V2).

    Window pixels that are themselves masked never serve as replacements (a random pick
    is redrawn; the median ignores them), so no masked value leaks into the input at all.
    ``struct_axis`` (``"x"`` or ``"y"``, 2D: structN2V) also replaces the ``struct_span``
    line through each chosen pixel along that axis by uniform random values in
    ``struct_range``.

    Returns
    -------
    x_masked : torch.Tensor
        The manipulated batch.
    mask : torch.Tensor
        ``bool`` (B, 1, *S): the chosen pixels, where the loss is taken.
    """
    if replacement not in ("random", "median"):
        raise ValueError(f"N2V replacement must be 'random' or 'median', got {replacement!r}")
    if struct_axis is not None and x.ndim != 4:
        raise ValueError("structN2V masks are defined for 2D data only")
    b, c = x.shape[:2]
    spatial = tuple(x.shape[2:])
    idx = _Flat(spatial)
    b_idx, coords = _grid_picks(b, spatial, n2v_cell_size(masked_fraction, len(spatial)),
                                x.device, generator)
    p_idx = idx(coords)
    mask_flat = torch.zeros((b, math.prod(spatial)), dtype=torch.bool, device=x.device)
    mask_flat[b_idx, p_idx] = True
    x_flat = x.reshape(b, c, -1)
    values, ok = _replacements(x_flat, mask_flat, b_idx, coords, idx, neighbourhood,
                               replacement, generator)
    x_masked = x_flat.clone()
    if not bool(ok.all()):  # no usable neighbour: leave the pixel out of the loss
        mask_flat[b_idx[~ok], p_idx[~ok]] = False
        b_idx, p_idx, coords, values = b_idx[ok], p_idx[ok], coords[ok], values[ok]
    x_masked[b_idx, :, p_idx] = values.to(x.dtype)
    if struct_axis is not None:
        _struct_lines(x_masked, b_idx, coords, idx, {"y": 0, "x": 1}[struct_axis],
                      struct_span, struct_range, generator)
    return x_masked.reshape(x.shape), mask_flat.reshape((b, 1) + spatial)


class _Flat:
    """Flat pixel indices of ``(..., nd)`` coordinates in an array of shape ``spatial``."""

    def __init__(self, spatial: tuple[int, ...]) -> None:
        self.spatial = spatial
        self.strides = [math.prod(spatial[i + 1:]) for i in range(len(spatial))]

    def __call__(self, cs: torch.Tensor) -> torch.Tensor:
        return sum(cs[..., i] * self.strides[i] for i in range(len(self.strides)))


def _grid_picks(b: int, spatial: tuple[int, ...], s: int, dev: torch.device,
                generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """One random pixel per ``s``-sided cell of a regular grid, per batch item:
    ``(batch index (M,), coordinates (M, nd))``, cells cut by the border included."""
    nd = len(spatial)
    cells = [torch.arange(0, n, s, device=dev) for n in spatial]
    grids = torch.meshgrid(*cells, indexing="ij")
    origin = torch.stack([g.reshape(-1) for g in grids], dim=1)  # (cells, nd)
    n_cells = origin.shape[0]
    jitter = torch.randint(0, s, (b, n_cells, nd), device=dev, generator=generator)
    coords = origin[None] + jitter  # (B, cells, nd)
    inside = torch.ones((b, n_cells), dtype=torch.bool, device=dev)
    for i, n in enumerate(spatial):
        inside &= coords[..., i] < n
    b_idx = torch.arange(b, device=dev)[:, None].expand(b, n_cells)[inside]
    return b_idx, coords[inside]


def _replacements(x_flat: torch.Tensor, mask_flat: torch.Tensor, b_idx: torch.Tensor,
                  coords: torch.Tensor, idx: _Flat, neighbourhood: int, replacement: str,
                  generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """The value each chosen pixel gets from its window, never from a masked pixel:
    ``(values (M, C), ok (M,))``; ``ok`` is False where no window pixel is usable."""
    offs = _window_offsets(neighbourhood, len(idx.spatial), x_flat.device)  # (K, nd)
    neigh = coords[:, None, :] + offs[None]  # (M, K, nd)
    for i, n in enumerate(idx.spatial):
        neigh[..., i] = _reflect(neigh[..., i], n)
    n_idx = idx(neigh)  # (M, K)
    usable = ~mask_flat[b_idx[:, None], n_idx]  # (M, K): not itself masked
    if replacement == "random":
        weights = usable.float()
        ok = weights.sum(dim=1) > 0
        weights[~ok] = 1.0
        pick = torch.multinomial(weights, 1, generator=generator)[:, 0]
        src = n_idx.gather(1, pick[:, None])[:, 0]
        return x_flat[b_idx, :, src], ok
    window = x_flat[b_idx[:, None], :, n_idx]  # (M, K, C)
    window = torch.where(usable[..., None], window, torch.nan)
    return torch.nanmedian(window, dim=1).values, usable.any(dim=1)


def _struct_lines(x_masked: torch.Tensor, b_idx: torch.Tensor, coords: torch.Tensor,
                  idx: _Flat, axis: int, span: int, value_range: tuple[float, float],
                  generator: Optional[torch.Generator]) -> None:
    """structN2V: the ``span`` line along ``axis`` through each chosen pixel (itself
    excepted) gets uniform random values in ``value_range``, in place."""
    c, n = x_masked.shape[1], idx.spatial[axis]
    lo, hi = value_range
    for t in range(-(span // 2), span // 2 + 1):
        if t == 0:
            continue
        line = coords.clone()
        line[:, axis] += t
        keep = (line[:, axis] >= 0) & (line[:, axis] < n)
        lb, li = b_idx[keep], idx(line[keep])
        noise = torch.rand((lb.shape[0], c), device=x_masked.device, generator=generator)
        x_masked[lb, :, li] = (lo + (hi - lo) * noise).to(x_masked.dtype)
