"""The calibration crop: which pixels are read from a (lazy) image, and the checks on them."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..axes import infer_axes, spatial_axes, validate_axes
from .limits import MIN_SIDE, TILES_PER_SIDE


def image_axes(image: Any, axes: Optional[str]) -> str:
    """``axes`` checked against ``image``'s shape, or inferred from it when ``None``."""
    shape = tuple(np.shape(image))
    return validate_axes(axes, shape) if axes else infer_axes(shape)


def check_image(x: np.ndarray, spatial_dims: int) -> None:
    """Raise ``ValueError`` for non-finite, constant or too small data (``(N, *S)``)."""
    spatial = x.shape[-spatial_dims:]
    need = (MIN_SIDE[3],) * (spatial_dims - 2) + (MIN_SIDE[2],) * 2
    if any(n < m for n, m in zip(spatial, need)):
        raise ValueError(
            f"image too small to calibrate: spatial shape {tuple(spatial)}; need at least "
            f"{MIN_SIDE[2]} pixels along Y and X" + (
                f" and {MIN_SIDE[3]} along Z" if spatial_dims == 3 else "")
        )
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(
            f"image contains {bad} NaN or infinite values; replace them (e.g. with "
            "numpy.nan_to_num or an inpainting) before denoising"
        )
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi <= lo:
        raise ValueError(f"image is constant (every pixel is {lo:g}): there is no noise to "
                         "calibrate a denoiser on")


def _central(n: int, side: int) -> slice:
    side = min(n, side)
    start = (n - side) // 2
    return slice(start, start + side)


def read_crop(image: Any, axes: str, crop: Optional[int]) -> np.ndarray:
    """The calibration crop as float32 ``(N, *S)`` (one image per channel and tile).

    Only the crop is read from lazy input: the middle sample / time point and every
    channel. 2D: a central region of side ``crop`` in Y and X, or, when the image is at
    least twice as large in both, four ``crop / 2`` tiles centred in its quadrants (the same
    number of pixels, more representative). 3D: side ``crop // 2`` in Y and X and at most
    16 planes in Z (about as many voxels as four 2D crops).
    """
    shape = np.shape(image)
    nd = len(spatial_axes(axes))
    quads = nd == 2 and crop is not None and all(
        n >= 2 * crop for a, n in zip(axes, shape) if a in "YX")
    tiles: list[list[Any]] = [[]]
    kept = ""
    for a, n in zip(axes, shape):
        if a in "ST":
            tiles = [t + [n // 2] for t in tiles]
            continue
        kept += a
        if a == "C" or crop is None:
            tiles = [t + [slice(None)] for t in tiles]
        elif quads:
            side = crop // TILES_PER_SIDE
            centres = [(2 * k + 1) * n // (2 * TILES_PER_SIDE) for k in range(TILES_PER_SIDE)]
            tiles = [t + [slice(c - side // 2, c - side // 2 + side)]
                     for t in tiles for c in centres]
        else:
            side = crop if nd == 2 else (16 if a == "Z" else max(crop // 2, 32))
            tiles = [t + [_central(n, side)] for t in tiles]
    order = [kept.index(a) for a in ("C" if "C" in kept else "") + spatial_axes(kept)]
    parts = []
    for t in tiles:
        # a copy: memory-mapped input stays read-only and untouched
        arr = np.transpose(np.array(image[tuple(t)], dtype=np.float32), order)
        parts.append(arr.reshape((-1,) + arr.shape[arr.ndim - nd:]))
    return np.concatenate(parts)


def estimate_noise_sigma(x: np.ndarray, spatial_dims: int) -> float:
    """Gaussian noise sigma (wavelet MAD, ``skimage.restoration.estimate_sigma``) averaged
    over the images of ``x`` (``(N, *S)``)."""
    from skimage.restoration import estimate_sigma

    sig = [float(estimate_sigma(a)) for a in x[:4]]
    s = float(np.mean(sig))
    if not s > 0:  # piecewise-constant data: fall back to the data's spread
        s = float(np.std(x)) * 0.1 or 1.0
    return s

