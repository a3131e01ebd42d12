"""Pixel shuffle's training factor chosen from the data (``pd_train = "auto"``): the
noise's correlation range plus one, stored in the model as the integer, announced."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from safetensors import safe_open

from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import TrainConfig, default_config
from napari_selfdenoise.core.events import Message
from napari_selfdenoise.core.methods import METHODS
from napari_selfdenoise.core.methods.ams import AMSParams
from napari_selfdenoise.core.methods.bsn import BSNParams
from napari_selfdenoise.core.presets import TrainSettings, load_preset, save_preset
from napari_selfdenoise.core.samples import phantom_2d, phantom_correlated
from napari_selfdenoise.core.training import train

AUTO = BSNParams(pixel_shuffle=True, pd_train="auto")


def _raw(y: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(y, np.float32)[None, None]]  # (N, C, Y, X), as training holds it


def test_auto_is_a_value_of_every_pixel_shuffle_method_and_defaults_stay():
    for name, method in METHODS.items():
        if "pd_train" in method.Params.model_fields:
            p = method.Params(pd_train="auto")
            assert p.pd_train == "auto" and method.Params().pd_train == 5
            assert method.Params().pd_infer == 2 and not method.Params().pixel_shuffle
    for bad in ("x", 1, 9, "5.5"):
        with pytest.raises(ValidationError):
            BSNParams(pd_train=bad)
    with pytest.raises(ValueError, match="resolve"):
        AUTO.factors()  # unresolved: never silently a number
    assert BSNParams(pd_train="auto").factors() == (1, 1)  # off: nothing to resolve


def test_auto_resolves_to_three_on_the_3x3_phantom_and_says_so():
    params, notes = AUTO.resolve(_raw(phantom_correlated((256, 256), seed=0).noisy))
    assert params.pd_train == 3 and params.factors() == (3, 2)
    assert [lvl for _, lvl in notes] == ["info"]
    assert "training factor 3" in notes[0][0] and "lag 2" in notes[0][0]


def test_auto_on_white_noise_keeps_the_smallest_factor_and_warns():
    params, notes = AUTO.resolve(_raw(phantom_2d((256, 256), seed=0).noisy))
    assert params.pd_train == 2
    assert [lvl for _, lvl in notes] == ["info", "warning"]
    assert "pixel-independent" in notes[1][0] and "without pixel shuffle" in notes[1][0]
    assert "no lag of the noise is correlated" in notes[0][0]
    tiny, notes = AUTO.resolve(_raw(phantom_correlated((20, 20), seed=0).noisy))
    assert tiny.pd_train == 2 and "could not be measured" in notes[0][0]


def test_auto_is_clamped_and_numbers_are_kept():
    params, notes = AMSParams(pixel_shuffle=True, pd_train="auto").resolve(
        _raw(phantom_correlated((256, 256), kernel=np.ones((1, 15)), seed=1).noisy))
    assert params.pd_train == 8 and "capped at 8" in notes[-1][0]
    fixed = BSNParams(pixel_shuffle=True, pd_train=4)
    assert fixed.resolve(_raw(phantom_2d((64, 64), seed=0).noisy)) == (fixed, [])
    off = BSNParams(pd_train="auto").resolve(_raw(phantom_2d((64, 64), seed=0).noisy))
    assert off == (BSNParams(pd_train=5), [])  # pixel shuffle off: the default, silently


def test_training_stores_the_resolved_factor_in_the_model(tmp_path):
    ph = phantom_correlated((128, 128), seed=0)
    cfg = default_config("bsn", steps=2, seed=0, batch_size=2, precision="fp32",
                         network={"depth": 1, "base_filters": 4},
                         params={"method": "bsn", "noise_model": "none",
                                 "pixel_shuffle": True, "pd_train": "auto"})
    gen, said = train(ph.noisy, cfg), []
    try:
        while True:
            event = next(gen)
            if isinstance(event, Message):
                said.append(event.text)
    except StopIteration as stop:
        bundle = stop.value
    assert any(t.startswith("pixel shuffle: training factor 3") for t in said)
    assert bundle.config.params.pd_train == 3
    bundle.save(tmp_path / "m.sdmodel")
    loaded = ModelBundle.load(tmp_path / "m.sdmodel")
    assert loaded.config.params.pd_train == 3 and loaded.config.params.factors() == (3, 2)
    with safe_open(str(tmp_path / "m.sdmodel"), framework="pt") as fh:  # the file itself
        header = json.loads(fh.metadata()["napari_selfdenoise"])
    assert header["config"]["params"]["pd_train"] == 3


def test_a_preset_keeps_auto(tmp_path):
    settings = TrainSettings(train=TrainConfig(method="bsn", params={
        "method": "bsn", "pixel_shuffle": True, "pd_train": "auto", "pd_infer": 1}))
    path = save_preset(tmp_path / "p", settings)
    again = load_preset(path)
    assert again == settings and again.train.params.pd_train == "auto"
    numbers = TrainSettings(train=TrainConfig(method="ams", params={
        "method": "ams", "pixel_shuffle": True, "pd_train": 3}))
    assert load_preset(save_preset(tmp_path / "q", numbers)).train.params.pd_train == 3
