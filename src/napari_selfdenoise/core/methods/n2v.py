"""Noise2Void (Krull, Buchholz, Jug, CVPR 2019), optionally structN2V.

About 2 % of the pixels of each patch (stratified: one per grid cell) are replaced by a
random other pixel of a small window; the loss is the MSE at those pixels only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

from .base import Batch, Method, StepContext
from .pd_option import (
    PixelShuffleOption, PixelShuffleParams, pd_multiple, shuffled_patches, trained_network,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import TrainConfig

#: shared by the single-image methods; DnCNN 8 layers, not the paper's 17: at one minute
#: of CPU the shallower net takes twice the steps and gained 0.8-3 dB (docs/training.md)
_COMMON = {"learning_rate": 2e-3,
           "network": {"residual": False, "base_filters": 16, "dncnn_layers": 8}}


class N2VParams(PixelShuffleParams):
    """Noise2Void has no parameters beyond the shared masking settings."""

    method: Literal["n2v"] = "n2v"


class N2V(PixelShuffleOption, Method):
    """Blind-spot training by replacing stratified pixels with random neighbours."""

    name = "n2v"
    title = "Noise2Void"
    help = "Noise2Void: hides ~0.2% of pixels behind random neighbours (blind spot)."
    citation = ("Krull, Buchholz, Jug. Noise2Void - Learning Denoising from Single Noisy "
                "Images. CVPR 2019.")
    citation_url = "https://arxiv.org/abs/1811.10980"
    Params = N2VParams
    defaults = {**_COMMON, "masking": {"masked_fraction": 0.02}}
    settings = ("masking.masked_fraction", "masking.neighbourhood", "masking.struct_axis")
    replacement = "random"

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        from ..masking import n2v_mask

        x = shuffled_patches(x, config.params, pd_multiple(config), config.patch_size,
                             generator)
        m = config.masking
        x_in, mask = n2v_mask(
            x, masked_fraction=m.masked_fraction, neighbourhood=m.neighbourhood,
            replacement=self.replacement_of(config), generator=generator,
            struct_axis=m.struct_axis, struct_span=m.struct_span,
            struct_range=ctx.struct_range,
        )
        return {"x": x, "x_in": x_in, "mask": mask}

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        from ..masking import masked_mse

        return masked_mse(trained_network(net)(batch["x_in"]).float(), batch["x"],
                          batch["mask"])


METHOD = N2V()
