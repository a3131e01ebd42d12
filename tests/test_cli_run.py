"""``napari-selfdenoise run PRESET INPUT... --out DIR``: batch runs from the shell."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_selfdenoise.cli import main
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import CalibrateConfig, PredictConfig, TrainConfig
from napari_selfdenoise.core.io import read_document
from napari_selfdenoise.core.presets import (
    CalibrateSettings,
    PredictSettings,
    TrainSettings,
    save_preset,
)
from napari_selfdenoise.core.samples import phantom_2d


@pytest.fixture
def inputs(tmp_path):
    """Two good 2D images and one file that is not an image, in a folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in (1, 2):
        tifffile.imwrite(folder / f"img{seed}.tif", phantom_2d((48, 48), seed=seed).noisy)
    (folder / "broken.tif").write_bytes(b"this is not a TIFF")
    return folder


def test_calibrate_batch_continues_past_a_bad_file(tmp_path, inputs, capsys):
    preset = save_preset(tmp_path / "cal.json",
                         CalibrateSettings(calibrate=CalibrateConfig(denoiser="gaussian")))
    out = tmp_path / "out"
    code = main(["run", str(preset), str(inputs), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.glob("*.tif")) == ["img1_gaussian.tif", "img2_gaussian.tif"]
    assert "2 of 3 inputs done" in captured.out and "broken.tif" in captured.out
    assert "FAILED" in captured.err
    img = tifffile.imread(out / "img1_gaussian.tif")
    assert img.shape == (48, 48) and img.dtype == np.float32
    report = read_document(out / "img1_gaussian.tif")["provenance"]["calibration"]
    assert report["denoiser"] == "gaussian"


def test_train_then_predict_presets(tmp_path, inputs):
    good = [inputs / "img1.tif", inputs / "img2.tif"]
    train = TrainSettings(train=TrainConfig(method="n2v", steps=4, batch_size=4,
                                            patch_size=(32, 32), val_fraction=0.0,
                                            network={"depth": 1, "base_filters": 8}))
    preset = save_preset(tmp_path / "train.json", train)
    out = tmp_path / "trained"
    assert main(["run", str(preset), *map(str, good), "--out", str(out), "--quiet"]) == 0
    model_file = out / "img1_n2v.sdmodel"
    bundle = ModelBundle.load(model_file)
    assert bundle.config.steps == 4 and bundle.config.network.base_filters == 8
    assert tifffile.imread(out / "img2_n2v.tif").shape == (48, 48)
    doc = read_document(out / "img2_n2v.tif")  # the output carries its model and provenance
    assert ModelBundle.from_metadata(doc["model"]).config == ModelBundle.load(
        out / "img2_n2v.sdmodel").config
    assert doc["provenance"]["source"] == "img2.tif" and doc["axes"] == "YX"
    execution = doc["provenance"]["execution"]  # what ran the prediction
    assert execution["precision"] == "fp32" and execution["device"] == "cpu"
    assert doc["provenance"]["model_info"]["precision"] == "fp32"  # what trained the model
    # the model file drives a predict preset, on the same inputs plus the broken one
    pred = save_preset(tmp_path / "pred.json", PredictSettings(
        model_source="file", model_file=str(model_file), predict=PredictConfig(tta=True)))
    out2 = tmp_path / "predicted"
    assert main(["run", str(pred), str(inputs), "--out", str(out2), "--quiet"]) == 1
    assert sorted(p.name for p in out2.glob("*.tif")) == ["img1_n2v.tif", "img2_n2v.tif"]


def test_user_mistakes_are_one_line_errors(tmp_path, inputs, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "napari-selfdenoise/preset", "version": 1, "kind": "train",'
                   ' "settings": {"train": {"stepz": 3}}}')
    assert main(["run", str(bad), str(inputs), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "train.stepz: unknown key" in err and "did you mean 'steps'" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    preset = save_preset(tmp_path / "c.json", CalibrateSettings())
    assert main(["run", str(preset), str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no input images found" in capsys.readouterr().err
