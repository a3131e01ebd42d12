"""Shared by the benchmark-script tests: where the scripts are, and running one as
``python benchmarks/<name> ARGS`` does."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

#: the benchmarks/ folder
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, args: list, monkeypatch, capsys) -> str:
    """Run ``benchmarks/<name>`` with ``args`` (its folder on the path); return its stdout."""
    script = BENCH / name
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(BENCH))
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out
