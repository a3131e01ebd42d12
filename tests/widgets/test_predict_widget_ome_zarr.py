"""OME-Zarr in a real viewer: an OME-Zarr image opened through our reader (multiscale,
with its geometry) is denoised by the Predict widget into an OME-Zarr output, which comes
back as a lazy multiscale layer with the same scale, translation and units."""

from __future__ import annotations

import numpy as np
import zarr
from conftest import wait_until

from napari_selfdenoise.core import ome_zarr as ome
from napari_selfdenoise.core.inference import predict_array


def _two_level_input(path, data):
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    fmt = FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    levels = [data, ome.downsample_mean(data, (1, 2, 2))]
    datasets = []
    for i, lev in enumerate(levels):
        group.create_array(str(i), shape=lev.shape, dtype="f4", chunks=(1, 32, 32),
                           dimension_names=("t", "y", "x"))[...] = lev
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.5 * 2**i, 0.5 * 2**i]},
            {"type": "translation", "translation": [0.0, 3.0, 1.0]}]})
    axes = [{"name": "t", "type": "time"}, {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes, name="cells")


def test_ome_zarr_in_and_out_of_the_predict_widget(viewer, dock, qtbot, tiny_bundle, tmp_path):
    stack = np.random.default_rng(0).poisson(5, (2, 70, 66)).astype(np.float32)
    _two_level_input(tmp_path / "in.ome.zarr", stack)
    [layer] = viewer.open(str(tmp_path / "in.ome.zarr"), plugin="napari-selfdenoise")
    assert layer.multiscale and len(layer.data) == 2
    assert tuple(layer.scale) == (1.0, 0.5, 0.5) and tuple(layer.translate) == (0.0, 3.0, 1.0)
    path = tmp_path / "model.sdmodel"
    tiny_bundle.save(path)
    widget = dock("Predict")
    widget.model_combo.setCurrentText("model file…")
    widget.model_file.setText(str(path))
    widget.layer_combo.setCurrentText("cells")
    widget.output.setCurrentIndex(widget.output.findData("ome-zarr"))
    assert widget.ome_version.isEnabled()
    widget.zarr_path.setText(str(tmp_path / "out.zarr"))
    assert widget.guarded(widget.run) is None  # not an OME-Zarr name: one clear line
    assert ".ome.zarr" in widget.status.text()
    widget.zarr_path.setText(str(tmp_path / "out.ome.zarr"))
    widget.auto_tiles.setChecked(False)
    widget.tile_shape.setText("48, 48")
    assert widget.axes_edit.text() == "TYX"
    assert widget.run()
    wait_until(qtbot, lambda: "cells [n2v]" in viewer.layers, 60)
    out = viewer.layers["cells [n2v]"]
    assert out.multiscale and len(out.data) >= 2
    assert not isinstance(out.data[0], np.ndarray)  # lazy
    assert tuple(out.scale) == tuple(layer.scale)
    assert tuple(out.translate) == tuple(layer.translate)
    np.testing.assert_allclose(np.asarray(out.data[0][1]),
                               predict_array(tiny_bundle, stack[1], axes="YX",
                                             tile_shape=(48, 48)), rtol=1e-4, atol=1e-4)
    found = ome.read_metadata(tmp_path / "out.ome.zarr")
    assert found[0] == "TYX" and found[1].scale == {"T": 1.0, "Y": 0.5, "X": 0.5}
    assert found[1].units == {"Y": "micrometer", "X": "micrometer"}


def test_ome_zarr_settings_survive_the_form(viewer, dock):
    from napari_selfdenoise.core.config import PredictConfig
    from napari_selfdenoise.core.presets import PredictSettings

    widget = dock("Predict")
    preset = PredictSettings(model_source="file", model_file="m.sdmodel", output="ome-zarr",
                             zarr_path="d.ome.zarr",
                             predict=PredictConfig(ome_zarr_version="0.4"))
    widget.set_settings(preset)
    assert widget.settings() == preset
    assert widget.ome_version.isEnabled() and widget.zarr_path.isEnabled()
    widget.output.setCurrentIndex(widget.output.findData("layer"))
    assert not widget.ome_version.isEnabled() and not widget.zarr_path.isEnabled()
