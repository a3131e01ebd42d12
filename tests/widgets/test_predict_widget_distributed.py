"""Predict widget on local dask workers: a file-backed layer into a zarr store, progress
streamed; layers without a file and in-memory outputs refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_until

from napari_selfdenoise.core import io
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.events import TileDone
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.presets import PredictSettings

pytest.importorskip("distributed")


def _form(widget, model, out):
    widget.model_combo.setCurrentText("model file…")
    widget.model_file.setText(str(model))
    widget.output.setCurrentIndex(widget.output.findData("zarr"))
    widget.zarr_path.setText(str(out))
    widget.auto_tiles.setChecked(False)
    widget.tile_shape.setText("32, 32")
    widget.batch.setValue(1)
    widget.run_on.setCurrentIndex(widget.run_on.findData("workers"))
    widget.n_workers.setValue(2)


def test_a_file_layer_runs_on_local_workers(viewer, dock, qtbot, tiny_bundle, tmp_path):
    stack = np.random.default_rng(0).poisson(5, (3, 40, 48)).astype(np.float32)
    src = tmp_path / "stack.tif"  # a file our reader opens (it carries our document)
    io.write_tiff_atomic(src, stack, axes="TYX", document=io.make_document(axes="TYX"))
    layer = viewer.open(str(src), plugin="napari-selfdenoise")[0]
    model = tiny_bundle.save(tmp_path / "m.sdmodel")
    widget = dock("Predict")
    widget.layer_combo.setCurrentText(layer.name)
    _form(widget, model, tmp_path / "out.zarr")
    assert widget.settings().predict.workers == 2
    seen = []
    original = widget._on_event
    widget._on_event = lambda ev: (seen.append(ev), original(ev))
    assert widget.run()
    name = f"{layer.name} [n2v]"
    wait_until(qtbot, lambda: name in viewer.layers, 120)
    out = viewer.layers[name]
    expected = predict_array(tiny_bundle, stack, axes="TYX", tile_shape=(32, 32), batch_size=1)
    np.testing.assert_array_equal(np.asarray(out.data), expected)
    assert any(isinstance(e, TileDone) and e.block is not None for e in seen)  # streamed
    assert "tile" in widget.status.text() or "done" in widget.status.text()


def test_what_workers_cannot_do_is_one_line(viewer, dock, tiny_bundle, tmp_path):
    viewer.add_image(np.zeros((2, 32, 32), np.float32), name="mem")
    model = tiny_bundle.save(tmp_path / "m.sdmodel")
    widget = dock("Predict")
    widget.layer_combo.setCurrentText("mem")
    _form(widget, model, tmp_path / "o.zarr")
    assert widget.guarded(widget.run) is None
    assert "not opened from a file" in widget.status.text()
    widget.output.setCurrentIndex(widget.output.findData("layer"))
    assert widget.guarded(widget.run) is None
    assert "zarr store" in widget.status.text()


def test_the_cluster_choice_survives_the_form(viewer, dock):
    widget = dock("Predict")
    for cfg in (PredictConfig(workers=3), PredictConfig(scheduler="tcp://10.0.0.1:8786"),
                PredictConfig()):
        preset = PredictSettings(predict=cfg)
        widget.set_settings(preset)
        assert widget.settings().predict == preset.predict


def test_a_file_layer_runs_on_local_workers_into_ome_zarr(viewer, dock, qtbot, tiny_bundle,
                                                         tmp_path):
    """The 'OME-Zarr on disk' output with local workers: a multiscale layer whose full
    resolution equals the single-process prediction."""
    stack = np.random.default_rng(1).poisson(5, (2, 40, 48)).astype(np.float32)
    src = tmp_path / "stack.tif"
    io.write_tiff_atomic(src, stack, axes="TYX", document=io.make_document(axes="TYX"))
    layer = viewer.open(str(src), plugin="napari-selfdenoise")[0]
    model = tiny_bundle.save(tmp_path / "m.sdmodel")
    widget = dock("Predict")
    widget.layer_combo.setCurrentText(layer.name)
    _form(widget, model, tmp_path / "out.ome.zarr")
    widget.output.setCurrentIndex(widget.output.findData("ome-zarr"))
    assert widget.run()
    name = f"{layer.name} [n2v]"
    wait_until(qtbot, lambda: name in viewer.layers, 120)
    out = viewer.layers[name]
    expected = predict_array(tiny_bundle, stack, axes="TYX", tile_shape=(32, 32), batch_size=1)
    assert out.multiscale
    np.testing.assert_array_equal(np.asarray(out.data[0]), expected)
