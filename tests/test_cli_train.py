"""``napari-selfdenoise train``: trains, logs JSON lines, saves; Ctrl-C still saves."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from napari_selfdenoise.cli import main
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.samples import phantom_2d, phantom_correlated

FAST = ["--patch", "32", "32", "--batch", "4", "--filters", "8", "--depth", "1"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "noisy.npy"
    ph = phantom_2d((64, 64), seed=3)
    np.save(path, np.stack([ph.noisy, ph.noisy[::-1]]))
    return path


def test_train_writes_model_and_json_log(stack, tmp_path, capsys):
    out, log = tmp_path / "m.sdmodel", tmp_path / "log.jsonl"
    rc = main(["train", str(stack), str(stack), "--method", "n2s", "--axes", "TYX",
               "--out", str(out), "--steps", "20", "--log-json", str(log), *FAST])
    assert rc == 0
    bundle = ModelBundle.load(out)
    assert bundle.method == "n2s" and bundle.axes == "TYX" and bundle.info["steps"] == 20
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20]
    for key in ("step", "loss", "val_loss", "elapsed_s", "patches_per_s"):
        assert key in rows[0]
    assert "saved n2s model" in capsys.readouterr().out
    # refuses to overwrite, with one clear line
    assert main(["train", str(stack), "--axes", "TYX", "--out", str(out), "--steps", "1"]) == 2
    assert "exists" in capsys.readouterr().err


def test_correlated_noise_is_warned_about_once(tmp_path, capsys):
    """The held-out crop's correlation check (core.noise_level) reaches the user: one
    warning line naming the axis, on stderr, when training starts (also with --quiet); it
    is the warning stored with the model; none for white noise."""
    for name, image in (("white", phantom_2d((128, 128), seed=3).noisy),
                        ("correlated", phantom_correlated((128, 128), seed=3).noisy)):
        src, out = tmp_path / f"{name}.npy", tmp_path / f"{name}.sdmodel"
        np.save(src, image)
        assert main(["train", str(src), "--method", "n2s", "--out", str(out),
                     "--steps", "20", "--quiet", *FAST]) == 0
        err = capsys.readouterr().err
        warned = [line for line in err.splitlines() if line.startswith("warning:")]
        if name == "white":
            assert warned == []
        else:
            assert len(warned) == 1 and "correlated along" in warned[0]
            assert ModelBundle.load(out).info["estimated_quality"]["warning"] in warned[0]


def test_bad_axes_is_one_clear_error(stack, tmp_path, capsys):
    rc = main(["train", str(stack), "--axes", "ZYXC", "--out", str(tmp_path / "m"), *FAST])
    assert rc == 2
    assert "axes 'ZYXC' name 4 dimensions" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_and_saves(stack, tmp_path):
    out = tmp_path / "m.sdmodel"
    cmd = [sys.executable, "-m", "napari_selfdenoise", "train", str(stack), "--axes", "TYX",
           "--out", str(out), "--steps", "100000", "--method", "n2v", *FAST]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.time() + 60
        for line in proc.stderr:  # not a tty: one line per logged step
            if "step " in line or time.time() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "finished (stopped)" in stderr and "saved n2v model" in stdout
    assert ModelBundle.load(out).info["stop_reason"] == "stopped"


def test_ema_option_reaches_the_model_and_a_bad_decay_is_one_clear_error(stack, tmp_path,
                                                                         capsys):
    out = tmp_path / "ema.sdmodel"
    assert main(["train", str(stack), "--axes", "TYX", "--out", str(out), "--steps", "4",
                 "--ema", "0.9", "--quiet", *FAST]) == 0
    assert ModelBundle.load(out).config.ema == 0.9
    capsys.readouterr()
    rc = main(["train", str(stack), "--axes", "TYX", "--out", str(tmp_path / "bad"),
               "--steps", "4", "--ema", "1.5", *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and "ema" in err and "Traceback" not in err
