"""Catalogue, classes 8 and 9: a full disk and a read-only folder are one clear line,
leave no partial files and never corrupt an existing one; files respect the umask.

Full-disk and read-only cases mount a small tmpfs and need root (as in CI); they skip
otherwise.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import tifffile

from _reliability import FAST_TRAIN, cli, digest, listing, one_line_error

PRED = ["--quiet", "--precision", "fp32", "--device", "cpu"]


def _mount(path, *options):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    path.mkdir()
    opts = ",".join(("size=2m",) + options)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs."""
    disk = tmp_path / "disk"
    _mount(disk)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    _mount(folder, "ro")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(disk, leave=64 * 1024):
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_output_larger_than_the_free_space_is_refused_before_work(model_file, tmp_path,
                                                                  small_disk):
    src = tmp_path / "big.npy"
    np.save(src, np.zeros((1024, 1024), np.float32))  # 4 MiB of output on a 2 MiB disk
    rc, _, err = cli("predict", model_file, src, "--out", small_disk / "o.npy", *PRED)
    assert rc == 2
    one_line_error(err, "not enough free space", "o.npy")
    assert listing(small_disk) == []


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".zarr"])
def test_disk_filling_up_while_writing_is_one_line_and_leaves_nothing(
        model_file, tmp_path, small_disk, monkeypatch, suffix):
    from napari_selfdenoise.core import outputs

    monkeypatch.setattr(outputs, "FREE_SPACE_MARGIN", 0.0)  # let it start, then fail
    src = tmp_path / "x.npy"
    np.save(src, np.random.default_rng(0).random((256, 256)).astype(np.float32))
    _fill(small_disk)
    before = digest(src, small_disk / "filler")
    out = small_disk / f"o{suffix}"
    rc, _, err = cli("predict", model_file, src, "--out", out, *PRED)
    assert rc == 2, err
    one_line_error(err, "no space left")
    assert digest(src, small_disk / "filler") == before
    left = [n for n in listing(small_disk) if n != "filler"]
    # a zarr / TIFF output may stay resumable (a rerun with space completes it)
    assert left in ([], ["o.zarr"], [".o.tif.partial.zarr"]), left
    if left:
        (small_disk / "filler").unlink()
        assert cli("predict", model_file, src, "--out", out, *PRED)[0] == 0
        assert [n for n in listing(small_disk)] == [f"o{suffix}"]


def test_full_disk_never_corrupts_an_existing_output(model_file, img_npy, small_disk,
                                                     monkeypatch):
    from napari_selfdenoise.core import outputs

    monkeypatch.setattr(outputs, "FREE_SPACE_MARGIN", 0.0)
    existing = small_disk / "o.tif"
    tifffile.imwrite(existing, np.ones((32, 32), np.float32))
    big = small_disk.parent / "big.npy"
    np.save(big, np.random.default_rng(0).random((512, 512)).astype(np.float32))
    _fill(small_disk)
    before = digest(existing)
    rc, _, err = cli("calibrate", big, "--denoiser", "gaussian", "--values", "1",
                     "--out", existing, "--overwrite", "--quiet")
    assert rc == 2
    one_line_error(err, "no space left")
    assert digest(existing) == before
    assert sorted(listing(small_disk)) == ["filler", "o.tif"]


def test_read_only_folder_is_refused_before_training(img_npy, read_only):
    rc, _, err = cli("train", img_npy, "--out", read_only / "m.sdmodel", "--steps", "100000",
                     *FAST_TRAIN[2:])  # would train for minutes if not refused first
    assert rc == 2
    one_line_error(err, "not writable", "ro")


@pytest.mark.parametrize("kind", ["predict", "calibrate", "run"])
def test_read_only_folder_is_refused_before_work(model_file, img_npy, read_only, tmp_path,
                                                 kind):
    from napari_selfdenoise.core.presets import PredictSettings, save_preset

    if kind == "predict":
        args = ["predict", model_file, img_npy, "--out", read_only / "o.zarr", *PRED]
    elif kind == "calibrate":
        args = ["calibrate", img_npy, "--out", read_only / "o.tif", "--denoiser", "gaussian"]
    else:
        preset = save_preset(tmp_path / "p.json", PredictSettings(
            model_source="file", model_file=str(model_file)))
        args = ["run", preset, img_npy, "--out", read_only]
    rc, _, err = cli(*args)
    assert rc == 2
    one_line_error(err, "writable")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_are_created_with_the_umask(img_npy, tmp_path, umask):
    old = os.umask(umask)
    try:
        assert cli("train", img_npy, "--out", tmp_path / "m.sdmodel", *FAST_TRAIN)[0] == 0
        assert cli("calibrate", img_npy, "--denoiser", "gaussian", "--values", "1",
                   "--out", tmp_path / "c.tif", "--quiet")[0] == 0
    finally:
        os.umask(old)
    for name in ("m.sdmodel", "c.tif"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_npy_output_into_a_missing_folder_is_created(model_file, img_npy, tmp_path):
    out = tmp_path / "new" / "deeper" / "o.npy"
    rc, _, err = cli("predict", model_file, img_npy, "--out", out, *PRED)
    assert rc == 0, err
    assert np.load(out).shape == (32, 32)


def test_report_into_a_missing_folder_is_written(img_npy, tmp_path):
    rc, _, err = cli("calibrate", img_npy, "--denoiser", "gaussian", "--values", "1",
                     "--out", tmp_path / "o.tif", "--report", tmp_path / "r" / "c.json",
                     "--quiet")
    assert rc == 0, err
    assert (tmp_path / "r" / "c.json").read_text().startswith("{")
