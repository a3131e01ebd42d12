"""Exponential moving average (Polyak averaging) of a network's weights during training.

With ``TrainConfig.ema = d > 0`` the training loop keeps, next to the network it trains,
a copy whose weights are updated after every optimiser step ``t = 1, 2, ...`` as

    average_t = d_t * average_(t-1) + (1 - d_t) * weights_t,   d_t = min(d, 1 - 1/t),

so the average starts as the plain mean of the steps so far (``d_t = 1 - 1/t``: no
weight on the initial network) and becomes exponential with decay ``d`` once
``t >= 1 / (1 - d)`` steps (half-life ``ln 2 / -ln d``, about ``0.69 / (1 - d)`` steps:
69 at 0.99, 138 at 0.995). The averaged copy is what validation, checkpoint selection,
the live preview and the returned model see. Floating-point buffers (BatchNorm's running
mean and variance) are averaged with the same rule, so the statistics follow the averaged
weights' horizon; integer buffers (BatchNorm's batch counter) are copied. The average is
kept in the network's own dtype, fp32 (mixed precision autocasts the forward pass only).
"""

from __future__ import annotations

import copy

import torch


def ema_decay(decay: float, t: int) -> float:
    """The decay of update ``t`` (1-based): ``min(decay, 1 - 1/t)``."""
    return min(float(decay), 1.0 - 1.0 / t)


class WeightAverage:
    """An averaged copy of ``net`` (see the module docstring for the rule).

    Parameters
    ----------
    net : torch.nn.Module
        The network being trained; the copy is made now (same device, memory format
        and dtype) and its parameters need no gradient.
    decay : float
        ``d`` in ``[0, 1)``; 0 makes the copy follow ``net`` exactly.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.net = copy.deepcopy(net)
        self.net.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        """Fold ``net``'s current weights and buffers into the average."""
        self.updates += 1
        weight = 1.0 - ema_decay(self.decay, self.updates)
        averaged = self.net.state_dict()
        for name, value in net.state_dict().items():
            avg = averaged[name]
            if avg.is_floating_point() and weight < 1.0:
                avg.lerp_(value.to(avg.dtype), weight)  # avg + weight * (value - avg)
            else:  # the first update, integer buffers
                avg.copy_(value)

    def state_dict(self) -> dict:
        """The averaged weights and buffers (tensors of the copy, not clones)."""
        return self.net.state_dict()
