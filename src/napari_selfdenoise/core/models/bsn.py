"""Blind-spot network by architecture (Laine, Karras, Lehtinen, Aila, NeurIPS 2019).

A U-Net whose every convolution and down-sampling is *shifted* so that an output pixel
sees only its own row and the rows above it; a final one-row shift makes its view
strictly the half-plane above. Four copies of the input, rotated by 0 / 90 / 180 / 270
degrees, go through the same half-plane network (shared weights), are counter-rotated,
concatenated on channels and merged by 1 x 1 convolutions: every output pixel is
predicted from all four half-planes and never from itself, so every pixel can enter the
loss. In 3D two more branches make Z the "up" axis (six half-spaces; with
``separate_z`` they have their own weights, for anisotropic Z).

Padding (``padding``): each shifted convolution pads its input with zeros (the default)
or by replicating the edge (``"replicate"``: the top padding repeats the top row, which
every output row's half-plane already holds, so the blind spot is kept; the shifts
before pooling and at the end always bring in zeros).

Non-square tiles: the branches with the same spatial shape run as one batch (0 and 180
degrees; 90 and 270 degrees), so no padding to a square is needed (``rotate_views``).

Implemented from the paper's description (the reference code is non-commercial).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

_UP = -2  # the "up" axis of the half-space network: rows (Y)


def shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Move the content ``rows`` rows down (zeros enter at the top, the last rows drop)."""
    if rows == 0:
        return x
    pad = [0, 0] * (x.ndim - 2)
    pad[2] = rows  # F.pad lists the last dim first: (x0, x1, y0, y1, ...)
    return F.pad(x, pad)[..., : x.shape[-2], :]


#: padding of the shifted convolutions -> ``F.pad`` mode
PADDINGS = {"zeros": "constant", "replicate": "replicate"}


class ShiftConv(nn.Module):
    """A ``k``-wide convolution whose output row ``i`` sees input rows ``i - k + 1 .. i``.

    Pads ``k - 1`` rows at the top and ``k // 2`` on both sides of the other axes (zeros,
    or the edge values replicated: ``padding``), then convolves without padding (the same
    as pad ``k // 2``, convolve, shift down by ``k // 2``).
    """

    def __init__(self, dims: int, c_in: int, c_out: int, k: int = 3, padding: str = "zeros"):
        super().__init__()
        cls = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = cls(c_in, c_out, k)
        p = k // 2
        pad = [p, p] * dims
        pad[2], pad[3] = 2 * p, 0
        self.pad = tuple(pad)
        self.mode = PADDINGS[padding]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode=self.mode))


class ShiftPool(nn.Module):
    """Shift down one row, then 2-wide max pooling (the half-plane stays closed)."""

    def __init__(self, dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = shift_down(x, 1)
        return F.max_pool2d(x, 2) if self.dims == 2 else F.max_pool3d(x, 2)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class HalfPlaneUNet(nn.Module):
    """The shifted U-Net: output pixel ``(i, j)`` sees input rows ``<= i - 1`` only."""

    def __init__(self, dims: int, c_in: int, depth: int, filters: int,
                 padding: str = "zeros"):
        super().__init__()
        self.depth = depth

        def block(c0: int, c1: int) -> nn.Sequential:
            return nn.Sequential(ShiftConv(dims, c0, c1, padding=padding), _act(),
                                 ShiftConv(dims, c1, c1, padding=padding), _act())

        self.enc = nn.ModuleList()
        c = c_in
        for level in range(depth):
            f = filters * 2**level
            self.enc.append(block(c, f))
            c = f
        self.pool = ShiftPool(dims)
        fb = filters * 2**depth
        self.bottom = block(c, fb)
        self.dec = nn.ModuleList()
        c = fb
        for level in reversed(range(depth)):
            f = filters * 2**level
            self.dec.append(block(c + f, f))
            c = f
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for block in self.enc:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for block in self.dec:
            skip = skips.pop()
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skip], dim=1))
        return shift_down(h, 1)  # strictly above: the pixel's own row leaves the view

    def reach(self) -> int:
        """Rows above a pixel it may see (an upper bound; also bounds the sideways reach)."""
        r, jump = 0, 1
        for _ in range(self.depth):
            r += 4 * jump + 2 * jump  # two shifted convs, shift + pool
            jump *= 2
        r += 4 * jump  # bottom
        for _ in range(self.depth):
            r += jump  # nearest up-sampling
            jump //= 2
            r += 4 * jump
        return r + 1


# ------------------------------------------------------------------ rotations
View = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def rotate_views(spatial_dims: int) -> list[View]:
    """(to branch frame, back) per branch: 4 in-plane rotations (+ 2 with Z up in 3D).

    In each branch frame "up" is the rows axis (-2): rotation ``k`` looks from one side.
    """
    views: list[View] = []
    for k in range(4):
        views.append((lambda x, k=k: torch.rot90(x, k, dims=(-2, -1)),
                      lambda y, k=k: torch.rot90(y, -k, dims=(-2, -1))))
    if spatial_dims == 3:
        views.append((lambda x: x.transpose(-3, -2), lambda y: y.transpose(-3, -2)))
        views.append((lambda x: x.flip(-3).transpose(-3, -2),
                      lambda y: y.transpose(-3, -2).flip(-3)))
    return views


class BlindSpotNet(nn.Module):
    """Four (3D: six) half-space branches, counter-rotated, merged by 1 x 1 convolutions.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels, out_channels : int
        Channels in and out (``out_channels`` = ``2 * in_channels`` when the network also
        predicts a variance per channel).
    depth, filters : int
        Levels of the shifted U-Net and its filters at the top level.
    separate_z : bool
        3D: the two Z branches get their own weights (anisotropic Z).
    padding : str
        ``"zeros"`` or ``"replicate"``: the shifted convolutions' padding.

    Attributes
    ----------
    halo, size_multiple :
        Receptive-field radius per spatial dim and the required size multiple.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 depth: int = 2, filters: int = 16, separate_z: bool = False,
                 padding: str = "zeros"):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {sorted(PADDINGS)}, got {padding!r}")
        self.spatial_dims = spatial_dims
        self.padding = padding
        self.branch = HalfPlaneUNet(spatial_dims, in_channels, depth, filters, padding)
        self.z_branch = (HalfPlaneUNet(spatial_dims, in_channels, depth, filters, padding)
                         if separate_z and spatial_dims == 3 else None)
        self.views = rotate_views(spatial_dims)
        f = self.branch.out_channels
        n = len(self.views) * f
        cls = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.merge = nn.Sequential(cls(n, n, 1), _act(), cls(n, f, 1), _act(),
                                   cls(f, out_channels, 1))
        self.size_multiple = 2**depth
        self.halo = (self.branch.reach(),) * spatial_dims

    def _net_of(self, i: int) -> nn.Module:
        return self.z_branch if (self.z_branch is not None and i >= 4) else self.branch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The branches' counter-rotated features, concatenated on channels."""
        inputs = [to(x) for to, _ in self.views]
        outs: list = [None] * len(inputs)
        groups: dict = {}
        for i, t in enumerate(inputs):  # same shape and weights: one batch
            groups.setdefault((tuple(t.shape), id(self._net_of(i))), []).append(i)
        b = x.shape[0]
        for members in groups.values():
            y = self._net_of(members[0])(torch.cat([inputs[i] for i in members]))
            for j, i in enumerate(members):
                outs[i] = self.views[i][1](y[j * b : (j + 1) * b])
        return torch.cat(outs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.features(x))
