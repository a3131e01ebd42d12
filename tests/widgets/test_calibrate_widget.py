"""Calibrate widget, end to end in a real viewer through the manifest."""

from __future__ import annotations

import numpy as np
from conftest import wait_until

from napari_selfdenoise.core.provenance import PROVENANCE_KEY
from napari_selfdenoise._widgets.calibrate_widget import CALIBRATION_KEY, CalibrateWidget


def test_calibrate_end_to_end(viewer, dock, qtbot, noisy2d):
    noisy, clean = noisy2d
    src = viewer.add_image(noisy, name="noisy", scale=(0.5, 0.5), translate=(3, 4))
    widget = dock("Calibrate")
    assert isinstance(widget, CalibrateWidget)
    assert widget.layer_combo.currentText() == "noisy"
    assert widget.axes_edit.text() == "YX"
    widget.denoiser.setCurrentIndex(widget.denoiser.findData("gaussian"))
    assert widget.run()
    assert not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    wait_until(qtbot, lambda: "noisy [gaussian]" in viewer.layers, 60)
    wait_until(qtbot, lambda: widget.run_button.isEnabled(), 10)
    out = viewer.layers["noisy [gaussian]"]
    assert out.data.shape == noisy.shape
    assert tuple(out.scale) == tuple(src.scale) and tuple(out.translate) == tuple(src.translate)
    report = out.metadata[CALIBRATION_KEY]
    assert report["denoiser"] == "gaussian" and report["parameter"] == "sigma"
    assert out.metadata[PROVENANCE_KEY]["source"] == "noisy"
    # the chosen point is the minimum of the plotted curve and is marked
    _, xs, ys = widget.plot.curves["gaussian"]
    assert widget.plot.best == ("gaussian", xs[int(np.argmin(ys))], min(ys))
    # calibration denoises: closer to the ground truth than the noisy input
    assert np.mean((out.data - clean) ** 2) < np.mean((noisy - clean) ** 2)


def test_custom_range_round_trips_and_bad_range_is_a_message(viewer, dock, tmp_path):
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    widget = dock("Calibrate")
    widget.denoiser.setCurrentIndex(widget.denoiser.findData("median"))
    widget.auto_range.setChecked(False)
    widget.range_from.setValue(1)
    widget.range_to.setValue(4)
    widget.range_n.setValue(4)
    widget.range_log.setChecked(False)
    settings = widget.settings()
    assert settings.calibrate.values == [1.0, 2.0, 3.0, 4.0]
    path = widget.save_preset(tmp_path / "cal.json")
    widget.denoiser.setCurrentIndex(0)
    widget.auto_range.setChecked(True)
    assert widget.load_preset(path) == settings
    assert widget.settings() == settings
    widget.range_to.setValue(0.5)  # below "from": a clear message, no exception
    assert widget.guarded(widget.run) is None
    assert "range needs from < to" in widget.status.text()


def test_batch_over_selected_layers_adds_one_layer_each(viewer, dock, qtbot, noisy2d):
    noisy, _ = noisy2d
    a = viewer.add_image(noisy, name="a")
    b = viewer.add_image(noisy[::-1].copy(), name="b", scale=(2, 2))
    viewer.add_image(noisy, name="not selected")
    widget = dock("Calibrate")
    widget.denoiser.setCurrentIndex(widget.denoiser.findData("mean"))
    viewer.layers.selection = {a, b}
    widget._batch_layers_clicked()
    wait_until(qtbot, lambda: hasattr(widget, "last_batch_report"), 60)
    assert sorted(widget.last_batch_report.outputs) == ["a", "b"]
    assert "a [mean]" in viewer.layers and "b [mean]" in viewer.layers
    assert "not selected [mean]" not in viewer.layers
    assert tuple(viewer.layers["b [mean]"].scale) == (2, 2)
    assert PROVENANCE_KEY in viewer.layers["a [mean]"].metadata


def test_batch_into_a_folder_asks_before_replacing_outputs(viewer, dock, qtbot, noisy2d,
                                                           tmp_path, monkeypatch):
    """The widget's --overwrite: existing outputs are replaced only when the user says so."""
    import tifffile
    from qtpy.QtWidgets import QMessageBox

    from napari_selfdenoise.core.presets import expand_inputs

    noisy, _ = noisy2d
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    tifffile.imwrite(src / "img.tif", noisy)
    earlier = out / "img_mean.tif"
    earlier.write_bytes(b"an earlier result")
    widget = dock("Calibrate")
    widget.denoiser.setCurrentIndex(widget.denoiser.findData("mean"))
    answers = []

    def ask(*args, **kwargs):
        answers.append(args[2])
        return QMessageBox.StandardButton.No if len(answers) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", ask)
    assert not widget.batch_to_folder(expand_inputs([src]), str(out))  # "No": nothing runs
    assert earlier.read_bytes() == b"an earlier result" and "cancelled" in widget.status.text()
    assert widget.batch_to_folder(expand_inputs([src]), str(out))  # "Yes": replaced
    wait_until(qtbot, lambda: hasattr(widget, "last_batch_report"), 60)
    assert "1 output file(s)" in answers[0] and "img_mean.tif" in answers[0]
    assert sorted(widget.last_batch_report.outputs) == ["img.tif"]
    assert tifffile.imread(earlier).shape == noisy.shape
