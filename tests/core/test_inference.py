"""Tiled inference: tiled == untiled, no seams, resumable outputs, lazy inputs, TTA, J-inv."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from napari_selfdenoise.core import inference, io
from napari_selfdenoise.core.axes import AxesError
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, PredictConfig, TrainConfig
from napari_selfdenoise.core.events import Message, PredictStarted, TileDone, run_to_end
from napari_selfdenoise.core.models import build_network
from napari_selfdenoise.core.tiling import make_plan, reflect_index, round_up

TOL = 1e-4


def make_bundle(spatial_dims=2, channels=1, method="n2v", depth=1, filters=4, **train):
    """An untrained bundle with randomised batch-norm statistics (so BN folding matters)."""
    torch.manual_seed(0)
    cfg = TrainConfig(method=method, network=NetworkConfig(depth=depth, base_filters=filters),
                      **train)
    net = build_network(cfg.network, spatial_dims, channels, method)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    axes = ("ZYX" if spatial_dims == 3 else "YX") if channels == 1 else (
        "CZYX" if spatial_dims == 3 else "CYX")
    return ModelBundle(config=cfg, axes=axes, spatial_dims=spatial_dims, n_channels=channels,
                       norm_offset=[0.1] * channels, norm_scale=[0.5] * channels,
                       state_dict=net.state_dict())


def reference(bundle, image, border=None):
    """Untiled reference: normalise, reflect-pad each spatial axis by its border (default:
    the engine's rule) and up to the network's size multiple, run the net once, crop."""
    net = bundle.build_model()
    m = net.size_multiple
    c = [round_up(h, m) for h in net.halo]
    if border is None:
        border = inference.default_border(bundle, net.halo, tuple(c), m)
    x = bundle.normalize(image[None], channel_axis=1)
    for axis, (b, n) in enumerate(zip(border, x.shape[2:]), start=2):
        x = np.take(x, reflect_index(np.arange(-b, round_up(n, m) + b), n), axis=axis)
    with torch.no_grad():
        y = net(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    crop = (slice(None), slice(None)) + tuple(slice(b, b + n)
                                              for b, n in zip(border, image.shape[1:]))
    return bundle.denormalize(y[crop], channel_axis=1)[0]


@pytest.fixture(scope="module")
def b2():
    return make_bundle()


@pytest.fixture(scope="module")
def stack2d():
    return np.random.default_rng(0).random((3, 61, 83)).astype(np.float32)


def test_2d_timelapse_tiled_equals_untiled_and_reference(b2, stack2d):
    tiled = inference.predict_array(b2, stack2d, axes="TYX", tile_shape=(48, 40))
    whole = inference.predict_array(b2, stack2d, axes="TYX", tile_shape=(256, 256))
    assert tiled.shape == stack2d.shape and tiled.dtype == np.float32
    assert np.abs(tiled - whole).max() < TOL
    for t in range(3):
        assert np.abs(whole[t] - reference(b2, stack2d[t][None])[0]).max() < TOL


def test_image_smaller_than_a_tile(b2):
    img = np.random.default_rng(1).random((13, 7)).astype(np.float32)
    out = inference.predict_array(b2, img, tile_shape=(64, 64))
    assert np.abs(out - reference(b2, img[None])[0]).max() < TOL


def test_3d_volume_and_3d_timelapse_tiled_equals_untiled():
    b3 = make_bundle(spatial_dims=3)
    vol = np.random.default_rng(2).random((2, 11, 25, 19)).astype(np.float32)
    tiled = inference.predict_array(b3, vol, axes="TZYX", tile_shape=(36, 40, 36))
    whole = inference.predict_array(b3, vol, axes="TZYX", tile_shape=(64, 64, 64))
    assert np.abs(tiled - whole).max() < TOL
    assert np.abs(whole[1] - reference(b3, vol[1][None])[0]).max() < TOL
    single = inference.predict_array(b3, vol[0], axes="ZYX", tile_shape=(36, 40, 36))
    assert np.abs(single - tiled[0]).max() < TOL


@pytest.mark.parametrize("border", [(0, 0, 0), (4, 8, 0), (32, 32, 32)])
def test_any_reflected_border_is_tiled_exactly(border):
    """The border sets what the network sees beyond the image; tiling never changes it."""
    b3 = make_bundle(spatial_dims=3)
    vol = np.random.default_rng(5).random((41, 45, 39)).astype(np.float32)
    tiled = inference.predict_array(b3, vol, axes="ZYX", tile_shape=(40, 40, 40), border=border)
    ref = reference(b3, vol[None], border=[min(b, 12) for b in border])  # at most the context
    assert np.abs(tiled - ref).max() < TOL
    whole = inference.predict_array(b3, vol, axes="ZYX", border=border)
    assert np.abs(tiled - whole).max() < TOL


def test_default_border_is_half_the_context_or_a_quarter_along_short_patches():
    b = make_bundle(spatial_dims=3, patch_size=(16, 64, 64))
    net = b.build_model()
    halo = net.halo[0]
    assert 16 < 2 * halo + 1 <= 64
    assert inference.default_border(b, net.halo, (12, 12, 12), 2) == (4, 6, 6)
    assert inference.default_border(b, net.halo, (12, 12, 12), 4) == (4, 8, 8)  # rounded up
    b2d = make_bundle(patch_size=(2 * halo, 2 * halo + 1))
    assert inference.default_border(b2d, net.halo[:2], (32, 32)) == (8, 16)


def test_2d_model_runs_over_z_planes_and_channels_as_trained():
    b = make_bundle(channels=2)
    data = np.random.default_rng(3).random((5, 2, 30, 26)).astype(np.float32)  # Z C Y X
    out = inference.predict_array(b, data, axes="ZCYX", tile_shape=(40, 40))
    ref = reference(b, data[4])
    assert out.shape == data.shape and np.abs(out[4] - ref).max() < TOL
    yxc = np.moveaxis(data[4], 0, -1)
    out_yxc = inference.predict_array(b, yxc, axes="YXC", tile_shape=(40, 40))
    assert np.abs(out_yxc - np.moveaxis(ref, 0, -1)).max() < TOL


def test_axis_mismatches_are_clear_errors(b2):
    with pytest.raises(AxesError, match="channel"):
        inference.predict_array(b2, np.zeros((2, 16, 16), np.float32), axes="CYX")
    with pytest.raises(AxesError, match="3D model"):
        inference.predict_array(make_bundle(spatial_dims=3), np.zeros((4, 16, 16)), axes="TYX")


def test_blending_leaves_no_seam(b2):
    # smooth ramp image: any seam would be a jump at a chunk border
    y, x = np.mgrid[0:90, 0:110].astype(np.float32)
    img = np.sin(y / 9.0) + np.cos(x / 13.0)
    out = inference.predict_array(b2, img, tile_shape=(40, 40))
    dx = np.abs(np.diff(out, axis=1))
    stride = tile_stride(b2, 40)
    assert stride < 40
    borders = np.arange(stride - 1, dx.shape[1], stride)
    inside = np.setdiff1d(np.arange(dx.shape[1]), borders)
    assert dx[:, borders].max() <= dx[:, inside].max() + 1e-6
    assert np.abs(out - reference(b2, img[None])[0]).max() < TOL


def tile_stride(bundle, tile):
    net = bundle.build_model()
    return make_plan((1000,), (tile,), net.halo[:1], multiple=net.size_multiple).axes[0].stride


def test_tta_averages_the_eight_dihedral_transforms(b2):
    img = np.random.default_rng(4).random((36, 44)).astype(np.float32)
    out = inference.predict_array(b2, img, tta=True, tile_shape=(40, 40))
    acc = np.zeros_like(img)
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(img, k)
            t = t[:, ::-1] if flip else t
            y = inference.predict_array(b2, np.ascontiguousarray(t), tile_shape=(40, 40))
            y = y[:, ::-1] if flip else y
            acc += np.rot90(y, -k)
    assert np.abs(out - acc / 8).max() < TOL
    assert np.abs(out - inference.predict_array(b2, img)).max() > 1e-3  # TTA does something


def test_j_invariant_inference_ignores_each_pixels_own_value():
    b = make_bundle(method="n2s", j_invariant_inference=True)
    img = np.random.default_rng(5).random((30, 26)).astype(np.float32)
    out = inference.predict_array(b, img, tile_shape=(48, 48))
    whole = inference.predict_array(b, img, tile_shape=(128, 128))
    assert np.abs(out - whole).max() < TOL
    for p in [(0, 0), (17, 22)]:
        bumped = img.copy()
        bumped[p] += 5.0
        out2 = inference.predict_array(b, bumped, tile_shape=(48, 48))
        assert abs(out2[p] - out[p]) < TOL  # J-invariant: own value has no influence
        assert np.abs(out2 - out).max() > 1e-3  # neighbours do see it
    plain = inference.predict_array(b, img, j_invariant=False)
    assert np.abs(plain - out).max() > 1e-3


def zarr_run(bundle, data, path, stop_after=None, **cfg):
    stop = threading.Event()
    events = []
    gen = inference.predict(bundle, data, axes="TYX", out=path, stop=stop,
                            config=PredictConfig(**cfg))

    def on_event(ev):
        events.append(ev)
        if stop_after is not None and isinstance(ev, TileDone) and ev.tiles_done >= stop_after:
            stop.set()

    return run_to_end(gen, on_event), events


def test_zarr_output_stopped_and_rerun_equals_uninterrupted(b2, stack2d, tmp_path):
    cfg = dict(tile_shape=(48, 48), batch_size=4)
    stack2d = stack2d[:2]
    full, _ = zarr_run(b2, stack2d, tmp_path / "full.zarr", **cfg)
    part, events = zarr_run(b2, stack2d, tmp_path / "part.zarr", stop_after=10, **cfg)
    assert any(isinstance(e, Message) and "resume" in e.text for e in events)
    partial = zarr.open_array(part, mode="r")[:]
    assert np.isnan(partial).any() and not np.isnan(partial).all()  # valid partial store
    _, events = zarr_run(b2, stack2d, part, **cfg)
    skipped = [e.skipped for e in events if isinstance(e, TileDone)]
    assert skipped and skipped[0] > 0  # finished chunks were not recomputed
    a = zarr.open_array(full, mode="r")
    np.testing.assert_array_equal(zarr.open_array(part, mode="r")[:], a[:])
    net = b2.build_model()
    plan = make_plan((61, 83), (48, 48), net.halo, multiple=net.size_multiple)
    assert a.chunks == (1,) + plan.chunk_shape  # chunked like the tiles
    assert np.abs(a[:] - inference.predict_array(b2, stack2d, axes="TYX")).max() < TOL
    doc = io.read_document(full)
    assert ModelBundle.from_metadata(doc["model"]).axes == "YX"
    assert doc["provenance"]["method"] == "n2v"
    assert doc["provenance"]["execution"]["precision"] == "fp32"  # what ran it
    assert doc["provenance"]["execution"]["device_name"]
    # a finished output is complete; rerunning computes nothing
    _, events = zarr_run(b2, stack2d, full, **cfg)
    assert all(e.skipped == e.tiles_total for e in events if isinstance(e, TileDone))


def test_existing_outputs_are_never_overwritten_without_the_flag(b2, stack2d, tmp_path):
    foreign = tmp_path / "foreign.zarr"
    zarr.create_array(foreign, data=np.zeros((3, 61, 83), np.float32))
    with pytest.raises(FileExistsError):
        inference.predict_array(b2, stack2d, axes="TYX", out=foreign)
    other = make_bundle(filters=8)
    done = inference.predict_array(b2, stack2d[:1], axes="TYX", out=tmp_path / "o.zarr")
    with pytest.raises(FileExistsError, match="other settings or another model"):
        inference.predict_array(other, stack2d[:1], axes="TYX", out=done)
    inference.predict_array(other, stack2d[:1], axes="TYX", out=done, overwrite=True)
    (tmp_path / "x.tif").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        inference.predict_array(b2, stack2d, axes="TYX", out=tmp_path / "x.tif")
    assert (tmp_path / "x.tif").read_bytes() == b"keep"


def test_bigtiff_and_npy_outputs_match_numpy(b2, stack2d, tmp_path):
    import tifffile

    ref = inference.predict_array(b2, stack2d, axes="TYX")
    tif = inference.predict_array(b2, stack2d, axes="TYX", out=tmp_path / "o.tif")
    with tifffile.TiffFile(tif) as t:
        assert t.is_bigtiff and len(t.pages) == 3
        np.testing.assert_array_equal(t.asarray(), ref)
    assert io.read_document(tif)["axes"] == "TYX"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif"]  # partial store removed
    npy = inference.predict_array(b2, stack2d, axes="TYX", out=tmp_path / "o.npy")
    np.testing.assert_array_equal(np.load(npy), ref)


class CountingArray:
    """Delegates slicing to an array and records the size of every read."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.sizes = arr, arr.shape, arr.dtype, []

    def __getitem__(self, idx):
        out = np.asarray(self.arr[idx])
        self.sizes.append(out.size)
        return out


class CountingStore(zarr.storage.WrapperStore):
    """A zarr store that records every key read."""

    def __init__(self, store):
        super().__init__(store)
        self.reads = []

    async def get(self, key, prototype, byte_range=None):
        self.reads.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_zarr_input_is_read_chunk_by_chunk_never_whole(b2, tmp_path):
    data = np.random.default_rng(6).random((4, 64, 96)).astype(np.float32)
    zarr.create_array(tmp_path / "in.zarr", data=data, chunks=(1, 32, 32))
    store = CountingStore(zarr.storage.LocalStore(tmp_path / "in.zarr", read_only=True))
    arr = CountingArray(zarr.open_array(store, mode="r"))
    before = data.copy()
    out = inference.predict_array(b2, arr, axes="TYX", tile_shape=(64, 64), batch_size=1)
    chunk_reads = [k for k in store.reads if k.startswith("c/")]
    net = b2.build_model()
    plan = make_plan((64, 96), (64, 64), net.halo, multiple=net.size_multiple)
    # every read is one tile's bounding box (at most 3 x 3 of the 32 x 32 chunks here)
    assert max(arr.sizes) <= 64 * 64 < data.size // 4
    assert len(arr.sizes) == 4 * plan.n_tiles
    assert len(chunk_reads) <= 4 * plan.n_tiles * 9 and len(set(chunk_reads)) == 4 * 2 * 3
    assert np.abs(out - inference.predict_array(b2, data, axes="TYX")).max() < TOL
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "in.zarr", mode="r")[:], before)


def test_dask_input_is_computed_block_by_block(b2):
    da = pytest.importorskip("dask.array")
    data = np.random.default_rng(7).random((3, 50, 70)).astype(np.float32)
    sizes = []

    def count(block):
        sizes.append(block.size)
        return block

    lazy = da.from_array(data, chunks=(1, 25, 35)).map_blocks(count, dtype=np.float32)
    out = inference.predict_array(b2, lazy, axes="TYX", tile_shape=(48, 48))
    assert max(sizes) == 25 * 35 and sum(sizes) < 20 * data.size
    ref = inference.predict_array(b2, data, axes="TYX", tile_shape=(48, 48))
    assert np.abs(out - ref).max() < TOL


def test_input_is_never_modified_and_read_only_inputs_work(b2, stack2d):
    ro = stack2d.copy()
    ro.flags.writeable = False
    out = inference.predict_array(b2, ro, axes="TYX")
    np.testing.assert_array_equal(ro, stack2d)
    assert not np.shares_memory(out, ro)


def test_events_and_closing_the_generator_early(b2, stack2d):
    gen = inference.predict(b2, stack2d, axes="TYX", config=PredictConfig(tile_shape=(40, 40)))
    started = next(gen)  # the execution settings come first, for provenance
    assert isinstance(started, PredictStarted) and started.tiles_total > 1
    assert started.execution["precision"] == "fp32" and started.execution["device"] == "cpu"
    assert len(started.tile_shape) == 2 and started.batch_size >= 1
    first = next(gen)
    assert isinstance(first, TileDone) and 0 < first.tiles_done < first.tiles_total
    assert first.voxels_per_s > 0 and first.eta_s is not None
    gen.close()  # threads are shut down; nothing hangs


def test_flops_per_voxel_matches_the_hand_count():
    net = build_network(NetworkConfig(depth=1, base_filters=4, batch_norm=False), 2, 1)
    # down 1->4, 4->4 (full res); bottom 4->8, 8->8 (1/4 res); up (8+4)->4, 4->4; head 4->1
    macs = 9 * (1 * 4 + 4 * 4) + 9 * (4 * 8 + 8 * 8) / 4 + 9 * (12 * 4 + 4 * 4) + 4
    bias = 4 + 4 + 8 / 4 + 8 / 4 + 4 + 4 + 1
    assert inference.flops_per_voxel(net, 2, 1) == pytest.approx(2 * macs + bias)
    default = build_network(NetworkConfig(), 2, 1)
    assert 5e4 < inference.flops_per_voxel(default, 2, 1) < 5e5


def test_provenance_is_json_safe(b2):
    import json

    from napari_selfdenoise.core.provenance import make_provenance

    prov = make_provenance("predict", "noisy", PredictConfig(tta=True), bundle=b2,
                           output=Path("out.zarr"))
    assert prov["source"] == "noisy" and prov["settings"]["tta"] is True
    assert prov["operation"] == "predict" and prov["output"] == "out.zarr"
    assert prov["method_name"] == "Noise2Void" and prov["package_version"]
    json.dumps(prov)
    # without a model: no method fields
    assert "method" not in make_provenance("calibrate", "noisy", {"denoiser": "tv"})


@pytest.mark.gpu
def test_cuda_tiled_prediction_matches_cpu(b2, stack2d, no_tf32):
    """Like with like: fp32 on both (TF32 off); then bf16 on CUDA within bf16's bound."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cpu = inference.predict_array(b2, stack2d, axes="TYX", device="cpu", precision="fp32")
    gpu = inference.predict_array(b2, stack2d, axes="TYX", device="cuda", precision="fp32",
                                  tile_shape=(48, 40), batch_size=3)
    assert np.abs(gpu - cpu).max() < 1e-3
    bf16 = inference.predict_array(b2, stack2d, axes="TYX", device="cuda", precision="bf16",
                                   tile_shape=(48, 40), batch_size=3)
    assert np.abs(bf16 - cpu).max() <= 8 * 2.0**-8 * b2.norm_scale[0]  # test_bf16.py


def test_auto_tile_fits_thin_volumes_and_keeps_within_budget():
    """A thin axis gets its whole length plus its border; the others share the rest."""
    cost = 100.0
    budget = cost * 117**3  # what a CPU gives the default 3D U-Net (~1.6 M voxels)
    tile = inference.auto_tile(cost, budget, (16, 256, 256), (29, 29, 29), multiple=4)
    assert tile[0] == 16 + 2 * 32  # length + reflected context (the default border)
    assert tile[1] == tile[2] > 117  # more than a cube's side: the budget went to Y / X
    assert math.prod(tile) <= budget / cost
    thin = inference.auto_tile(cost, budget, (16, 256, 256), (29, 29, 29), 4, (0, 32, 32))
    assert thin[0] == 16 and thin[1] > tile[1] and math.prod(thin) <= budget / cost
    plan = make_plan((16, 256, 256), thin, (32, 32, 32), border=(0, 32, 32), multiple=4)
    assert plan.axes[0].n_tiles == 1 and plan.tile_shape[0] == 16
    # a GPU-sized budget: a volume within the voxel cap is one tile, not several cubes
    big = inference.auto_tile(cost, cost * 1e9, (16, 64, 64), (29, 29, 29), multiple=4)
    plan = make_plan((16, 64, 64), big, (29, 29, 29), multiple=4)
    assert all(a.stride >= a.length for a in plan.axes)
    # a GPU gets larger 3D tiles than a CPU when its memory allows
    gpu = inference.auto_tile(cost, cost * 1e9, (64, 512, 512), (29, 29, 29), 4, (0, 32, 32),
                              "cuda")
    cpu = inference.auto_tile(cost, cost * 1e9, (64, 512, 512), (29, 29, 29), 4, (0, 32, 32))
    assert gpu[0] == cpu[0] == 64 and gpu[1] > cpu[1] and math.prod(gpu) <= 256**3
    # large 2D planes: square tiles as large as the budget allows (capped)
    assert inference.auto_tile(cost, cost * 1000**2, (4096, 8192), (32, 32), 4) == (1000, 1000)
    assert inference.auto_tile(cost, cost * 1e9, (4096, 8192), (32, 32), 4) == (1536, 1536)
