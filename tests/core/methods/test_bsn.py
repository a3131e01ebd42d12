"""The blind-spot network: no output pixel sees its own input (proved by gradients),
rotations on non-square inputs, tiled equals untiled, and the method trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfdenoise.core import inference
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.models import build_network
from napari_selfdenoise.core.models.bsn import BlindSpotNet, HalfPlaneUNet


def per_pixel_gradients(net, shape, channels=1):
    """``g[p] = d out[p] / d in`` for every output pixel ``p`` (one batch item per pixel)."""
    n = int(np.prod(shape))
    torch.manual_seed(1)
    x0 = torch.randn((1, channels) + shape)  # fp32: an unseen pixel gets exactly 0
    x = x0.expand((n, channels) + shape).clone().requires_grad_(True)
    y = net(x)[:, 0].reshape(n, -1)
    y[torch.arange(n), torch.arange(n)].sum().backward()
    return x.grad[:, 0].reshape((n,) + shape)  # item p: gradient of output pixel p


@pytest.mark.parametrize("dims, shape, depth", [(2, (8, 4), 2), (2, (6, 10), 1),
                                                 (3, (2, 4, 6), 1)])
def test_blind_spot_by_gradients(dims, shape, depth):
    torch.manual_seed(0)
    net = BlindSpotNet(dims, 1, 2, depth=depth, filters=4)
    assert not any(s % net.size_multiple for s in shape), "a valid input size"
    assert_blind_spot(per_pixel_gradients(net, shape), shape)


def assert_blind_spot(g, shape):
    """``g[p, *q]``: d output p / d input q. No pixel sees itself (exactly, through pooling
    too) and every direct neighbour is seen (all branches together)."""
    own = g.reshape(g.shape[0], -1).diagonal()
    assert torch.all(own == 0)
    for p in range(g.shape[0]):
        idx = np.unravel_index(p, shape)
        for axis in range(len(shape)):
            for step in (-1, 1):
                q = list(idx)
                q[axis] += step
                if 0 <= q[axis] < shape[axis]:
                    assert g[(p,) + tuple(q)] != 0, (idx, q)


@pytest.mark.parametrize("shape", [(4, 8), (8, 4)])
def test_half_plane_branch_sees_rows_above_only(shape):
    net = HalfPlaneUNet(2, 1, depth=2, filters=4)
    g = per_pixel_gradients(net, shape)
    for p in range(g.shape[0]):
        row = p // shape[1]
        assert torch.all(g[p, row:] == 0)  # own row and below: never


def test_odd_sizes_are_padded_and_stay_blind_away_from_the_mirror():
    """Odd sizes are reflect-padded at their end to the size multiple: the blind spot holds
    for every pixel whose mirror copy is not in the padding (the others are within
    ``size_multiple`` of the bottom / right edge: docs/training.md, "bsn")."""
    from napari_selfdenoise.core.models import apply_padded

    torch.manual_seed(0)
    net = BlindSpotNet(2, 1, 1, depth=2, filters=4)
    shape = (9, 11)
    g = per_pixel_gradients(lambda t: apply_padded(net, t), shape)
    own = g.reshape(g.shape[0], -1).diagonal().reshape(shape)
    extra = [(-n) % net.size_multiple for n in shape]
    assert torch.all(own[: shape[0] - 1 - extra[0], : shape[1] - 1 - extra[1]] == 0)


def test_non_square_rotations_equal_separate_branches():
    torch.manual_seed(0)
    net = BlindSpotNet(2, 1, 1, depth=1, filters=4)
    x = torch.randn(2, 1, 8, 14)
    feats = net.features(x)
    f = net.branch.out_channels
    for i, (to, back) in enumerate(net.views):
        one = back(net.branch(to(x)))
        torch.testing.assert_close(feats[:, i * f:(i + 1) * f], one)


def test_separate_z_branch_weights():
    net = BlindSpotNet(3, 1, 1, depth=1, filters=4, separate_z=True)
    assert net.z_branch is not None and len(net.views) == 6
    x = torch.randn(1, 1, 4, 6, 8)
    assert net(x).shape == x.shape


def bsn_bundle(noise_model="poisson-gaussian", **params):
    torch.manual_seed(0)
    cfg = TrainConfig(method="bsn", network=NetworkConfig(depth=1, base_filters=4),
                      params={"method": "bsn", "noise_model": noise_model, **params})
    net = build_network(cfg.network, 2, 1, "bsn", cfg.params)
    net.set_noise([0.3], [0.2])
    return ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1,
                       norm_offset=[0.1], norm_scale=[0.5], state_dict=net.state_dict())


@pytest.mark.parametrize("noise_model, params", [
    ("none", {}), ("poisson-gaussian", {}), ("gaussian", {"pixel_shuffle": True})])
def test_tiled_equals_untiled(noise_model, params):
    b = bsn_bundle(noise_model, **params)
    img = np.random.default_rng(0).normal(1.0, 0.5, (2, 101, 90)).astype(np.float32)
    net = b.build_model()
    tile = tuple(2 * inference.round_up(h, net.size_multiple) + 40 for h in net.halo)
    tiled = inference.predict_array(b, img, axes="TYX", tile_shape=tile)
    whole = inference.predict_array(b, img, axes="TYX", tile_shape=(512, 512))
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    assert np.isfinite(tiled).all()


def test_separate_z_branches_stay_blind():
    torch.manual_seed(0)
    net = BlindSpotNet(3, 1, 1, depth=1, filters=2, separate_z=True)
    g = per_pixel_gradients(net, (2, 4, 4))
    assert torch.all(g.reshape(g.shape[0], -1).diagonal() == 0)


def test_tiled_equals_untiled_3d():
    torch.manual_seed(0)
    cfg = TrainConfig(method="bsn", network=NetworkConfig(depth=1, base_filters=4),
                      params={"method": "bsn", "noise_model": "gaussian"})
    net = build_network(cfg.network, 3, 1, "bsn", cfg.params)
    b = ModelBundle(config=cfg, axes="ZYX", spatial_dims=3, n_channels=1, norm_offset=[0.0],
                    norm_scale=[1.0], state_dict=net.state_dict())
    vol = np.random.default_rng(2).normal(0.0, 1.0, (4, 70, 24)).astype(np.float32)
    tiled = inference.predict_array(b, vol, axes="ZYX", tile_shape=(48, 64, 64))
    whole = inference.predict_array(b, vol, axes="ZYX", tile_shape=(96, 160, 160))
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
