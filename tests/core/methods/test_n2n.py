"""Noise2Noise: frames are paired with their neighbour, never themselves, and every pixel
enters the loss; training from a target image or from interlaced frames, 2D and 3D."""

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.config import TrainConfig
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.methods import StepContext, get_method
from napari_selfdenoise.core.methods.n2n import interlaced_pairs
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d, psnr
from napari_selfdenoise.core.training import TrainingDataError, default_config, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N2N = get_method("n2n")


@pytest.mark.parametrize("axes, along", [("TYX", "T"), ("ZYX", "Z"), ("TZYX", "T"),
                                         ("TZYX", "Z")])
def test_no_frame_is_paired_with_itself_and_every_frame_is_used(axes, along):
    n = 7
    shape = {"T": n, "Z": n, "Y": 4, "X": 5}
    if axes == "TZYX":
        shape = {"T": n if along == "T" else 3, "Z": n if along == "Z" else 3, "Y": 4, "X": 5}
    arr = np.zeros([shape[a] for a in axes], np.float32)
    axis = axes.index(along)
    frame = np.arange(arr.shape[axis]).reshape([-1 if i == axis else 1 for i in range(arr.ndim)])
    arr = arr + frame  # every voxel holds its frame index
    inp, tgt = interlaced_pairs(arr, axes, along)
    assert inp.shape == tgt.shape
    ids_in = np.unique(np.moveaxis(inp, axis, 0).reshape(inp.shape[axis], -1), axis=1)
    ids_tg = np.unique(np.moveaxis(tgt, axis, 0).reshape(tgt.shape[axis], -1), axis=1)
    assert ids_in.shape[1] == ids_tg.shape[1] == 1  # one frame per slice
    assert (ids_in[:, 0] != ids_tg[:, 0]).all()  # never itself
    assert (ids_tg[:, 0] - ids_in[:, 0] == 1).all()  # its neighbour
    used = sorted(ids_in[:, 0].tolist() + ids_tg[:, 0].tolist())
    assert used == list(range(n - 1))  # all frames, an odd last one left out


def test_pairs_need_an_axis_and_two_frames():
    with pytest.raises(ValueError, match="axes are YX"):
        interlaced_pairs(np.zeros((4, 4)), "YX", "T")
    with pytest.raises(ValueError, match="at least 2"):
        interlaced_pairs(np.zeros((1, 4, 4)), "TYX", "T")
    with pytest.raises(TrainingDataError, match="needs a target"):
        run_to_end(train(np.zeros((3, 32, 32)), default_config("n2n"), axes="TYX"))


def test_every_pixel_enters_the_loss_and_pairs_are_swapped_both_ways():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, 6, 7, generator=g)  # input | target on channels
    cfg = TrainConfig(method="n2n")
    batch = N2N.make_batch(x, cfg, g, StepContext())
    swapped = (batch["x"] == x[:, 1:]).flatten(1).all(1)
    kept = (batch["x"] == x[:, :1]).flatten(1).all(1)
    assert (swapped | kept).all() and 10 < int(swapped.sum()) < 54
    assert torch.equal(torch.where(swapped[:, None, None, None], x[:, :1], x[:, 1:]),
                       batch["target"])
    out = batch["x"].clone().requires_grad_(True)
    N2N.loss(lambda t: out, batch, cfg, StepContext()).backward()
    assert (out.grad != 0).all()  # every pixel contributes


def test_trains_from_a_target_image_and_from_interlaced_frames():
    ph = phantom_2d((64, 64), seed=1)
    rng = np.random.default_rng(1)
    second = ph.clean + rng.normal(0, ph.noisy.std() * 0.5, ph.clean.shape).astype(np.float32)
    small = dict(steps=40, batch_size=8, patch_size=(32, 32), precision="fp32",
                 network={"base_filters": 8}, val_every=20)
    bundle = run_to_end(train(ph.noisy, default_config("n2n", **small), target=second))
    assert bundle.method == "n2n" and bundle.n_channels == 1
    with pytest.raises(TrainingDataError, match="same shape"):
        run_to_end(train(ph.noisy, default_config("n2n", **small), target=second[:40]))
    with pytest.raises(TrainingDataError, match="without a target"):
        run_to_end(train(ph.noisy, default_config("n2s", **small), target=second))
    ph3 = phantom_3d((16, 32, 32), seed=2)
    stack = np.stack([ph3.noisy, ph3.noisy[:, ::-1]] * 2)
    cfg = default_config("n2n", steps=3, batch_size=2, patch_size=(8, 16, 16),
                         params={"method": "n2n", "pairs_along": "T"},
                         network={"base_filters": 4, "depth": 1})
    bundle = run_to_end(train(stack, cfg, axes="TZYX"))
    assert bundle.spatial_dims == 3 and bundle.info["data_shapes"] == [[2, 2, 16, 32, 32]]
    assert psnr(ph3.clean, ph3.noisy) < 100  # the phantom is noisy (sanity)
