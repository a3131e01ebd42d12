"""Catalogue, data-loss classes 1 and 2: an output is never an input, and nothing is
replaced without being asked (issue #11, "Nothing lost, ever")."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from _reliability import FAST_TRAIN, cli, digest, listing, one_line_error


# -------------------------------------------------------------- 1. output == input
def test_log_json_onto_the_input_is_refused(img_npy, tmp_path):
    before = digest(img_npy)
    rc, _, err = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--log-json", img_npy,
                     "--overwrite", *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "--log-json", str(img_npy), "input")
    assert digest(img_npy) == before and not (tmp_path / "m.sdmodel").exists()


def test_log_json_through_a_symlink_to_the_input_is_refused(img_npy, tmp_path):
    link = tmp_path / "log.jsonl"
    link.symlink_to(img_npy)
    before = digest(img_npy)
    rc, _, err = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--log-json", link,
                     "--overwrite", *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "input")
    assert digest(img_npy) == before


def test_model_output_hard_linked_to_the_input_is_refused(img_tif, tmp_path):
    twin = tmp_path / "twin.sdmodel"
    os.link(img_tif, twin)  # the same file under two names
    before = digest(img_tif)
    rc, _, err = cli("train", img_tif, "--out", twin, "--overwrite", *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "--out", "input")
    assert digest(img_tif) == before


def test_predict_onto_its_own_zarr_input_is_refused(model_file, tmp_path, img):
    import zarr

    src = tmp_path / "x.zarr"
    zarr.create_array(src, data=img, chunks=(16, 16))
    before = digest(src)
    rc, _, err = cli("predict", model_file, src, "--out", src, "--overwrite", "--quiet")
    assert rc == 2
    one_line_error(err, "x.zarr", "input")
    assert digest(src) == before
    np.testing.assert_array_equal(zarr.open_array(src, mode="r")[:], img)


def test_predict_onto_the_model_file_is_refused(model_file, img_npy):
    before = digest(model_file, img_npy)
    rc, _, err = cli("predict", model_file, img_npy, "--out", model_file, "--overwrite")
    assert rc == 2
    one_line_error(err, "m.sdmodel", "input")
    assert digest(model_file, img_npy) == before


def test_calibrate_onto_its_input_is_refused(img_tif):
    before = digest(img_tif)
    rc, _, err = cli("calibrate", img_tif, "--denoiser", "gaussian", "--out", img_tif,
                     "--overwrite", "--quiet")
    assert rc == 2
    one_line_error(err, "--out", "input")
    assert digest(img_tif) == before


def test_calibrate_report_onto_the_input_is_refused(img_tif, tmp_path):
    report = tmp_path / "img.json"
    os.symlink(img_tif, report)
    before = digest(img_tif)
    rc, _, err = cli("calibrate", img_tif, "--denoiser", "gaussian", "--out",
                     tmp_path / "o.tif", "--report", report, "--overwrite", "--quiet")
    assert rc == 2
    one_line_error(err, "--report", "input")
    assert digest(img_tif) == before and not (tmp_path / "o.tif").exists()


def test_run_output_that_would_replace_an_input_is_refused(tmp_path, img):
    from napari_selfdenoise.core.config import CalibrateConfig
    from napari_selfdenoise.core.presets import CalibrateSettings, save_preset

    data = tmp_path / "data"
    data.mkdir()
    tifffile.imwrite(data / "a.tif", img)
    tifffile.imwrite(data / "a_gaussian.tif", img)  # a.tif's output name
    preset = save_preset(tmp_path / "p.json", CalibrateSettings(
        calibrate=CalibrateConfig(denoiser="gaussian")))
    before = digest(data)
    rc, _, err = cli("run", preset, data, "--out", data, "--overwrite", "--quiet")
    assert rc == 2
    one_line_error(err, "a_gaussian.tif", "input")
    assert digest(data) == before


# ------------------------------------------------------------ 2. silent overwrites
def test_existing_log_json_needs_overwrite(img_npy, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("precious\n")
    rc, _, err = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--log-json", log,
                     *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "--log-json", "exists", "--overwrite")
    assert log.read_text() == "precious\n" and not (tmp_path / "m.sdmodel").exists()


def test_log_json_with_overwrite_is_replaced_whole(img_npy, tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("old\n")
    rc, _, _ = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--log-json", log,
                   "--overwrite", "--steps", "10", *FAST_TRAIN[2:])
    assert rc == 0
    assert log.read_text().startswith('{"step": 10')
    assert listing(tmp_path) == ["img.npy", "log.jsonl", "m.sdmodel"]  # no temporaries


@pytest.fixture
def calib_preset(tmp_path):
    from napari_selfdenoise.core.config import CalibrateConfig
    from napari_selfdenoise.core.presets import CalibrateSettings, save_preset

    return save_preset(tmp_path / "p.json", CalibrateSettings(
        calibrate=CalibrateConfig(denoiser="gaussian", values=[0.5, 1.0])))


def test_run_refuses_existing_outputs_before_any_work(tmp_path, img, calib_preset):
    tifffile.imwrite(tmp_path / "a.tif", img)
    tifffile.imwrite(tmp_path / "b.tif", img)
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_gaussian.tif").write_bytes(b"earlier result")
    rc, _, err = cli("run", calib_preset, tmp_path / "a.tif", tmp_path / "b.tif", "--out", out)
    assert rc == 2
    one_line_error(err, "b_gaussian.tif", "exists", "--overwrite")
    assert listing(out) == ["b_gaussian.tif"]  # a.tif did not run either
    assert (out / "b_gaussian.tif").read_bytes() == b"earlier result"


def test_run_overwrite_replaces_existing_outputs(tmp_path, img, calib_preset):
    tifffile.imwrite(tmp_path / "a.tif", img)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_gaussian.tif").write_bytes(b"earlier result")
    rc, stdout, _ = cli("run", calib_preset, tmp_path / "a.tif", "--out", out, "--overwrite",
                        "--quiet")
    assert rc == 0 and "1 of 1 inputs done" in stdout
    assert tifffile.imread(out / "a_gaussian.tif").shape == img.shape


@pytest.mark.parametrize("names", [("a.tif", "a.npy"), ("x/a.tif", "y/a.tif")],
                         ids=["same-stem-other-suffix", "same-name-other-folder"])
def test_run_refuses_inputs_sharing_an_output_name(tmp_path, img, calib_preset, names):
    paths = []
    for name in names:
        p = tmp_path / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, img) if p.suffix == ".npy" else tifffile.imwrite(p, img)
        paths.append(p)
    before = digest(tmp_path / "in")
    rc, _, err = cli("run", calib_preset, *paths, "--out", tmp_path / "out")
    assert rc == 2
    one_line_error(err, "both be written", "a_gaussian")
    assert not (tmp_path / "out").exists() and digest(tmp_path / "in") == before


def test_api_predict_onto_the_opened_zarr_input_is_refused(tiny_bundle, tmp_path, img):
    import zarr

    from napari_selfdenoise.core.inference import predict_array
    from napari_selfdenoise.core.outputs import OutputError

    src = tmp_path / "x.zarr"
    zarr.create_array(src, data=img, chunks=(16, 16))
    before = digest(src)
    with pytest.raises(OutputError, match="input"):
        predict_array(tiny_bundle, zarr.open_array(src, mode="r"), axes="YX", out=src,
                      overwrite=True)
    assert digest(src) == before
