"""Training patches: region-held-out validation, on-device sampling and augmentation.

The normalised training images live on the training device as tensors; each step cuts
a batch of random patches from them and augments it there (no DataLoader, no host
copies). Validation is a band at the end of Y of every image that no training patch
ever touches, tiled once into a fixed set of patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch


def fit_patch_size(
    patch: Sequence[int], shapes: Sequence[Sequence[int]], multiple: int
) -> tuple[tuple[int, ...], Optional[str]]:
    """Shrink ``patch`` so it fits into every image of spatial ``shapes``.

    Each patch dimension is reduced to the largest multiple of ``multiple`` (at least 8)
    that fits the smallest image. Returns the patch and a message when it changed.

    Raises
    ------
    ValueError
        When an image is smaller than the smallest usable patch.
    """
    patch = tuple(int(p) for p in patch)
    smallest = tuple(min(int(s[i]) for s in shapes) for i in range(len(patch)))
    floor = -(-max(8, multiple) // multiple) * multiple
    out = []
    for p, s, name in zip(patch, smallest, "ZYX"[-len(patch):]):
        if s < floor:
            raise ValueError(
                f"an image is only {s} pixel(s) along {name}; training needs at least {floor} "
                "(smaller images carry too little context for a denoising network)"
            )
        out.append(max(floor, (min(p, s) // multiple) * multiple))
    out = tuple(out)
    if out == patch:
        return out, None
    return out, (
        f"patch size {patch} changed to {out}: a patch must fit the smallest training "
        f"image {smallest} and be a multiple of {multiple} (the network's size multiple)"
    )


def split_validation(
    images: Sequence[np.ndarray], patch_y: int, val_fraction: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Hold out a band at the end of Y of each canonical ``(N, C, *S)`` image.

    The band is ``val_fraction`` of Y but at least one patch high; images too small to
    give both a training region and a band keep all their pixels for training.

    Returns
    -------
    train, val : list of numpy.ndarray
        Views: the training regions (one per image) and the validation bands (possibly
        fewer, or none).
    """
    train, val = [], []
    for img in images:
        y = img.shape[-2]
        band = max(int(math.ceil(val_fraction * y)), patch_y)
        if val_fraction > 0 and y - band >= patch_y:
            train.append(img[..., : y - band, :])
            val.append(img[..., y - band :, :])
        else:
            train.append(img)
    return train, val


def tile_patches(
    regions: Sequence[np.ndarray], patch: Sequence[int], max_patches: int = 64
) -> np.ndarray:
    """Non-overlapping ``patch`` tiles of canonical regions, at most ``max_patches``.

    Tiles are taken in order and thinned evenly, so the set is fixed for given data.
    """
    tiles = []
    for r in regions:
        starts = [range(0, s - p + 1, p) for s, p in zip(r.shape[2:], patch)]
        for n in range(r.shape[0]):
            for corner in np.ndindex(*[len(s) for s in starts]):
                sl = tuple(slice(st[i], st[i] + p) for st, i, p in zip(starts, corner, patch))
                tiles.append(r[(n, slice(None)) + sl])
    if len(tiles) > max_patches:
        keep = np.linspace(0, len(tiles) - 1, max_patches).round().astype(int)
        tiles = [tiles[i] for i in keep]
    return np.stack(tiles) if tiles else np.zeros((0,))


@dataclass
class PatchSampler:
    """Random patches of training regions resident on the training device.

    Parameters
    ----------
    regions : list of torch.Tensor
        Normalised ``(N, C, *S)`` tensors on the device.
    patch : tuple of int
        Spatial patch shape (fits every region).
    seed : int or None
        Seeds the host generator of patch positions.
    """

    regions: list[torch.Tensor]
    patch: tuple[int, ...]
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        counts = []
        for r in self.regions:
            free = [s - p + 1 for s, p in zip(r.shape[2:], self.patch)]
            if min(free) < 1:
                raise ValueError(f"patch {self.patch} does not fit a region of {tuple(r.shape[2:])}")
            counts.append(r.shape[0] * math.prod(free))
        self._p = np.asarray(counts, dtype=np.float64) / float(sum(counts))
        self._rng = np.random.default_rng(self.seed)

    def sample(self, batch: int) -> torch.Tensor:
        """A ``(batch, C, *patch)`` tensor of random patches (uniform over positions)."""
        rng = self._rng
        which = rng.choice(len(self.regions), size=batch, p=self._p)
        out = []
        for i in which:
            r = self.regions[i]
            n = int(rng.integers(r.shape[0]))
            corner = [int(rng.integers(s - p + 1)) for s, p in zip(r.shape[2:], self.patch)]
            sl = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
            out.append(r[(n, slice(None)) + sl])
        return torch.stack(out)


def augment(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random flips per sample along every spatial axis, and a Y/X transposition when
    the patch is square in YX (flips + transposition give all 8 rotations/reflections)."""
    b = x.shape[0]
    nd = x.ndim - 2
    rotate = x.shape[-1] == x.shape[-2]
    coins = torch.rand((b, nd + 1), device=x.device, generator=generator) < 0.5
    view = (b,) + (1,) * (x.ndim - 1)
    for i in range(nd):
        x = torch.where(coins[:, i].view(view), x.flip(2 + i), x)
    if rotate:
        x = torch.where(coins[:, nd].view(view), x.transpose(-1, -2), x)
    return x
