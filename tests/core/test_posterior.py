"""The posterior equals the closed form and the loss is the NLL, on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from napari_selfdenoise.core import posterior
from napari_selfdenoise.core.config import default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.models.bsn_denoiser import BSNDenoiser
from napari_selfdenoise.core.training import train


def test_closed_form_by_hand():
    y, mu, vx, vn = (torch.tensor([[v]]) for v in (2.0, 1.0, 1.0, 3.0))
    # (y * vx + mu * vn) / (vx + vn) = (2 + 3) / 4
    assert posterior.posterior_mean(y, mu, vx, vn).item() == pytest.approx(1.25)
    # (y - mu)^2 / (vx + vn) + log(vx + vn) = 1 / 4 + log 4
    assert posterior.nll(y, mu, vx, vn).item() == pytest.approx(0.25 + math.log(4.0))


class Fixed(nn.Module):
    """A stand-in network with fixed outputs: prior mean 1.0, prior variance 1.0."""

    halo, size_multiple = (0, 0), 1

    def forward(self, x):
        mu = torch.full_like(x, 1.0)
        raw_var = torch.full_like(x, math.log(math.expm1(1.0 - posterior.MIN_VARIANCE)))
        return torch.cat([mu, raw_var], dim=1)


def test_denoiser_output_and_loss_are_the_formulas():
    den = BSNDenoiser(2, 1, depth=1, filters=4, noise_model="poisson-gaussian")
    den.net = Fixed()
    den.set_noise([0.5], [2.5])  # var_n = 0.5 * mu + 2.5 = 3
    y = torch.tensor([[[[2.0, -1.0]]]])
    out = den.denoise(y)
    expected = (y * 1.0 + 1.0 * 3.0) / 4.0
    torch.testing.assert_close(out, expected)
    nll = ((y - 1.0) ** 2 / 4.0 + math.log(4.0)).mean()
    torch.testing.assert_close(den.loss(y), nll)


def test_gaussian_noise_has_no_signal_part_and_mean_only_is_mse():
    den = BSNDenoiser(2, 1, depth=1, filters=4, noise_model="gaussian", learn_noise=True)
    den.set_noise([0.7], [0.25])
    assert den.noise_a.item() == 0.0 and not den.noise_a.requires_grad
    assert den.noise_b.requires_grad  # sigma learned
    mean_only = BSNDenoiser(2, 1, depth=1, filters=4, noise_model="none")
    x = torch.randn(1, 1, 8, 8)
    torch.testing.assert_close(mean_only.loss(x), ((mean_only.net(x) - x) ** 2).mean())
    assert mean_only(x).shape == x.shape


def test_training_sets_the_estimated_noise_in_normalised_units():
    rng = np.random.default_rng(0)
    img = (rng.poisson(np.full((64, 64), 40.0)) + rng.normal(0, 2, (64, 64))).astype(np.float32)
    cfg = default_config("bsn", steps=2, batch_size=2, patch_size=(16, 16), val_fraction=0.0,
                         network={"depth": 1, "base_filters": 4})
    bundle = run_to_end(train(img, cfg, axes="YX"))
    nm = bundle.info["noise_model"]
    scale = bundle.norm_scale[0]
    a = bundle.state_dict["noise_a"].item()
    b = bundle.state_dict["noise_b"].item()
    # normalised: var' = var / scale^2 at the same signal
    off = bundle.norm_offset[0]
    for x in (0.0, 40.0):
        assert a * (x - off) / scale + b == pytest.approx(
            (nm["a"][0] * x + nm["b"][0]) / scale**2, rel=1e-4)
    out = predict_array(bundle, img, axes="YX")
    assert out.shape == img.shape and np.isfinite(out).all()


def test_beta_nll_keeps_the_value_and_reweights_the_gradient():
    """beta-NLL: the loss value is the NLL for every beta; beta = 1 gives the mean the MSE
    gradient and the variance the gradient ``1 - (y - mu)**2 / var`` (zero at the squared
    residual); beta = 0 is plain NLL, its mean gradient divided by the variance."""
    y = torch.tensor([[[[2.0, -1.0, 0.5]]]])
    vn = torch.tensor([[[[0.5, 1.0, 2.0]]]])
    grads = {}
    for beta in (0.0, 1.0):
        mu = torch.tensor([[[[1.0, 0.0, 0.5]]]], requires_grad=True)
        vx = torch.tensor([[[[1.5, 3.0, 2.0]]]], requires_grad=True)
        loss = posterior.nll(y, mu, vx, vn, beta)
        torch.testing.assert_close(loss, posterior.nll(y, mu, vx, vn))
        loss.backward()
        grads[beta] = (mu.grad, vx.grad)
    var = torch.tensor([[[[2.0, 4.0, 4.0]]]])
    r = y - torch.tensor([[[[1.0, 0.0, 0.5]]]])
    n = 3
    torch.testing.assert_close(grads[1.0][0], -2 * r / n)  # MSE's
    torch.testing.assert_close(grads[1.0][1], (1 - r**2 / var) / n)
    torch.testing.assert_close(grads[0.0][0], -2 * r / var / n)
    torch.testing.assert_close(grads[0.0][1], (1 / var - r**2 / var**2) / n)


def test_bsn_trains_with_the_beta_of_its_params():
    from napari_selfdenoise.core.methods import METHODS
    from napari_selfdenoise.core.config import NetworkConfig

    bsn = METHODS["bsn"]
    for beta in (0.0, 0.5):
        p = bsn.Params(nll_beta=beta)
        net = bsn.build_network(NetworkConfig(depth=1, base_filters=4), 2, 1, p)
        assert net.nll_beta == beta
    assert bsn.Params().nll_beta == 1.0
