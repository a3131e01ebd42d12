"""Tile plans and blending windows for tiled inference (pure numpy).

The network sees the image reflected ``border`` voxels beyond each end of each spatial axis
(and up to a multiple of its ``size_multiple``): the *padded image*. Along each axis of
length ``L`` the plan cuts the image into output *chunks* of ``stride`` voxels. Tile ``i``
reads ``[i * stride - context, i * stride + stride + blend + context)``, shifted onto the
padded image where it would leave it, and its prediction is used on
``[i * stride, i * stride + stride + blend)`` only: the ``context`` (at least the network's
receptive-field radius) is never used, and the ``blend`` voxels it shares with tile
``i + 1`` are cross-faded with a ``sin^2`` / ``cos^2`` window, whose weights sum to exactly
one. Chunk ``j`` is therefore complete once tiles ``j - 1`` and ``j`` are done (per axis).

When every tile origin and extent is a multiple of the network's ``size_multiple``, the
stitched result equals running the network on the whole padded image: inside the image a
tile has at least the receptive field's context, and at the padded image's ends it stops
exactly there, so the network pads with zeros where it would on the whole image.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Sequence

import numpy as np


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ``>= value``."""
    return -(-int(value) // int(multiple)) * int(multiple)


def default_blend(context: int, multiple: int = 1) -> int:
    """Cross-faded voxels between neighbouring tiles: half the context, at least ``multiple``."""
    return max(int(multiple), int(context) // 2)


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Map indices (any integers) into ``range(length)`` by mirror reflection.

    The edge voxel is not repeated (numpy's ``"reflect"`` mode), so
    ``x[reflect_index(np.arange(-p, n + p), n)] == np.pad(x, p, mode="reflect")``
    for any ``p``.
    """
    index = np.asarray(index, dtype=np.int64)
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    r = np.mod(index, period)
    return np.where(r < length, r, period - r)


def ramp(width: int) -> np.ndarray:
    """Rising half of the blending window: ``sin^2`` over ``width`` voxels.

    ``ramp(w) + ramp(w)[::-1] == 1``: the falling side of one tile and the rising side of
    the next sum to one.
    """
    t = (np.arange(width, dtype=np.float64) + 0.5) / max(width, 1)
    return np.sin(0.5 * np.pi * t) ** 2


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one spatial axis.

    The image is reflected ``border`` voxels beyond each end (and up to a multiple of the
    network's ``size_multiple``): that padded axis is what the network sees, as if run on
    it whole. Tiles never read beyond it. A tile at an end of it starts (or ends) exactly
    there, so the network's own zero padding falls where it would on the whole padded axis,
    and elsewhere a tile has ``context`` voxels on each side of the region it is used on.
    """

    length: int
    stride: int
    context: int
    blend: int
    border: int
    multiple: int = 1

    @property
    def n_tiles(self) -> int:
        return max(1, -(-self.length // self.stride))

    @property
    def extent(self) -> int:
        """Voxels read per tile (the network's input size along this axis)."""
        return self.stride + self.blend + 2 * self.context

    @property
    def padded_stop(self) -> int:
        """End (image coordinates) of the padded axis; it starts at ``-border``."""
        return round_up(self.length, self.multiple) + self.border

    def tile_start(self, i: int) -> int:
        """First voxel (image coordinates, may be negative) read by tile ``i``."""
        start = i * self.stride - self.context
        return min(max(start, -self.border), self.padded_stop - self.extent)

    def chunk(self, j: int) -> slice:
        """Output chunk ``j`` in image coordinates."""
        return slice(j * self.stride, min((j + 1) * self.stride, self.length))

    def offset(self, i: int) -> int:
        """Where chunk ``i`` starts in tile ``i`` (``context`` unless the tile is shifted)."""
        return i * self.stride - self.tile_start(i)

    def weights(self, i: int) -> np.ndarray:
        """Blending weights of tile ``i`` over its extent (zero outside its used region)."""
        w = np.zeros(self.extent, dtype=np.float64)
        lo = self.offset(i)
        w[lo : lo + self.stride + self.blend] = 1.0
        if self.blend:
            rise = ramp(self.blend)
            if i > 0:
                w[lo : lo + self.blend] = rise[: len(w[lo : lo + self.blend])]
            if i < self.n_tiles - 1:
                hi = lo + self.stride
                w[hi : hi + self.blend] = rise[::-1][: len(w[hi : hi + self.blend])]
        return w

    def pieces(self, i: int) -> list[tuple[int, slice, slice]]:
        """``(chunk, slice in tile, slice in chunk)`` for each chunk tile ``i`` feeds."""
        out = []
        for j in (i, i + 1):
            if j >= self.n_tiles:
                break
            ch = self.chunk(j)
            lo = ch.start
            hi = ch.stop if j == i else min(ch.stop, ch.start + self.blend)
            if hi <= lo:
                continue
            t0 = lo - self.tile_start(i)
            out.append((j, slice(t0, t0 + hi - lo), slice(0, hi - lo)))
        return out

    def contributions(self, j: int) -> int:
        """Number of tiles feeding chunk ``j``."""
        return 2 if (j > 0 and self.blend > 0) else 1


def plan_axis(length: int, extent: int, context: int, blend: int, multiple: int,
              border: int | None = None) -> AxisPlan:
    """Tiling of one axis for tiles of at most ``extent`` voxels (when more than one).

    ``context``, ``blend`` and ``border`` (reflected voxels beyond each end of the image,
    default and at most ``context``) are rounded up to ``multiple``; the stride is balanced
    so the tiles cover the axis with as little waste as possible. An axis whose padded
    length fits in ``extent`` gets a single tile: the axis, rounded up to ``multiple``, and
    ``border`` voxels on each side.
    """
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    m = max(1, int(multiple))
    context = round_up(max(0, context), m)
    blend = round_up(max(0, blend), m)
    border = context if border is None else min(context, round_up(max(0, border), m))
    whole = round_up(length, m)
    if whole + 2 * border <= int(extent):
        return AxisPlan(length, whole, border, 0, border, m)
    max_stride = (int(extent) - 2 * context - blend) // m * m
    if max_stride < m:
        raise ValueError(
            f"tile size {extent} is too small for a context of {context} voxels per side "
            f"plus {blend} blended voxels; use tiles of at least {2 * context + blend + m}"
        )
    n = -(-length // max_stride)
    blend = min(blend, max_stride // 2 // m * m)
    stride = round_up(-(-length // n), m)
    return AxisPlan(length, stride, context, blend, border, m)


@dataclass(frozen=True)
class TilePlan:
    """Separable tiling of a spatial shape (``(Y, X)`` or ``(Z, Y, X)``)."""

    axes: tuple[AxisPlan, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.length for a in self.axes)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        """Shape of every tile fed to the network."""
        return tuple(a.extent for a in self.axes)

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        """Output chunk shape (the stride), clipped to the image."""
        return tuple(min(a.stride, a.length) for a in self.axes)

    @property
    def grid(self) -> tuple[int, ...]:
        """Tiles (= chunks) per axis."""
        return tuple(a.n_tiles for a in self.axes)

    @property
    def n_tiles(self) -> int:
        return math.prod(self.grid)

    def tiles(self) -> Iterator[tuple[int, ...]]:
        """Tile indices in C order."""
        return itertools.product(*(range(n) for n in self.grid))

    def tile_region(self, idx: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` per axis read by tile ``idx`` (may extend past the image)."""
        return tuple((a.tile_start(i), a.tile_start(i) + a.extent) for a, i in zip(self.axes, idx))

    def chunk_slices(self, idx: Sequence[int]) -> tuple[slice, ...]:
        """Image region of chunk ``idx``."""
        return tuple(a.chunk(j) for a, j in zip(self.axes, idx))

    @cached_property
    def _weight_cache(self) -> dict:
        return {}

    def tile_weights(self, idx: Sequence[int]) -> np.ndarray:
        """Blending window of tile ``idx`` (float32, shape :attr:`tile_shape`; read-only).

        A window only depends on whether the tile is first / last along each axis and where
        its used region starts (tiles at the ends of the padded image are shifted onto
        them), so a handful of distinct windows are built and cached.
        """
        kind = tuple((i > 0, i < a.n_tiles - 1, a.offset(i)) for a, i in zip(self.axes, idx))
        w = self._weight_cache.get(kind)
        if w is None:
            w = np.ones((), dtype=np.float64)
            for a, i in zip(self.axes, idx):
                w = np.multiply.outer(w, a.weights(i))
            w = w.astype(np.float32)
            w.flags.writeable = False
            self._weight_cache[kind] = w
        return w

    def pieces(self, idx: Sequence[int]) -> list[tuple[tuple[int, ...], tuple[slice, ...],
                                                       tuple[slice, ...]]]:
        """``(chunk index, slices in tile, slices in chunk)`` for each chunk tile ``idx`` feeds."""
        per_axis = [a.pieces(i) for a, i in zip(self.axes, idx)]
        out = []
        for combo in itertools.product(*per_axis):
            out.append((tuple(c[0] for c in combo), tuple(c[1] for c in combo),
                        tuple(c[2] for c in combo)))
        return out

    def contributions(self, chunk: Sequence[int]) -> int:
        """Tiles feeding chunk ``chunk`` (it is complete after that many pieces)."""
        return math.prod(a.contributions(j) for a, j in zip(self.axes, chunk))

    def tiles_for_chunks(self, chunks: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
        """Tiles (C order) needed to produce ``chunks``."""
        need = set()
        for ch in chunks:
            opts = [[j - 1, j] if (j > 0 and a.blend) else [j] for a, j in zip(self.axes, ch)]
            need.update(itertools.product(*opts))
        return sorted(need)


def make_plan(
    shape: Sequence[int],
    tile_shape: Sequence[int],
    context: Sequence[int],
    *,
    blend: Sequence[int] | None = None,
    border: Sequence[int] | None = None,
    multiple: int = 1,
) -> TilePlan:
    """Tile plan for a spatial ``shape``.

    Parameters
    ----------
    shape : sequence of int
        Spatial image shape.
    tile_shape : sequence of int
        Largest tile (network input) per axis, context included.
    context : sequence of int
        Voxels of context per side (at least the receptive-field radius).
    blend : sequence of int, optional
        Cross-faded voxels between neighbouring tiles; default half the context (at least
        ``multiple``).
    border : sequence of int, optional
        Voxels reflected beyond each end of the image (at most, and by default, the
        context): the stitched result is the network run on the image padded so.
    multiple : int
        Tile origins, extents and strides are multiples of it (the network's
        ``size_multiple``), so tiling does not change the network's output.
    """
    nd = len(shape)
    if not (len(tile_shape) == len(context) == nd):
        raise ValueError(
            f"tile_shape {tuple(tile_shape)} and context {tuple(context)} need one entry per "
            f"spatial dim of {tuple(shape)}"
        )
    if blend is None:
        blend = [default_blend(c, multiple) for c in context]
    if border is None:
        border = context
    if not len(blend) == len(border) == nd:
        raise ValueError(f"blend {tuple(blend)} and border {tuple(border)} need {nd} entries")
    axes = tuple(
        plan_axis(int(s), int(t), int(c), int(b), multiple, int(r))
        for s, t, c, b, r in zip(shape, tile_shape, context, blend, border)
    )
    return TilePlan(axes)


def read_reflected(data, index: Sequence, region: Sequence[tuple[int, int]],
                   spatial_dims: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Read a region of ``data`` with mirror reflection beyond its borders.

    Parameters
    ----------
    data : array-like
        Any sliceable array (numpy, zarr, dask, memmap); only the bounding box of the
        reflected region is read.
    index : sequence
        Index into ``data`` (ints / slices) with placeholders for the spatial dims.
    region : sequence of (start, stop)
        Region per spatial dim, in image coordinates (may be out of bounds).
    spatial_dims : sequence of int
        Positions in ``index`` (and in the result) of the spatial dims.
    shape : sequence of int
        Length of each spatial dim.
    """
    index = list(index)
    local = []
    for dim, (start, stop), n in zip(spatial_dims, region, shape):
        src = reflect_index(np.arange(start, stop), n)
        lo, hi = int(src.min()), int(src.max()) + 1
        index[dim] = slice(lo, hi)
        local.append(src - lo)
    block = np.asarray(data[tuple(index)])
    # positions of the spatial dims in the result (ints in index drop their dims)
    kept = [i for i, v in enumerate(index) if not isinstance(v, (int, np.integer))]
    for dim, loc in zip(spatial_dims, local):
        axis = kept.index(dim)
        if not (len(loc) == block.shape[axis] and np.array_equal(loc, np.arange(len(loc)))):
            block = np.take(block, loc, axis=axis)
    return block
