"""``napari-selfdenoise compare IMAGE --budget S --out OUT [--report R]`` and the preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_selfdenoise import cli
from napari_selfdenoise.cli import main
from napari_selfdenoise.core import io
from napari_selfdenoise.core.config import CompareConfig
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.presets import CompareSettings, load_preset, run_batch, save_preset
from napari_selfdenoise.core.samples import phantom_2d


@pytest.fixture(autouse=True)
def _only_compare(monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMANDS", ("compare",))


def test_compare_writes_the_pick_with_its_ranking(tmp_path, capsys):
    src = tmp_path / "noisy.tif"
    tifffile.imwrite(src, phantom_2d((96, 96), seed=3).noisy)
    out, report = tmp_path / "best.tif", tmp_path / "ranking.json"
    code = main(["compare", str(src), "--budget", "4", "--cpu-time", "--methods", "n2s",
                 "--out", str(out), "--report", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert f"pick: {rep['pick']}" in printed and "ranking after" in printed
    cands = rep["candidates"]
    assert {c["name"] for c in cands} >= {"n2s", "gaussian", "tv"}
    assert all(np.isfinite(c["score"]) and np.isfinite(c["estimated_psnr"]) for c in cands)
    # ranked by the estimated error of what each hands out (Stein's estimate for the
    # network's plain pass), the blend of the best network and filter included
    assert rep["pick"] == min(cands, key=lambda c: c["delivered_estimated_mse"])["name"]
    # the blend of the best network and the best filter (a part whose fitted weight is
    # negative is left out: at a 4-CPU-s budget that can be the barely trained network)
    best_filter = next(c["name"] for c in sorted(cands, key=lambda c: c["delivered_estimated_mse"])
                       if c["kind"] == "filter")
    assert "blend" in {c["name"] for c in cands}
    assert rep["blend"]["parts"] and set(rep["blend"]["parts"]) <= {"n2s", best_filter}
    assert tifffile.imread(out).shape == (96, 96)
    assert io.read_document(out)["provenance"]["ranking"]["pick"] == rep["pick"]
    # an existing output is refused before any work: one line, exit code 2
    assert main(["compare", str(src), "--budget", "4", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_no_blend(tmp_path, capsys):
    src = tmp_path / "noisy.tif"
    tifffile.imwrite(src, phantom_2d((96, 96), seed=3).noisy)
    report = tmp_path / "ranking.json"
    assert main(["compare", str(src), "--budget", "3", "--cpu-time", "--no-blend", "--quiet",
                 "--out", str(tmp_path / "o.tif"), "--report", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert "blend" not in {c["name"] for c in rep["candidates"]} and rep["blend"] is None


def test_missing_input_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "o.tif")]) == 2
    assert "nope.tif" in capsys.readouterr().err


def test_compare_preset_in_a_batch_run(tmp_path):
    settings = CompareSettings(compare=CompareConfig(budget_s=3, clock="cpu", methods=["n2s"]))
    path = save_preset(tmp_path / "cmp.json", settings)
    assert load_preset(path) == settings
    data = phantom_2d((96, 96), seed=4).noisy
    report = run_to_end(run_batch(settings, [("a", data, "YX")], tmp_path / "out"))
    written = report.outputs["a"]
    assert str(written).endswith("a_compare.tif")
    doc = io.read_document(written)
    assert doc["provenance"]["ranking"]["candidates"]


@pytest.mark.parametrize("quiet", [False, True])
def test_correlated_noise_warning_is_printed_once(tmp_path, capsys, quiet):
    from napari_selfdenoise.core.samples import phantom_correlated

    src = tmp_path / "noisy.tif"
    tifffile.imwrite(src, phantom_correlated((96, 96), seed=0).noisy)
    report = tmp_path / "ranking.json"
    args = ["compare", str(src), "--budget", "2", "--cpu-time", "--no-blend", "--out",
            str(tmp_path / "o.tif"), "--report", str(report)] + (["--quiet"] if quiet else [])
    assert main(args) == 0
    printed = capsys.readouterr()
    warning = json.loads(report.read_text())["warning"]
    assert warning and f"warning: {warning}" in printed.err
    assert (printed.out + printed.err).count("spatially correlated") == 1
