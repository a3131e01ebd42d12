"""Dimension-agnostic building blocks (2D / 3D) for the denoising networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(dims: int, c_in: int, c_out: int, kernel: int = 3, **kw) -> nn.Module:
    """A ``kernel``-wide convolution with 'same' zero padding in ``dims`` (2 or 3) dimensions."""
    cls = nn.Conv2d if dims == 2 else nn.Conv3d
    return cls(c_in, c_out, kernel, padding=kernel // 2, **kw)


def batch_norm(dims: int, channels: int) -> nn.Module:
    """Batch normalisation for ``dims`` spatial dimensions."""
    return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)


class DenoisingNet(nn.Module):
    """Base of the networks: checks the dimensionality and stores the shared attributes.

    Subclasses set ``halo`` (receptive-field radius per spatial dim) and
    ``size_multiple`` (spatial input sizes must be multiples of it).
    """

    halo: tuple[int, ...]
    size_multiple: int

    def __init__(self, spatial_dims: int, residual: bool):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims = spatial_dims
        self.residual = residual


class ConvBlock(nn.Sequential):
    """``n`` x (3-wide conv -> optional batch norm -> ReLU)."""

    def __init__(self, dims: int, c_in: int, c_out: int, *, batch_norm_: bool, n: int = 2):
        layers: list[nn.Module] = []
        for i in range(n):
            layers.append(conv(dims, c_in if i == 0 else c_out, c_out, bias=not batch_norm_))
            if batch_norm_:
                layers.append(batch_norm(dims, c_out))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class MaxPool(nn.Module):
    """Plain 2-wide, stride-2 max pooling."""

    def __init__(self, dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) if self.dims == 2 else F.max_pool3d(x, 2)


class MaxBlurPool(nn.Module):
    """Max-blur-pool (Zhang 2019, used by N2V2): stride-1 max pool, then a stride-2 blur.

    The blur is the separable binomial kernel ``[1, 2, 1] / 4`` per dimension, applied
    per channel, which removes the aliasing that causes N2V's checkerboard artefacts.
    """

    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.dims = dims
        self.channels = channels
        k1 = torch.tensor([1.0, 2.0, 1.0])
        k = k1
        for _ in range(dims - 1):
            k = k[..., None] * k1
        k = k / k.sum()
        self.register_buffer("kernel", k.expand((channels, 1) + k.shape).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_max = (0, 1) * self.dims
        pad_blur = (1, 1) * self.dims
        if self.dims == 2:
            x = F.max_pool2d(F.pad(x, pad_max, mode="replicate"), 2, stride=1)
            x = F.pad(x, pad_blur, mode="replicate")
            return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)
        x = F.max_pool3d(F.pad(x, pad_max, mode="replicate"), 2, stride=1)
        x = F.pad(x, pad_blur, mode="replicate")
        return F.conv3d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
