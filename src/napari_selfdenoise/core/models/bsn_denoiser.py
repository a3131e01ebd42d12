"""The ``bsn`` method's denoiser: blind-spot network + noise-model posterior + pixel shuffle.

``forward(x)`` is the denoised estimate of ``x`` (same channels): the posterior mean
from the network's prior (mean, variance) and the noisy input itself, on the
``pd_infer ** 2`` pixel-shuffled sub-images when pixel shuffle is on. ``loss(x)`` is the
training loss on (already shuffled) patches; ``refine_module`` gives the prior's mean at
full resolution for R3 refinement.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import posterior
from ..pixel_shuffle import shuffle_down, shuffle_up
from .bsn import BlindSpotNet


class _PriorMean(nn.Module):
    """The prior's mean at full resolution (R3 refinement passes)."""

    def __init__(self, owner: "BSNDenoiser"):
        super().__init__()
        self._owner = [owner]  # not a sub-module: no duplicate weights in state_dict
        self.halo = owner.net.halo
        self.size_multiple = owner.net.size_multiple
        self.spatial_dims = owner.spatial_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = self._owner[0]
        return owner.net(x)[:, : owner.channels]


class BSNDenoiser(nn.Module):
    """Blind-spot network with an optional posterior and pixel shuffle at inference.

    Parameters
    ----------
    spatial_dims, channels : int
        2 or 3; image channels (the network has ``2 * channels`` outputs with a noise model).
    depth, filters : int
        The shifted U-Net's levels and top-level filters.
    noise_model : str
        ``"none"`` (mean only), ``"gaussian"`` or ``"poisson-gaussian"``.
    learn_noise : bool
        The noise parameters are trained with the network (from :meth:`set_noise`).
    pd_infer : int
        Pixel-shuffle factor at inference (1: none).
    separate_z : bool
        3D: own weights for the Z branches.
    nll_beta : float
        beta-NLL training (:func:`~napari_selfdenoise.core.posterior.nll`; 0: plain NLL).
    padding : str
        The shifted convolutions' padding, ``"zeros"`` or ``"replicate"``.
    """

    def __init__(self, spatial_dims: int, channels: int, *, depth: int = 2, filters: int = 16,
                 noise_model: str = "poisson-gaussian", learn_noise: bool = False,
                 pd_infer: int = 1, separate_z: bool = False, nll_beta: float = 1.0,
                 padding: str = "zeros"):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.nll_beta = float(nll_beta)
        self.channels = channels
        self.noise_model = noise_model
        self.pd_infer = int(pd_infer)
        out = channels if noise_model == "none" else 2 * channels
        self.net = BlindSpotNet(spatial_dims, channels, out, depth=depth, filters=filters,
                                separate_z=separate_z, padding=padding)
        learn = learn_noise and noise_model != "none"
        self.noise_a = nn.Parameter(torch.zeros(channels), requires_grad=learn)
        self.noise_b = nn.Parameter(torch.ones(channels), requires_grad=learn)
        if noise_model == "gaussian":  # no signal-dependent part, never learned
            self.noise_a.requires_grad_(False)
        s = self.pd_infer
        halo = self.net.halo
        self.halo = halo[:-2] + tuple(h * s for h in halo[-2:])
        self.size_multiple = self.net.size_multiple * s
        self.refine_module = _PriorMean(self)

    @torch.no_grad()
    def set_noise(self, a: list[float], b: list[float]) -> None:
        """The noise model ``var = a * signal + b`` per channel, normalised units."""
        self.noise_a.copy_(torch.as_tensor(a, dtype=self.noise_a.dtype))
        self.noise_b.copy_(torch.as_tensor(b, dtype=self.noise_b.dtype))
        if self.noise_model == "gaussian":
            self.noise_a.zero_()

    def _prior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mu, var_x, var_n)`` for noisy ``x`` (fp32)."""
        mu, var_x = posterior.prior(self.net(x).float(), self.channels)
        var_n = posterior.noise_variance(mu, self.noise_a.float(), self.noise_b.float())
        return mu, var_x, var_n

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """The estimate of the clean ``x`` at full resolution (no pixel shuffle)."""
        if self.noise_model == "none":
            return self.net(x)
        mu, var_x, var_n = self._prior(x)
        return posterior.posterior_mean(x.float(), mu, var_x, var_n)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """MSE (mean only) or the negative log-likelihood of ``x``, over all pixels."""
        if self.noise_model == "none":
            return ((self.net(x).float() - x.float()) ** 2).mean()
        mu, var_x, var_n = self._prior(x)
        return posterior.nll(x.float(), mu, var_x, var_n, self.nll_beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.pd_infer
        return shuffle_up(self.denoise(shuffle_down(x, s)), s)
