"""Settings reject unknown keys and bad values with messages that name the problem."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from napari_selfdenoise.core.config import (
    METHOD_NAMES,
    CalibrateConfig,
    MaskingConfig,
    Method,
    NetworkConfig,
    PredictConfig,
    TrainConfig,
)


def test_defaults_are_valid_and_documented():
    cfg = TrainConfig()
    assert cfg.method == "n2s" and cfg.network.arch == "unet"  # methods.DEFAULT_METHOD
    assert set(METHOD_NAMES) == set(typing.get_args(Method))
    for model in (TrainConfig, NetworkConfig, MaskingConfig, PredictConfig, CalibrateConfig):
        assert model.model_config["extra"] == "forbid"


@pytest.mark.parametrize(
    "model, kwargs, where",
    [
        (TrainConfig, {"stepz": 10}, "stepz"),
        (TrainConfig, {"network": {"depthh": 3}}, "network.depthh"),
        (TrainConfig, {"masking": {"grid_size": 3}}, "masking.grid_size"),
        (PredictConfig, {"tile": 64}, "tile"),
        (CalibrateConfig, {"denoisers": "tv"}, "denoisers"),
    ],
)
def test_unknown_keys_are_rejected_by_name(model, kwargs, where):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted") as err:
        model(**kwargs)
    assert where in str(err.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "n3v"}, "method"),
        ({"batch_size": 0}, "batch_size"),
        ({"steps": 0}, "steps"),
        ({"time_budget_s": -1}, "time_budget_s"),
        ({"learning_rate": 2.0}, "learning_rate"),
        ({"val_fraction": 0.5}, "val_fraction"),
        ({"precision": "fp8"}, "precision"),
        ({"axes": "YXQ"}, "unknown letters"),
        ({"axes": "ZY"}, "must contain both Y and X"),
        ({"patch_size": (64,)}, "2 \\(YX\\) or 3 \\(ZYX\\) entries"),
        ({"patch_size": (64, 4)}, "at least 8"),
        ({"network": {"depth": 0}}, "network.depth"),
        ({"network": {"arch": "resnet"}}, "network.arch"),
        ({"masking": {"neighbourhood": 4}}, "must be odd"),
        ({"masking": {"struct_span": 6}}, "must be odd"),
        ({"masking": {"masked_fraction": 0}}, "masking.masked_fraction"),
        ({"masking": {"grid": 1}}, "masking.grid"),
        ({"normalization": {"pmin": 60}}, "normalization.pmin"),
    ],
)
def test_bad_train_values_are_rejected(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        TrainConfig(**kwargs)


def test_assignment_is_validated():
    cfg = TrainConfig()
    with pytest.raises(ValidationError, match="batch_size"):
        cfg.batch_size = 0
    with pytest.raises(ValidationError, match="Object has no attribute|Extra|no field"):
        cfg.stepz = 3
    cfg.axes = "tyx"
    assert cfg.axes == "TYX"


@pytest.mark.parametrize(
    "model, kwargs, message",
    [
        (PredictConfig, {"batch_size": 0}, "batch_size"),
        (PredictConfig, {"memory_budget_mb": 0}, "memory_budget_mb"),
        (PredictConfig, {"border": (-8, 16)}, "border needs one integer >= 0"),
        (PredictConfig, {"overlap": (-1, 4)}, "overlap needs one integer >= 0"),
        (PredictConfig, {"tile_shape": (0, 64)}, "tile_shape needs one integer >= 1"),
        (PredictConfig, {"border": ()}, "border needs"),
        (CalibrateConfig, {"crop": 16}, "crop"),
    ],
)
def test_bad_predict_and_calibrate_values(model, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        model(**kwargs)


@pytest.mark.parametrize(
    "method, expected", [("n2v", "random"), ("n2v2", "median"), ("n2s", "interpolate"),
                         ("n2same", "interpolate")],
)
def test_replacement_follows_the_method(method, expected):
    assert TrainConfig(method=method).replacement() == expected
    assert TrainConfig(method=method, masking={"replacement": "zero"}).replacement() == "zero"


def test_json_round_trip_is_exact():
    cfg = TrainConfig(method="n2same", axes="tzyx", patch_size=(16, 32, 32), lambda_inv=1.5,
                      network={"depth": 3, "n2v2": True}, masking={"struct_axis": "x"})
    again = TrainConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg
    assert again.patch_size == (16, 32, 32) and again.axes == "TZYX"
