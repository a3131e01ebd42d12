"""Catalogue, classes 5-7: every entry point accepts the same inputs, output formats are
known before any work, and parameters are bounded by what the image can use."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tifffile

from _reliability import FAST_TRAIN, cli, digest, listing, one_line_error

PRED = ["--quiet", "--precision", "fp32", "--device", "cpu"]

BAD_ARRAYS = {
    "int64-beyond-2^24": (lambda: np.full((32, 32), 2**25 + 1, np.int64), "2^24"),
    "complex": (lambda: (np.ones((32, 32)) + 1j).astype(np.complex64), "complex"),
    "bool": (lambda: np.ones((32, 32), bool), "boolean"),
    "rgb-looking": (lambda: np.ones((32, 32, 3), np.float32), "RGB"),
}


def _command(kind, model, src, out):
    if kind == "predict":
        return ["predict", model, src, "--out", out, *PRED]
    if kind == "calibrate":
        return ["calibrate", src, "--denoiser", "gaussian", "--out", out, "--quiet"]
    return ["train", src, "--out", out.with_suffix(".sdmodel"), *FAST_TRAIN]


@pytest.mark.parametrize("kind", ["train", "predict", "calibrate"])
@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_every_entry_point_refuses_the_same_inputs(model_file, tmp_path, kind, case):
    make, words = BAD_ARRAYS[case]
    src = tmp_path / "x.npy"
    np.save(src, make())
    before = digest(src)
    rc, _, err = cli(*_command(kind, model_file, src, tmp_path / "o.tif"))
    assert rc == 2, err
    one_line_error(err, words)
    assert digest(src) == before
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "o.sdmodel").exists()


def test_api_refuses_what_the_cli_refuses(tiny_bundle):
    from napari_selfdenoise.core.inference import predict_array
    from napari_selfdenoise.core.validation import UserError

    with pytest.raises(UserError, match="complex"):
        predict_array(tiny_bundle, np.ones((32, 32), np.complex64))


def test_three_plane_stack_has_the_same_axes_from_tiff_and_npy(tmp_path):
    from napari_selfdenoise.core import io
    from napari_selfdenoise.core.validation import resolve_axes

    stack = np.zeros((3, 32, 32), np.float32)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    np.save(tmp_path / "s.npy", stack)
    axes = []
    for name in ("s.tif", "s.npy"):
        arr, file_axes = io.open_image(tmp_path / name)
        axes.append(resolve_axes(arr.shape, None, file_axes=file_axes))
    assert axes[0] == axes[1] == "CYX"


@pytest.mark.parametrize("value", ["true", '"5"', "5.0"], ids=["bool", "string", "float"])
def test_preset_types_are_strict(tmp_path, img_tif, value):
    preset = tmp_path / "p.json"
    preset.write_text('{"format": "napari-selfdenoise/preset", "version": 1, "kind": "train",'
                      ' "settings": {"train": {"steps": %s}}}' % value)
    rc, _, err = cli("run", preset, img_tif, "--out", tmp_path / "out")
    assert rc == 2
    one_line_error(err, "p.json", "steps")
    assert not (tmp_path / "out").exists()


def test_deeply_nested_preset_is_one_line(tmp_path, img_tif):
    preset = tmp_path / "deep.json"
    preset.write_text("[" * 50000 + "]" * 50000)
    rc, _, err = cli("run", preset, img_tif, "--out", tmp_path / "out")
    assert rc == 2
    one_line_error(err, "deep.json", "nested too deeply")


# ------------------------------------------------------------------ 6. formats
@pytest.mark.parametrize("kind,name", [("calibrate", "o.png"), ("calibrate", "o"),
                                       ("predict", "o.png"), ("train", "o.tif")])
def test_unknown_output_extension_is_refused_before_work(model_file, img_npy, tmp_path,
                                                         kind, name):
    out = tmp_path / name
    args = {"calibrate": ["calibrate", img_npy, "--denoiser", "gaussian", "--out", out],
            "predict": ["predict", model_file, img_npy, "--out", out, *PRED],
            "train": ["train", img_npy, "--out", out, *FAST_TRAIN]}[kind]
    t0 = time.perf_counter()
    rc, _, err = cli(*args)
    assert rc == 2 and time.perf_counter() - t0 < 5
    one_line_error(err, name)
    assert not out.exists()


def test_calibrate_npy_output_is_a_real_npy(img_npy, tmp_path):
    rc, _, _ = cli("calibrate", img_npy, "--denoiser", "gaussian", "--out", tmp_path / "o.npy",
                   "--quiet")
    assert rc == 0
    assert np.load(tmp_path / "o.npy").shape == (32, 32)


# ------------------------------------------------------------------- 7. memory
@pytest.mark.parametrize("denoiser,value", [("median", "1e9"), ("mean", "60"),
                                            ("gaussian", "1e6")])
def test_parameters_beyond_the_image_are_refused_at_once(img_npy, tmp_path, denoiser, value):
    t0 = time.perf_counter()
    rc, _, err = cli("calibrate", img_npy, "--denoiser", denoiser, "--values", value,
                     "--out", tmp_path / "o.tif")
    assert rc == 2 and time.perf_counter() - t0 < 5
    one_line_error(err, denoiser, "can use", "--values")
    assert listing(tmp_path) == ["img.npy"]


@pytest.mark.parametrize("kind", ["train", "predict-in-memory", "calibrate-tif"])
def test_work_that_cannot_fit_in_memory_is_refused_before_allocating(
        kind, tiny_bundle, tmp_path, monkeypatch):
    import psutil

    from napari_selfdenoise.core.validation import UserError

    class Little:
        available = 1024**2  # 1 MiB "free"

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little)
    img = np.zeros((512, 512), np.float32)
    if kind == "train":
        from napari_selfdenoise.core.config import TrainConfig
        from napari_selfdenoise.core.training import train

        with pytest.raises(UserError, match="memory"):
            next(train(img, TrainConfig()))
    elif kind == "predict-in-memory":
        from napari_selfdenoise.core.inference import predict_array

        with pytest.raises(UserError, match=r"\.zarr"):
            predict_array(tiny_bundle, img, memory_budget_mb=64)
    else:
        np.save(tmp_path / "x.npy", img)
        rc, _, err = cli("calibrate", tmp_path / "x.npy", "--out", tmp_path / "o.tif")
        assert rc == 2
        one_line_error(err, "memory", ".zarr")
