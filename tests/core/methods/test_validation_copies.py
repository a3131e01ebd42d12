"""The fixed validation batch repeats a held-out tile only when each copy gets its own
random draw (``Method.validation_draws``): the masking methods' fixed masks, pixel
shuffle's sub-image subset, Noise2Noise's swap. ``bsn`` without pixel shuffle and
unswapped Noise2Noise pairs draw nothing: 12 copies of a tile gave 12 times the same loss
at 12 times the cost (up to 48 copies of a single tile)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.methods import get_method
from napari_selfdenoise.core.normalization import compute_normalization
from napari_selfdenoise.core.samples import phantom_2d
from napari_selfdenoise.core.training import _start, default_config, resolve_config
from napari_selfdenoise.core.training_loop import validate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def prepared_run(method: str, pair: bool = False, **params):
    """A prepared (untrained) run on a 128 x 128 phantom: a 32-row held-out band, 4
    tiles of 32 x 32 (12 copies each when repeated, 48 in all)."""
    cfg = resolve_config(default_config(
        method, steps=2, batch_size=4, patch_size=(32, 32), val_fraction=0.1, seed=0,
        network={"base_filters": 4, "depth": 1}, params={"method": method, **params}))
    cfg = cfg.model_copy(update={"axes": "YX"})
    m = get_method(method)
    img = phantom_2d((128, 128), seed=1).noisy[None, None]
    offsets, scales = compute_normalization([img], cfg.normalization)
    x = (img - offsets[0]) / scales[0]
    if pair:  # Noise2Noise: input and target stacked on the channel axis
        x = np.concatenate([x, phantom_2d((128, 128), seed=2).noisy[None, None]
                            / scales[0] - offsets[0] / scales[0]], axis=1)
    torch.manual_seed(0)
    net = m.build_network(cfg.network, 2, 1, cfg.params)
    return run_to_end(_start(cfg, m, net, [x.astype(np.float32)], (32, 32), 0,
                             torch.device("cpu"), None, False, 0.0))


@pytest.mark.parametrize("method, pair, params", [
    ("bsn", False, {"noise_model": "none"}),
    ("bsn", False, {}),
    ("n2n", True, {"swap": False}),
])
def test_a_deterministic_batch_holds_each_tile_once(method, pair, params):
    run = prepared_run(method, pair, **params)
    assert run.n_val == 4
    x = run.val_batch["x"]
    assert len({t.numpy().tobytes() for t in x}) == 4  # four different tiles
    # the loss is the one of the repeated batch (what it validated on before)
    once = validate(run)
    run.val_batch = {k: torch.cat([v] * 12) for k, v in run.val_batch.items()}
    assert run.n_val == 48
    assert validate(run) == pytest.approx(once, rel=1e-6)


@pytest.mark.parametrize("method, pair, params", [
    ("n2s", False, {}),
    ("n2n", True, {"swap": True}),
])
def test_random_draws_keep_their_copies(method, pair, params):
    run = prepared_run(method, pair, **params)
    assert run.n_val == 48


def test_pixel_shuffle_validates_every_sub_image_once():
    """bsn with pixel shuffle: each held-out tile's factor**2 sub-images, every one once
    (before: up to 48 copies of each tile and a random subset of their sub-images, with
    repeats), the same batch whatever the seed."""
    run = prepared_run("bsn", noise_model="none", pixel_shuffle=True, pd_train=2)
    assert not get_method("bsn").validation_draws(run.config)
    x = run.val_batch["x"]
    n_tiles = run.n_val // 4
    assert run.n_val == 4 * n_tiles and n_tiles >= 1
    assert len({t.numpy().tobytes() for t in x}) == run.n_val  # no repeats
    # the sub-images of each tile put back together are the tile: nothing left out
    from napari_selfdenoise.core.pixel_shuffle import shuffle_up

    tiles = shuffle_up(x, 2)[:, 0].numpy()
    shape = tuple(2 * n for n in x.shape[-2:])
    assert tiles.shape == (n_tiles, *shape)
    img = phantom_2d((128, 128), seed=1).noisy
    offsets, scales = compute_normalization([img[None, None]], run.config.normalization)
    windows = np.lib.stride_tricks.sliding_window_view(
        ((img - offsets[0]) / scales[0]).astype(np.float32), shape)
    for tile in tiles:  # a window of the image (in the held-out band)
        assert np.isclose(windows, tile, atol=1e-6).all(axis=(-2, -1)).any()
    again = prepared_run("bsn", noise_model="none", pixel_shuffle=True, pd_train=2)
    assert torch.equal(again.val_batch["x"], x)
