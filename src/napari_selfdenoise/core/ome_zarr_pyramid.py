"""OME-Zarr pyramid geometry and downsampling: the levels of a multiscale image
(:func:`plan_levels`), the 2x mean of voxel pairs (:func:`downsample_mean`), which chunks of
a level can be computed (:func:`all_children_done`) and each level's coordinate
transformations (:func:`level_transforms`).

Pure numpy, no zarr: :mod:`.ome_zarr` (metadata in and out, re-exporting these names) and
:mod:`.ome_zarr_store` (the chunk-wise builder) use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .ome_zarr import ImageMetadata

#: halvings stop here even if the plane still spans several chunks (2**12 = 4096x smaller)
MAX_LEVELS = 13
#: the coarsest level's Y and X are at most this (and at most one chunk)
OVERVIEW = 256


@dataclass(frozen=True)
class Level:
    """One pyramid level: its shape, its factor per axis over the level above (1 or 2),
    and its cumulative factor over level 0."""

    shape: tuple[int, ...]
    factors: tuple[int, ...]
    total: tuple[int, ...]


def plan_levels(shape: Sequence[int], axes: str, chunks: Sequence[int],
                scale: Optional[dict] = None) -> list[Level]:
    """The pyramid of an image with ``axes`` stored in ``chunks``.

    Each level halves Y and X (an axis of length 1 stays 1); Z is halved too when its
    voxel size at that level is at most Y's and X's (scale from ``scale``, default 1), so
    isotropic volumes shrink in 3D and anisotropic ones first become isotropic. Levels are
    added until Y and X fit both in one chunk and in :data:`OVERVIEW` (256) voxels, at
    most :data:`MAX_LEVELS` in all.
    """
    scale = {a: float((scale or {}).get(a, 1.0)) for a in axes}
    iy, ix = axes.index("Y"), axes.index("X")
    cur = [int(s) for s in shape]
    levels = [Level(tuple(cur), (1,) * len(cur), (1,) * len(cur))]
    total = [1] * len(cur)
    while (cur[iy] > min(chunks[iy], OVERVIEW) or cur[ix] > min(chunks[ix], OVERVIEW)) \
            and len(levels) < MAX_LEVELS:
        factors = [1] * len(cur)
        for i, a in enumerate(axes):
            if a in "YX" and cur[i] > 1:
                factors[i] = 2
        if "Z" in axes:
            iz = axes.index("Z")
            vox = {a: scale[a] * total[axes.index(a)] for a in "ZYX"}
            if cur[iz] > 1 and vox["Z"] <= min(vox["Y"], vox["X"]):
                factors[iz] = 2
        cur = [-(-n // f) for n, f in zip(cur, factors)]
        total = [t * f for t, f in zip(total, factors)]
        levels.append(Level(tuple(cur), tuple(factors), tuple(total)))
    return levels


def _pairs(x: np.ndarray, axis: int, pad: Any) -> tuple[np.ndarray, np.ndarray]:
    """Even and odd elements along ``axis``; an odd length is padded with ``pad``
    (``"edge"``: the last element repeated)."""
    if x.shape[axis] % 2:
        last = np.take(x, [-1], axis=axis)
        extra = last if pad == "edge" else np.full_like(last, pad)
        x = np.concatenate([x, extra], axis=axis)
    even = [slice(None)] * x.ndim
    odd = [slice(None)] * x.ndim
    even[axis], odd[axis] = slice(0, None, 2), slice(1, None, 2)
    return x[tuple(even)], x[tuple(odd)]


def downsample_mean(block: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """2x mean along each axis whose factor is 2, axis by axis in array order, float32.

    Each output voxel along a halved axis is ``(a + b) * 0.5`` of a voxel pair; the last
    voxel of an odd length is its own mean (the pair is the voxel twice). Applied to a
    region starting at an even index it equals the same operation on the whole array.
    """
    out = np.asarray(block, dtype=np.float32)
    for axis, f in enumerate(factors):
        if f == 2:
            a, b = _pairs(out, axis, "edge")
            out = (a + b) * np.float32(0.5)
        elif f != 1:
            raise ValueError(f"pyramid factors are 1 or 2, got {f}")
    return out


def all_children_done(done: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Per chunk of the next level: whether every chunk of ``done``'s level under it is
    done (chunks beyond the grid's end count as done)."""
    out = np.asarray(done, dtype=bool)
    for axis, f in enumerate(factors):
        if f == 2:
            a, b = _pairs(out, axis, True)
            out = a & b
    return out


def level_transforms(levels: list[Level], axes: str, meta: ImageMetadata) -> list[list[dict]]:
    """``coordinateTransformations`` per level: the scale times the level's factor, and a
    translation moving voxel 0 to the centre of the voxels it averages."""
    out = []
    s = [float(meta.scale.get(a, 1.0)) for a in axes]
    t = [float(meta.translation.get(a, 0.0)) for a in axes]
    for lev in levels:
        scale = [si * f for si, f in zip(s, lev.total)]
        trans = [ti + (f - 1) * si / 2 for ti, si, f in zip(t, s, lev.total)]
        out.append([{"type": "scale", "scale": scale},
                    {"type": "translation", "translation": trans}])
    return out
