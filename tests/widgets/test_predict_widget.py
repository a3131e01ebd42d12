"""Predict widget, end to end in a real viewer through the manifest."""

from __future__ import annotations

import numpy as np
from conftest import wait_until

from napari_selfdenoise._widgets import _common
from napari_selfdenoise._widgets.predict_widget import LAYER_PREFIX, PredictWidget
from napari_selfdenoise.core.bundle import METADATA_KEY, ModelBundle
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.presets import PredictSettings
from napari_selfdenoise.core.provenance import PROVENANCE_KEY


def test_model_from_one_layers_metadata_predicts_on_another(viewer, dock, qtbot, tiny_bundle,
                                                            noisy2d):
    viewer.add_image(np.zeros((8, 8), np.float32), name="A [n2v]",
                     metadata={METADATA_KEY: tiny_bundle.to_metadata()})
    noisy, _ = noisy2d
    target = viewer.add_image(noisy, name="B", scale=(2, 2), translate=(1, 1))
    widget = dock("Predict")
    assert isinstance(widget, PredictWidget)
    items = [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    assert LAYER_PREFIX + "A [n2v]" in items
    widget.model_combo.setCurrentText(LAYER_PREFIX + "A [n2v]")
    widget.layer_combo.setCurrentText("B")
    assert widget.run()
    assert not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    wait_until(qtbot, lambda: "B [n2v]" in viewer.layers, 60)
    wait_until(qtbot, lambda: widget.run_button.isEnabled(), 10)
    out = viewer.layers["B [n2v]"]
    assert tuple(out.scale) == tuple(target.scale)
    assert tuple(out.translate) == tuple(target.translate)
    np.testing.assert_allclose(out.data, predict_array(tiny_bundle, noisy, axes="YX"),
                               rtol=1e-4, atol=1e-4)
    prov = out.metadata[PROVENANCE_KEY]
    assert prov["operation"] == "predict" and prov["settings"]["model_name"] == "A [n2v]"
    assert prov["execution"]["precision"] == "fp32" and prov["execution"]["device"] == "cpu"
    again = ModelBundle.from_metadata(out.metadata[METADATA_KEY])
    assert again.config == tiny_bundle.config


def test_zarr_output_is_opened_back_lazily(viewer, dock, qtbot, tiny_bundle, tmp_path):
    stack = np.random.default_rng(0).poisson(5, (5, 40, 40)).astype(np.float32)
    viewer.add_image(stack, name="stack")
    path = tmp_path / "model.sdmodel"
    tiny_bundle.save(path)
    widget = dock("Predict")
    widget.model_combo.setCurrentText("model file…")
    widget.model_file.setText(str(path))
    widget.output.setCurrentIndex(widget.output.findData("zarr"))
    widget.zarr_path.setText(str(tmp_path / "out.zarr"))
    widget.auto_tiles.setChecked(False)
    widget.tile_shape.setText("32, 32")
    widget.border.setText("0, 0")
    assert widget.settings().predict.border == (0, 0)
    assert widget.axes_edit.text() == "TYX"
    assert widget.run()
    wait_until(qtbot, lambda: "stack [n2v]" in viewer.layers, 60)
    out = viewer.layers["stack [n2v]"]
    assert not isinstance(out.data, np.ndarray)  # a lazy zarr array
    assert out.data.shape == stack.shape
    np.testing.assert_allclose(np.asarray(out.data[1]),
                               predict_array(tiny_bundle, stack[1], axes="YX", border=(0, 0)),
                               rtol=1e-3, atol=1e-3)
    # the store exists now: running again without 'overwrite' is a clear message
    wait_until(qtbot, lambda: widget.run_button.isEnabled(), 10)
    assert widget.guarded(widget.run) is None
    assert "tick 'overwrite'" in widget.status.text()


def test_session_model_and_mistakes(viewer, dock, tiny_bundle, tmp_path):
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    widget = dock("Predict")
    _common.SESSION.models.clear()
    widget.model_combo.setCurrentText("model file…")
    widget.model_file.setText(str(tmp_path / "missing.sdmodel"))
    assert widget.guarded(widget.run) is None
    assert "does not exist" in widget.status.text()
    _common.SESSION.add("img [n2v]", tiny_bundle)  # as the Train widget does
    assert widget.model_combo.itemText(0) == "trained: img [n2v]"
    widget.model_combo.setCurrentIndex(0)
    assert widget.load_model(widget.settings()) is tiny_bundle
    preset = widget.save_preset(tmp_path / "p.json")
    widget.tta.setChecked(True)
    assert widget.load_preset(preset) == widget.settings()
    assert not widget.tta.isChecked()
    _common.SESSION.models.clear()


def test_batch_over_selected_layers_with_the_session_model(viewer, dock, qtbot, tiny_bundle):
    rng = np.random.default_rng(1)
    a = viewer.add_image(rng.poisson(4, (40, 40)).astype(np.float32), name="a")
    b = viewer.add_image(rng.poisson(4, (48, 32)).astype(np.float32), name="b")
    widget = dock("Predict")
    _common.SESSION.add("model [n2v]", tiny_bundle)
    widget.model_combo.setCurrentText("trained: model [n2v]")
    viewer.layers.selection = {a, b}
    widget._batch_layers_clicked()
    wait_until(qtbot, lambda: hasattr(widget, "last_batch_report"), 60)
    assert not widget.last_batch_report.failures
    for name, layer in (("a", a), ("b", b)):
        out = viewer.layers[f"{name} [n2v]"]
        np.testing.assert_allclose(out.data, predict_array(tiny_bundle, layer.data, axes="YX"),
                                   rtol=1e-4, atol=1e-4)
    _common.SESSION.models.clear()


def test_every_predict_setting_survives_the_form(viewer, dock):
    """A preset's settings come back unchanged from the widget, the memory budget included
    (it has no field), and Defaults clears them."""
    widget = dock("Predict")
    preset = PredictSettings(model_source="file", model_file="m.sdmodel", axes="TYX",
                             predict=PredictConfig(tile_shape=(64, 64), overlap=(32, 40),
                                                   border=(4, 8), batch_size=3,
                                                   memory_budget_mb=300, tta=True, r3=True,
                                                   pixel_shuffle_infer=3, precision="fp32",
                                                   device="cpu"))
    widget.set_settings(preset)
    assert widget.settings() == preset
    widget.set_settings(PredictSettings())
    assert widget.settings().predict == PredictConfig()


def test_pixel_shuffle_factor_follows_the_model(viewer, dock, qtbot, tiny_bundle, noisy2d):
    """The factor box is enabled for a model trained with pixel shuffle (showing its own
    factor), the layer carries the factor that ran, and a model without pixel shuffle
    disables the box and sets it back to "as trained"."""
    import torch

    from napari_selfdenoise.core.config import TrainConfig
    from napari_selfdenoise.core.models import build_network

    torch.manual_seed(0)
    cfg = TrainConfig(method="bsn", network={"depth": 1, "base_filters": 4},
                      params={"method": "bsn", "noise_model": "none", "pixel_shuffle": True})
    net = build_network(cfg.network, 2, 1, "bsn", cfg.params)
    pd = ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1, norm_offset=[0.0],
                     norm_scale=[1.0], state_dict=net.state_dict())
    noisy, _ = noisy2d
    viewer.add_image(noisy, name="img")
    widget = dock("Predict")
    _common.SESSION.add("plain [n2v]", tiny_bundle)
    _common.SESSION.add("pd [bsn]", pd)
    widget.model_combo.setCurrentText("trained: pd [bsn]")
    box = widget.pixel_shuffle
    assert box.isEnabled() and box.specialValueText() == "as trained (2)"
    assert widget.settings().predict.pixel_shuffle_infer is None
    box.setValue(1)
    assert widget.settings().predict.pixel_shuffle_infer == 1
    assert widget.run()
    wait_until(qtbot, lambda: "img [bsn]" in viewer.layers, 60)
    wait_until(qtbot, lambda: widget.run_button.isEnabled(), 10)
    out = viewer.layers["img [bsn]"]
    np.testing.assert_allclose(out.data, predict_array(pd, noisy, axes="YX",
                                                       pixel_shuffle_infer=1), atol=1e-4)
    prov = out.metadata[PROVENANCE_KEY]
    assert prov["pixel_shuffle"] == {"train": 5, "inference": 1}
    assert prov["settings"]["predict"]["pixel_shuffle_infer"] == 1
    assert ModelBundle.from_metadata(out.metadata[METADATA_KEY]).config.params.pd_infer == 1
    assert box.isEnabled()
    widget.model_combo.setCurrentText("trained: plain [n2v]")
    assert not box.isEnabled() and widget.settings().predict.pixel_shuffle_infer is None
    _common.SESSION.models.clear()
