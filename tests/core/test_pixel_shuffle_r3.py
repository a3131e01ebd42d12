"""Pixel shuffle and its inverse are exact; R3 replaces the stated fraction; the new
predictors (pixel-shuffled ams, R3) give the same result tiled and untiled (fp32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfdenoise.core import inference
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.models import build_network
from napari_selfdenoise.core.pixel_shuffle import shuffle_down, shuffle_up
from napari_selfdenoise.core.refine import r3_mask, r3_refine


@pytest.mark.parametrize("shape, s", [((2, 3, 10, 15), 5), ((1, 2, 3, 8, 6), 2)])
def test_shuffle_and_inverse_are_exact(shape, s):
    x = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    down = shuffle_down(x, s)
    assert down.shape == (shape[0] * s * s, shape[1]) + shape[2:-2] + (
        shape[-2] // s, shape[-1] // s)
    # sub-image i * s + j of item b holds the pixels (i::s, j::s): pixels s apart
    b, i, j = 1 % shape[0], 1, s - 1
    torch.testing.assert_close(down[b * s * s + i * s + j], x[b, ..., i::s, j::s])
    assert torch.equal(shuffle_up(down, s), x)


def test_r3_replaces_the_stated_fraction_and_is_tile_independent():
    x = torch.randn(1, 2, 200, 300)
    masks = [r3_mask(x, t, 0.16) for t in range(8)]
    for m in masks:
        assert m.shape == (1, 1, 200, 300)
        assert m.float().mean().item() == pytest.approx(0.16, abs=0.01)
    assert not torch.equal(masks[0], masks[1])  # a new draw per pass
    # the same pixel gets the same choice when read in another tile (away from its edge)
    crop = x[..., 50:120, 60:170]
    assert torch.equal(r3_mask(crop, 3, 0.16)[..., 1:-1, 1:-1], masks[3][..., 51:119, 61:169])
    y0 = torch.zeros_like(x)
    out = r3_refine(lambda t: t, x, y0, passes=8, fraction=0.16)
    expected = torch.stack([torch.where(m, x, y0) for m in masks]).mean(0)
    torch.testing.assert_close(out, expected)


def make_bundle(method, params, depth=1):
    torch.manual_seed(0)
    cfg = TrainConfig(method=method, network=NetworkConfig(depth=depth, base_filters=4,
                                                           batch_norm=False),
                      params={"method": method, **params})
    net = build_network(cfg.network, 2, 1, method, cfg.params)
    return ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1,
                       norm_offset=[0.1], norm_scale=[0.5], state_dict=net.state_dict())


@pytest.mark.parametrize("method, params, r3", [
    ("ams", {"pixel_shuffle": True}, False),
    ("ams", {"pixel_shuffle": True}, True),
    ("bsn", {"noise_model": "none", "pixel_shuffle": True}, True),
    ("n2v", {}, True),
    ("n2s", {"pixel_shuffle": True}, False),
])
def test_tiled_equals_untiled(method, params, r3):
    b = make_bundle(method, params)
    img = np.random.default_rng(1).normal(1.0, 0.5, (97, 110)).astype(np.float32)
    whole = inference.predict_array(b, img, axes="YX", tile_shape=(512, 512), r3=r3)
    tiled = inference.predict_array(b, img, axes="YX", tile_shape=(160, 176), r3=r3)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    if r3:
        plain = inference.predict_array(b, img, axes="YX", tile_shape=(512, 512))
        assert not np.allclose(plain, whole)


@pytest.mark.parametrize("method", ["ams", "n2v", "n2v2", "n2s", "n2same"])
def test_pixel_shuffled_masking_methods_train_on_sub_images(method):
    from napari_selfdenoise.core.methods import get_method
    from napari_selfdenoise.core.methods.base import StepContext

    cfg = TrainConfig(method=method, network=NetworkConfig(depth=2, base_filters=4),
                      params={"method": method, "pixel_shuffle": True})
    x = torch.randn(2, 1, 64, 64)
    batch = get_method(method).make_batch(x, cfg, torch.Generator().manual_seed(0),
                                          StepContext())
    assert batch["x"].shape == (2 * 25, 1, 12, 12)  # 64 cropped to 60, 5 x 5 sub-images
    net = build_network(cfg.network, 2, 1, method, cfg.params)
    assert net.size_multiple == 8 and net.halo[-1] == 2 * net.inner.halo[-1]
    loss = get_method(method).loss(net, batch, cfg, StepContext())
    assert loss.ndim == 0 and torch.isfinite(loss)
