"""Catalogue, class 4: non-finite numbers never spread, and broken models are refused
at load with one line naming the file and the field."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from _reliability import cli, digest, one_line_error

PRED = ["--quiet", "--precision", "fp32", "--device", "cpu"]


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_one_nonfinite_pixel_stays_one_pixel(model_file, tmp_path, bad):
    img = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    img[20, 20] = bad
    src = tmp_path / "x.npy"
    np.save(src, img)
    before = digest(src)
    rc, _, err = cli("predict", model_file, src, "--out", tmp_path / "o.npy", *PRED[1:])
    assert rc == 0
    assert "1 NaN or infinite pixel" in err
    out = np.load(tmp_path / "o.npy")
    assert np.isnan(out[20, 20]) and np.isfinite(np.delete(out.ravel(), 20 * 40 + 20)).all()
    assert digest(src) == before


def _with_header(bundle, path, change):
    """Write ``bundle`` to ``path`` after ``change(header)`` edited its JSON header."""
    from safetensors.torch import save

    header = bundle.header()
    change(header)
    tensors = {k: v.contiguous() for k, v in bundle.state_dict.items()}
    path.write_bytes(save(tensors, metadata={"napari_selfdenoise": json.dumps(header)}))
    return path


CORRUPT_HEADERS = {
    "format-version-null": (lambda h: h.update(format_version=None), "format_version"),
    "format-version-list": (lambda h: h.update(format_version=[1]), "format_version"),
    "format-version-string": (lambda h: h.update(format_version="1"), "format_version"),
    "norm-offset-nan": (lambda h: h.update(norm_offset=[float("nan")]), "norm_offset"),
    "norm-scale-inf": (lambda h: h.update(norm_scale=[float("inf")]), "norm_scale"),
    "norm-scale-zero": (lambda h: h.update(norm_scale=[0.0]), "norm_scale"),
    "norm-scale-negative": (lambda h: h.update(norm_scale=[-1.0]), "norm_scale"),
    "axes-invalid": (lambda h: h.update(axes="QQ"), "axes"),
    "axes-disagree-with-dims": (lambda h: h.update(axes="ZYX"), "spatial_dims"),
    "config-steps-true": (lambda h: h["config"].update(steps=True), "steps"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_HEADERS))
def test_broken_model_header_is_refused_at_load(tiny_bundle, tmp_path, case, img_npy):
    change, field = CORRUPT_HEADERS[case]
    model = _with_header(tiny_bundle, tmp_path / "bad.sdmodel", change)
    rc, _, err = cli("predict", model, img_npy, "--out", tmp_path / "o.tif", *PRED)
    assert rc == 2
    one_line_error(err, "bad.sdmodel", field)
    assert not (tmp_path / "o.tif").exists()


def test_model_with_nonfinite_weights_is_refused(tiny_bundle, tmp_path, img_npy):
    from napari_selfdenoise.core.bundle import ModelBundle

    broken = ModelBundle(**{**tiny_bundle.__dict__, "state_dict": {
        k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
        for k, v in tiny_bundle.state_dict.items()}})
    model = broken.save(tmp_path / "nan.sdmodel")
    rc, _, err = cli("predict", model, img_npy, "--out", tmp_path / "o.tif", *PRED)
    assert rc == 2
    one_line_error(err, "nan.sdmodel", "NaN or infinite")


def test_deeply_nested_model_header_is_one_line(tiny_bundle, tmp_path, img_npy):
    from safetensors.torch import save

    header = tiny_bundle.header()
    text = json.dumps(header)[:-1] + ', "info2": ' + "[" * 100000 + "]" * 100000 + "}"
    tensors = {k: v.contiguous() for k, v in tiny_bundle.state_dict.items()}
    model = tmp_path / "deep.sdmodel"
    model.write_bytes(save(tensors, metadata={"napari_selfdenoise": text}))
    rc, _, err = cli("predict", model, img_npy, "--out", tmp_path / "o.tif", *PRED)
    assert rc == 2
    one_line_error(err, "deep.sdmodel", "nested too deeply")


def test_truncated_header_length_is_one_line(tmp_path, img_npy):
    model = tmp_path / "t.sdmodel"
    model.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    rc, _, err = cli("predict", model, img_npy, "--out", tmp_path / "o.tif", *PRED)
    assert rc == 2
    one_line_error(err, "t.sdmodel")
