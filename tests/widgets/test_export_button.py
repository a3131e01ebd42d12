"""The Train widget's "Export bioimage.io…" button and the Predict widget loading the
package, in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import wait_until

from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.models import build_network

pytest.importorskip("bioimageio.core")


def _bundle() -> ModelBundle:
    torch.manual_seed(0)
    cfg = TrainConfig(method="n2v", network=NetworkConfig(depth=1, base_filters=4))
    net = build_network(cfg.network, 2, 1, "n2v")
    return ModelBundle(config=cfg, axes="YX", spatial_dims=2, n_channels=1,
                       norm_offset=[0.5], norm_scale=[0.2], state_dict=net.state_dict())


def test_export_button_writes_a_tested_package(viewer, dock, qtbot, tmp_path, noisy2d,
                                               monkeypatch):
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFileDialog

    viewer.add_image(noisy2d[0], name="noisy")
    widget = dock("Train")
    assert not widget.export_button.isEnabled()  # no model yet
    widget.bundle, widget.bundle_source = _bundle(), "noisy"  # as after a training run
    widget._set_running(False)
    assert widget.export_button.isEnabled()
    out = tmp_path / "noisy_n2v.zip"
    # the save dialog is modal: answer it with the path a user would pick
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(out), "")))
    qtbot.mouseClick(widget.export_button, Qt.LeftButton)
    wait_until(qtbot, lambda: getattr(widget, "last_export", None) is not None, 240)
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 10)
    assert out.is_file() and "test passed" in widget.status.text()
    loaded = ModelBundle.load(out)
    np.testing.assert_array_equal(predict_array(loaded, noisy2d[0]),
                                  predict_array(widget.bundle, noisy2d[0]))
    import zipfile

    with zipfile.ZipFile(out) as zf:  # the training layer gave the test image
        x = np.load(zf.open("test_input.npy"))
        assert "a crop of `noisy`" in zf.read("README.md").decode()
    np.testing.assert_array_equal(x[0, 0], noisy2d[0][:, :])
    # the Predict widget takes the package as its model file: identical to the original
    predict = dock("Predict")
    predict.model_combo.setCurrentText("model file…")
    predict.model_file.setText(str(out))
    predict.layer_combo.setCurrentText("noisy")
    assert predict.run()
    wait_until(qtbot, lambda: "noisy [n2v]" in viewer.layers, 60)
    np.testing.assert_array_equal(viewer.layers["noisy [n2v]"].data,
                                  predict_array(widget.bundle, noisy2d[0]))
    wait_until(qtbot, lambda: predict.run_button.isEnabled(), 10)


def test_export_to_a_bad_name_is_a_message(viewer, dock, qtbot, tmp_path):
    widget = dock("Train")
    widget.bundle, widget.bundle_source = _bundle(), "gone"
    widget.guarded(lambda: widget.export_bioimageio(str(tmp_path / "model.tar")))
    wait_until(qtbot, lambda: widget.start_button.isEnabled(), 30)
    assert "bioimage.io package is a .zip" in widget.status.text()
    assert not list(tmp_path.iterdir())
