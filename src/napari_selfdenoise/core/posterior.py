"""Bayesian post-correction of a blind-spot network (Laine et al., NeurIPS 2019).

The network predicts, for every pixel from its surroundings only, the prior's mean ``mu``
and variance ``var_x`` of the clean value; with the noise variance ``var_n`` (Gaussian:
``sigma**2``; Poisson-Gaussian: ``a * mu + b``) the noisy value ``y`` is distributed as
``N(mu, var_x + var_n)``. Training minimises the negative log-likelihood

    (y - mu)**2 / (var_x + var_n) + log(var_x + var_n)

(per pixel, constants dropped) and the output is the posterior mean of a Gaussian prior
times a Gaussian likelihood:

    x = (y * var_x + mu * var_n) / (var_x + var_n).

Plain NLL lets the network explain a pixel's error by a large variance instead of a
better mean (its gradient on ``mu`` is divided by the variance), so ``mu`` learns slowly
where the image has structure. beta-NLL (Seitzer et al., "On the Pitfalls of
Heteroscedastic Uncertainty Estimation with Probabilistic Neural Networks", ICLR 2022)
weights each pixel's gradient by ``stop_gradient(var) ** beta``; ``beta = 1`` gives
``mu`` the MSE gradient while the variance still converges to the squared residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: variances are kept above this (normalised units) so the loss stays finite
MIN_VARIANCE = 1e-4


def prior(raw: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, var_x)`` from the network's ``2 * channels`` outputs (softplus variance)."""
    return raw[:, :channels], F.softplus(raw[:, channels:]) + MIN_VARIANCE


def noise_variance(mu: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * mu + b`` per channel (``a``, ``b``: ``(C,)``), at least :data:`MIN_VARIANCE`."""
    shape = (1, -1) + (1,) * (mu.ndim - 2)
    return (a.reshape(shape) * mu + b.reshape(shape)).clamp_min(MIN_VARIANCE)


def nll(y: torch.Tensor, mu: torch.Tensor, var_x: torch.Tensor, var_n: torch.Tensor,
        beta: float = 0.0) -> torch.Tensor:
    """Mean over pixels of ``(y - mu)**2 / (var_x + var_n) + log(var_x + var_n)``.

    ``beta > 0`` (beta-NLL): the same value, but each pixel's gradient is weighted by
    ``stop_gradient(var_x + var_n) ** beta``, so logged and validation losses stay the
    NLL whatever ``beta``.
    """
    var = var_x + var_n
    per_pixel = (y - mu) ** 2 / var + torch.log(var)
    if beta == 0:
        return per_pixel.mean()
    weight = var.detach() ** beta
    return (per_pixel.detach() + weight * (per_pixel - per_pixel.detach())).mean()


def posterior_mean(y: torch.Tensor, mu: torch.Tensor, var_x: torch.Tensor,
                   var_n: torch.Tensor) -> torch.Tensor:
    """``(y * var_x + mu * var_n) / (var_x + var_n)``: Gaussian prior x Gaussian noise."""
    return (y * var_x + mu * var_n) / (var_x + var_n)
