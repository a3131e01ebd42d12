"""Noise2Self calibration: J-invariance, the chosen parameter against the ground truth, the
loss-curve offset sigma^2, errors, stop, and block-wise application to lazy stacks."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from napari_selfdenoise.core import calibration as cal
from napari_selfdenoise.core.config import CalibrateConfig
from napari_selfdenoise.core.denoisers import DENOISERS
from napari_selfdenoise.core.events import CalibrationStep, TileDone, run_to_end
from napari_selfdenoise.core.samples import render_clean

SIGMA = 0.1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clean_noisy():
    """A 96 x 96 clean phantom in [0, 1] and a copy with Gaussian noise of SIGMA."""
    clean = render_clean((96, 96), seed=3).astype(np.float64)
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    noisy = clean + SIGMA * np.random.default_rng(1).standard_normal(clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def _run(image, **kw):
    events = []
    result = run_to_end(cal.calibrate(image, CalibrateConfig(**kw)), events.append)
    return result, events


def _j_outputs(name, noisy, values):
    den = DENOISERS[name]
    x = torch.from_numpy(noisy)[None, None]
    with torch.no_grad():
        return [cal.j_invariant_apply(den, x, v)[0, 0].numpy() for v in values]


@pytest.mark.parametrize("name", ["gaussian", "tv", "bilateral", "wavelet"])
def test_masked_j_invariant_output_does_not_depend_on_the_pixel(name, clean_noisy):
    _, noisy = clean_noisy
    x = torch.from_numpy(noisy[:64, :64].copy())[None, None]
    den = DENOISERS[name]
    value = den.default_values(SIGMA, 2)[3]
    with torch.no_grad():
        a, pa = cal.j_invariant_apply(den, x, value), den(x, [value])
        for p in [(10, 13), (31, 32)]:
            y = x.clone()
            y[(0, 0) + p] += 3.0
            b, pb = cal.j_invariant_apply(den, y, value), den(y, [value])
            assert abs(float(a[(0, 0) + p] - b[(0, 0) + p])) < 1e-5
            assert abs(float(pa[(0, 0) + p] - pb[(0, 0) + p])) > 1e-3  # the plain one does


@pytest.mark.parametrize("name", ["median", "gaussian", "tv", "mean"])
def test_choice_within_one_step_of_ground_truth_optimum(name, clean_noisy):
    clean, noisy = clean_noisy
    result, events = _run(noisy, denoiser=name, crop=None, j_invariant_output=False)
    assert [e.value for e in events] == result.values
    assert all(isinstance(e, CalibrationStep) and e.total == len(result.values) for e in events)
    true_mse = [np.mean((out - clean) ** 2) for out in _j_outputs(name, noisy, result.values)]
    chosen = result.values.index(result.best_value)
    assert abs(chosen - int(np.argmin(true_mse))) <= 1, (result.losses, true_mse)
    # the loss curve is the ground-truth curve shifted by the noise variance
    offset = np.asarray(result.losses) - np.asarray(true_mse)
    np.testing.assert_allclose(offset, SIGMA**2, rtol=0.08)
    assert np.ptp(offset) < 0.1 * SIGMA**2 < np.ptp(true_mse)
    assert result.image.shape == noisy.shape and result.image.dtype == np.float32
    assert not result.j_invariant and not result.stopped


def test_auto_keeps_the_lowest_loss_and_reports(clean_noisy):
    _, noisy = clean_noisy
    result, events = _run(noisy[:64, :64], denoiser="auto")
    assert set(result.curves) == set(DENOISERS)
    assert len(events) == sum(len(c.values) for c in result.curves.values())
    assert result.best_loss == min(c.best_loss for c in result.curves.values())
    assert result.j_invariant
    report = json.loads(json.dumps(result.to_report()))
    assert report["denoiser"] == result.denoiser and set(report["curves"]) == set(DENOISERS)
    assert report["noise_sigma"] == pytest.approx(SIGMA, rel=0.3)


def test_user_grid_3d_and_axes(phantom3d):
    vol = phantom3d.noisy
    result, events = _run(vol, denoiser="gaussian", values=[0.5, 1.0, 2.0], axes="ZYX")
    assert result.values == [0.5, 1.0, 2.0] and len(events) == 3
    assert result.image.shape == vol.shape and result.crop_shape == (16, 64, 64)
    # the same volume as a TYX stack is calibrated plane by plane (2D filters)
    flat, _ = _run(vol, denoiser="gaussian", values=[0.5, 1.0, 2.0], axes="TYX")
    assert flat.crop_shape == (64, 64) and flat.image.shape == vol.shape


@pytest.mark.parametrize("bad, match", [
    (np.full((64, 64), np.nan, np.float32), "NaN or infinite"),
    (np.where(np.eye(64) > 0, np.inf, 1.0).astype(np.float32), "NaN or infinite"),
    (np.full((64, 64), 7, np.uint16), "constant"),
    (np.ones((10, 64), np.float32), "too small"),
    (np.ones((4, 64, 64), np.float32), "too small"),
])
def test_bad_images_give_clear_errors(bad, match):
    axes = "ZYX" if bad.ndim == 3 else None
    with pytest.raises(ValueError, match=match):
        run_to_end(cal.calibrate(bad, CalibrateConfig(denoiser="gaussian"), axes=axes))


def test_bad_settings():
    img = np.random.default_rng(0).random((32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="one denoiser"):
        run_to_end(cal.calibrate(img, CalibrateConfig(denoiser="auto", values=[1.0])))
    with pytest.raises(ValueError, match="unknown denoiser"):
        run_to_end(cal.calibrate(img, CalibrateConfig(denoiser="bm3d")))
    with pytest.raises(ValueError, match="integers"):
        run_to_end(cal.calibrate(img, CalibrateConfig(denoiser="median", values=[1.5])))


def test_stop(clean_noisy):
    _, noisy = clean_noisy
    stop = threading.Event()
    gen = cal.calibrate(noisy, CalibrateConfig(denoiser="tv", crop=None), stop=stop)
    first = next(gen)
    stop.set()
    result = run_to_end(gen)
    assert result.stopped and result.image is None
    assert result.values[0] == first.value
    assert len(result.values) < len(DENOISERS["tv"].default_values(SIGMA, 2))
    stop_now = threading.Event()
    stop_now.set()
    early = run_to_end(cal.calibrate(noisy, CalibrateConfig(denoiser="tv"), stop=stop_now))
    assert early.stopped and early.values == [] and early.image is None


class CountingArray:
    """A read-only lazy array that records the size of every read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads: list[int] = []

    def __getitem__(self, index):
        block = self.data[index]
        self.reads.append(int(np.size(block)))
        return block


@pytest.mark.parametrize("name, j_inv", [("median", False), ("gaussian", True),
                                         ("bilateral", False)])
def test_blockwise_application_matches_whole_image(name, j_inv, monkeypatch, clean_noisy):
    _, noisy = clean_noisy
    stack = np.stack([noisy[:, :80], noisy[::-1, 16:]])  # (T, Y, X) = (2, 96, 80)
    stack = np.ascontiguousarray(np.transpose(stack, (1, 0, 2)))  # axes "YTX"
    value = DENOISERS[name].default_values(SIGMA, 2)[2]
    whole = cal.apply_denoiser(name, np.transpose(stack, (1, 0, 2)), value, j_invariant=j_inv)
    monkeypatch.setattr(cal.blockwise, "BLOCK_VOXELS", 40 * 40)  # force 40 x 40 blocks
    lazy = CountingArray(stack)
    events = []
    out = run_to_end(cal.denoise_image(lazy, name, value, axes="YTX", j_invariant=j_inv),
                     events.append)
    assert all(isinstance(e, TileDone) for e in events) and events[-1].tiles_done == 2 * 3 * 2
    assert max(lazy.reads) < stack.size // 4  # never read whole
    np.testing.assert_allclose(np.transpose(out, (1, 0, 2)), whole, atol=1e-5)


def test_calibrate_reads_only_the_crop_and_writes_into_out(clean_noisy):
    _, noisy = clean_noisy
    stack = np.stack([noisy, noisy[::-1], noisy[:, ::-1]])
    lazy = CountingArray(stack)
    out = np.zeros(stack.shape, np.float32)
    gen = cal.calibrate(lazy, CalibrateConfig(denoiser="mean", crop=64), axes="TYX", out=out)
    result = run_to_end(gen)
    assert lazy.reads[0] == 64 * 64 and result.image is out
    expected = cal.apply_denoiser("mean", stack, result.best_value, j_invariant=True)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_large_images_are_calibrated_on_tiles_spread_over_them():
    image = np.arange(256 * 300, dtype=np.float32).reshape(256, 300)
    lazy = CountingArray(image)
    tiles = cal.read_crop(lazy, "YX", 64)
    assert tiles.shape == (16, 16, 16) and lazy.reads == [16 * 16] * 16
    starts = sorted({int(t[0, 0]) // 300 for t in tiles})
    assert starts == [32 - 8, 96 - 8, 160 - 8, 224 - 8]  # tile centres at (2k + 1) / 8
    assert cal.read_crop(image, "YX", 200).shape == (1, 200, 200)  # too small: one crop
    assert cal.read_crop(image, "YX", None).shape == (1, 256, 300)


def test_fmd_median_and_tv_pick_parameters_near_the_truth(shared_data):
    import tifffile

    from napari_selfdenoise.core.normalization import norm_minmse

    folder = shared_data / "fmd_confocal_n2f"
    noisy = tifffile.imread(folder / "noisy" / "mice.tif")[128:384, 128:384] / 255.0
    gt = tifffile.imread(folder / "gt" / "mice.tif")[128:384, 128:384]
    for name in ("median", "tv"):
        result, _ = _run(noisy.astype(np.float32), denoiser=name)
        psnrs = []
        for v in result.values:
            out = cal.apply_denoiser(name, noisy[None], v)[0]
            g, fit = norm_minmse(gt, out)
            psnrs.append(10 * np.log10(1.0 / np.mean((g - fit) ** 2)))
        assert max(psnrs) - psnrs[result.values.index(result.best_value)] < 0.5, psnrs


def _dncnn_bundle(identity: bool):
    from napari_selfdenoise.core.bundle import ModelBundle
    from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
    from napari_selfdenoise.core.models import build_network

    torch.manual_seed(0)
    cfg = TrainConfig(method="n2s", network=NetworkConfig(arch="dncnn", dncnn_layers=3,
                                                          base_filters=8, batch_norm=False))
    net = build_network(cfg.network, 2, 1, "n2s")
    if identity:  # residual DnCNN with a zero last layer: f(x) = x
        for p in net.last.parameters():
            p.data.zero_()
    return ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1,
                       norm_offset=[0.2], norm_scale=[0.5], state_dict=net.state_dict())


def test_network_grid_calibration(clean_noisy):
    from napari_selfdenoise.core.masking import interpolate_neighbours

    _, noisy = clean_noisy
    events = []
    # an identity network's J-invariant output is the neighbour interpolation, whatever w
    result = run_to_end(cal.calibrate_network(_dncnn_bundle(True), noisy, grids=(2, 3, 4)),
                        events.append)
    interp = interpolate_neighbours(torch.from_numpy(noisy)[None, None])[0, 0].numpy()
    expected = np.mean((interp.astype(np.float64) - noisy) ** 2)
    np.testing.assert_allclose(result.losses, [expected] * 3, rtol=1e-4)
    assert [e.value for e in events] == [2.0, 3.0, 4.0] and result.denoiser == "network"
    trained = run_to_end(cal.calibrate_network(_dncnn_bundle(False), noisy, grids=(2, 4)))
    assert trained.best_value == trained.values[int(np.argmin(trained.losses))]
    assert json.dumps(trained.to_report())
    with pytest.raises(ValueError, match="integers"):
        run_to_end(cal.calibrate_network(_dncnn_bundle(False), noisy, grids=(1.5,)))


@pytest.mark.gpu
def test_cuda_matches_cpu(clean_noisy, no_tf32):
    """Calibration computes in fp32 on every device: fp32 with fp32 (TF32 off)."""
    _, noisy = clean_noisy
    for name in ("median", "mean", "gaussian", "tv", "bilateral", "wavelet"):
        cpu, _ = _run(noisy, denoiser=name, crop=None, device="cpu")
        gpu, _ = _run(noisy, denoiser=name, crop=None, device="cuda")
        assert gpu.best_value == cpu.best_value, name
        np.testing.assert_allclose(gpu.losses, cpu.losses, rtol=1e-3)
        np.testing.assert_allclose(gpu.image, cpu.image, atol=1e-4)


def test_default_grid_extends_past_an_edge_minimum():
    """Flat signal + noise: more smoothing always helps, so the minimum sits on the upper
    edge of the default grid and the grid is extended (up to its limit)."""
    rng = np.random.default_rng(3)
    noisy = (1.0 + rng.normal(0, 0.5, (96, 96))).astype(np.float32)
    default = DENOISERS["gaussian"].default_values(0.5, 2)
    steps = []
    result = run_to_end(
        cal.calibrate(noisy, CalibrateConfig(denoiser="gaussian", crop=None), axes="YX"),
        steps.append)
    curve = result.curves["gaussian"]
    assert len(curve.values) == len(default) + 2 * cal.MAX_GRID_EXTENSIONS
    assert curve.values == sorted(curve.values)
    assert max(curve.values) > max(default)
    assert len(steps) == len(curve.values) and steps[-1].total == len(steps)
    # a user grid is taken as given
    user = run_to_end(cal.calibrate(
        noisy, CalibrateConfig(denoiser="gaussian", crop=None, values=[0.5, 1.0]), axes="YX"))
    assert user.curves["gaussian"].values == [0.5, 1.0]


def test_grid_extension_rules():
    g, m = DENOISERS["gaussian"], DENOISERS["median"]
    curve = cal.DenoiserCurve
    assert cal.grid_extension(g, curve("gaussian", "sigma", [1.0, 2.0, 4.0], [3, 2, 1])) == [
        8.0, 16.0]
    assert cal.grid_extension(g, curve("gaussian", "sigma", [1.0, 2.0, 4.0], [1, 2, 3])) == [
        0.5, 0.25]
    assert cal.grid_extension(g, curve("gaussian", "sigma", [1.0, 2.0, 4.0], [2, 1, 3])) == []
    # a radius never goes below 1, and steps by one
    assert cal.grid_extension(m, curve("median", "radius", [1.0, 2.0], [1, 2])) == []
    assert cal.grid_extension(m, curve("median", "radius", [1.0, 2.0], [2, 1])) == [3.0, 4.0]
