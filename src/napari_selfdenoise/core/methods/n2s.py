"""Noise2Self (Batson & Royer, ICML 2019).

One of the ``w ** ndim`` subsets of a regular grid is hidden (replaced by the
interpolation of its neighbours, or zero) and the loss is the MSE on it. Inference is a
plain pass, or J-invariant: every subset hidden in turn, each output kept on its subset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

from .base import Batch, Method, Predictor, StepContext
from .n2v import _COMMON
from .pd_option import (
    PixelShuffleOption, PixelShuffleParams, pd_multiple, shuffled_patches, trained_network,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import TrainConfig


class N2SParams(PixelShuffleParams):
    """Noise2Self's settings are the shared ``masking.grid`` / ``replacement`` and
    ``j_invariant_inference``."""

    method: Literal["n2s"] = "n2s"


class N2S(PixelShuffleOption, Method):
    """Grid masking with interpolation; optional J-invariant inference."""

    name = "n2s"
    title = "Noise2Self"
    help = "Noise2Self: grid masking with interpolation; optional J-invariant inference."
    citation = ("Batson, Royer. Noise2Self: Blind Denoising by Self-Supervision. ICML 2019.")
    citation_url = "https://arxiv.org/abs/1901.11365"
    Params = N2SParams
    defaults = {**_COMMON, "masking": {"grid": 4}}
    settings = ("masking.grid", "j_invariant_inference")

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        from ..masking import apply_grid_mask, random_grid_mask

        x = shuffled_patches(x, config.params, pd_multiple(config), config.patch_size,
                             generator)
        mask = random_grid_mask(x, config.masking.grid, generator)
        return {"x": x, "x_in": apply_grid_mask(x, mask, self.replacement_of(config)),
                "mask": mask}

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        from ..masking import masked_mse

        return masked_mse(trained_network(net)(batch["x_in"]).float(), batch["x"],
                          batch["mask"])

    def predictor(self, config: "TrainConfig", j_invariant: Optional[bool] = None) -> Predictor:
        if j_invariant is None:
            j_invariant = config.j_invariant_inference
        return "j_invariant" if j_invariant else "plain"


METHOD = N2S()
