"""The napari reader on OME-Zarr images (no viewer): every level lazily as one multiscale
layer with its scale, translation, units and axis names, and our model when present; and
the CLI's one-line errors for OME-Zarr outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_selfdenoise import _reader
from napari_selfdenoise.core import inference
from napari_selfdenoise.core import ome_zarr as ome
from napari_selfdenoise.core.bundle import METADATA_KEY, ModelBundle
from napari_selfdenoise.core.provenance import PROVENANCE_KEY

sys.path.insert(0, str(Path(__file__).parent / "core"))
from test_inference import make_bundle  # noqa: E402
from test_ome_zarr import _ome_input  # noqa: E402

CFG = dict(tile_shape=(48, 48), batch_size=2, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def b2():
    return make_bundle()


@pytest.fixture(scope="module")
def result(b2, tmp_path_factory):
    meta = ome.ImageMetadata.from_layer("TYX", (5.0, 0.5, 0.5), (0.0, 2.0, 4.0),
                                        ("second", "micrometer", "micrometer"))
    x = np.random.default_rng(0).random((2, 61, 83)).astype(np.float32)
    path = tmp_path_factory.mktemp("r") / "res.ome.zarr"
    return inference.predict_array(b2, x, axes="TYX", out=ome.OmeZarrOutput(path, meta), **CFG)


def test_reader_opens_every_level_lazily_with_geometry_and_model(result, b2):
    import dask.array as da

    assert _reader.get_reader(str(result)) is _reader.read_ome_zarr
    [(data, attrs, kind)] = _reader.get_reader(str(result))(str(result))
    group = zarr.open_group(str(result), mode="r")
    assert kind == "image" and attrs["multiscale"] is True
    assert len(data) == 4 and all(isinstance(d, da.Array) for d in data)
    for level, d in zip(sorted(group.array_keys()), data):
        np.testing.assert_array_equal(d.compute(), group[level][...])
    assert attrs["scale"] == [5.0, 0.5, 0.5] and attrs["translate"] == [0.0, 2.0, 4.0]
    assert attrs["units"] == ["second", "micrometer", "micrometer"]
    assert attrs["axis_labels"] == ["T", "Y", "X"] and attrs["name"] == "res"
    meta = attrs["metadata"]
    assert ModelBundle.from_metadata(meta[METADATA_KEY]).config == b2.config
    assert meta[PROVENANCE_KEY]["operation"] == "predict"


def test_reader_opens_the_group_once_to_claim_and_once_to_read(result, monkeypatch):
    """The multiscales metadata is parsed from one open group (was six opens per read)."""
    opened = []
    for name in ("open", "open_group", "open_array", "open_consolidated"):
        real = getattr(zarr, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            opened.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(zarr, name, spy)
    reader = _reader.get_reader(str(result))
    assert len(opened) == 1
    [(data, attrs, _)] = reader(str(result))
    assert len(opened) == 2, opened
    assert len(data) == 4 and attrs["axis_labels"] == ["T", "Y", "X"]
    assert attrs["scale"] == [5.0, 0.5, 0.5] and METADATA_KEY in attrs["metadata"]


def test_reader_opens_foreign_ome_zarr_and_keeps_channel_names(tmp_path):
    x = np.random.default_rng(1).random((2, 2, 20, 30)).astype(np.float32)
    _ome_input(tmp_path / "f.ome.zarr", x, "0.4")
    [(data, attrs, _)] = _reader.get_reader(str(tmp_path / "f.ome.zarr"))(
        str(tmp_path / "f.ome.zarr"))
    assert "multiscale" not in attrs  # one level: a plain (lazy) layer
    np.testing.assert_array_equal(np.asarray(data), x)
    assert attrs["scale"] == [2.0, 1.0, 0.5, 0.25] and attrs["name"] == "input"
    assert attrs["metadata"][_reader.OME_KEY] == {"channel_names": ["DAPI", "GFP"]}
    assert METADATA_KEY not in attrs["metadata"]


def test_reader_declines_plain_folders_and_zarr_arrays(tmp_path):
    (tmp_path / "d.ome.zarr").mkdir()
    assert _reader.get_reader(str(tmp_path / "d.ome.zarr")) is None
    zarr.create_array(str(tmp_path / "a.zarr"), shape=(4, 4), dtype="f4")
    assert _reader.get_reader(str(tmp_path / "a.zarr")) is None


def test_cli_one_line_errors(b2, tmp_path, capsys):
    from napari_selfdenoise.cli import main

    model = b2.save(tmp_path / "m.sdmodel")
    np.save(tmp_path / "x.npy", np.zeros((40, 40), np.float32))
    base = ["predict", str(model), str(tmp_path / "x.npy"), "--quiet", "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        main(base + ["--out", str(tmp_path / "o.ome.zarr"), "--ome-zarr-version", "0.3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: '0.3'" in err and "Traceback" not in err
    folder = tmp_path / "f.ome.zarr"
    folder.mkdir()
    assert main(base + ["--out", str(folder), "--overwrite"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is a folder that is not a zarr store" in lines[0]
    zarr.create_array(str(tmp_path / "p.ome.zarr"), shape=(4, 4), dtype="f4")
    assert main(base + ["--out", str(tmp_path / "p.ome.zarr")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "p.ome.zarr exists" in lines[0]


def test_writer_saves_a_layer_as_ome_zarr_and_the_reader_opens_it_back(b2, tmp_path):
    """A lazy (dask) ZYX layer with scale, translation and units, written chunk by chunk."""
    import dask.array as da

    from napari_selfdenoise._writer import write_ome_zarr
    from test_ome_zarr import check_pyramid, validate

    x = np.random.default_rng(2).random((6, 70, 50)).astype(np.float32)
    meta = {"name": "vol", "scale": [2.0, 0.5, 0.5], "translate": [1.0, 0.0, 0.0],
            "units": ["micrometer"] * 3, "axis_labels": ["z", "y", "x"],
            "metadata": {METADATA_KEY: b2.to_metadata()}}
    path = tmp_path / "v.ome.zarr"
    lazy = da.from_array(x, chunks=(1, 35, 25))
    assert write_ome_zarr(str(path), lazy, meta) == [str(path)]
    group, ms = validate(path, "0.5")
    assert [(a.name, a.unit) for a in ms.axes] == [("z", "micrometer"), ("y", "micrometer"),
                                                   ("x", "micrometer")]
    levels = check_pyramid(group)
    np.testing.assert_array_equal(levels[0], x)
    [(data, attrs, _)] = _reader.read_ome_zarr(str(path))
    assert attrs["scale"] == [2.0, 0.5, 0.5] and attrs["translate"] == [1.0, 0.0, 0.0]
    assert attrs["name"] == "vol" and METADATA_KEY in attrs["metadata"]
    # written again over itself (ours), but never over a foreign store
    write_ome_zarr(str(path), x, meta)
    foreign = tmp_path / "f.ome.zarr"
    _ome_input(foreign, np.zeros((1, 2, 8, 8), np.float32))
    from napari_selfdenoise.core.outputs import OutputError

    with pytest.raises(OutputError, match="not written by napari-selfdenoise"):
        write_ome_zarr(str(foreign), x, meta)


def test_run_writes_ome_zarr_keeping_an_ome_zarr_inputs_metadata(tmp_path, capsys):
    from napari_selfdenoise.cli import main
    from napari_selfdenoise.core.config import PredictConfig
    from napari_selfdenoise.core.presets import PredictSettings, save_preset
    from test_ome_zarr import check_pyramid, validate

    b_c = make_bundle(channels=2)
    x = np.random.default_rng(7).random((1, 2, 40, 70)).astype(np.float32)
    _ome_input(tmp_path / "cells.ome.zarr", x, "0.5")
    model = b_c.save(tmp_path / "m.sdmodel")
    preset = save_preset(tmp_path / "p.json", PredictSettings(
        model_source="file", model_file=str(model),
        predict=PredictConfig(tile_shape=(48, 48), precision="fp32", device="cpu")))
    rc = main(["run", str(preset), str(tmp_path / "cells.ome.zarr"), "--out",
               str(tmp_path / "res"), "--ome-zarr", "0.4", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "res" / "cells_n2v.ome.zarr"
    group, ms = validate(out, "0.4")
    assert [a.unit for a in ms.axes] == ["second", None, "micrometer", "micrometer"]
    assert ms.datasets[0].coordinateTransformations[0].scale == [2.0, 1.0, 0.5, 0.25]
    levels = check_pyramid(group)
    ref = inference.predict_array(b_c, x, axes="TCYX", tile_shape=(48, 48), precision="fp32",
                                  device="cpu")
    np.testing.assert_array_equal(levels[0], ref)
    assert ome._ome_attrs(group)["omero"]["channels"][1]["label"] == "GFP"


def test_distributed_runs_write_ome_zarr_from_the_cli(b2, tmp_path, capsys):
    """``predict --workers`` and ``run --ome-zarr --workers`` write OME-Zarr stores equal
    to the single-process ones (the workers build the pyramid)."""
    pytest.importorskip("distributed")
    from napari_selfdenoise.cli import main
    from napari_selfdenoise.core.presets import PredictSettings, save_preset

    model = b2.save(tmp_path / "m.sdmodel")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 40)).astype(
        np.float32))
    ref = tmp_path / "ref" / "x.ome.zarr"
    assert main(["predict", str(model), str(tmp_path / "x.npy"), "--out", str(ref),
                 "--quiet"]) == 0
    out = tmp_path / "x.ome.zarr"
    assert main(["predict", str(model), str(tmp_path / "x.npy"), "--out", str(out),
                 "--workers", "2", "--quiet"]) == 0
    want = zarr.open_group(str(ref), mode="r")
    for name in want.array_keys():
        np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")[name][:],
                                      want[name][:])
    preset = save_preset(tmp_path / "p.json", PredictSettings(model_source="file",
                                                              model_file=str(model)))
    assert main(["run", str(preset), str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"),
                 "--ome-zarr", "0.4", "--workers", "2", "--quiet"]) == 0
    (store,) = (tmp_path / "o").glob("*.ome.zarr")
    assert ome.read_metadata(store) is not None
    np.testing.assert_array_equal(zarr.open_group(str(store), mode="r")["0"][:],
                                  want["0"][:])

