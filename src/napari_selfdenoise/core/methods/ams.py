"""Asymmetric complementary masks (after AMSNet, Liao et al., ECCV 2024).

Every pixel is assigned at random to one of ``M`` masks (``M = 2`` by default); the
input is the patch with one mask's pixels set to zero and the loss is the MSE on the
hidden pixels (about ``1 / M`` of all pixels). Inference runs the ``M`` complementary
inputs and keeps each output where its input was hidden, so every pixel is predicted
exactly once and never from itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

from pydantic import Field

from .base import Batch, Method, Predictor, StepContext
from .n2v import _COMMON
from .pd_option import (
    PixelShuffleOption, PixelShuffleParams, pd_multiple, shuffled_patches, trained_network,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import TrainConfig


class AMSParams(PixelShuffleParams):
    """How many complementary masks partition the image; optional pixel shuffle."""

    method: Literal["ams"] = "ams"
    n_masks: int = Field(2, ge=2, le=8, description="Complementary masks M: each hides "
                         "about 1/M of the pixels; inference runs M passes.")


def random_assignment(x: "torch.Tensor", n_masks: int,
                      generator: Optional["torch.Generator"]) -> "torch.Tensor":
    """The mask (``range(n_masks)``) of every pixel of ``x``: ``(B, 1, *S)`` int64."""
    import torch

    shape = (x.shape[0], 1) + tuple(x.shape[2:])
    return torch.randint(0, n_masks, shape, generator=generator, device=x.device)


class AMS(PixelShuffleOption, Method):
    """Complementary random masks, zero-filled, loss on the hidden half."""

    name = "ams"
    title = "Complementary masks"
    help = ("Complementary masks (AMSNet-style): half of the pixels hidden per step; "
            "inference combines the complementary masked passes.")
    citation = ("Liao, Xu, Dong et al. Asymmetric Mask Scheme for Self-Supervised Real "
                "Image Denoising. ECCV 2024.")
    citation_url = "https://arxiv.org/abs/2407.06514"
    Params = AMSParams
    defaults = _COMMON
    replacement = "zero"

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        import torch

        x = shuffled_patches(x, config.params, pd_multiple(config), config.patch_size,
                             generator)
        m = config.params.n_masks
        assign = random_assignment(x, m, generator)
        pick = torch.randint(0, m, (x.shape[0],) + (1,) * (x.ndim - 1), generator=generator,
                             device=x.device)
        hidden = assign == pick
        return {"x": x, "x_in": x.masked_fill(hidden, 0.0), "mask": hidden}

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        from ..masking import masked_mse

        return masked_mse(trained_network(net)(batch["x_in"]).float(), batch["x"],
                          batch["mask"])

    def predictor(self, config: "TrainConfig", j_invariant: Optional[bool] = None) -> Predictor:
        return "plain" if j_invariant is False else "complementary"

    def n_subsets(self, config: "TrainConfig", spatial_dims: int) -> int:
        return int(config.params.n_masks)

    def scoring_form(self, config: "TrainConfig") -> str:
        return "complementary"

    def fill(self, config: "TrainConfig") -> str:
        return "zero"


METHOD = AMS()
