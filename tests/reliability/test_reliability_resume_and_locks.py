"""Catalogue, class 3: a resumed output belongs to its input, and one output has one
writer at a time (a crash-safe lock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr

from _reliability import cli, digest, env, one_line_error

PRED = ["--quiet", "--precision", "fp32", "--device", "cpu", "--tile", "48", "48",
        "--batch-size", "1"]


@pytest.fixture
def pair(tmp_path):
    """Two different 64 x 64 images of the same shape, as .npy files."""
    rng = np.random.default_rng(3)
    a, b = (rng.random((2, 64, 64)) * 100).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path / "a.npy", tmp_path / "b.npy"


def _interrupted(bundle, src, out):
    """A zarr prediction of ``src`` stopped after its first batch."""
    from napari_selfdenoise.core.config import PredictConfig
    from napari_selfdenoise.core.inference import predict

    stop = threading.Event()
    cfg = PredictConfig(tile_shape=(48, 48), batch_size=1, precision="fp32", device="cpu")
    gen = predict(bundle, src, config=cfg, out=out, stop=stop)
    next(gen)
    stop.set()
    for _ in gen:
        pass
    rec = dict(zarr.open_array(out, mode="r").attrs)["napari_selfdenoise_progress"]
    assert not rec["complete"]


def test_unfinished_output_refuses_another_input(tiny_bundle, pair, tmp_path):
    out = tmp_path / "o.zarr"
    _interrupted(tiny_bundle, pair[0], out)
    tiny_bundle.save(tmp_path / "m.sdmodel")
    before = digest(out)
    rc, _, err = cli("predict", tmp_path / "m.sdmodel", pair[1], "--out", out, *PRED)
    assert rc == 2
    one_line_error(err, "o.zarr", "another input", "a.npy", "--overwrite")
    assert digest(out) == before


def test_finished_output_refuses_another_input(model_file, pair, tmp_path):
    out = tmp_path / "o.zarr"
    assert cli("predict", model_file, pair[0], "--out", out, *PRED)[0] == 0
    before = digest(out)
    rc, _, err = cli("predict", model_file, pair[1], "--out", out, *PRED)
    assert rc == 2
    one_line_error(err, "another input")
    assert digest(out) == before


def test_same_input_resumes_to_the_uninterrupted_result(tiny_bundle, pair, tmp_path):
    from napari_selfdenoise.core.inference import predict_array

    out = tmp_path / "o.zarr"
    _interrupted(tiny_bundle, pair[0], out)
    model = tiny_bundle.save(tmp_path / "m.sdmodel")
    rc, _, err = cli("predict", model, pair[0], "--out", out, *PRED)
    assert rc == 0, err
    whole = predict_array(tiny_bundle, np.load(pair[0]), axes="YX", precision="fp32",
                          device="cpu", tile_shape=(48, 48), batch_size=1)
    np.testing.assert_allclose(zarr.open_array(out, mode="r")[:], whole, atol=1e-5)


def test_modified_input_is_not_resumed(tiny_bundle, pair, tmp_path):
    out = tmp_path / "o.zarr"
    _interrupted(tiny_bundle, pair[0], out)
    data = np.load(pair[0])
    data[0, 0] += 1
    np.save(pair[0], data)  # same path and shape, other content and mtime
    model = tiny_bundle.save(tmp_path / "m.sdmodel")
    rc, _, err = cli("predict", model, pair[0], "--out", out, *PRED)
    assert rc == 2
    one_line_error(err, "another input")


def test_record_without_input_identity_is_not_resumed(tiny_bundle, pair, tmp_path):
    out = tmp_path / "o.zarr"
    _interrupted(tiny_bundle, pair[0], out)
    arr = zarr.open_array(out, mode="r+")
    rec = dict(arr.attrs)["napari_selfdenoise_progress"]
    rec.pop("input")  # as written by an older version
    arr.attrs["napari_selfdenoise_progress"] = rec
    model = tiny_bundle.save(tmp_path / "m.sdmodel")
    rc, _, err = cli("predict", model, pair[0], "--out", out, *PRED)
    assert rc == 2
    one_line_error(err, "does not record its input", "--overwrite")


HOLD = """
import sys, time
sys.path.insert(0, {src!r})
from napari_selfdenoise.core.outputs import OutputLock
lock = OutputLock({out!r}).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_live_writer_excludes_a_second_one(model_file, pair, tmp_path):
    out = tmp_path / "o.zarr"
    from _reliability import SRC

    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(src=str(SRC), out=str(out))],
                              stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, _, err = cli("predict", model_file, pair[0], "--out", out, *PRED)
        assert rc == 2
        one_line_error(err, "another run", f"pid {holder.pid}")
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock file is stale and taken over
    assert (tmp_path / ".o.zarr.lock").exists()
    assert cli("predict", model_file, pair[0], "--out", out, *PRED)[0] == 0
    assert not (tmp_path / ".o.zarr.lock").exists()


def test_stale_lock_file_of_a_dead_process_is_taken_over(model_file, pair, tmp_path):
    out = tmp_path / "o.npy"
    (tmp_path / ".o.npy.lock").write_text(json.dumps({"pid": 999999, "host": "gone"}))
    assert cli("predict", model_file, pair[0], "--out", out, *PRED)[0] == 0
    assert out.exists()


def test_concurrent_predictions_into_one_store_never_mix(model_file, pair, tmp_path):
    """Two processes, two inputs, one output: one wins, the other is refused or (when it
    starts after the first finished) refused as another input's output. Never mixed."""
    out = tmp_path / "o.zarr"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "napari_selfdenoise", "predict", str(model_file), str(src),
         "--out", str(out), *PRED], env=env(), stderr=subprocess.PIPE, text=True)
        for src in pair]
    codes = [p.wait(timeout=120) for p in procs]
    errs = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 2], errs
    loser = errs[codes.index(2)]
    assert "another run" in loser or "another input" in loser
    winner = pair[codes.index(0)]
    rec = dict(zarr.open_array(out, mode="r").attrs)["napari_selfdenoise_progress"]
    assert rec["complete"] and rec["input"]["path"] == str(winner.resolve())
    assert time.time() > 0 and os.path.exists(out)
