"""Presets: round trip, versioning, clear errors for unknown / bad keys; batch runs."""

from __future__ import annotations

import json

import numpy as np

import pytest

from napari_selfdenoise.core import presets
from napari_selfdenoise.core.config import CalibrateConfig, PredictConfig, TrainConfig
from napari_selfdenoise.core.presets import (
    CalibrateSettings,
    PredictSettings,
    PresetError,
    TrainSettings,
    load_preset,
    save_preset,
)


def test_round_trip_every_kind(tmp_path):
    cases = [
        TrainSettings(train=TrainConfig(method="n2same", steps=7, lambda_inv=1.5),
                      budget_unit="minutes", preview_every_s=2.0),
        PredictSettings(model_source="file", model_file="/m.sdmodel",
                        predict=PredictConfig(tta=True, tile_shape=(64, 64))),
        CalibrateSettings(calibrate=CalibrateConfig(denoiser="gaussian", values=[0.5, 1.0])),
    ]
    for i, settings in enumerate(cases):
        path = save_preset(tmp_path / f"p{i}", settings)
        assert path.suffix == ".json"
        doc = json.loads(path.read_text())
        assert doc["version"] == presets.PRESET_VERSION
        assert doc["kind"] == presets.kind_of(settings)
        assert load_preset(path) == settings
        assert load_preset(path, kind=doc["kind"]) == settings


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    doc = presets.preset_to_dict(TrainSettings())
    doc["settings"]["train"]["learnig_rate"] = 0.1
    with pytest.raises(PresetError) as err:
        load_preset(doc)
    text = str(err.value)
    assert "train.learnig_rate: unknown key" in text
    assert "did you mean 'learning_rate'" in text


def test_bad_values_are_listed(tmp_path):
    doc = presets.preset_to_dict(TrainSettings())
    doc["settings"]["train"]["batch_size"] = 0
    doc["settings"]["train"]["network"]["depth"] = "deep"
    with pytest.raises(PresetError) as err:
        load_preset(doc)
    assert "train.batch_size" in str(err.value)
    assert "train.network.depth" in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": 99}, "newer napari-selfdenoise"),
        ({"format": "other"}, "not a napari-selfdenoise preset"),
        ({"kind": "segment"}, "'kind' must be one of"),
        ({"extra": 1}, "unknown top-level keys"),
    ],
)
def test_header_errors(change, message):
    doc = presets.preset_to_dict(CalibrateSettings())
    doc.update(change)
    with pytest.raises(PresetError, match=message):
        load_preset(doc)


def test_wrong_kind_and_bad_files(tmp_path):
    path = save_preset(tmp_path / "cal.json", CalibrateSettings())
    with pytest.raises(PresetError, match="calibrate preset, not a train preset"):
        load_preset(path, kind="train")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PresetError, match="not valid JSON"):
        load_preset(tmp_path / "bad.json")
    with pytest.raises(PresetError, match="does not exist"):
        load_preset(tmp_path / "missing.json")


def test_expand_inputs_lists_images_in_folders(tmp_path):
    for name in ("b.tif", "a.npy", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "c.zarr").mkdir()
    got = presets.expand_inputs([tmp_path, tmp_path / "x.tif"])
    assert [p.name for p in got] == ["a.npy", "b.tif", "c.zarr", "x.tif"]


def test_run_batch_in_memory_continues_past_a_bad_input():
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.samples import phantom_2d

    good = phantom_2d((40, 40), seed=4).noisy
    inputs = [("a", good, "YX"), ("bad", np.zeros(7, np.float32)), ("c", good.T.copy())]
    settings = CalibrateSettings(calibrate=CalibrateConfig(denoiser="mean"))
    seen = []
    report = run_to_end(presets.run_batch(settings, inputs), seen.append)
    assert list(report.outputs) == ["a", "c"] and list(report.failures) == ["bad"]
    assert report.outputs["a"].shape == good.shape
    assert [p.status for p in seen if p.status != "running"] == [
        "started", "done", "started", "failed", "started", "done"]
    assert "bad" in report.summary() and "2 of 3 inputs done" in report.summary()


def test_run_batch_stop_skips_the_rest():
    import threading

    from napari_selfdenoise.core.events import run_to_end

    stop = threading.Event()
    stop.set()
    inputs = [("a", np.ones((32, 32), np.float32)), ("b", np.ones((32, 32), np.float32))]
    report = run_to_end(presets.run_batch(CalibrateSettings(), inputs, stop=stop))
    assert report.outputs == {} and set(report.failures) == {"a", "b"}
    assert report.failures["a"] == "not run: stopped"


def test_predict_preset_without_a_model_file_is_a_clear_error():
    with pytest.raises(PresetError, match="names no model file"):
        next(presets.run_batch(PredictSettings(), [("x", np.ones((8, 8)))]))
