"""Catalogue, class 10: the napari writers never replace what they did not write and
round-trip RGB, axes and scale; the reader never raises on hostile files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from _reliability import digest


def _roundtrip(path, data, meta):
    from napari_selfdenoise import _reader, _writer

    writer = _writer.write_tiff if str(path).endswith(".tif") else _writer.write_zarr
    writer(str(path), data, meta)
    [(back, attrs, kind)] = _reader.get_reader(str(path))(str(path))
    return np.asarray(back), attrs


def test_rgb_layer_tiff_reopens_as_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    back, attrs = _roundtrip(tmp_path / "rgb.tif", rgb, {"name": "rgb", "rgb": True,
                                                         "scale": [0.5, 0.25]})
    assert back.shape == (24, 32, 3) and attrs["rgb"] is True
    np.testing.assert_array_equal(back, rgb)
    assert attrs["scale"] == [0.5, 0.25]


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_axes_and_scale_round_trip(tmp_path, suffix):
    stack = np.random.default_rng(1).random((3, 16, 20)).astype(np.float32)
    meta = {"name": "s", "scale": [2.0, 0.5, 0.5], "axis_labels": ["T", "Y", "X"]}
    back, attrs = _roundtrip(tmp_path / f"s{suffix}", stack, meta)
    np.testing.assert_array_equal(back, stack)
    assert attrs["scale"] == [2.0, 0.5, 0.5] and attrs["axis_labels"] == ["T", "Y", "X"]


def test_writer_refuses_to_replace_a_foreign_tiff(tmp_path):
    from napari_selfdenoise import _writer
    from napari_selfdenoise.core.outputs import OutputError

    foreign = tmp_path / "theirs.tif"
    tifffile.imwrite(foreign, np.ones((8, 8), np.uint8))
    before = digest(foreign)
    with pytest.raises(OutputError, match="not written by napari-selfdenoise"):
        _writer.write_tiff(str(foreign), np.zeros((8, 8), np.float32), {})
    assert digest(foreign) == before


def test_write_zarr_onto_a_plain_folder_keeps_what_it_held(tmp_path):
    from napari_selfdenoise import _writer
    from napari_selfdenoise.core.outputs import OutputError

    folder = tmp_path / "results.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not written by napari-selfdenoise"):
        _writer.write_zarr(str(folder), np.zeros((8, 8), np.float32), {})
    assert (folder / "notes.txt").read_text() == "keep me"


def test_writer_replaces_its_own_file(tmp_path):
    from napari_selfdenoise import _writer

    path = tmp_path / "mine.tif"
    _writer.write_tiff(str(path), np.zeros((8, 8), np.float32), {})
    _writer.write_tiff(str(path), np.ones((8, 8), np.float32), {})
    assert tifffile.imread(path).max() == 1


def test_reader_declines_a_zarr_with_deeply_nested_attributes(tmp_path):
    from napari_selfdenoise import _reader

    store = tmp_path / "deep.zarr"
    import zarr

    zarr.create_array(store, data=np.zeros((8, 8), np.float32))
    meta = (store / "zarr.json").read_text()
    (store / "zarr.json").write_text(meta[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}")
    assert _reader.get_reader(str(store)) is None
