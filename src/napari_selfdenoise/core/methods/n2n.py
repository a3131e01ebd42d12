"""Noise2Noise (Lehtinen et al., ICML 2018).

The target is a second, independent noisy acquisition of the same scene: a second image
of the same shape, or pairs made from one stack by interlacing along an axis (even frames
as input, odd frames as target, swapped at random). The loss is the MSE over all pixels.
Valid only when the signal barely changes between the two frames of a pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Optional

import numpy as np
from pydantic import Field

from .base import Batch, Method, MethodParams, StepContext
from .n2v import _COMMON

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import TrainConfig


class N2NParams(MethodParams):
    """Where Noise2Noise finds its targets when no target image is given."""

    method: Literal["n2n"] = "n2n"
    pairs_along: Optional[Literal["T", "Z", "S"]] = Field(
        None, description="Without a target image: pair the frames of one stack along this "
        "axis (even frames input, odd frames target; an odd last frame is left out).")
    swap: bool = Field(True, description="Swap input and target of each pair at random.")


def interlaced_pairs(array: Any, axes: str, along: str) -> tuple[np.ndarray, np.ndarray]:
    """Even and odd frames of ``array`` along axis ``along``: ``(inputs, targets)``.

    Frame ``2k`` is paired with frame ``2k + 1``: never with itself, and every frame
    but an odd last one is used exactly once.
    """
    axes = axes.upper()
    if along not in axes:
        raise ValueError(f"cannot pair frames along {along}: the data's axes are {axes}")
    arr = np.asarray(array)
    axis = axes.index(along)
    n = arr.shape[axis]
    if n < 2:
        raise ValueError(f"pairs along {along} need at least 2 frames, the data has {n}")
    even = np.take(arr, np.arange(0, n - 1, 2), axis=axis)
    odd = np.take(arr, np.arange(1, n, 2), axis=axis)
    return even, odd


class N2N(Method):
    """Supervised-style training on pairs of independent noisy acquisitions."""

    name = "n2n"
    title = "Noise2Noise"
    help = ("Noise2Noise: learns from a second noisy acquisition (a target image, or "
            "interlaced frames of a stack); every pixel enters the loss.")
    citation = ("Lehtinen, Munkberg, Hasselgren et al. Noise2Noise: Learning Image "
                "Restoration without Clean Data. ICML 2018.")
    citation_url = "https://arxiv.org/abs/1803.04189"
    Params = N2NParams
    defaults = _COMMON
    needs_target = True

    def split_pairs(self, data: Any, target: Any, axes: Optional[str],
                    config: "TrainConfig") -> tuple[Any, Any, Optional[str]]:
        from ..axes import infer_axes
        from ..training_loop import TrainingDataError

        along = config.params.pairs_along
        if along is None:
            raise TrainingDataError(
                "Noise2Noise needs a target image (a second acquisition of the same shape) "
                "or pairs from one stack (pairs_along 'T', 'Z' or 'S')")
        items = list(data) if isinstance(data, (list, tuple)) else [data]
        inputs, targets = [], []
        for item in items:
            item_axes = axes or infer_axes(np.shape(item))
            try:
                even, odd = interlaced_pairs(item, item_axes, along)
            except ValueError as exc:
                raise TrainingDataError(str(exc)) from None
            inputs.append(even)
            targets.append(odd)
        return inputs, targets, axes

    def make_batch(self, x: "torch.Tensor", config: "TrainConfig",
                   generator: Optional["torch.Generator"], ctx: StepContext) -> Batch:
        import torch

        c = x.shape[1] // 2
        inp, tgt = x[:, :c], x[:, c:]
        if config.params.swap:
            shape = (x.shape[0],) + (1,) * (x.ndim - 1)
            swap = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
            swap = swap.reshape(shape)
            inp, tgt = torch.where(swap, tgt, inp), torch.where(swap, inp, tgt)
        return {"x": inp, "target": tgt}

    def loss(self, net: "torch.nn.Module", batch: Batch, config: "TrainConfig",
             ctx: StepContext) -> "torch.Tensor":
        return ((net(batch["x"]).float() - batch["target"]) ** 2).mean()

    def validation_draws(self, config: "TrainConfig") -> bool:
        return bool(config.params.swap)  # unswapped pairs: every copy the same

    def validation_note(self, config: "TrainConfig", n_items: int, n_tiles: int) -> str:
        if not config.params.swap:
            return "input / target pairs, no masks"
        return (f"input / target pairs, no masks, {n_items // n_tiles} copies each with a "
                "fixed input / target order")


METHOD = N2N()
