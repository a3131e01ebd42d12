"""OME-Zarr outputs (issue #15): valid NGFF 0.4 / 0.5 metadata, a pyramid equal to the 2x
mean of the full-resolution result, built chunk by chunk with bounded reads, resumable,
and an OME-Zarr input's metadata carried to the output."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_selfdenoise.core import inference, io
from napari_selfdenoise.core import ome_zarr as ome
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.events import Message, TileDone, run_to_end
from napari_selfdenoise.core.inference.progress import unpack_bits
from napari_selfdenoise.core.inference.progress import PROGRESS_KEY
from napari_selfdenoise.core.inference.sinks.ome_zarr import read_progress
from napari_selfdenoise.core.ome_zarr_store import Pyramid

sys.path.insert(0, str(Path(__file__).parent))
from test_inference import make_bundle  # noqa: E402

CFG = dict(tile_shape=(48, 48), batch_size=2, precision="fp32", device="cpu")


# ------------------------------------------------------------------ references
def ref_halve(x: np.ndarray, factors) -> np.ndarray:
    """Whole-array reference: per halved axis (in order), edge-pad to even, pair mean."""
    x = np.asarray(x, np.float32)
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        if x.shape[axis] % 2:
            x = np.concatenate([x, np.take(x, [-1], axis=axis)], axis=axis)
        shape = x.shape[:axis] + (x.shape[axis] // 2, 2) + x.shape[axis + 1:]
        x = x.reshape(shape).mean(axis=axis + 1, dtype=np.float32)
    return x


def check_pyramid(group) -> list[np.ndarray]:
    """Every level equals the reference halving of the level above (exact fp32)."""
    ms = ome.multiscales_of(group)
    levels = [group[d["path"]][...] for d in ms["datasets"]]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    for lev in range(1, len(levels)):
        factors = [int(round(b / a)) for a, b in zip(scales[lev - 1], scales[lev])]
        np.testing.assert_array_equal(levels[lev], ref_halve(levels[lev - 1], factors))
    return levels


def validate(path: Path, version: str):
    """Validated with ome-zarr-models (the NGFF spec as pydantic models) and read back
    with ome-zarr-py's reader."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    group = zarr.open_group(str(path), mode="r")
    assert group.info._zarr_format == (3 if version == "0.5" else 2)
    if version == "0.5":
        from ome_zarr_models.v05.image import Image
    else:
        from ome_zarr_models.v04.image import Image
    image = Image.from_zarr(group)
    nodes = list(Reader(parse_url(str(path)))())
    assert [a.shape for a in nodes[0].data] == [group[d.path].shape for d in
                                                image.ome_attributes.multiscales[0].datasets]
    return group, image.ome_attributes.multiscales[0]


@pytest.fixture(scope="module")
def b2():
    return make_bundle()


# ---------------------------------------------------------------------- units
def test_downsample_mean_equals_the_whole_array_reference_on_even_aligned_regions():
    x = np.random.default_rng(0).random((7, 13, 11)).astype(np.float32)
    for factors in [(1, 2, 2), (2, 2, 2), (2, 1, 1)]:
        whole = ref_halve(x, factors)
        np.testing.assert_array_equal(ome.downsample_mean(x, factors), whole)
        # a region starting at even indices gives the same voxels
        part = ome.downsample_mean(x[:, 4:, 6:], factors)
        sl = tuple(slice(s // f, None) for s, f in zip((0, 4, 6), factors))
        np.testing.assert_array_equal(part, whole[sl])


def test_levels_halve_yx_until_one_chunk_and_z_only_when_not_coarser():
    levels = ome.plan_levels((3, 100, 130), "TYX", (1, 32, 32))
    assert [lev.shape for lev in levels] == [(3, 100, 130), (3, 50, 65), (3, 25, 33),
                                             (3, 13, 17)]
    assert all(lev.factors == (1, 2, 2) for lev in levels[1:])
    iso = ome.plan_levels((40, 64, 64), "ZYX", (16, 16, 16))
    assert [lev.factors for lev in iso[1:]] == [(2, 2, 2)] * 2
    # Z voxels 4x coarser: Z halves only once Y and X have caught up
    aniso = ome.plan_levels((40, 256, 256), "ZYX", (8, 16, 16), {"Z": 4.0, "Y": 1, "X": 1})
    assert [lev.factors[0] for lev in aniso[1:]] == [1, 1, 2, 2]
    assert ome.plan_levels((1, 20, 20), "ZYX", (1, 32, 32))[1:] == []  # one chunk: no pyramid
    # large chunks: down to 256 x 256 at most (napari's overview)
    assert ome.plan_levels((1, 1000, 600), "TYX", (1, 1024, 1024))[-1].shape == (1, 250, 150)


def test_pyramid_builds_each_chunk_once_reading_at_most_four_chunks(tmp_path):
    """By design and counted: whatever the order chunks finish in, each lower-level chunk is
    computed once, as soon as its sources are done, from at most 2 x 2 source chunks."""
    rng = np.random.default_rng(1)
    shape, chunks = (2, 90, 70), (1, 8, 8)
    levels = ome.plan_levels(shape, "TYX", chunks)
    group = zarr.open_group(str(tmp_path / "p.zarr"), mode="w")
    arrays = [group.create_array(str(i), shape=lev.shape, chunks=chunks, dtype="float32",
                                 fill_value=float("nan")) for i, lev in enumerate(levels)]
    data = rng.random(shape).astype(np.float32)
    grids = [Pyramid.grid(lev.shape, chunks) for lev in levels]
    pyr = Pyramid(arrays, levels, chunks, [np.zeros(g, bool) for g in grids[1:]])
    done0 = np.zeros(grids[0], bool)
    order = rng.permutation(done0.size)
    for n, flat in enumerate(order):
        idx = np.unravel_index(flat, grids[0])
        region = tuple(slice(k * c, min((k + 1) * c, s)) for k, c, s in zip(idx, chunks, shape))
        arrays[0][region] = data[region]
        done0[idx] = True
        pyr.update(done0)
        for lev in range(1, len(levels)):  # nothing computed before its sources are done
            ready = ome.all_children_done(done0 if lev == 1 else pyr.done[lev - 2],
                                          levels[lev].factors)
            assert (pyr.done[lev - 1] == ready).all()
    assert pyr.complete and pyr.computed == sum(int(np.prod(g)) for g in grids[1:])
    assert pyr.peak_voxels <= 4 * int(np.prod(chunks))
    expected = data
    for lev in range(1, len(levels)):
        expected = ref_halve(expected, levels[lev].factors)
        np.testing.assert_array_equal(arrays[lev][...], expected)


# ---------------------------------------------------------------- predictions
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_2d_timelapse_output_is_valid_ngff_with_an_exact_pyramid(b2, tmp_path, version):
    x = np.random.default_rng(0).random((2, 61, 83)).astype(np.float32)
    out = inference.predict_array(b2, x, axes="TYX", out=tmp_path / "o.ome.zarr",
                                  ome_zarr_version=version, **CFG)
    group, ms = validate(out, version)
    assert [(a.name, a.type) for a in ms.axes] == [("t", "time"), ("y", "space"),
                                                   ("x", "space")]
    levels = check_pyramid(group)
    assert len(levels) == 4 and levels[-1].shape == (2, 8, 11)
    ref = inference.predict_array(b2, x, axes="TYX", **CFG)
    np.testing.assert_array_equal(levels[0], ref)  # level 0 is the prediction itself
    rec = read_progress(out)
    assert rec["complete"] and len(rec["levels"]) == 3
    doc = io.read_document(out)
    assert doc["axes"] == "TYX" and doc["model"]["method"] == "n2v"
    assert doc["provenance"]["execution"]["precision"] == "fp32"
    omero = ome._ome_attrs(group)["omero"]
    assert omero["channels"][0]["window"]["min"] == pytest.approx(float(levels[-1].min()))
    if version == "0.4":  # NGFF 0.4: "/" separated chunk keys
        assert (out / "0" / "0" / "0" / "0").is_file()
    data, axes = io.open_image(out)  # opened back lazily: level 0, axes from the metadata
    assert isinstance(data, zarr.Array) and axes == "TYX" and data.shape == (2, 61, 83)


def test_3d_volume_isotropic_pyramid_halves_z(tmp_path):
    b3 = make_bundle(spatial_dims=3)
    x = np.random.default_rng(2).random((20, 52, 44)).astype(np.float32)
    out = inference.predict_array(b3, x, axes="ZYX", out=tmp_path / "v.ome.zarr",
                                  tile_shape=(48, 48, 48), batch_size=2, precision="fp32",
                                  device="cpu")
    group, ms = validate(out, "0.5")
    levels = check_pyramid(group)
    assert [lev.shape for lev in levels] == [(20, 52, 44), (10, 26, 22), (5, 13, 11)]
    np.testing.assert_array_equal(
        levels[0], inference.predict_array(b3, x, axes="ZYX", tile_shape=(48, 48, 48), batch_size=2,
                                           precision="fp32", device="cpu"))


def _ome_input(path: Path, data: np.ndarray, version: str = "0.5") -> None:
    """A TCYX OME-Zarr image written with ome-zarr-py: units, scale, translation, labels."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import add_metadata, write_multiscales_metadata

    fmt = FormatV05() if version == "0.5" else FormatV04()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    group.create_array("s0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 16, 16),
                       chunk_key_encoding=fmt.chunk_key_encoding)[...] = data
    axes = [{"name": "t", "type": "time", "unit": "second"}, {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]
    ct = [{"type": "scale", "scale": [2.0, 1.0, 0.5, 0.25]},
          {"type": "translation", "translation": [0.0, 0.0, 10.0, -3.0]}]
    write_multiscales_metadata(group, [{"path": "s0", "coordinateTransformations": ct}],
                               fmt=fmt, axes=axes, name="input")
    add_metadata(group, {"omero": {"channels": [{"label": "DAPI", "color": "0000FF"},
                                                {"label": "GFP", "color": "00FF00"}]}}, fmt)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_input_metadata_reaches_the_output(tmp_path, version):
    from napari_selfdenoise.cli import main

    b_c = make_bundle(channels=2)
    x = np.random.default_rng(3).random((2, 2, 40, 70)).astype(np.float32)
    _ome_input(tmp_path / "in.ome.zarr", x, version)
    model = b_c.save(tmp_path / "m.sdmodel")
    assert ome.read_metadata(tmp_path / "in.ome.zarr")[0] == "TCYX"
    rc = main(["predict", str(model), str(tmp_path / "in.ome.zarr"), "--out",
               str(tmp_path / "out.ome.zarr"), "--quiet", "--tile", "48", "48",
               "--device", "cpu", "--precision", "fp32", "--ome-zarr-version", version])
    assert rc == 0
    group, ms = validate(tmp_path / "out.ome.zarr", version)
    assert [(a.name, a.type, a.unit) for a in ms.axes] == [
        ("t", "time", "second"), ("c", "channel", None), ("y", "space", "micrometer"),
        ("x", "space", "micrometer")]
    ds = ms.datasets
    assert ds[0].coordinateTransformations[0].scale == [2.0, 1.0, 0.5, 0.25]
    assert ds[0].coordinateTransformations[1].translation == [0.0, 0.0, 10.0, -3.0]
    assert ds[1].coordinateTransformations[0].scale == [2.0, 1.0, 1.0, 0.5]
    # level 1 voxel 0 sits at the centre of the 2 x 2 voxels it averages
    assert ds[1].coordinateTransformations[1].translation == [0.0, 0.0, 10.25, -2.875]
    omero = ome._ome_attrs(group)["omero"]
    assert [c["label"] for c in omero["channels"]] == ["DAPI", "GFP"]
    check_pyramid(group)
    ref = inference.predict_array(b_c, x, axes="TCYX", tile_shape=(48, 48), precision="fp32",
                                  device="cpu")
    np.testing.assert_array_equal(group["0"][...], ref)


def test_layer_metadata_through_ome_zarr_output(b2, tmp_path):
    meta = ome.ImageMetadata.from_layer("YX", (0.3, 0.3), (5.0, 7.0),
                                        ("micrometer", "micrometer"), name="cells")
    x = np.random.default_rng(4).random((70, 60)).astype(np.float32)
    out = inference.predict_array(b2, x, axes="YX", out=ome.OmeZarrOutput(
        tmp_path / "l.ome.zarr", meta), **CFG)
    assert Path(out) == tmp_path / "l.ome.zarr"
    group, ms = validate(out, "0.5")
    assert ms.name == "cells" and [a.unit for a in ms.axes] == ["micrometer"] * 2
    assert ms.datasets[0].coordinateTransformations[0].scale == [0.3, 0.3]
    assert ms.datasets[1].coordinateTransformations[1].translation == [5.15, 7.15]


# -------------------------------------------------------------------- resume
def _stopped(bundle, x, out, after=1, **cfg):
    stop = threading.Event()
    events = []

    def on_event(ev):
        events.append(ev)
        if isinstance(ev, TileDone) and ev.tiles_done >= after:
            stop.set()

    gen = inference.predict(bundle, x, axes="TYX", out=out, stop=stop,
                            config=PredictConfig(**{**CFG, **cfg}))
    run_to_end(gen, on_event)
    return events


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_interrupted_prediction_resumes_and_completes_every_level(b2, tmp_path, version):
    x = np.random.default_rng(5).random((2, 61, 83)).astype(np.float32)
    out = tmp_path / "r.ome.zarr"
    events = _stopped(b2, x, out, after=22, ome_zarr_version=version)
    assert any(isinstance(e, Message) and "resume" in e.text for e in events)
    rec = read_progress(out)
    done = unpack_bits(rec["done"], 2 * 30)
    assert not rec["complete"] and done.any() and not done.all()
    group = zarr.open_group(str(out), mode="r")
    assert np.isnan(group["1"][...]).any()  # lower levels still incomplete
    # as if killed before the pyramid was recorded: the resumed run recomputes it
    rw = zarr.open_group(str(out), mode="r+")
    rw.attrs[PROGRESS_KEY] = dict(rec, levels=[])
    events = []
    inference.predict_array(b2, x, axes="TYX", out=out, ome_zarr_version=version,
                            on_event=events.append, **CFG)
    skipped = [e.skipped for e in events if isinstance(e, TileDone)]
    assert skipped and skipped[0] > 0  # finished chunks were not recomputed
    group, _ = validate(out, version)
    levels = check_pyramid(group)
    assert not any(np.isnan(level).any() for level in levels)
    np.testing.assert_array_equal(levels[0], inference.predict_array(b2, x, axes="TYX", **CFG))
    assert read_progress(out)["complete"]


def test_resume_with_another_version_or_input_is_refused(b2, tmp_path):
    from napari_selfdenoise.core.resume import ResumeMismatchError

    x = np.random.default_rng(6).random((2, 61, 83)).astype(np.float32)
    out = tmp_path / "r.ome.zarr"
    _stopped(b2, x, out, ome_zarr_version="0.5")
    with pytest.raises(FileExistsError, match="OME-Zarr 0.5 prediction, not 0.4"):
        inference.predict_array(b2, x, axes="TYX", out=out, ome_zarr_version="0.4", **CFG)
    with pytest.raises(ResumeMismatchError, match="another input"):
        inference.predict_array(b2, x + 1, axes="TYX", out=out, **CFG)


# -------------------------------------------------------------------- errors
def test_bad_version_and_non_ome_folders_are_one_line_errors(b2, tmp_path):
    from pydantic import ValidationError

    from napari_selfdenoise.core.outputs import OutputError

    with pytest.raises(ValidationError, match="ome_zarr_version"):
        PredictConfig(ome_zarr_version="0.3")
    with pytest.raises(ome.OmeZarrError, match="0.4 or 0.5"):
        ome.check_version("0.6")
    x = np.zeros((40, 40), np.float32)
    folder = tmp_path / "f.ome.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a zarr store"):
        inference.predict_array(b2, x, axes="YX", out=folder, overwrite=True, **CFG)
    assert (folder / "keep.txt").read_text() == "mine"
    plain = tmp_path / "p.ome.zarr"
    zarr.create_array(str(plain), shape=(4, 4), dtype="f4")
    with pytest.raises(FileExistsError, match="not a resumable OME-Zarr prediction"):
        inference.predict_array(b2, x, axes="YX", out=plain, **CFG)


def test_reading_needs_no_ome_zarr_package_and_writing_says_what_to_install(monkeypatch,
                                                                           tmp_path):
    """Without the optional ome-zarr package a store's units still read; writing one is a
    one-line error naming the extra."""
    import sys

    from napari_selfdenoise.core import ome_zarr as ome_mod
    from napari_selfdenoise.core.ome_zarr_store import create_store

    for name in ("ome_zarr", "ome_zarr.axes", "ome_zarr.format", "ome_zarr.writer"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    assert ome_mod._valid_unit("X", "micrometer")
    with pytest.raises(ome_mod.OmeZarrError) as err:
        create_store(tmp_path / "a.ome.zarr", "0.5", "yx", [], (8, 8),
                     ome_mod.ImageMetadata(), "a")
    assert "napari-selfdenoise[ome-zarr]" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "a.ome.zarr").exists()
