"""DnCNN-style residual network (Zhang et al. 2017): predicts the noise and subtracts it."""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBlock, DenoisingNet, conv


class DnCNN(DenoisingNet):
    """``layers`` 3-wide convolutions at full resolution (no pooling).

    Attributes
    ----------
    halo : tuple of int
        Receptive-field radius per spatial dim (= ``layers``).
    size_multiple : int
        1 (any input size works).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        layers: int = 17,
        filters: int = 64,
        batch_norm: bool = True,
        residual: bool = True,
    ):
        super().__init__(spatial_dims, residual)
        d = spatial_dims
        self.first = nn.Sequential(conv(d, in_channels, filters), nn.ReLU(inplace=True))
        self.body = ConvBlock(d, filters, filters, batch_norm_=batch_norm, n=layers - 2)
        self.last = conv(d, filters, in_channels)
        self.size_multiple = 1
        self.halo = (layers,) * d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.last(self.body(self.first(x)))
        return x - out if self.residual else out
