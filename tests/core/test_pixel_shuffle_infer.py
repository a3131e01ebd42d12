"""The pixel-shuffle factor at inference is a prediction setting (issue #13):
``PredictConfig.pixel_shuffle_infer`` / ``predict --pixel-shuffle-infer K`` runs the same
weights on K x K sub-images, tiles aligned to it, recorded in the output's provenance,
and refused with one line for a model trained without pixel shuffle."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from napari_selfdenoise.cli import main
from napari_selfdenoise.core import inference, io
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, PredictConfig, TrainConfig
from napari_selfdenoise.core.models import build_network
from napari_selfdenoise.core.validation import UserError

PD = {"pixel_shuffle": True}  # pd_train 5, pd_infer 2 (AP-BSN's)


def make_bundle(method: str, params: dict) -> ModelBundle:
    """Random weights of a tiny network (depth 1: size multiple 2 before the shuffle)."""
    torch.manual_seed(0)
    cfg = TrainConfig(method=method, network=NetworkConfig(depth=1, base_filters=4,
                                                           batch_norm=False),
                      params={"method": method, **params})
    net = build_network(cfg.network, 2, 1, method, cfg.params)
    return ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1,
                       norm_offset=[0.1], norm_scale=[0.5], state_dict=net.state_dict())


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return np.random.default_rng(1).normal(1.0, 0.5, (97, 110)).astype(np.float32)


def former_benchmark_path(bundle: ModelBundle, factor: int) -> ModelBundle:
    """How benchmarks/quality_methods.py's ``--also-predict pd1`` changed the factor
    before it was a prediction setting: the trained model's parameters edited."""
    new = bundle.config.params.model_copy(update={"pd_infer": factor})
    return dataclasses.replace(bundle, config=bundle.config.model_copy(update={"params": new}))


@pytest.mark.parametrize("method, params, factor", [
    ("bsn", {"noise_model": "none", **PD}, 3),
    ("bsn", {"noise_model": "none", **PD}, 1),
    ("ams", PD, 3),
])
def test_tiled_equals_untiled_with_an_overridden_factor(img, method, params, factor):
    b = make_bundle(method, params)
    whole = inference.predict_array(b, img, axes="YX", tile_shape=(512, 512),
                                    pixel_shuffle_infer=factor)
    # 160 x 176 is no multiple of 2 * 3: the plan aligns the tiles to the factor asked for
    tiled = inference.predict_array(b, img, axes="YX", tile_shape=(160, 176),
                                    pixel_shuffle_infer=factor)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    net = inference.inference_bundle(b, PredictConfig(pixel_shuffle_infer=factor)).build_model()
    assert net.size_multiple == 2 * factor


def test_factor_one_differs_from_the_trained_factor_and_matches_the_benchmark_path(img):
    b = make_bundle("bsn", {"noise_model": "none", **PD})
    own = inference.predict_array(b, img, axes="YX")
    two = inference.predict_array(b, img, axes="YX", pixel_shuffle_infer=2)
    one = inference.predict_array(b, img, axes="YX", pixel_shuffle_infer=1)
    np.testing.assert_array_equal(two, own)  # 2 is the model's own factor
    assert np.abs(one - own).max() > 1e-3  # ten times the tiling tolerance
    bench = inference.predict_array(former_benchmark_path(b, 1), img, axes="YX")
    np.testing.assert_array_equal(one, bench)
    assert b.config.params.pd_infer == 2  # the model itself is not changed


def test_a_model_without_pixel_shuffle_is_refused_in_one_line(img):
    for method in ("bsn", "n2s"):
        b = make_bundle(method, {"noise_model": "none"} if method == "bsn" else {})
        with pytest.raises(UserError, match="trained without pixel shuffle") as err:
            inference.predict_array(b, img, axes="YX", pixel_shuffle_infer=1)
        assert "\n" not in str(err.value) and f"({method})" in str(err.value)
        # None (the default) is every model's own factor
        inference.predict_array(b, img[:16, :16], axes="YX", pixel_shuffle_infer=None)
    for bad in (0, -1, 9, 1.5):
        with pytest.raises(ValidationError):
            PredictConfig(pixel_shuffle_infer=bad)


def test_cli_flag_end_to_end(img, tmp_path, capsys):
    b = make_bundle("bsn", {"noise_model": "none", **PD})
    model = b.save(tmp_path / "pd.sdmodel")
    src = tmp_path / "in.npy"
    np.save(src, img)
    out = tmp_path / "out.zarr"
    assert main(["predict", str(model), str(src), "--out", str(out), "--tile", "128", "128",
                 "--pixel-shuffle-infer", "1", "--quiet"]) == 0
    got = np.asarray(io.open_image(out)[0])
    np.testing.assert_allclose(got, inference.predict_array(b, img, axes="YX",
                                                            pixel_shuffle_infer=1), atol=1e-4)
    doc = io.read_document(out)
    prov = doc["provenance"]
    assert prov["settings"]["pixel_shuffle_infer"] == 1
    assert prov["pixel_shuffle"] == {"train": 5, "inference": 1}
    # the output carries the model that ran: the same weights, predicting at factor 1
    ran = ModelBundle.from_metadata(doc["model"])
    assert ran.config.params.pd_infer == 1 and ran.config.params.pd_train == 5
    # the same output at another factor is not resumed into (nor mixed): one line, exit 2
    capsys.readouterr()
    assert main(["predict", str(model), str(src), "--out", str(out), "--tile", "128", "128",
                 "--pixel-shuffle-infer", "2", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(io.open_image(out)[0]), got)
    # without the flag the model's own factor
    again = tmp_path / "own.npy"
    assert main(["predict", str(model), str(src), "--out", str(again), "--quiet"]) == 0
    np.testing.assert_allclose(np.load(again), inference.predict_array(b, img, axes="YX"),
                               atol=1e-4)
    # a model trained without pixel shuffle: one line naming the file, exit code 2
    plain = make_bundle("n2s", {}).save(tmp_path / "plain.sdmodel")
    capsys.readouterr()
    assert main(["predict", str(plain), str(src), "--out", str(tmp_path / "x.npy"),
                 "--pixel-shuffle-infer", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(plain) in err and "without pixel shuffle" in err
    assert not (tmp_path / "x.npy").exists()


def test_a_batch_run_records_the_factor_it_ran(img, tmp_path):
    """A Predict preset with a factor (the Batch run of the widget, ``run``): the written
    TIFF carries the model that ran and the factors in its provenance."""
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.presets import PredictSettings, run_batch

    b = make_bundle("bsn", {"noise_model": "none", **PD})
    settings = PredictSettings(predict=PredictConfig(pixel_shuffle_infer=1))
    report = run_to_end(run_batch(settings, [("a", img, "YX")], tmp_path, model=b))
    assert not report.failures
    (path,) = report.outputs.values()
    np.testing.assert_allclose(np.asarray(io.open_image(path)[0]), inference.predict_array(
        b, img, axes="YX", pixel_shuffle_infer=1), atol=1e-4)
    doc = io.read_document(path)
    assert doc["provenance"]["pixel_shuffle"] == {"train": 5, "inference": 1}
    assert ModelBundle.from_metadata(doc["model"]).config.params.pd_infer == 1
