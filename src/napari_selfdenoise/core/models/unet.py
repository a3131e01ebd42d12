"""2D / 3D U-Net (Ronneberger 2015 as used by Noise2Void) and its N2V2 variant."""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBlock, DenoisingNet, MaxBlurPool, MaxPool, Upsample, conv


class UNet(DenoisingNet):
    """U-Net with ``depth`` poolings, ``base_filters`` doubling per level.

    Parameters
    ----------
    spatial_dims : int
        2 or 3.
    in_channels : int
        Input channels (the output has the same number).
    depth, base_filters, batch_norm :
        Levels, filters at the top level, batch normalisation after each conv.
    n2v2 : bool
        N2V2 variant (Hoeck et al. 2022): max-blur-pool instead of max-pool and no skip
        connection at the top level.
    residual : bool
        Output = input + network output.

    Attributes
    ----------
    halo : tuple of int
        Receptive-field radius per spatial dim (an upper bound).
    size_multiple : int
        Every spatial input size must be a multiple of it (``2 ** depth``).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        depth: int = 2,
        base_filters: int = 32,
        batch_norm: bool = True,
        n2v2: bool = False,
        residual: bool = True,
    ):
        super().__init__(spatial_dims, residual)
        d = spatial_dims
        self.depth = depth
        self.n2v2 = n2v2
        filters = [base_filters * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        c = in_channels
        for f in filters[:-1]:
            self.down.append(ConvBlock(d, c, f, batch_norm_=batch_norm))
            self.pools.append(MaxBlurPool(d, f) if n2v2 else MaxPool(d))
            c = f
        self.bottom = ConvBlock(d, c, filters[-1], batch_norm_=batch_norm)
        self.up = Upsample()
        self.decode = nn.ModuleList()
        for level in reversed(range(depth)):
            skip = 0 if (n2v2 and level == 0) else filters[level]
            self.decode.append(
                ConvBlock(d, filters[level + 1] + skip, filters[level], batch_norm_=batch_norm)
            )
        self.head = conv(d, filters[0], in_channels, kernel=1)
        self.size_multiple = 2**depth
        self.halo = (self._receptive_radius(),) * d

    def _receptive_radius(self) -> int:
        r, jump = 0, 1
        for _ in range(self.depth):
            r += 2 * jump  # two 3-wide convs
            r += 2 * jump if self.n2v2 else jump  # (max k2 s1 + blur k3 s2) or max k2 s2
            jump *= 2
        r += 2 * jump  # bottom block
        for _ in range(self.depth):
            r += jump  # nearest upsampling (conservative)
            jump //= 2
            r += 2 * jump
        return int(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for block, pool in zip(self.down, self.pools):
            h = block(h)
            skips.append(h)
            h = pool(h)
        h = self.bottom(h)
        for i, block in enumerate(self.decode):
            level = self.depth - 1 - i
            h = self.up(h)
            if not (self.n2v2 and level == 0):
                h = torch.cat([h, skips[level]], dim=1)
            h = block(h)
        out = self.head(h)
        return x + out if self.residual else out
