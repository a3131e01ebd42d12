"""Neighbor2Neighbor (Huang et al., CVPR 2021).

A random neighbour sub-sampler picks, in each 2 x 2 cell (in-plane in 3D), one of the 8
ordered pairs of orthogonal neighbours (never the same or a diagonal pixel), the same for
all channels: ``g1(y)`` and ``g2(y)`` are half-size images. The loss is
``mean((f(g1 y) - g2 y)^2) + L * mean((f(g1 y) - g2 y - (g1 f(y) - g2 f(y)))^2)`` with
``f(y)`` computed without gradient and ``L`` ramped linearly from 0 to ``gamma``.
Inference is one plain pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

from pydantic import Field

from .base import Batch, Method, MethodParams, StepContext
from .n2v import _COMMON

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import TrainConfig

#: the 8 ordered pairs of orthogonal neighbours in a 2 x 2 cell (index 2 * row + column)
NEIGHBOUR_PAIRS = ((0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2))


class Ne2NeParams(MethodParams):
    """The weight of Neighbor2Neighbor's regulariser."""

    method: Literal["ne2ne"] = "ne2ne"
    gamma: float = Field(2.0, ge=0.0, le=20.0, description="Final weight L of the "
                         "regulariser (ramped linearly from 0 over training; 2 in the paper).")


def neighbour_choice(x: "torch.Tensor",
                     generator: Optional["torch.Generator"]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Random cell indices ``(i1, i2)``, ``(B, 1, [Z], H // 2, W // 2)`` in ``range(4)``."""
    import torch

    shape = (x.shape[0], 1) + tuple(x.shape[2:-2]) + (x.shape[-2] // 2, x.shape[-1] // 2)
    r = torch.randint(0, len(NEIGHBOUR_PAIRS), shape, generator=generator, device=x.device)
    pairs = torch.tensor(NEIGHBOUR_PAIRS, device=x.device)
    return pairs[r, 0], pairs[r, 1]


def subsample(x: "torch.Tensor", idx: "torch.Tensor") -> "torch.Tensor":
    """The pixel ``idx`` (``2 * row + column``) of every 2 x 2 cell of ``x``, all channels."""
    h, w = idx.shape[-2:]
    x = x[..., : 2 * h, : 2 * w]
    cells = x.reshape(x.shape[:-2] + (h, 2, w, 2)).transpose(-3, -2)  # ..., h, w, 2, 2
    cells = cells.reshape(x.shape[:-2] + (h, w, 4))
    index = idx.expand(x.shape[:-2] + (h, w))[..., None]
    return cells.gather(-1, index)[..., 0]


def ne2ne_loss(net: "torch.nn.Module", x: "torch.Tensor", i1: "torch.Tensor",
               i2: "torch.Tensor", weight: float) -> "torch.Tensor":
    """Neighbor2Neighbor's regularised loss (see the module docstring)."""
    import torch

    from ..models import apply_padded

    g1, g2 = subsample(x, i1), subsample(x, i2)
    with torch.no_grad():
        full = apply_padded(net, x).float()
        g1f, g2f = subsample(full, i1), subsample(full, i2)
    diff = apply_padded(net, g1).float() - g2
    return (diff ** 2).mean() + weight * ((diff - (g1f - g2f)) ** 2).mean()


class Ne2Ne(Method):
    """Pairs of neighbouring sub-images of one noisy image, with a consistency term."""

    name = "ne2ne"
    title = "Neighbor2Neighbor"
    help = ("Neighbor2Neighbor: two half-size sub-images of neighbouring pixels train each "
            "other (a quarter of all pixels in every loss) plus a consistency term.")
    citation = ("Huang, Li, Jia, Lu, Liu. Neighbor2Neighbor: Self-Supervised Denoising from "
                "Single Noisy Images. CVPR 2021.")
    citation_url = "https://arxiv.org/abs/2101.02824"
    Params = Ne2NeParams
    defaults = _COMMON
    validation_draw = "fixed neighbour sub-sampling"

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        i1, i2 = neighbour_choice(x, generator)
        return {"x": x, "i1": i1, "i2": i2}

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        weight = config.params.gamma * ctx.progress
        return ne2ne_loss(net, batch["x"], batch["i1"], batch["i2"], weight)


METHOD = Ne2Ne()
