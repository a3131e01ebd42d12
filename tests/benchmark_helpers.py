"""Shared by the benchmark-script tests: where the scripts are, and running one as
``python benchmarks/<name> ARGS`` does."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

#: the benchmarks/ folder
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def write_dataset(folder: Path, noisy, clean, name: str = "tiny") -> None:
    """A one-image dataset as the quality scripts read it: ``folder/noisy/<name>.tif``
    and ``folder/gt/<name>.tif`` (float32)."""
    import numpy as np
    import tifffile

    for sub, img in (("noisy", noisy), ("gt", clean)):
        (folder / sub).mkdir()
        tifffile.imwrite(folder / sub / f"{name}.tif", np.asarray(img, np.float32))


def run_script(name: str, args: list, monkeypatch, capsys) -> str:
    """Run ``benchmarks/<name>`` with ``args`` (its folder on the path); return its stdout."""
    script = BENCH / name
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(BENCH))
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out
