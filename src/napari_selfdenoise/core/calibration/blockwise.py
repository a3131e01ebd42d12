"""Applying a chosen denoiser: J-invariant or plain, in memory or block by block."""

from __future__ import annotations

import threading
import time
from typing import Any, Generator, Optional

import numpy as np
import torch

from ..axes import spatial_axes
from ..denoisers import Denoiser, get_denoiser
from ..device import select_device
from ..events import TileDone
from ..masking import grid_mask, grid_offsets, grid_phase, interpolate_neighbours, invariant_apply
from .crop import image_axes
from .limits import BLOCK_VOXELS, CHUNK_ELEMENTS, GRID


def j_invariant_apply(den: Denoiser, x: torch.Tensor, value: float) -> torch.Tensor:
    """The J-invariant output of ``den`` at ``value`` on ``x`` (B, 1, *S).

    Donut filters: one pass without the centre. Others: one masked pass per grid subset
    (``GRID ** ndim``), each output kept on its own subset.
    """
    if den.donut:
        return den(x, [value], exclude_centre=True)
    nd = x.ndim - 2
    offsets = grid_offsets(nd, GRID)
    if den.local:  # evaluated on each subset's lattice only (same result, less work)
        out = torch.empty_like(x)
        interp = interpolate_neighbours(x)
        for o in offsets:
            masked = torch.where(grid_mask(x.shape, o, GRID, x.device), interp, x)
            sel = (slice(None), slice(None)) + tuple(slice(a, None, GRID) for a in o)
            out[sel] = den(masked, [value], lattice=(o, GRID))
        return out
    per = max(1, int(CHUNK_ELEMENTS // max(1.0, x.numel() * den.cost / 4.0)))
    return invariant_apply(lambda masked: den(masked, [value]), x,
                           grid_phase(x.shape[2:], GRID, x.device), len(offsets), batch=per)


def apply_denoiser(den: Denoiser | str, x: np.ndarray, value: float, *,
                   j_invariant: bool = False, device: str = "auto") -> np.ndarray:
    """Denoise an in-memory ``(N, *S)`` float array (each image independently)."""
    den = get_denoiser(den) if isinstance(den, str) else den
    if den.integer and value != int(value):
        raise ValueError(f"{den.name} needs an integer {den.parameter}, got {value}")
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if not arr.flags.writeable:  # memory-mapped input: copy rather than alias it
        arr = arr.copy()
    t = torch.from_numpy(arr).to(select_device(device))[:, None]
    with torch.no_grad():
        res = j_invariant_apply(den, t, value) if j_invariant else den(t, [value])
    return res[:, 0].cpu().numpy()


def _block_side(n: int, side: int) -> int:
    return n if n <= side else max(GRID, (side // GRID) * GRID)


def denoise_image(
    image: Any,
    denoiser: Denoiser | str,
    value: float,
    *,
    axes: Optional[str] = None,
    j_invariant: bool = False,
    device: str = "auto",
    out: Any = None,
    stop: Optional[threading.Event] = None,
) -> Generator[TileDone, None, Any]:
    """Apply ``denoiser`` at ``value`` to a whole (possibly lazy) image, block by block.

    Every sample, time point and channel is denoised independently (2D planes, or 3D
    volumes when the axes hold ``Z``); each is cut into spatial blocks with a halo of the
    denoiser's reach (aligned to the masking grid), so only one block is in memory at a
    time. Local filters give exactly the whole-image result; TV and wavelets are global,
    their blocks are large and overlap by 24-32 pixels.

    Yields
    ------
    TileDone
        After every block.

    Returns
    -------
    array-like or None
        ``out`` (or a new float32 numpy array); ``None`` if stopped.
    """
    den = get_denoiser(denoiser) if isinstance(denoiser, str) else denoiser
    axes = image_axes(image, axes)
    shape = tuple(int(s) for s in np.shape(image))
    sp = spatial_axes(axes)
    nd = len(sp)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
    halo = den.halo(value, nd) + (1 if j_invariant else 0)
    halo = -(-halo // GRID) * GRID
    side = round(BLOCK_VOXELS ** (1.0 / nd))
    sdims = [axes.index(a) for a in sp]  # positions of Z, Y, X in the input
    blocks = [_block_side(shape[d], side) for d in sdims]
    other = [d for d in range(len(shape)) if d not in sdims]
    starts = [range(0, shape[d], b) for d, b in zip(sdims, blocks)]
    letters = [axes[d] for d in sorted(sdims)]
    order = [letters.index(a) for a in sp]  # input order -> Z, Y, X
    jobs = [(o, s) for o in np.ndindex(*[shape[d] for d in other])
            for s in np.ndindex(*[len(r) for r in starts])]
    t0 = time.perf_counter()
    for k, (oidx, sidx) in enumerate(jobs):
        if stop is not None and stop.is_set():
            return None
        read = [slice(None)] * len(shape)
        write = [slice(None)] * len(shape)
        inner = []
        for d, i in zip(other, oidx):
            read[d] = write[d] = i
        for j, d in enumerate(sdims):
            a = sidx[j] * blocks[j]
            b = min(a + blocks[j], shape[d])
            lo, hi = max(0, a - halo), min(shape[d], b + halo)
            read[d], write[d] = slice(lo, hi), slice(a, b)
            inner.append(slice(a - lo, b - lo))
        block = np.asarray(image[tuple(read)], dtype=np.float32)
        # the block's remaining dims are the spatial ones in input order: to Z, Y, X
        block = np.transpose(block, order)
        if not np.isfinite(block).all():
            raise ValueError("image contains NaN or infinite values; replace them (e.g. with "
                             "numpy.nan_to_num) before denoising")
        res = apply_denoiser(den, block[None], value, j_invariant=j_invariant, device=device)[0]
        res = res[tuple(inner)]
        out[tuple(write)] = np.transpose(res, np.argsort(order))
        elapsed = time.perf_counter() - t0
        done = k + 1
        yield TileDone(done, len(jobs), float(np.prod(res.shape)) * done / max(elapsed, 1e-9),
                       elapsed, elapsed / done * (len(jobs) - done))
    return out

