"""``napari-selfdenoise calibrate INPUT --denoiser NAME|auto --out OUTPUT [--report]``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfdenoise import cli
from napari_selfdenoise.cli import main
from napari_selfdenoise.core.calibration import apply_denoiser
from napari_selfdenoise.core.samples import phantom_2d


@pytest.fixture(autouse=True)
def _only_calibrate(monkeypatch):
    """Register only this sub-command, so these tests do not depend on the others."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", ("calibrate",))


@pytest.fixture
def noisy_tif(tmp_path):
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, phantom_2d((64, 64), seed=2).noisy)
    return path


def test_calibrate_tif_with_report(tmp_path, noisy_tif, capsys):
    out, report = tmp_path / "den.tif", tmp_path / "report.json"
    code = main(["calibrate", str(noisy_tif), "--denoiser", "gaussian", "--out", str(out),
                 "--report", str(report), "--values", "0.5", "1", "2", "4", "--plain-output"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "[4/4] gaussian sigma=4" in printed and "plain output" in printed
    rep = json.loads(report.read_text())
    assert rep["denoiser"] == "gaussian" and rep["values"] == [0.5, 1.0, 2.0, 4.0]
    assert rep["best_value"] == rep["values"][int(np.argmin(rep["losses"]))]
    assert rep["curves"]["gaussian"]["losses"] == rep["losses"]
    img = tifffile.imread(out)
    expected = apply_denoiser("gaussian", tifffile.imread(noisy_tif)[None], rep["best_value"])
    np.testing.assert_allclose(img, expected[0], atol=1e-6)
    # an existing output is kept unless --overwrite
    assert main(["calibrate", str(noisy_tif), "--denoiser", "mean", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_calibrate_stack_to_zarr_j_invariant(tmp_path):
    stack = np.stack([phantom_2d((48, 48), seed=s).noisy for s in (3, 4, 5)])
    src = tmp_path / "stack.npy"
    np.save(src, stack)
    out = tmp_path / "den.zarr"
    code = main(["calibrate", str(src), "--axes", "TYX", "--denoiser", "median", "--out",
                 str(out), "--quiet"])
    assert code == 0
    arr = zarr.open_array(str(out), mode="r")
    assert arr.shape == stack.shape and arr.dtype == np.float32
    rep = arr.attrs["napari_selfdenoise"]["calibration"]
    assert rep["j_invariant_output"] and rep["axes"] == "TYX"
    expected = apply_denoiser("median", stack, rep["best_value"], j_invariant=True)
    np.testing.assert_allclose(arr[:], expected, atol=1e-6)


def test_calibrate_errors(tmp_path, capsys):
    bad = tmp_path / "nan.tif"
    tifffile.imwrite(bad, np.full((32, 32), np.nan, np.float32))
    assert main(["calibrate", str(bad), "--out", str(tmp_path / "o.tif")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((32, 32), np.float32))
    assert main(["calibrate", str(flat), "--out", str(tmp_path / "o.zarr")]) == 2
    assert "constant" in capsys.readouterr().err
    assert main(["calibrate", str(bad), "--denoiser", "bm3d", "--out", str(tmp_path / "o.tif")])
    assert "unknown denoiser 'bm3d'; choose one of" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.zarr*")) and not list(tmp_path.glob(".o.zarr*"))
