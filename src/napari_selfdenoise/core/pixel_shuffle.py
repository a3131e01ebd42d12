"""Pixel-shuffle down-sampling (PD) for spatially correlated noise (after AP-BSN).

``shuffle_down(x, s)`` splits every YX plane into the ``s * s`` sub-images of the pixels
``s`` apart and stacks them on the batch axis, so noise correlated between neighbouring
pixels becomes (nearly) independent within each sub-image and the sub-images never leak
into each other (they are separate batch items). ``shuffle_up`` is its exact inverse.
:class:`PixelShuffled` runs a network on the sub-images at inference (AP-BSN: factor 5
in training, 2 at inference). Z (3D) is not shuffled.

References
----------
Lee, Son, Lee. AP-BSN: Self-Supervised Denoising for Real-World Images via Asymmetric PD
and Blind-Spot Network. CVPR 2022.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def shuffle_down(x: torch.Tensor, s: int) -> torch.Tensor:
    """``(B, C, [Z], H, W)`` -> ``(B * s * s, C, [Z], H / s, W / s)``; H, W multiples of s.

    Batch item ``b * s * s + i * s + j`` holds the pixels ``(i::s, j::s)`` of item ``b``.
    """
    if s == 1:
        return x
    b, c = x.shape[:2]
    mid = tuple(x.shape[2:-2])
    h, w = x.shape[-2:]
    if h % s or w % s:
        raise ValueError(f"pixel shuffle by {s} needs sizes that are multiples of it, got {h} x {w}")
    n = len(mid)
    y = x.reshape((b, c) + mid + (h // s, s, w // s, s))
    # (b, c, *mid, h', i, w', j) -> (b, i, j, c, *mid, h', w')
    perm = (0, 3 + n, 5 + n, 1) + tuple(range(2, 2 + n)) + (2 + n, 4 + n)
    return y.permute(perm).reshape((b * s * s, c) + mid + (h // s, w // s))


def shuffle_up(y: torch.Tensor, s: int) -> torch.Tensor:
    """The inverse of :func:`shuffle_down`."""
    if s == 1:
        return y
    bss, c = y.shape[:2]
    mid = tuple(y.shape[2:-2])
    h, w = y.shape[-2:]
    b, n = bss // (s * s), len(mid)
    x = y.reshape((b, s, s, c) + mid + (h, w))
    # (b, i, j, c, *mid, h', w') -> (b, c, *mid, h', i, w', j)
    perm = (0, 3) + tuple(range(4, 4 + n)) + (4 + n, 1, 5 + n, 2)
    return x.permute(perm).reshape((b, c) + mid + (h * s, w * s))


def crop_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` cropped at the end of Y and X to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    return x[..., : h - h % multiple, : w - w % multiple]


class PixelShuffled(nn.Module):
    """Run ``inner`` on the ``factor * factor`` pixel-shuffled sub-images and reassemble.

    ``halo`` and ``size_multiple`` grow by ``factor`` in Y and X, so tile plans are
    aligned to the factor and tiled equals untiled. ``refine_module`` (R3 refinement's
    full-resolution passes) is ``inner`` itself.
    """

    def __init__(self, inner: nn.Module, factor: int):
        super().__init__()
        self.inner = inner
        self.factor = int(factor)
        self.spatial_dims = getattr(inner, "spatial_dims", 2)
        halo = tuple(getattr(inner, "halo", (0,) * self.spatial_dims))
        self.halo = halo[:-2] + tuple(h * self.factor for h in halo[-2:])
        self.size_multiple = int(getattr(inner, "size_multiple", 1)) * self.factor
        self.in_multiple = int(getattr(inner, "size_multiple", 1))

    @property
    def refine_module(self) -> nn.Module:
        return getattr(self.inner, "refine_module", self.inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.factor
        return shuffle_up(self.inner(shuffle_down(x, s)), s)


def lcm_multiple(*values: int) -> int:
    """The least common multiple of size multiples."""
    return math.lcm(*(int(v) for v in values))
