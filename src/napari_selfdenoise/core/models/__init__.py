"""Denoising networks: an explicit registry, a builder, and padded application.

Every network takes and returns normalised float tensors ``(B, C, [Z], Y, X)`` and
exposes ``halo`` (receptive-field radius per spatial dim) and ``size_multiple``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NetworkConfig
from .dncnn import DnCNN
from .unet import UNet


def _unet(cfg: NetworkConfig, spatial_dims: int, in_channels: int, n2v2: bool) -> nn.Module:
    return UNet(spatial_dims, in_channels, depth=cfg.depth, base_filters=cfg.base_filters,
                batch_norm=cfg.batch_norm, n2v2=n2v2 or cfg.n2v2, residual=cfg.residual)


def _dncnn(cfg: NetworkConfig, spatial_dims: int, in_channels: int, n2v2: bool) -> nn.Module:
    return DnCNN(spatial_dims, in_channels, layers=cfg.dncnn_layers, filters=cfg.base_filters,
                 batch_norm=cfg.batch_norm, residual=cfg.residual)


NETWORKS: dict[str, Callable[[NetworkConfig, int, int, bool], nn.Module]] = {
    "unet": _unet,
    "dncnn": _dncnn,
}


def build_network(
    network_config: NetworkConfig, spatial_dims: int, in_channels: int, method: str = "n2v",
    params: object = None,
) -> nn.Module:
    """Instantiate the network described by ``network_config``.

    Parameters
    ----------
    network_config : NetworkConfig
        Architecture and its settings.
    spatial_dims : int
        2 or 3.
    in_channels : int
        Channels in (= channels out).
    method : str
        Training method (a name in :data:`~napari_selfdenoise.core.methods.METHODS`); it
        builds the network (N2V2 forces its variant of the U-Net).
    params : MethodParams, optional
        The method's parameters (``TrainConfig.params``); None: its defaults.
    """
    from ..methods import get_method

    m = get_method(method)
    if params is None:
        return m.build_network(network_config, spatial_dims, in_channels)
    return m.build_network(network_config, spatial_dims, in_channels, params)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad the spatial dims of ``x`` (B, C, *S) at their end to multiples of ``multiple``.

    Reflection padding is used where the image is large enough, replication otherwise.
    Returns the padded tensor and the index that crops it back.
    """
    spatial = x.shape[2:]
    extra = [(-s) % multiple for s in spatial]
    crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)
    if not any(extra):
        return x, crop
    pad: list[int] = []
    for e in reversed(extra):
        pad += [0, e]
    mode = "reflect" if all(e < s for e, s in zip(extra, spatial)) else "replicate"
    return F.pad(x, pad, mode=mode), crop


def apply_padded(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``net`` on ``x`` (B, C, [Z], Y, X) of any spatial size.

    The input is reflect-padded to the network's ``size_multiple`` and the output is
    cropped back to the input's shape.
    """
    padded, crop = pad_to_multiple(x, int(getattr(net, "size_multiple", 1)))
    return net(padded)[crop]


__all__ = ["NETWORKS", "build_network", "apply_padded", "pad_to_multiple", "UNet", "DnCNN"]
