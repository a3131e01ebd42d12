"""The blind-spot network under the training path's bf16 autocast (channels-last, as
``training_loop`` runs it on a CPU): the blind spot is structural, so it holds exactly in
bf16 too, and bf16 outputs agree with fp32 within a bf16 tolerance.

bf16 keeps 8 significant bits (unit roundoff ``U = 2**-8``). Measured on these networks
(random weights, depth 1-2, 8-16 filters, 2D and 3D, three seeds): the raw network output
at most 3 ``U`` of its own largest value off fp32, the posterior-mean output at most
0.2 ``U`` of the input's scale, the NLL loss at most 0.04 ``U`` relative. The bounds are
``8 U`` for outputs (as ``tests/core/test_bf16.py``) and ``4 U`` relative for the loss.
CPU autocast to bf16 runs on every CPU (emulated where it is not native): these tensors
are small, so no ``bf16_cpu`` skip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.device import autocast
from napari_selfdenoise.core.models.bsn import BlindSpotNet
from napari_selfdenoise.core.models.bsn_denoiser import BSNDenoiser
from napari_selfdenoise.core.training_loop import to_memory_format
from test_bsn import assert_blind_spot

U = 2.0**-8
OUTPUT_TOL = 8 * U
LOSS_RTOL = 4 * U
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _channels_last(net: torch.nn.Module, dims: int) -> torch.nn.Module:
    return net.to(memory_format=torch.channels_last if dims == 2 else torch.channels_last_3d)


def bf16_per_pixel_gradients(net, shape):
    """``g[p] = d out[p] / d in`` per output pixel ``p``, the forward in bf16 autocast."""
    n = int(np.prod(shape))
    torch.manual_seed(1)
    x0 = torch.randn((1, 1) + shape)
    x = to_memory_format(x0.expand((n, 1) + shape).clone(), True).requires_grad_(True)
    with autocast(CPU, torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.bfloat16  # the convolutions really ran in bf16
    y = out[:, 0].reshape(n, -1)
    y[torch.arange(n), torch.arange(n)].float().sum().backward()
    return x.grad[:, 0].reshape((n,) + shape)


@pytest.mark.parametrize("dims, shape, depth, separate_z", [
    (2, (8, 4), 2, False), (2, (6, 10), 1, False), (3, (2, 4, 6), 1, False),
    (3, (2, 4, 4), 1, True)])
def test_blind_spot_holds_in_bf16(dims, shape, depth, separate_z):
    """Exactly zero gradient of each output pixel w.r.t. its own input, every direct
    neighbour seen (all branches together), in bf16 as in fp32."""
    torch.manual_seed(0)
    net = _channels_last(BlindSpotNet(dims, 1, 2, depth=depth, filters=4,
                                      separate_z=separate_z), dims)
    assert_blind_spot(bf16_per_pixel_gradients(net, shape), shape)


@pytest.mark.parametrize("dims, shape, depth, filters", [
    (2, (32, 24), 2, 16), (3, (4, 16, 16), 1, 8)])
def test_bf16_network_output_matches_fp32(dims, shape, depth, filters):
    torch.manual_seed(0)
    net = _channels_last(BlindSpotNet(dims, 1, 2, depth=depth, filters=filters), dims)
    x = to_memory_format(torch.randn((2, 1) + shape), True)
    with torch.no_grad():
        fp32 = net(x)
        with autocast(CPU, torch.bfloat16):
            bf16 = net(x)
    assert bf16.dtype == torch.bfloat16
    diff = (bf16.float() - fp32).abs().max().item()
    assert diff <= OUTPUT_TOL * fp32.abs().max().item()
    assert diff > 0  # it really ran in bf16


@pytest.mark.parametrize("noise_model", ["poisson-gaussian", "none"])
def test_bf16_denoiser_output_and_loss_match_fp32(noise_model):
    """The posterior mean (computed in fp32 from the bf16 prior) within ``8 U`` of the
    input's scale, the training loss within ``4 U``."""
    torch.manual_seed(0)
    den = _channels_last(BSNDenoiser(2, 1, depth=2, filters=16, noise_model=noise_model), 2)
    den.set_noise([0.3], [0.2])
    x = to_memory_format(torch.randn(2, 1, 32, 24), True)
    with torch.no_grad():
        out32, loss32 = den(x), den.loss(x)
        with autocast(CPU, torch.bfloat16):
            out16, loss16 = den(x), den.loss(x)
    diff = (out16.float() - out32).abs().max().item()
    assert diff <= OUTPUT_TOL * x.std().item()
    assert diff > 0
    assert loss16.item() == pytest.approx(loss32.item(), rel=LOSS_RTOL)
    assert torch.isfinite(out16).all()
