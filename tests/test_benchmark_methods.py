"""``benchmarks/quality_methods.py`` runs every part on a tiny budget (the lead runs the
real 60 s table)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_methods.py"


def test_quality_methods_table(monkeypatch, capsys, one_torch_thread, shared_data, tmp_path):
    figure = tmp_path / "lysosome.png"
    args = ["--datasets", "w2s", "--images", "010_0", "--methods", "ams", "--seconds", "1",
            "--n2n", "--n2n-figure", str(figure), "--set", 'patch_size=[32, 32]', "batch_size=2",
            'network={"base_filters": 4, "depth": 1}']
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert "| data | image | noisy | ams | classical | n2n | n2s |" in out
    assert "| w2s | 010_0 |" in out and "| phantom pair | phantom_2d |" in out
    assert "n2n pairs along T: best validation loss" in out and "nan" not in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quality_table_merges_runs_and_summarises(tmp_path, monkeypatch):
    """quality_table.py: one table from several JSON-lines files, margins over the filter."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from quality_table import load, render

    rows = [
        {"dataset": "w2s", "image": "a", "method": "n2s", "psnr": 30.0, "noisy_psnr": 20.0},
        {"dataset": "w2s", "image": "a", "method": "classical", "psnr": 30.5,
         "noisy_psnr": 20.0, "denoiser": "tv", "value": 2.0},
        {"dataset": "w2s", "image": "b", "method": "n2s", "psnr": 31.0, "noisy_psnr": 21.0},
    ]
    (tmp_path / "1.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    (tmp_path / "2.jsonl").write_text(json.dumps(rows[2]) + "\n")
    cells = load([tmp_path / "1.jsonl", tmp_path / "2.jsonl"])
    assert set(cells) == {("w2s", "a"), ("w2s", "b")}
    text = render(cells, ["n2s", "classical"])
    assert "| w2s | a | 20.00 | **30.00** | 30.50 (tv 2) | -0.50 |" in text
    assert "| w2s | b | 21.00 | **31.00** | - | - |" in text
    assert "above the classical filter on 0/1, mean margin -0.50 dB" in text


def test_quality_methods_bsn_variants_and_correlated_phantom(monkeypatch, capsys,
                                                            one_torch_thread):
    args = ["--datasets", "fmd", "--images", "none", "--methods", "bsn", "bsn:mean:pd",
            "ams:pd+r3", "--seconds", "1", "--correlated", "--no-classical",
            "--also-predict", "r3", "pd3", "--set",
            'patch_size=[40, 40]', "batch_size=2", 'network={"base_filters": 4, "depth": 1}']
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert ("| data | image | noisy | bsn | bsn|r3 | bsn|pd3 | bsn:mean:pd | bsn:mean:pd|r3 "
            "| bsn:mean:pd|pd3 | ams:pd+r3 | ams:pd+r3|r3 | ams:pd+r3|pd3 |") in out
    assert "| correlated | phantom_correlated |" in out and "nan" not in out


def test_quality_methods_cpu_time_ensemble(monkeypatch, capsys, one_torch_thread, shared_data,
                                           tmp_path):
    """``--cpu-time --ensemble 2``: two seeds share the CPU budget, one averaged row."""
    out_json = tmp_path / "rows.jsonl"
    args = ["--datasets", "w2s", "--images", "010_0", "--methods", "n2s", "--seconds", "2",
            "--cpu-time", "--no-classical", "--ensemble", "2", "--json", str(out_json),
            "--set", 'patch_size=[32, 32]', "batch_size=2",
            'network={"base_filters": 4, "depth": 1}']
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "constant_lr=False" in capsys.readouterr().out
    (row,) = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert row["ensemble"] == 2 and row["steps"] > 2 and row["constant_lr"] is False
    assert row["psnr"] > row["noisy_psnr"]


def test_quality_methods_supervised_trains_on_the_clean_image(monkeypatch, capsys, tmp_path,
                                                             one_torch_thread):
    """``--supervised``: the same network with the image's clean image as its target (n2n,
    never swapped), a column of its own, scored like the others."""
    import numpy as np
    import tifffile

    from napari_selfdenoise.core.samples import add_poisson_gaussian, render_clean

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import quality_methods as qm

    for sub in ("noisy", "gt"):
        (tmp_path / sub).mkdir()
    clean = render_clean((64, 64), seed=0)
    noisy, _ = add_poisson_gaussian(clean, photons=5.0, seed=0)
    tifffile.imwrite(tmp_path / "noisy" / "a.tif", np.asarray(noisy, np.float32))
    tifffile.imwrite(tmp_path / "gt" / "a.tif", np.asarray(clean, np.float32))
    monkeypatch.setitem(qm.DATASETS, "w2s", (tmp_path, ["a"]))
    for flag in ("CPU_TIME", "TTA", "CONSTANT_LR"):  # main() sets them: restore after
        monkeypatch.setattr(qm, flag, getattr(qm, flag))
    seen = []
    real_train = qm.train

    def spy(data, cfg, axes=None, target=None, stop=None):
        seen.append((np.array(data), None if target is None else np.array(target), cfg))
        return real_train(data, cfg, axes=axes, target=target, stop=stop)

    monkeypatch.setattr(qm, "train", spy)
    out_json = tmp_path / "r.jsonl"
    monkeypatch.setattr(sys, "argv", [
        str(SCRIPT), "--datasets", "w2s", "--methods", "--supervised", "--no-classical",
        "--seconds", "2", "--cpu-time", "--json", str(out_json), "--set",
        'patch_size=[32, 32]', "batch_size=2", 'network={"base_filters": 4, "depth": 1}'])
    qm.main()
    ((data, target, cfg),) = seen
    assert cfg.method == "n2n" and cfg.params.swap is False
    assert np.array_equal(data, np.asarray(noisy, np.float32))
    assert np.array_equal(target, np.asarray(clean, np.float32))  # the truth, not a 2nd draw
    (row,) = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert row["method"] == "supervised" and row["steps"] > 0
    assert abs(row["noisy_psnr"] - qm.score(clean, noisy)) < 1e-9 and np.isfinite(row["psnr"])
    assert "| data | image | noisy | supervised |" in capsys.readouterr().out
