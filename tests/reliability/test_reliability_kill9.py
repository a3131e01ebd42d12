"""Catalogue, faults: ``kill -9`` at a random moment of train / predict / calibrate / run,
then the same command again. Inputs are unchanged, no existing file is half-written, the
rerun succeeds (a zarr prediction resumes to the uninterrupted result) and no temporary
file is left behind. The moment is drawn from a seeded generator (printed on failure);
``RELIABILITY_SEED`` picks another."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
import tifffile
import zarr

from _reliability import FAST_TRAIN, cli, command, digest, env, listing

SEED = int(os.environ.get("RELIABILITY_SEED", "11"))
PRED = ["--quiet", "--precision", "fp32", "--device", "cpu", "--tile", "48", "48",
        "--batch-size", "1"]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def kill_at_random(args, lo, hi, salt):
    """Start ``napari-selfdenoise ARGS``, SIGKILL it after a random delay in [lo, hi] s."""
    delay = random.Random(SEED * 1000 + salt).uniform(lo, hi)
    proc = subprocess.Popen(command(*args), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    print(args[0], "killed" if killed else "finished", f"{delay:.2f}")
    return f"seed {SEED}, killed after {delay:.2f} s" if killed else f"finished before {delay:.2f} s"


@pytest.fixture
def stack(tmp_path):
    """A (6, 160, 160) time-lapse: a few seconds of tiled prediction."""
    path = tmp_path / "in" / "s.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, (np.random.default_rng(4).random((6, 160, 160)) * 100)
                     .astype(np.float32), metadata={"axes": "TYX"})
    return path


@pytest.fixture
def noisy(tmp_path):
    path = tmp_path / "in" / "x.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, (np.random.default_rng(2).random((160, 160)) * 100)
                     .astype(np.float32), metadata={"axes": "YX"})
    return path


def test_kill9_during_train_then_rerun(noisy, tmp_path):
    out, log = tmp_path / "out" / "m.sdmodel", tmp_path / "out" / "log.jsonl"
    args = ["train", noisy, "--out", out, "--log-json", log, "--steps", "400",
            *FAST_TRAIN[2:]]
    before = digest(noisy)
    when = kill_at_random(args, 2.0, 7.0, 1)
    assert digest(noisy) == before, when
    rc, _, err = cli("train", noisy, "--out", out, "--log-json", log, "--overwrite",
                     *FAST_TRAIN)
    assert rc == 0, (when, err)
    assert listing(out.parent) == ["log.jsonl", "m.sdmodel"], when  # nothing stray
    from napari_selfdenoise.core.bundle import ModelBundle

    assert ModelBundle.load(out).info.get("best_step") is not None


def test_kill9_during_predict_then_rerun_resumes(stack, tmp_path, model_file):
    from napari_selfdenoise.core.bundle import ModelBundle
    from napari_selfdenoise.core.inference import predict_array

    out = tmp_path / "out" / "o.zarr"
    before = digest(stack, model_file)
    when = kill_at_random(["predict", model_file, stack, "--out", out, *PRED], 2.5, 5.0, 2)
    assert digest(stack, model_file) == before, when
    rc, _, err = cli("predict", model_file, stack, "--out", out, *PRED)
    assert rc == 0, (when, err)
    whole = predict_array(ModelBundle.load(model_file), tifffile.imread(stack), axes="TYX",
                          precision="fp32", device="cpu", tile_shape=(48, 48), batch_size=1)
    np.testing.assert_allclose(zarr.open_array(out, mode="r")[:], whole, atol=1e-5,
                               err_msg=when)
    assert listing(out.parent) == ["o.zarr"], when


def test_kill9_during_calibrate_then_rerun(noisy, tmp_path):
    out, report = tmp_path / "out" / "c.tif", tmp_path / "out" / "c.json"
    (tmp_path / "out").mkdir()
    tifffile.imwrite(out, np.zeros((4, 4), np.float32))  # an earlier result
    args = ["calibrate", noisy, "--denoiser", "auto", "--out", out, "--report", report,
            "--overwrite", "--quiet"]
    before = digest(noisy)
    when = kill_at_random(args, 2.0, 6.0, 3)
    assert digest(noisy) == before, when
    # the earlier result is whole: either the old image or a complete new one
    assert tifffile.imread(out).shape in ((4, 4), (160, 160)), when
    rc, _, err = cli("calibrate", noisy, "--denoiser", "gaussian", "--values", "1",
                     "--out", out, "--report", report, "--overwrite", "--quiet")
    assert rc == 0, (when, err)
    assert tifffile.imread(out).shape == (160, 160)
    assert listing(out.parent) == ["c.json", "c.tif"], when


def test_kill9_during_run_then_rerun(stack, tmp_path, model_file):
    from napari_selfdenoise.core.presets import PredictSettings, save_preset

    noisy = stack
    tifffile.imwrite(noisy.parent / "y.tif", tifffile.imread(noisy)[:, ::-1].copy(),
                     metadata={"axes": "TYX"})
    preset = save_preset(tmp_path / "p.json", PredictSettings(
        model_source="file", model_file=str(model_file)))
    out = tmp_path / "out"
    before = digest(noisy.parent)
    when = kill_at_random(["run", preset, noisy.parent, "--out", out, "--quiet"], 2.5, 5.0, 4)
    assert digest(noisy.parent) == before, when
    for f in out.glob("*.tif") if out.exists() else []:
        assert tifffile.imread(f).shape == (6, 160, 160), when  # whole, or not there
    rc, stdout, err = cli("run", preset, noisy.parent, "--out", out, "--overwrite", "--quiet")
    assert rc == 0, (when, err)
    assert "2 of 2 inputs done" in stdout
    assert listing(out) == ["s_n2v.tif", "y_n2v.tif"], when
