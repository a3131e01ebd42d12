"""Distributed prediction on a real dask.distributed LocalCluster (2 worker processes).

Equal to the single-process result, resumable in either backend, robust to a worker
killed mid-run, each task reading only its own block; one-line errors otherwise.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import zarr

from napari_selfdenoise.core import inference
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.events import TileDone, run_to_end
from napari_selfdenoise.core.inference import blocks
from napari_selfdenoise.core.inference.backends import cluster as cluster_mod
from napari_selfdenoise.core.inference.progress import PROGRESS_KEY, unpack_bits
from napari_selfdenoise.core.tiling import AxisPlan, TilePlan, reflect_index

distributed = pytest.importorskip("distributed")

from test_inference import make_bundle  # noqa: E402

SHAPE = (3, 150, 170)  # T, Y, X: 5 x 5 chunks per plane with 64-wide tiles, 4 blocks each
CFG = dict(tile_shape=(64, 64), batch_size=1, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster for the module: 2 worker processes, 1 thread each (with nannies, so
    a killed worker is restarted)."""
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A real zarr input (chunked unlike the tiles) and the image it holds."""
    path = tmp_path_factory.mktemp("in") / "in.zarr"
    img = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    arr = zarr.create_array(str(path), shape=SHAPE, dtype="float32", chunks=(1, 50, 50))
    arr[:] = img
    return path


@pytest.fixture(scope="module")
def reference(bundle, source, tmp_path_factory):
    """The threaded (single-process) prediction of ``source`` into a zarr store."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    inference.predict_array(bundle, source, axes="TYX", out=out, **CFG)
    return zarr.open_array(str(out), mode="r")


def run(bundle, source, out, on_event=None, stop=None, **cfg):
    gen = inference.predict(bundle, source, axes="TYX", out=out, stop=stop,
                            config=PredictConfig(**{**CFG, **cfg}))
    events = []

    def note(ev):
        events.append(ev)
        if on_event is not None:
            on_event(ev)

    return run_to_end(gen, note), events


def record(path):
    return dict(zarr.open_array(str(path), mode="r").attrs)[PROGRESS_KEY]


def test_two_workers_equal_the_single_process_result_exactly(cluster, bundle, source,
                                                             reference, tmp_path):
    out, events = run(bundle, source, tmp_path / "d.zarr", scheduler=cluster.scheduler_address)
    got = zarr.open_array(str(out), mode="r")
    np.testing.assert_array_equal(got[:], reference[:])  # fp32, bit for bit
    assert got.chunks == reference.chunks
    rec, ref_rec = record(out), record(reference.store.root)
    assert rec == ref_rec  # same completion record: signature, bits, plan, input
    assert rec["complete"]
    reports = [e.block for e in events if isinstance(e, TileDone)]
    assert len({r["pid"] for r in reports}) == 2  # both workers worked
    # every chunk written by exactly one task
    ids = [c for r in reports for c in r["chunk_ids"]]
    assert sorted(ids) == list(range(SHAPE[0] * 25))
    # each worker process built the model and opened the input once for the whole run
    # (at its first task), not once per block
    assert len(reports) > 2
    for pid in {r["pid"] for r in reports}:
        assert len({r["model_loads"] for r in reports if r["pid"] == pid}) == 1
        assert len({r["input_opens"] for r in reports if r["pid"] == pid}) == 1
    # a complete output: a rerun submits nothing
    again, events = run(bundle, source, out, scheduler=cluster.scheduler_address)
    assert again == out and not [e for e in events if isinstance(e, TileDone)]
    assert any(getattr(e, "text", "").startswith("resuming: 75 of 75") for e in events)


def test_batched_tiles_agree_to_rounding(cluster, bundle, source, reference, tmp_path):
    """With several tiles per batch the result may differ in the last bits (oneDNN picks
    its convolution kernels by batch size, and blocks batch other tiles than the
    threaded run); batch_size=1 above is bit for bit."""
    out, _ = run(bundle, source, tmp_path / "b.zarr", scheduler=cluster.scheduler_address,
                 batch_size=4)
    threaded = inference.predict_array(bundle, source, axes="TYX", **{**CFG, "batch_size": 4})
    np.testing.assert_allclose(zarr.open_array(str(out), mode="r")[:], threaded,
                               rtol=0, atol=1e-5)


def test_each_task_reads_only_its_own_block(cluster, bundle, source, reference, tmp_path,
                                            monkeypatch):
    monkeypatch.setitem(blocks.CHUNKS_PER_AXIS, 2, 2)  # blocks of 2 x 2 chunks (client side)
    out, events = run(bundle, source, tmp_path / "r.zarr", scheduler=cluster.scheduler_address)
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], reference[:])
    plan = TilePlan(tuple(AxisPlan(*p) for p in record(out)["plan"]))
    reports = [e.block for e in events if isinstance(e, TileDone)]
    assert len(reports) == SHAPE[0] * 9  # 3 x 3 blocks of up to 2 x 2 chunks per plane
    for r in reports:
        chunks = [np.unravel_index(c % plan.n_tiles, plan.grid) for c in r["chunk_ids"]]
        tiles = plan.tiles_for_chunks(chunks)
        # read once: the bounding box of its own tiles' regions (halo and reflection
        # included), no more
        box = []
        for d, n in enumerate(plan.shape):
            src = np.concatenate([reflect_index(np.arange(*plan.tile_region(t)[d]), n)
                                  for t in tiles])
            box.append(int(src.max() - src.min() + 1))
        assert r["tiles"] == len(tiles) and r["elements_read"] == math.prod(box)
        assert r["elements_read"] < 0.7 * SHAPE[1] * SHAPE[2]  # part of one plane
    assert max(r["elements_read"] for r in reports) < math.prod(SHAPE) / 4
    for pid in {r["pid"] for r in reports}:  # 27 blocks, the input opened at most once
        assert len({r["input_opens"] for r in reports if r["pid"] == pid}) == 1


def test_an_input_replaced_at_the_same_path_is_read_afresh(cluster, bundle, tmp_path):
    """The workers keep the input open between tasks, keyed by its identity: a new file at
    the same path is opened again, never served from the old one."""
    path = tmp_path / "same.zarr"
    for seed, side in ((1, 50), (2, 40)):  # a stale array would decode with the old chunks
        img = np.random.default_rng(seed).normal(size=(1, 150, 170)).astype(np.float32)
        zarr.create_array(str(path), data=img, chunks=(1, side, side), overwrite=True)
        out, _ = run(bundle, path, tmp_path / f"o{seed}.zarr",
                     scheduler=cluster.scheduler_address)
        expected = inference.predict_array(bundle, img, axes="TYX", **CFG)
        np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], expected)


def test_a_worker_killed_mid_run_is_recomputed_and_the_result_is_equal(
        cluster, bundle, source, reference, tmp_path):
    client = distributed.Client(cluster, set_as_default=False)
    pids = client.run(os.getpid)
    client.close()
    victim = sorted(pids.values())[0]
    killed = []

    def kill_once(ev):
        if isinstance(ev, TileDone) and not killed:
            os.kill(victim, signal.SIGKILL)  # the worker process, mid-run
            killed.append(ev.tiles_done)

    out, events = run(bundle, source, tmp_path / "k.zarr", on_event=kill_once,
                      scheduler=cluster.scheduler_address)
    assert killed and killed[0] < SHAPE[0] * 25  # it died with blocks left to do
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], reference[:])
    assert record(out)["complete"]
    # the nanny restarted it; wait so later tests have two workers again
    client = distributed.Client(cluster, set_as_default=False)
    client.wait_for_workers(2, timeout=60)
    client.close()


@pytest.mark.parametrize("first,second", [("dask", "threaded"), ("threaded", "dask")])
def test_an_interrupted_run_resumes_in_either_backend_computing_only_missing_chunks(
        cluster, bundle, source, reference, tmp_path, first, second):
    mode = {"dask": dict(scheduler=cluster.scheduler_address), "threaded": {}}
    stop = threading.Event()
    out = tmp_path / "p.zarr"

    def stop_early(ev):
        if isinstance(ev, TileDone) and ev.tiles_done >= 10:
            stop.set()

    run(bundle, source, out, on_event=stop_early, stop=stop, **mode[first])
    rec = record(out)
    n = SHAPE[0] * 25
    done = unpack_bits(rec["done"], n)
    assert 0 < done.sum() < n and not rec["complete"]
    # mark the finished chunks: a resumed run must leave them alone
    arr = zarr.open_array(str(out), mode="r+")
    plan_grid, chunk = (5, 5), arr.chunks[1:]
    for cid in np.flatnonzero(done):
        s, (cy, cx) = divmod(int(cid), 25)[0], np.unravel_index(int(cid) % 25, plan_grid)
        arr[s, cy * chunk[0]:(cy + 1) * chunk[0], cx * chunk[1]:(cx + 1) * chunk[1]] = -1e6
    _, events = run(bundle, source, out, **mode[second])
    skipped = [e.skipped for e in events if isinstance(e, TileDone)][0]
    # dask skips the done chunks; threaded also reruns their tiles that feed missing chunks
    assert skipped == done.sum() if second == "dask" else 0 < skipped <= done.sum()
    got, ref = zarr.open_array(str(out), mode="r")[:], reference[:]
    kept = got == -1e6
    assert kept.any()
    for cid in range(n):
        s, (cy, cx) = cid // 25, np.unravel_index(cid % 25, plan_grid)
        region = (s, slice(cy * chunk[0], (cy + 1) * chunk[0]),
                  slice(cx * chunk[1], (cx + 1) * chunk[1]))
        if done[cid]:
            assert (got[region] == -1e6).all()  # not recomputed
        else:
            np.testing.assert_array_equal(got[region], ref[region])  # computed now
    assert record(out)["complete"]


def test_without_distributed_the_error_says_what_to_install(bundle, source, tmp_path,
                                                            monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(cluster_mod.ClusterError) as err:
        inference.predict_array(bundle, source, axes="TYX", out=tmp_path / "o.zarr", workers=2)
    msg = str(err.value)
    assert "\n" not in msg and 'pip install "napari-selfdenoise[distributed]"' in msg
    assert not (tmp_path / "o.zarr").exists()


def test_an_unreachable_scheduler_is_one_line(bundle, source, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT_S", 2.0)
    t0 = time.monotonic()
    with pytest.raises(cluster_mod.ClusterError) as err:
        inference.predict_array(bundle, source, axes="TYX", out=tmp_path / "o.zarr",
                                scheduler="tcp://127.0.0.1:9")
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert "\n" not in msg and "tcp://127.0.0.1:9" in msg and "--workers" in msg
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize("what", ["in-memory input", "in-memory output", "tiff output"])
def test_what_workers_cannot_do_is_refused_in_one_line(bundle, source, tmp_path, what):
    data = np.zeros((2, 64, 64), np.float32) if what == "in-memory input" else source
    out = {"in-memory output": None, "tiff output": tmp_path / "o.tif"}.get(
        what, tmp_path / "o.zarr")
    with pytest.raises(ValueError) as err:  # before any cluster is started
        inference.predict_array(bundle, data, axes="TYX", out=out, workers=2)
    msg = str(err.value)
    assert "\n" not in msg and "distributed prediction" in msg
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "o.tif").exists()


# ---------------------------------------------------------------------------- CLI
def cli(*argv):
    from napari_selfdenoise.cli import main

    return main([str(a) for a in argv])


def cfg_args():
    return ["--tile", "64", "64", "--batch-size", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def model_file(bundle, tmp_path_factory):
    return bundle.save(tmp_path_factory.mktemp("m") / "m.sdmodel")


def test_cli_predict_on_a_scheduler(cluster, model_file, source, reference, tmp_path):
    out = tmp_path / "cli.zarr"
    assert cli("predict", model_file, source, "--out", out, "--axes", "TYX",
               "--scheduler", cluster.scheduler_address, *cfg_args()) == 0
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], reference[:])


def test_cli_predict_on_local_workers_started_for_the_run(model_file, source, reference,
                                                          tmp_path):
    out = tmp_path / "w.zarr"
    assert cli("predict", model_file, source, "--out", out, "--axes", "TYX",
               "--workers", "2", *cfg_args()) == 0
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], reference[:])
    assert record(out)["complete"]


def test_cli_errors_are_one_line(model_file, source, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT_S", 2.0)
    cases = [("--workers", "2", tmp_path / "o.tif", "writes a .zarr store"),
             ("--scheduler", "tcp://127.0.0.1:9", tmp_path / "o.zarr", "cannot reach")]
    for flag, value, out, text in cases:
        assert cli("predict", model_file, source, "--out", out, "--axes", "TYX", flag, value,
                   *cfg_args()) == 2
        err = capsys.readouterr().err.strip()
        assert text in err and len(err.splitlines()) == 1, err
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert cli("predict", model_file, source, "--out", tmp_path / "o.zarr", "--axes", "TYX",
               "--workers", "2", *cfg_args()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "napari-selfdenoise[distributed]" in err


def test_cli_run_batch_on_a_scheduler_writes_zarr_stores(cluster, model_file, source,
                                                         reference, tmp_path):
    from napari_selfdenoise.core.presets import PredictSettings, save_preset

    preset = save_preset(tmp_path / "p.json", PredictSettings(
        model_source="file", model_file=str(model_file), axes="TYX",
        predict=PredictConfig(**CFG)))
    out = tmp_path / "batch"
    assert cli("run", preset, source, "--out", out, "--quiet",
               "--scheduler", cluster.scheduler_address) == 0
    store = out / "in_n2v.zarr"
    np.testing.assert_array_equal(zarr.open_array(str(store), mode="r")[:], reference[:])
    assert record(store)["complete"]


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_ome_zarr_output_equals_the_threaded_one_and_the_client_reads_no_chunk(
        cluster, bundle, source, tmp_path, monkeypatch, version):
    """Workers write level 0 of an OME-Zarr store and one worker builds the pyramid: every
    level and the metadata equal the single-process output; the client computes nothing
    (its pyramid code raises here: the workers are other processes)."""
    from napari_selfdenoise.core.ome_zarr_store import Pyramid

    ref = tmp_path / "threaded" / "x.ome.zarr"  # the same name: it is in the metadata
    inference.predict_array(bundle, source, axes="TYX", out=ref, ome_zarr_version=version,
                            **CFG)

    def no_reads(self, lev, idx):
        raise AssertionError("the client read image data to build a pyramid chunk")

    monkeypatch.setattr(Pyramid, "_compute", no_reads)
    out, events = run(bundle, source, tmp_path / "dask" / "x.ome.zarr",
                      ome_zarr_version=version, scheduler=cluster.scheduler_address)
    got, want = zarr.open_group(str(out), mode="r"), zarr.open_group(str(ref), mode="r")
    names = sorted(k for k in want.array_keys())
    assert len(names) >= 2 and sorted(got.array_keys()) == names  # a real pyramid
    for name in names:
        np.testing.assert_array_equal(got[name][:], want[name][:])
    g, w = dict(got.attrs), dict(want.attrs)
    assert g[PROGRESS_KEY]["complete"] and g[PROGRESS_KEY]["levels"] == w[PROGRESS_KEY]["levels"]
    meta_key = "ome" if version == "0.5" else "multiscales"
    assert g[meta_key] == w[meta_key]
    assert any("lower resolution levels on a worker" in getattr(e, "text", "")
               for e in events)


def test_a_pixel_shuffle_factor_reaches_the_workers(cluster, source, tmp_path, one_torch_thread):
    """``pixel_shuffle_infer``: the workers predict with the factor asked for (the model
    they receive carries it), bit for bit the single-process result at that factor (one
    torch thread here, as on the workers: the blind-spot network's convolutions round
    differently with two, at the model's own factor too)."""
    from test_pixel_shuffle_infer import PD
    from test_pixel_shuffle_infer import make_bundle as make_pd_bundle

    pd = make_pd_bundle("bsn", {"noise_model": "none", **PD})
    cfg = dict(tile_shape=(128, 128), pixel_shuffle_infer=1)
    ref = zarr.open_array(str(inference.predict_array(
        pd, source, axes="TYX", out=tmp_path / "ref.zarr", **{**CFG, **cfg})), mode="r")[:]
    out, _ = run(pd, source, tmp_path / "pd.zarr", scheduler=cluster.scheduler_address, **cfg)
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], ref)  # fp32
    own = inference.predict_array(pd, source, axes="TYX", **{**CFG, "tile_shape": (128, 128)})
    assert np.abs(own - ref).max() > 1e-3


def test_ome_zarr_in_another_axis_order_is_written_in_ngff_order(cluster, bundle, tmp_path):
    """An input whose axes are not in NGFF order (YXT): the workers transpose their chunks
    as the single-process sink does."""
    img = np.random.default_rng(3).normal(size=(150, 170, 2)).astype(np.float32)
    src = tmp_path / "yxt.zarr"
    arr = zarr.create_array(str(src), shape=img.shape, dtype="float32", chunks=(50, 50, 1))
    arr[:] = img
    ref = inference.predict_array(bundle, src, axes="YXT", out=tmp_path / "r.ome.zarr", **CFG)
    out = run_to_end(inference.predict(bundle, src, axes="YXT", out=tmp_path / "d.ome.zarr",
                                       config=PredictConfig(**CFG,
                                                            scheduler=cluster.scheduler_address)))
    for name in ("0", "1"):
        np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")[name][:],
                                      zarr.open_group(str(ref), mode="r")[name][:])


def test_the_client_reads_no_pixel_to_check_or_fingerprint_the_input(
        cluster, bundle, source, reference, tmp_path, monkeypatch):
    """The pixel checks and the resume fingerprint run on a worker: the client's own
    fingerprint and pixel check raise here, and the run and its record are still right."""
    from napari_selfdenoise.core import resume, validation

    def forbidden(*args, **kwargs):
        raise AssertionError("the client read pixels of the input")

    monkeypatch.setattr(resume, "fingerprint", forbidden)
    monkeypatch.setattr(validation, "check_array", forbidden)
    out, _ = run(bundle, source, tmp_path / "d.zarr", scheduler=cluster.scheduler_address)
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], reference[:])
    assert record(out)["input"] == record(reference.store.root)["input"]


def test_a_bad_input_is_refused_by_the_worker_in_the_same_words(cluster, bundle, tmp_path):
    """An integer input beyond float32's exact range: the same one-line error as the
    threaded engine, raised by the worker that checked it, before any output."""
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((40, 40), 2**31 - 5, dtype=np.int64))
    with pytest.raises(Exception) as threaded:
        inference.predict_array(bundle, bad, axes="YX", out=tmp_path / "t.zarr", **CFG)
    with pytest.raises(Exception) as dask:
        inference.predict_array(bundle, bad, axes="YX", out=tmp_path / "d.zarr",
                                scheduler=cluster.scheduler_address, **CFG)
    assert type(dask.value) is type(threaded.value)
    assert str(dask.value) == str(threaded.value) and "\n" not in str(dask.value)
    assert not (tmp_path / "d.zarr").exists()
