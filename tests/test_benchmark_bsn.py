"""benchmarks/bsn_step_profile.py keeps working on a tiny network (issue #13)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bsn_step_profile.py"


def test_bsn_step_profile_reports_phases_and_blocks(monkeypatch, capsys, tmp_path,
                                                    one_torch_thread):
    out = tmp_path / "p.jsonl"
    args = ["--steps", "1", "--profile-steps", "1", "--top", "3", "--json", str(out),
            "--set", 'network={"depth":1,"base_filters":4}', "batch_size=2",
            "patch_size=[16,16]"]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as `python benchmarks/...` does
    runpy.run_path(str(SCRIPT), run_name="__main__")
    text = capsys.readouterr().out
    assert "steps per 60 CPU-s" in text and "convolution" in text  # the profiler's table
    row = json.loads(out.read_text().splitlines()[-1])
    assert row["settings"]["batch_size"] == 2
    phases = row["phases_s"]
    assert phases["step"] > 0
    assert abs(phases["step"] - sum(v for k, v in phases.items() if k != "step")) < 1e-9
    assert {"branch enc0", "branch bottom", "branch dec0", "merge (1x1 convs)",
            "whole network"} <= set(row["parts_s"])
    assert all(v > 0 for v in row["parts_s"].values())
