"""Noise2Same (Xie, Wang, Ji, NeurIPS 2020).

Loss = mean over all pixels of ``(f(x) - x)^2`` plus ``lambda_inv`` times the root mean
square difference, on a hidden grid subset ``J``, between ``f(x)`` and ``f(x_masked)``;
both are real forward passes with gradient. Inference is one plain pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .base import Batch, StepContext
from .n2s import N2S
from .n2v import _COMMON
from .pd_option import PixelShuffleParams, trained_network

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import TrainConfig


class N2SameParams(PixelShuffleParams):
    """Noise2Same's settings are the shared ``masking.grid`` and ``lambda_inv``."""

    method: Literal["n2same"] = "n2same"


class N2Same(N2S):
    """Full-image reconstruction loss plus an invariance term."""

    name = "n2same"
    title = "Noise2Same"
    help = "Noise2Same: full-image loss + invariance term (lambda_inv) instead of a blind spot."
    citation = ("Xie, Wang, Ji. Noise2Same: Optimizing a Self-Supervised Bound for Image "
                "Denoising. NeurIPS 2020.")
    citation_url = "https://arxiv.org/abs/2010.11971"
    Params = N2SameParams
    #: batch 8: two forward passes per step then cost what the others' batch of 16 does
    defaults = {**_COMMON, "batch_size": 8, "masking": {"grid": 4}}
    settings = ("masking.grid", "lambda_inv")

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        import torch

        from ..masking import noise2same_loss

        x, x_in = batch["x"], batch["x_in"]
        out = trained_network(net)(torch.cat([x, x_in])).float()  # both with gradient
        out_full, out_masked = out[: x.shape[0]], out[x.shape[0]:]
        return noise2same_loss(out_full, out_masked, x, batch["mask"], config.lambda_inv)

    def predictor(self, config: "TrainConfig", j_invariant=None):  # type: ignore[override]
        return "j_invariant" if j_invariant else "plain"


METHOD = N2Same()
