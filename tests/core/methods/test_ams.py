"""Complementary masks: the masks partition the image, training hides one of them, and
an output pixel never depends on its own input value."""

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.config import TrainConfig
from napari_selfdenoise.core.methods import StepContext, get_method
from napari_selfdenoise.core.methods.ams import random_assignment
from napari_selfdenoise.core.masking import complementary_phase

AMS = get_method("ams")


@pytest.mark.parametrize("m", [2, 3])
def test_training_masks_partition_the_image(m):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 6, 8, 8)
    assign = random_assignment(x, m, g)
    masks = torch.stack([assign == k for k in range(m)])
    assert (masks.sum(0) == 1).all()  # every pixel in exactly one mask
    cfg = TrainConfig(method="ams", params={"method": "ams", "n_masks": m})
    batch = AMS.make_batch(x, cfg, g, StepContext())
    hidden = batch["mask"].expand_as(x)
    assert (batch["x_in"][hidden] == 0).all()
    assert torch.equal(batch["x_in"][~hidden], x[~hidden])
    share = float(batch["mask"].float().mean())
    assert abs(share - 1 / m) < 0.05


@pytest.mark.parametrize("m", [2, 4])
def test_inference_masks_partition_the_image_the_same_in_every_tile(m):
    ys, xs = np.arange(40), np.arange(50)
    whole = complementary_phase([ys, xs], m)
    assert whole.shape == (40, 50) and set(np.unique(whole)) == set(range(m))
    assert abs(np.bincount(whole.ravel()) / whole.size - 1 / m).max() < 0.05
    part = complementary_phase([ys[10:30], xs[5:20]], m)
    assert np.array_equal(part, whole[10:30, 5:20])  # depends on image coordinates only
    assert complementary_phase([np.arange(4)] * 3, m).shape == (4, 4, 4)
