"""``benchmarks/quality_methods.py`` runs every part on a tiny budget (the lead runs the
real 60 s table)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_methods.py"


def test_quality_methods_table(monkeypatch, capsys, one_torch_thread, shared_data):
    args = ["--datasets", "w2s", "--images", "010_0", "--methods", "ams", "--seconds", "1",
            "--n2n", "--set", 'patch_size=[32, 32]', "batch_size=2",
            'network={"base_filters": 4, "depth": 1}']
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert "| data | image | noisy | ams | classical | n2n | n2s |" in out
    assert "| w2s | 010_0 |" in out and "| phantom pair | phantom_2d |" in out
    assert "n2n pairs along T: best validation loss" in out and "nan" not in out


def test_quality_methods_bsn_variants_and_correlated_phantom(monkeypatch, capsys,
                                                            one_torch_thread):
    args = ["--datasets", "fmd", "--images", "none", "--methods", "bsn", "bsn:mean:pd",
            "ams:pd+r3", "--seconds", "1", "--correlated", "--no-classical", "--set",
            'patch_size=[40, 40]', "batch_size=2", 'network={"base_filters": 4, "depth": 1}']
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert "| data | image | noisy | bsn | bsn:mean:pd | ams:pd+r3 |" in out
    assert "| correlated | phantom_correlated |" in out and "nan" not in out
