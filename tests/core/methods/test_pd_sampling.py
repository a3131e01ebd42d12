"""Pixel shuffle in training (bsn): patches are cut pd_train times larger so each
sub-image is as large as a patch (issue #13: 12 x 12 sub-images of 64 x 64 patches, smaller than the
network's reach, made the mean-only ``bsn`` with pixel shuffle fall below the noisy
input), and a step keeps a patch batch's worth of exact sub-images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.methods.ams import AMSParams
from napari_selfdenoise.core.methods.bsn import BSNParams
from napari_selfdenoise.core.methods.n2s import N2SParams
from napari_selfdenoise.core.methods.pd_option import sampling_patch, shuffled_patches
from napari_selfdenoise.core.models.bsn import BlindSpotNet
from napari_selfdenoise.core.samples import phantom_correlated
from napari_selfdenoise.core.training import train

PD = BSNParams(pixel_shuffle=True)  # 5 in training


def test_sampling_patch_is_pd_train_times_larger_within_the_regions():
    assert sampling_patch(BSNParams(), (64, 64), [(512, 512)], 8) == (64, 64)
    assert sampling_patch(PD, (64, 64), [(1000, 1000)], 8) == (320, 320)
    assert sampling_patch(PD, (64, 64), [(192, 256)], 8) == (160, 240)  # multiples of 40
    assert sampling_patch(PD, (64, 64), [(512, 300), (400, 700)], 4) == (320, 300)
    assert sampling_patch(PD, (64, 64), [(40, 100)], 8) == (64, 80)  # never below patch
    assert sampling_patch(PD, (8, 64, 64), [(8, 512, 512)], 4) == (8, 320, 320)  # Z: as is
    # the masking methods keep plain patches (measured better for ams)
    for params in (AMSParams(pixel_shuffle=True), N2SParams(pixel_shuffle=True)):
        assert sampling_patch(params, (64, 64), [(1000, 1000)], 8) == (64, 64)


def test_a_step_keeps_a_patch_batch_worth_of_exact_sub_images():
    x = torch.randn(4, 1, 120, 240)
    gen = torch.Generator().manual_seed(0)
    y = shuffled_patches(x, PD, 4, (64, 64), gen)
    assert y.shape == (math.ceil(4 * 64 * 64 / (24 * 48)), 1, 24, 48)
    subs = {(b, i, j): x[b, :, i::5, j::5] for b in range(4) for i in range(5)
            for j in range(5)}
    found = [next(k for k, s in subs.items() if torch.equal(s, item)) for item in y]
    assert len(set(found)) == len(found)  # distinct sub-images, bit for bit
    # without the configured patch (or when it is the cut patch): every sub-image
    assert shuffled_patches(x, PD, 4).shape == (100, 1, 24, 48)
    assert shuffled_patches(x, PD, 4, (120, 240), gen).shape == (100, 1, 24, 48)


@pytest.mark.parametrize("noise_model", ["none", "poisson-gaussian"])
def test_training_sub_images_are_as_large_as_the_image_allows(noise_model):
    """Before the fix the network trained and validated on 12 x 12 sub-images."""
    seen: dict = {True: set(), False: set()}  # training (with gradient), validation

    def record(module, args):
        if isinstance(module, BlindSpotNet):
            seen[torch.is_grad_enabled()].add(tuple(args[0].shape[-2:]))

    ph = phantom_correlated((256, 256), seed=0)
    cfg = TrainConfig(method="bsn", steps=1, batch_size=16, seed=0, precision="fp32",
                      network=NetworkConfig(depth=2, base_filters=4),
                      params={"method": "bsn", "noise_model": noise_model,
                              "pixel_shuffle": True})
    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        bundle = run_to_end(train(ph.noisy, cfg, axes="YX"))
    finally:
        handle.remove()
    # a 192-row training region (the last 64 rows are the validation band): 160 x 240
    # patches, 32 x 48 sub-images; the band gives 60 x 240 tiles, 12 x 48 sub-images
    assert seen[True] == {(32, 48)}
    assert (12, 48) in seen[False] and (12, 12) not in seen[False]  # (+ live quality)
    assert tuple(bundle.config.patch_size) == (64, 64)  # the configured patch is kept
    assert bundle.info["validation_patches"] > 0 and np.isfinite(bundle.info["best_loss"])
