"""Train widget: the method list and per-method rows come from the registry and the
methods' parameter models; Noise2Noise trains towards a second layer."""

from __future__ import annotations

import numpy as np
from conftest import wait_until

from napari_selfdenoise._widgets.train_widget import TrainWidget
from napari_selfdenoise.core.bundle import METADATA_KEY, ModelBundle
from napari_selfdenoise.core.methods import METHODS
from napari_selfdenoise.core.presets import TrainSettings


def pick(widget: TrainWidget, method: str) -> None:
    o = widget.options
    o.method.setCurrentIndex(o.method.findData(method))


def test_method_list_and_generated_rows(viewer, dock):
    widget = dock("Train")
    o = widget.options
    assert [o.method.itemData(i) for i in range(o.method.count())] == list(METHODS)
    gamma = o.method_params["ne2ne"]["gamma"]
    info = METHODS["ne2ne"].Params.model_fields["gamma"]
    assert gamma.toolTip() == info.description
    assert (gamma.minimum(), gamma.maximum()) == (0.0, 20.0) and gamma.value() == 2.0
    masks = o.method_params["ams"]["n_masks"]
    assert (masks.minimum(), masks.maximum()) == (2, 8)
    for name, method in METHODS.items():
        pick(widget, name)
        assert o.method_help.text() == method.help
        for other, widgets in o.method_params.items():
            for w in widgets.values():
                assert o._form.isRowVisible(w) == (other == name)
        assert o._form.isRowVisible(o.grid) == ("masking.grid" in method.settings)
        assert o._form.isRowVisible(o.target_layer) == method.needs_target
    pick(widget, "ams")
    masks.setValue(3)
    settings = widget.settings()
    assert settings.train.params.n_masks == 3
    again = TrainSettings.model_validate(settings.model_dump())
    pick(widget, "n2v")
    widget.set_settings(again)
    assert o.method.currentData() == "ams" and masks.value() == 3
    # bsn: its noise model and the pixel-shuffle switch are generated rows too
    pick(widget, "bsn")
    o.method_params["bsn"]["noise_model"].setCurrentIndex(
        o.method_params["bsn"]["noise_model"].findData("gaussian"))
    o.method_params["bsn"]["pixel_shuffle"].setChecked(True)
    params = widget.settings().train.params
    assert (params.noise_model, params.factors()) == ("gaussian", (5, 2))
    # the method's own defaults are shown (and run): new bsn models replicate the edge
    assert params.padding == "replicate"
    # pd_train: a spin box whose lowest position is "auto" (chosen from the data)
    pd = o.method_params["bsn"]["pd_train"]
    assert (pd.minimum(), pd.maximum(), pd.value()) == (1, 8, 5)
    assert pd.specialValueText() == "auto" and pd.text() == "5"
    pd.setValue(pd.minimum())
    assert pd.text() == "auto"
    chosen = widget.settings()
    assert chosen.train.params.pd_train == "auto" and chosen.train.params.pd_infer == 2
    pd.setValue(3)
    assert widget.settings().train.params.pd_train == 3
    widget.set_settings(TrainSettings.model_validate(chosen.model_dump()))
    assert pd.text() == "auto" and widget.settings().train.params.pd_train == "auto"


def test_noise2noise_trains_towards_a_second_layer(viewer, dock, qtbot, noisy2d):
    noisy, _ = noisy2d
    viewer.add_image(noisy, name="first")
    viewer.add_image(noisy[::-1].copy(), name="second")
    widget = dock("Train")
    widget.layer_combo.setCurrentText("first")
    pick(widget, "n2n")
    o = widget.options
    names = [o.target_layer.itemData(i) for i in range(o.target_layer.count())]
    assert names == [None, "first", "second"]
    o.target_layer.setCurrentIndex(o.target_layer.findData("second"))
    o.budget.setValue(4)
    o.patch.setText("32, 32")
    o.batch.setValue(2)
    o.depth.setValue(1)
    o.filters.setValue(4)
    o.preview.setChecked(False)
    assert widget.start()
    wait_until(qtbot, lambda: "first [n2n]" in viewer.layers, 90)
    bundle = ModelBundle.from_metadata(viewer.layers["first [n2n]"].metadata[METADATA_KEY])
    assert bundle.method == "n2n"
    assert np.isfinite(viewer.layers["first [n2n]"].data).all()


def test_a_preset_keeps_the_settings_the_form_has_no_control_for(viewer, dock):
    """The weight average has a control; clock, channels_last and val_every have none, and
    a loaded preset's values for them survive a round trip through the form."""
    widget = dock("Train")
    base = widget.settings()
    train = base.train.model_copy(update={"ema": 0.99, "clock": "cpu", "val_every": 7,
                                          "channels_last": False})
    widget.set_settings(base.model_copy(update={"train": train}))
    assert widget.options.ema.value() == 0.99
    back = widget.settings().train
    assert (back.ema, back.clock, back.val_every, back.channels_last) == (0.99, "cpu", 7, False)
    widget.options.ema.setValue(0.0)
    assert widget.settings().train.ema == 0.0
