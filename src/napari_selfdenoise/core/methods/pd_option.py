"""The pixel-shuffle option shared by the methods that offer it (``bsn``, ``ams``).

Not a method: its :class:`PixelShuffleParams` fields join a method's own parameter model,
and the helpers cut training patches into sub-images and wrap the network for inference
(:mod:`napari_selfdenoise.core.pixel_shuffle`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from .base import MethodParams

if TYPE_CHECKING:  # pragma: no cover
    import torch


class PixelShuffleParams(MethodParams):
    """Pixel-shuffle down-sampling (AP-BSN): off by default."""

    pixel_shuffle: bool = Field(
        False, description="Pixel-shuffle down-sampling for spatially correlated noise "
        "(AP-BSN): train on pd_train^2 sub-images, predict on pd_infer^2. Hurts on "
        "pixel-independent noise.", json_schema_extra={"cli_values": ["pd_train", "pd_infer"]})
    pd_train: int = Field(5, ge=2, le=8, description="Pixel-shuffle factor in training "
                          "(5 in AP-BSN).")
    pd_infer: int = Field(2, ge=1, le=8, description="Pixel-shuffle factor at inference "
                          "(2 in AP-BSN; 1: full resolution).")

    def factors(self) -> tuple[int, int]:
        """``(train, inference)`` factors, ``(1, 1)`` when pixel shuffle is off."""
        return (self.pd_train, self.pd_infer) if self.pixel_shuffle else (1, 1)


def shuffled_patches(x: "torch.Tensor", params: Any, multiple: int) -> "torch.Tensor":
    """Training patches ``x`` as their ``pd_train**2`` sub-images (cropped to fit)."""
    from ..pixel_shuffle import crop_to_multiple, shuffle_down

    s = params.factors()[0]
    if s == 1:
        return x
    return shuffle_down(crop_to_multiple(x, s * int(multiple)), s)


def wrap_for_inference(net: "torch.nn.Module", params: Any) -> "torch.nn.Module":
    """``net`` run on ``pd_infer**2`` sub-images when pixel shuffle is on."""
    from ..pixel_shuffle import PixelShuffled

    return PixelShuffled(net, params.factors()[1]) if params.pixel_shuffle else net


def trained_network(net: "torch.nn.Module") -> "torch.nn.Module":
    """The network the loss trains (the wrapped one, without pixel shuffle)."""
    from ..pixel_shuffle import PixelShuffled

    return net.inner if isinstance(net, PixelShuffled) else net


def pd_multiple(config: Any) -> int:
    """The trained network's size multiple (U-Net: ``2 ** depth``; DnCNN: 1)."""
    return 2**config.network.depth if config.network.arch == "unet" else 1


class PixelShuffleOption:
    """Mixin (before :class:`~.base.Method`) building the network of a method with the
    pixel-shuffle option (its ``Params`` inherit :class:`PixelShuffleParams`; its
    ``make_batch`` starts with :func:`shuffled_patches` and its ``loss`` trains
    :func:`trained_network`)."""

    def build_network(self, network: Any, spatial_dims: int, n_channels: int,
                      params: Any = None) -> "torch.nn.Module":
        net = super().build_network(network, spatial_dims, n_channels)  # type: ignore[misc]
        return wrap_for_inference(net, params if params is not None else self.Params())  # type: ignore[attr-defined]
