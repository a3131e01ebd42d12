"""benchmarks/ome_zarr_pyramid.py keeps working on a tiny input (issue #15)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ome_zarr_pyramid.py"


def test_ome_zarr_pyramid_benchmark_reports_the_ratio(monkeypatch, capsys, one_torch_thread):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--planes", "1", "--size", "160",
                                      "--tile", "96", "--repeats", "1", "--json"])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    runpy.run_path(str(SCRIPT), run_name="__main__")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["level0_equals_zarr"] and result["levels_exact"]
    assert len(result["levels"]) >= 2 and result["pyramid_chunks"] > 0
    assert result["ratio"] > 0 and result["ome_bytes"] > result["zarr_bytes"] * 0.9
