"""Lazy input and atomic output of core.io."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfdenoise.core import io



@pytest.fixture
def stack() -> np.ndarray:
    return (np.arange(5 * 40 * 24) % 977).astype(np.uint16).reshape(5, 40, 24)


def test_uncompressed_tiff_is_memory_mapped_read_only(tmp_path, stack):
    tifffile.imwrite(tmp_path / "a.tif", stack, metadata={"axes": "ZYX"})
    arr, axes = io.open_image(tmp_path / "a.tif")
    assert isinstance(arr, np.memmap) and not arr.flags.writeable
    assert axes == "ZYX"
    np.testing.assert_array_equal(arr, stack)


def test_compressed_imagej_tiff_opens_page_by_page(tmp_path, stack):
    tifffile.imwrite(tmp_path / "b.tif", stack, imagej=True, compression="zlib",
                     metadata={"axes": "TYX"})
    arr, axes = io.open_image(tmp_path / "b.tif")
    assert isinstance(arr, zarr.Array)
    assert arr.chunks[0] == 1  # one page per read
    assert axes == "TYX"
    np.testing.assert_array_equal(arr[2], stack[2])


def test_rgb_samples_map_to_channels(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    _, axes = io.open_image(tmp_path / "rgb.tif")
    assert axes == "YXC"


def test_npy_is_memory_mapped(tmp_path, stack):
    np.save(tmp_path / "c.npy", stack)
    arr, axes = io.open_image(tmp_path / "c.npy")
    assert isinstance(arr, np.memmap) and axes is None


@pytest.mark.parametrize("fmt", [2, 3])
def test_ome_zarr_multiscale_takes_level_zero(tmp_path, stack, fmt):
    g = zarr.open_group(tmp_path / "ome.zarr", mode="w", zarr_format=fmt)
    g.create_array("0", data=stack, chunks=(1, 20, 24))
    g.create_array("1", data=stack[:, ::2, ::2], chunks=(1, 20, 12))
    ms = [{"axes": [{"name": "t"}, {"name": "y"}, {"name": "x"}],
           "datasets": [{"path": "0"}, {"path": "1"}]}]
    if fmt == 3:
        g.attrs["ome"] = {"version": "0.5", "multiscales": ms}
    else:
        g.attrs["multiscales"] = ms
    arr, axes = io.open_image(tmp_path / "ome.zarr")
    assert isinstance(arr, zarr.Array) and arr.shape == stack.shape and axes == "TYX"


def test_plain_zarr_array_with_dimension_names(tmp_path, stack):
    zarr.create_array(tmp_path / "p.zarr", data=stack, dimension_names=("z", "y", "x"))
    arr, axes = io.open_image(tmp_path / "p.zarr")
    assert axes == "ZYX"
    np.testing.assert_array_equal(arr[:], stack)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.open_image(tmp_path / "nope.tif")
    (tmp_path / "x.png").write_bytes(b"123")
    with pytest.raises(ValueError, match="expected"):
        io.open_image(tmp_path / "x.png")


def test_zarr_writer_is_atomic_keeps_document_and_never_overwrites(tmp_path, stack):
    doc = io.make_document(axes="ZYX", provenance={"source": "s"})
    out = io.write_zarr_atomic(tmp_path / "o.zarr", stack, attrs={io.DOC_KEY: doc},
                               chunks=(1, 16, 16), dimension_names="ZYX", max_block_bytes=2000)
    assert io.read_document(out) == doc
    np.testing.assert_array_equal(zarr.open_array(out, mode="r")[:], stack)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr"]  # no temporaries left
    with pytest.raises(FileExistsError):
        io.write_zarr_atomic(out, stack)
    io.write_zarr_atomic(out, stack[:2], overwrite=True)
    assert zarr.open_array(out, mode="r").shape == (2, 40, 24)


def test_bigtiff_writer_reads_lazy_input_page_by_page(tmp_path, stack):
    src = zarr.create_array(tmp_path / "src.zarr", data=stack, chunks=(1, 40, 24))
    doc = io.make_document(axes="ZYX", model={"safetensors_b64": "AAAA"})
    out = io.write_tiff_atomic(tmp_path / "o.tif", src, axes="ZYX", document=doc)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff and len(tif.pages) == 5 and tif.series[0].axes == "ZYX"
    assert io.read_document(out) == doc
    np.testing.assert_array_equal(io.open_image(out)[0], stack)
    assert io.read_document(tmp_path / "src.zarr") is None


def test_corrupt_tiff_document_is_reported_not_raised(tmp_path):
    bad = b"{not json"
    tifffile.imwrite(tmp_path / "bad.tif", np.zeros((8, 8), np.uint8),
                     extratags=[(io.TIFF_TAG, 7, len(bad), bad, True)])
    doc = io.read_document(tmp_path / "bad.tif")
    assert doc["format"] == io.DOC_FORMAT and "not valid JSON" in doc["error"]
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    assert io.read_document(tmp_path / "plain.tif") is None


def test_large_model_is_not_embedded(monkeypatch):
    monkeypatch.setattr(io, "MAX_EMBEDDED_MODEL_BYTES", 10)
    doc = io.make_document(axes="YX", model={"safetensors_b64": "A" * 100})
    assert "model" not in doc and "limit" in doc["model_omitted"]
    json.dumps(doc)


@pytest.mark.data
def test_real_timelapse_opens_lazily_with_imagej_axes(shared_data):
    path = shared_data / "lysosome_confocal_timelapse_noisy" / "lysosome_1.tif"
    if not path.exists():
        pytest.skip("lysosome time-lapse not in the shared data")
    arr, axes = io.open_image(path)
    assert axes == "TYX" and arr.shape == (50, 128, 128) and arr.dtype.str[1:] == "u2"
