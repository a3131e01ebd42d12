"""Catalogue, "errors a user cannot act on": each is now one line naming the file, the
field and what to do, with exit code 2; programming errors keep their traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import zarr

from _reliability import FAST_TRAIN, cli, one_line_error

PRED = ["--quiet", "--precision", "fp32", "--device", "cpu"]


@pytest.mark.parametrize("content", [b"", b"not a numpy file at all"], ids=["empty", "garbage"])
def test_broken_npy_input_is_one_line(model_file, tmp_path, content):
    src = tmp_path / "x.npy"
    src.write_bytes(content)
    rc, _, err = cli("predict", model_file, src, "--out", tmp_path / "o.tif", *PRED)
    assert rc == 2
    one_line_error(err, "x.npy")


def test_corrupt_file_among_training_inputs_is_named(img_npy, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\0garbage")
    rc, _, err = cli("train", img_npy, bad, "--out", tmp_path / "m.sdmodel", *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "bad.tif")


def test_ome_zarr_without_dataset_path_is_one_line(model_file, tmp_path, img):
    g = zarr.open_group(tmp_path / "ome.zarr", mode="w")
    g.create_array("0", data=img)
    g.attrs["multiscales"] = [{"axes": ["y", "x"], "datasets": [{"scale": 1}]}]
    rc, _, err = cli("predict", model_file, tmp_path / "ome.zarr", "--out",
                     tmp_path / "o.tif", *PRED)
    assert rc == 2
    one_line_error(err, "ome.zarr", "path")


def test_log_json_pointing_at_a_folder_is_one_line(img_npy, tmp_path):
    (tmp_path / "logs").mkdir()
    rc, _, err = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--log-json",
                     tmp_path / "logs", "--overwrite", *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "--log-json", "folder")


def test_one_number_patch_means_a_square(img_npy, tmp_path):
    rc, _, err = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--steps", "2",
                     "--batch", "2", "--patch", "16", "--depth", "1", "--filters", "4",
                     "--quiet")
    assert rc == 0, err
    from napari_selfdenoise.core.bundle import ModelBundle

    assert ModelBundle.load(tmp_path / "m.sdmodel").config.patch_size == (16, 16)


def test_bad_setting_is_one_line_naming_the_field(img_npy, tmp_path):
    rc, _, err = cli("train", img_npy, "--out", tmp_path / "m.sdmodel", "--lr", "5",
                     *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "learning_rate")
    assert "errors.pydantic.dev" not in err


@pytest.mark.parametrize("data", ["img.tif", {"steps": 3}], ids=["path", "dict"])
def test_train_api_given_a_path_or_dict_says_what_to_do(data):
    from napari_selfdenoise.core.config import TrainConfig
    from napari_selfdenoise.core.training import train
    from napari_selfdenoise.core.validation import UserError

    with pytest.raises(UserError, match="open_image"):
        next(train(data, TrainConfig()))
    with pytest.raises(UserError, match="TrainConfig"):
        next(train(np.ones((32, 32), np.float32), {"steps": 3}))


def test_reader_survives_a_tiff_with_a_deeply_nested_document(tmp_path):
    from napari_selfdenoise import _reader
    from napari_selfdenoise.core import io

    path = tmp_path / "deep.tif"
    payload = ('{"format": "%s", "x": ' % io.DOC_FORMAT + "[" * 100000 + "]" * 100000
               + "}").encode()
    tifffile.imwrite(path, np.zeros((8, 8), np.float32),
                     extratags=[(io.TIFF_TAG, 7, len(payload), payload, True)])
    reader = _reader.get_reader(str(path))  # never raises
    with pytest.warns(UserWarning, match="nested too deeply"):
        [(data, attrs, _)] = reader(str(path))  # opens as a plain image, with a warning
    assert data.shape == (8, 8) and "napari_selfdenoise_model" not in attrs["metadata"]


def test_reader_opens_with_invalid_layer_attributes_and_warns(tmp_path, img):
    from napari_selfdenoise import _reader
    from napari_selfdenoise.core import io

    doc = io.make_document(axes="YX", layer={"scale": ["a", "b"], "name": 5})
    io.write_tiff_atomic(tmp_path / "s.tif", img, axes="YX", document=doc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [(data, attrs, kind)] = _reader.get_reader(str(tmp_path / "s.tif"))(
            str(tmp_path / "s.tif"))
    assert kind == "image" and data.shape == img.shape
    assert "scale" not in attrs and attrs["name"] == "s"
    assert any("scale" in str(w.message) for w in caught)


def test_programming_errors_keep_their_traceback(monkeypatch, img_npy, tmp_path):
    from napari_selfdenoise.cli import calibrate_cmd

    def broken(*_a, **_k):
        raise KeyError("a bug")

    monkeypatch.setattr(calibrate_cmd, "_calibrate_and_write", broken)
    with pytest.raises(KeyError):
        cli("calibrate", img_npy, "--out", tmp_path / "o.tif")


def test_debug_shows_the_traceback_of_a_user_error(img_npy, tmp_path):
    from napari_selfdenoise.core.validation import UserError

    with pytest.raises(UserError):
        cli("--debug", "calibrate", img_npy, "--out", tmp_path / "o.png")


def test_widgets_show_the_cli_message():
    from napari_selfdenoise.core.validation import user_message

    pytest.importorskip("qtpy")
    try:
        from napari_selfdenoise._widgets._common import user_message as widget_message
    except Exception as exc:  # no Qt binding / display
        pytest.skip(f"widgets not importable: {exc}")
    exc = OSError(28, "No space left on device", "/x/o.tif")
    assert widget_message(exc) == user_message(exc)
    assert "\n" not in widget_message(ValueError("a\nb"))


def test_nan_in_one_of_several_training_inputs_names_the_file(img_npy, tmp_path):
    bad = np.load(img_npy)
    bad[3, 3] = np.nan
    np.save(tmp_path / "second.npy", bad)
    rc, _, err = cli("train", img_npy, tmp_path / "second.npy", "--out",
                     tmp_path / "m.sdmodel", *FAST_TRAIN)
    assert rc == 2
    one_line_error(err, "second.npy", "1 NaN")
