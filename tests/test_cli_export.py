"""``napari-selfdenoise export MODEL --bioimageio OUT.zip`` and ``predict PKG.zip``."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest
import tifffile
import torch

from napari_selfdenoise.cli import main
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.models import build_network


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(method="n2v", network=NetworkConfig(arch="dncnn", base_filters=4,
                                                          dncnn_layers=4))
    net = build_network(cfg.network, 2, 1, "n2v")
    bundle = ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1,
                         norm_offset=[50.0], norm_scale=[10.0], state_dict=net.state_dict())
    return bundle.save(tmp_path / "model.sdmodel")


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_export_then_predict_with_the_package(tmp_path, model_file, capsys):
    pytest.importorskip("bioimageio.core")
    image = np.random.default_rng(0).normal(50, 10, (3, 90, 80)).astype(np.float32)
    tifffile.imwrite(tmp_path / "sample.tif", image)
    pkg = tmp_path / "pkg.zip"
    assert main(["export", str(model_file), "--bioimageio", str(pkg), "--sample",
                 str(tmp_path / "sample.tif"), "--sample-axes", "TYX",
                 "--author", "A. Tester", "--license", "MIT"]) == 0
    captured = capsys.readouterr()
    assert "--tta" in captured.err  # what the package leaves out is printed
    with zipfile.ZipFile(pkg) as zf:
        rdf = zf.read("rdf.yaml").decode()
        x = np.load(zf.open("test_input.npy"))
    assert "A. Tester" in rdf and "license: MIT" in rdf
    # the test input is the centre crop of the middle frame of the sample
    np.testing.assert_array_equal(x[0, 0], image[1, 13:77, 8:72])
    # predict takes the package as its model: same result as with the .sdmodel
    img = tmp_path / "img.npy"
    np.save(img, image[0])
    for model, out in ((pkg, "a.npy"), (model_file, "b.npy")):
        assert main(["predict", str(model), str(img), "--out", str(tmp_path / out),
                     "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    # an existing package is not replaced without --overwrite
    err = _one_line_error(capsys, main(["export", str(model_file), "--bioimageio", str(pkg)]))
    assert "--overwrite" in err


def test_export_errors_are_one_line(tmp_path, model_file, capsys):
    pytest.importorskip("bioimageio.core")
    err = _one_line_error(capsys, main(["export", str(model_file), "--bioimageio",
                                        str(tmp_path / "out.tar")]))
    assert ".zip" in err
    err = _one_line_error(capsys, main(["export", str(tmp_path / "missing.sdmodel"),
                                        "--bioimageio", str(tmp_path / "o.zip")]))
    assert "missing.sdmodel" in err
    err = _one_line_error(capsys, main(["export", str(model_file), "--bioimageio",
                                        str(model_file)]))
    err = _one_line_error(capsys, main(["export", str(model_file), "--bioimageio",
                                        str(tmp_path / "o.zip"), "--license", "NOPE"]))
    assert "SPDX" in err and len(err) < 300
    err = _one_line_error(capsys, main(["export", str(model_file), "--bioimageio",
                                        str(tmp_path / "o.zip"), "--name", "a/b: c"]))
    assert "--name" in err and len(err) < 300
    assert not list(tmp_path.glob("*.zip"))
    notes = tmp_path / "notes.zip"
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("a.txt", "x")
    np.save(tmp_path / "img.npy", np.zeros((16, 16), np.float32))
    err = _one_line_error(capsys, main(["predict", str(notes), str(tmp_path / "img.npy"),
                                        "--out", str(tmp_path / "o.npy")]))
    assert "not a bioimage.io model package" in err


def test_without_the_extra_the_command_says_what_to_install(tmp_path, model_file, capsys,
                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "bioimageio.core", None)  # import fails as if absent
    err = _one_line_error(capsys, main(["export", str(model_file), "--bioimageio",
                                        str(tmp_path / "o.zip")]))
    assert 'pip install "napari-selfdenoise[bioimageio]"' in err
    assert not (tmp_path / "o.zip").exists()
