"""napari reader / writer contributions, as plain functions (no viewer needed)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfdenoise import _reader, _writer
from napari_selfdenoise.core import inference, io
from napari_selfdenoise.core.bundle import METADATA_KEY, ModelBundle
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.models import build_network
from napari_selfdenoise.core.provenance import make_provenance


@pytest.fixture(scope="module")
def bundle():
    import torch

    torch.manual_seed(1)
    cfg = TrainConfig(network=NetworkConfig(depth=1, base_filters=4))
    net = build_network(cfg.network, 2, 1)
    return ModelBundle(config=cfg, axes="TYX", spatial_dims=2, n_channels=1, norm_offset=[0.2],
                       norm_scale=[0.7], state_dict=net.state_dict(), info={"data": "phantom"})


@pytest.fixture
def layer(bundle):
    data = np.random.default_rng(0).random((3, 40, 50)).astype(np.float32)
    meta = {
        "name": "denoised",
        "scale": [2.0, 0.5, 0.25],
        "translate": [0.0, 10.0, -3.0],
        "axis_labels": ["T", "Y", "X"],
        "metadata": {
            METADATA_KEY: bundle.to_metadata(),
            _writer.PROVENANCE_KEY: make_provenance("predict", "noisy", {"tta": False}, bundle=bundle),
        },
    }
    return data, meta


@pytest.mark.parametrize("suffix,write",
                         [(".zarr", _writer.write_zarr), (".tif", _writer.write_tiff)])
def test_round_trip_restores_a_model_that_predicts_identically(tmp_path, layer, bundle, suffix,
                                                               write):
    data, meta = layer
    path = str(tmp_path / f"out{suffix}")
    assert write(path, data, meta) == [path]
    reader = _reader.get_reader(path)
    assert reader is not None
    [(read_data, attrs, kind)] = reader(path)
    assert kind == "image"
    np.testing.assert_array_equal(np.asarray(read_data), data)
    assert attrs["name"] == "denoised"
    assert attrs["scale"] == [2.0, 0.5, 0.25] and attrs["translate"] == [0.0, 10.0, -3.0]
    assert attrs["axis_labels"] == ["T", "Y", "X"]
    md = attrs["metadata"]
    assert md[_writer.PROVENANCE_KEY]["source"] == "noisy"
    assert md[_reader.AXES_KEY] == "TYX"
    restored = ModelBundle.from_metadata(md[METADATA_KEY])
    assert restored.info == {"data": "phantom"}
    img = np.random.default_rng(1).random((2, 33, 29)).astype(np.float32)
    np.testing.assert_array_equal(inference.predict_array(restored, img),
                                  inference.predict_array(bundle, img))
    # only the final file is left behind (atomic write)
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]


def test_plain_files_are_left_to_napari(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    zarr.create_array(tmp_path / "plain.zarr", data=np.zeros((8, 8)))
    (tmp_path / "notes.txt").write_text("x")
    for name in ("plain.tif", "plain.zarr", "notes.txt", "missing.tif"):
        assert _reader.get_reader(str(tmp_path / name)) is None
    assert _reader.get_reader([str(tmp_path / "plain.tif"), str(tmp_path / "plain.zarr")]) is None


def test_corrupt_embedded_model_opens_the_image_with_a_warning(tmp_path, layer):
    data, meta = layer
    bad = dict(meta["metadata"][METADATA_KEY])
    raw = bytearray(base64.b64decode(bad["safetensors_b64"]))
    raw[20:60] = b"\xff" * 40  # break the header
    bad["safetensors_b64"] = base64.b64encode(bytes(raw)).decode()
    meta = dict(meta, metadata={METADATA_KEY: bad})
    path = _writer.write_zarr(str(tmp_path / "bad.zarr"), data, meta)[0]
    reader = _reader.get_reader(path)
    with pytest.warns(UserWarning, match="corrupt"):
        [(read_data, attrs, _)] = reader(path)
    assert METADATA_KEY not in attrs["metadata"]
    np.testing.assert_array_equal(np.asarray(read_data), data)


def test_unparseable_tiff_document_still_opens(tmp_path):
    bad = b'{"format": "napari-selfdenoise/image", trunc'
    tifffile.imwrite(tmp_path / "t.tif", np.ones((8, 8), np.float32),
                     extratags=[(io.TIFF_TAG, 7, len(bad), bad, True)])
    reader = _reader.get_reader(str(tmp_path / "t.tif"))
    with pytest.warns(UserWarning, match="without its model"):
        [(read_data, attrs, _)] = reader(str(tmp_path / "t.tif"))
    assert np.asarray(read_data).sum() == 64 and METADATA_KEY not in attrs["metadata"]


def test_large_models_are_not_embedded(tmp_path, layer, monkeypatch):
    data, meta = layer
    monkeypatch.setattr(io, "MAX_EMBEDDED_MODEL_BYTES", 1000)
    with pytest.warns(UserWarning, match="limit"):
        path = _writer.write_tiff(str(tmp_path / "big.tif"), data, meta)[0]
    with pytest.warns(UserWarning, match="sdmodel"):
        [(_, attrs, _)] = _reader.read(path)
    assert METADATA_KEY not in attrs["metadata"]
    assert _writer.PROVENANCE_KEY in attrs["metadata"]


def test_large_images_stay_lazy(tmp_path, layer, monkeypatch):
    data, meta = layer
    path = _writer.write_zarr(str(tmp_path / "lazy.zarr"), data, meta)[0]
    monkeypatch.setattr(_reader, "EAGER_BYTES", 100)
    [(read_data, _, _)] = _reader.read(path)
    assert not isinstance(read_data, np.ndarray)
    assert read_data.chunks is not None
    np.testing.assert_array_equal(np.asarray(read_data[1]), data[1])


def test_prediction_outputs_carry_their_model(tmp_path, bundle):
    img = np.random.default_rng(2).random((2, 30, 30)).astype(np.float32)
    out = inference.predict_array(bundle, img, axes="TYX", out=tmp_path / "pred.zarr",
                                  provenance=make_provenance("predict", "raw", {}, bundle=bundle))
    [(read_data, attrs, _)] = _reader.get_reader(str(out))(str(out))
    assert attrs["metadata"][_writer.PROVENANCE_KEY]["source"] == "raw"
    assert ModelBundle.from_metadata(attrs["metadata"][METADATA_KEY]).axes == "TYX"
    np.testing.assert_array_equal(np.asarray(read_data), inference.predict_array(bundle, img))


def test_multiscale_layers_save_level_zero(tmp_path, layer):
    data, meta = layer
    path = _writer.write_zarr(str(tmp_path / "ms.zarr"), [data, data[:, ::2, ::2]], meta)[0]
    assert zarr.open_array(path, mode="r").shape == data.shape


def _cli(*argv):
    import argparse

    from napari_selfdenoise.cli import predict_cmd

    parser = argparse.ArgumentParser()
    predict_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["predict", *map(str, argv)])
    return args.func(args)


def test_cli_predict_takes_a_model_file_or_an_image_carrying_a_model(tmp_path, bundle, capsys):
    img = np.random.default_rng(3).random((2, 36, 44)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", img, metadata={"axes": "TYX"})
    bundle.save(tmp_path / "m.sdmodel")
    assert _cli(tmp_path / "m.sdmodel", tmp_path / "in.tif", "--out", tmp_path / "a.zarr",
                "--tile", 48, 48) == 0
    # the result carries the model: use it as the model of the next run
    assert _cli(tmp_path / "a.zarr", tmp_path / "in.tif", "--out", tmp_path / "b.tif",
                "--quiet") == 0
    expected = inference.predict_array(bundle, img, axes="TYX")
    tiled = zarr.open_array(tmp_path / "a.zarr", mode="r")[:]
    assert np.abs(tiled - expected).max() < 1e-5
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), expected)
    prov = io.read_document(tmp_path / "b.tif")["provenance"]
    assert prov["source"] == "in.tif" and prov["settings"]["model"].endswith("a.zarr")
    assert "tiles" in capsys.readouterr().err  # progress bar
    with pytest.raises(FileExistsError):
        _cli(tmp_path / "m.sdmodel", tmp_path / "in.tif", "--out", tmp_path / "b.tif")
    with pytest.raises(ValueError, match="carries no"):
        _cli(tmp_path / "in.tif", tmp_path / "in.tif", "--out", tmp_path / "c.tif")
    # --border reaches the engine (and differs from the default at the image's edges)
    assert _cli(tmp_path / "m.sdmodel", tmp_path / "in.tif", "--out", tmp_path / "d.npy",
                "--border", 0, 0, "--quiet") == 0
    no_border = inference.predict_array(bundle, img, axes="TYX", border=(0, 0))
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), no_border, atol=1e-5)
    assert np.abs(no_border - expected).max() > 1e-3
