"""The quality benchmark scripts (sections 7 and 8 of docs/benchmarks.md) keep working,
on tiny inputs: the variance-stabilising check, the correlated phantom's ceiling, pooled
and supervised training, the correlation range, and the clock options they share."""

from __future__ import annotations

import json
import math
import runpy
import sys

import pytest
from benchmark_helpers import BENCH, write_dataset
from benchmark_helpers import run_script as _run_script


def _vst_module(monkeypatch):
    script = BENCH / "vst_check.py"
    monkeypatch.syspath_prepend(str(script.parent))
    return runpy.run_path(str(script), run_name="vst_check")


def _tiny_dataset(folder, photons: float) -> None:
    """A one-image noisy / gt dataset ("tiny", 64 x 64 phantom) under ``folder``."""
    from napari_selfdenoise.core.samples import add_poisson_gaussian, render_clean

    clean = render_clean((64, 64), seed=0)
    write_dataset(folder, add_poisson_gaussian(clean, photons=photons, seed=0)[0], clean)


@pytest.mark.parametrize("a, b, lam", [(1.0, 4.0, 5.0), (2.0, 2.0, 5.0), (0.7, 1.0, 20.0)])
def test_vst_gat_stabilises_and_its_exact_inverse_is_unbiased(monkeypatch, a, b, lam):
    import numpy as np

    vst = _vst_module(monkeypatch)
    rng = np.random.default_rng(0)
    y = a * rng.poisson(lam, 1_000_000) + rng.normal(0.0, math.sqrt(b), 1_000_000)
    z = vst["gat"](y, a, b)
    assert abs(z.var() - 1.0) < 0.06  # unit variance: var = a * signal + b is stabilised
    mean = np.array([z.mean()])
    exact = vst["gat_inverse_exact"](mean, a, b)[0]
    algebraic = vst["gat_inverse_algebraic"](mean, a, b)[0]
    assert exact == pytest.approx(a * lam, rel=0.01)
    assert algebraic < 0.99 * a * lam  # the plain inverse is biased low at low counts
    # the algebraic inverse undoes the transform exactly wherever it is not clipped
    assert np.allclose(vst["gat_inverse_algebraic"](vst["gat"](y, a, b), a, b)[y > 0], y[y > 0])
    # the exact inverse is monotone (held at the closed form's minimum near D -> 0)
    d = np.linspace(0.0, 10.0, 2001)
    assert np.all(np.diff(vst["gat_inverse_exact"](d, a, b)) >= 0)


def test_vst_check_runs_end_to_end(monkeypatch, capsys, tmp_path, one_torch_thread):
    _tiny_dataset(tmp_path, photons=5.0)
    vst = _vst_module(monkeypatch)
    monkeypatch.setitem(vst["qm"].DATASETS, "w2s", (tmp_path, ["tiny"]))
    monkeypatch.setattr(sys, "argv", ["vst_check.py", "--seconds", "1", "--no-tta",
                                      "--json", str(tmp_path / "r.jsonl")])
    vst["main"]()
    out = capsys.readouterr().out
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert row["a"] > 0 and row["image"] == "tiny"
    for key in ("n2s", "gat_exact", "gat_algebraic"):
        assert math.isfinite(row[key]) and row[key] > row["noisy_psnr"] - 3
    assert "| w2s | tiny |" in out and "mean GAT - n2s" in out


def test_correlated_ceiling_pair_is_a_second_draw_of_the_same_noise(monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCH))
    cc = runpy.run_path(str(BENCH / "correlated_ceiling.py"), run_name="cc")
    ph, second = cc["phantom_pair"](128)
    n1, n2 = ph.noisy - ph.clean, second - ph.clean
    lag1 = [float(np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1]) for n in (n1, n2)]
    assert all(0.55 < r < 0.8 for r in lag1)  # both correlated (binomial kernel: 0.67)
    assert abs(float(np.corrcoef(n1.ravel(), n2.ravel())[0, 1])) < 0.05  # independent
    assert abs(float(n2.var()) / float(n1.var()) - 1.0) < 0.1
    k = cc["gaussian_kernel"](0.5, 2)  # blind to the 5 x 5 block, even when tiny
    assert k.shape == (7, 7) and k[1:6, 1:6].max() == 0.0 and abs(k.sum() - 1.0) < 1e-12


def test_correlated_ceiling_runs_every_case(monkeypatch, capsys, tmp_path, one_torch_thread):
    out = _run_script("correlated_ceiling.py", [
        "--size", "64", "--seconds", "1", "--cpu-time", "--methods", "n2v2",
        "--set", 'network={"base_filters":4,"depth":1}', "steps=3",
        "time_budget_s=null", "--json", str(tmp_path / "r.jsonl")],
        monkeypatch, capsys)
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
        assert math.isfinite(r["psnr"]) and r["image"] == "phantom_correlated"
    blocks = {f"blind-block {n}x{n}" for n in (1, 3, 5, 7)}
    assert {"n2n", "supervised", "n2v2", "classical", "classical:plain", "oracle",
            *blocks} == set(by)
    assert all(r["oracle_psnr"] >= r["psnr"] for b in blocks for r in by[b])
    assert all(r["steps"] == 3 for m in ("n2n", "supervised", "n2v2") for r in by[m])
    # the oracle's grid holds the calibrated value: never below the calibrated filter
    assert len(by["oracle"]) == 7
    assert all(r["psnr"] >= r["calibrated_psnr"] for r in by["oracle"])
    assert "second draw" in out and "oracle" in out


def test_quality_pooled_runs_end_to_end(monkeypatch, capsys, tmp_path, one_torch_thread):
    """One network on two images of different intensity ranges stacked along S; each
    prediction back in its own image's units, scored, and set beside the reference runs."""
    import numpy as np
    import tifffile

    from napari_selfdenoise.core.samples import add_poisson_gaussian, render_clean

    names = ["dim", "bright"]
    for sub in ("noisy", "gt"):
        (tmp_path / sub).mkdir()
    for i, name in enumerate(names):
        clean = render_clean((128, 64), seed=i)  # 128 rows: a validation band is held out
        noisy, _ = add_poisson_gaussian(clean, photons=5.0, seed=i)
        scale, offset = (1.0, 0.0) if i == 0 else (10.0, 100.0)
        tifffile.imwrite(tmp_path / "noisy" / f"{name}.tif",
                         np.asarray(noisy * scale + offset, np.float32))
        tifffile.imwrite(tmp_path / "gt" / f"{name}.tif", np.asarray(clean, np.float32))
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(
        json.dumps({"dataset": "w2s", "image": n, "method": m, "psnr": p, "extra": {},
                    "denoiser": "gaussian"}) + "\n"
        for n in names for m, p in (("classical", 10.0), ("n2s", 12.0))))
    monkeypatch.syspath_prepend(str(BENCH))
    pooled = runpy.run_path(str(BENCH / "quality_pooled.py"), run_name="pooled")
    monkeypatch.setitem(pooled["qm"].DATASETS, "w2s", (tmp_path, names))
    for flag in ("CPU_TIME", "TTA", "CONSTANT_LR"):  # main() sets them: restore after
        monkeypatch.setattr(pooled["qm"], flag, getattr(pooled["qm"], flag))
    out_json = tmp_path / "r.jsonl"
    common = ["quality_pooled.py", "--cpu-time", "--no-tta", "--filter", str(ref),
              "--single", f"one={ref}", "--json", str(out_json)]
    for flag in (["--seconds", "3", "--single-seconds", "2"],
                 ["--seconds", "3", "--per-image-norm"], ["--seconds", "0",
                                                          "--single-seconds", "2"]):
        monkeypatch.setattr(sys, "argv", common + flag)
        pooled["main"]()
    rows = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [(r["image"], r["method"]) for r in rows] == [
        ("dim", "n2s"), ("bright", "n2s"), ("dim", "pooled"), ("bright", "pooled"),
        ("dim", "pooled:per-image-norm"), ("bright", "pooled:per-image-norm"),
        ("dim", "n2s"), ("bright", "n2s")]
    for r in rows:
        assert r["steps"] > 0 and r["curve"][-1][0] == r["steps"]
        assert all(c[2] is not None for c in r["curve"])  # validated records
        assert math.isfinite(r["psnr"]) and r["psnr"] > r["noisy_psnr"] - 3
    for r in rows[2:6]:
        assert r["n_images"] == 2 and r["images"] == names
    assert rows[2]["norm_offset"] != rows[4]["norm_offset"]  # per stack vs standardised
    out = capsys.readouterr().out
    assert "| w2s | dim |" in out and "10.00 (gaussian) | 12.00 |" in out
    assert "pooled - filter: mean" in out and "pooled - n2s single (this run, 2 s)" in out
    assert "pooled - single-image n2s (this run, 2 s)" in out
    assert "n2s single (this run, 2 s) - filter: mean" in out  # no pooled run: singles only


def test_quality_pooled_predictions_come_back_in_each_images_units(monkeypatch,
                                                                  one_torch_thread):
    """Per-image standardisation before stacking is undone per image: each output has its
    own image's mean although the two images' ranges differ 40-fold (one network, trained
    on two standardised images)."""
    import numpy as np

    from napari_selfdenoise.core.samples import add_poisson_gaussian, render_clean

    monkeypatch.syspath_prepend(str(BENCH))
    pooled = runpy.run_path(str(BENCH / "quality_pooled.py"), run_name="pooled")
    monkeypatch.setattr(pooled["qm"], "CPU_TIME", True)
    monkeypatch.setattr(pooled["qm"], "TTA", False)
    noisy = [np.asarray(add_poisson_gaussian(render_clean((64, 64), seed=i), photons=5.0,
                                             seed=i)[0], np.float32) for i in range(2)]
    noisy[1] = noisy[1] * 10.0 + 100.0
    # a step budget: a 2 CPU-s budget left 0 steps on an AVX2 EPYC (the first optimiser of
    # a process imports torch._dynamo, 3.5 CPU-s there), and an untrained network's output
    # is off its image's mean
    outs, bundle, _ = pooled["pooled"](noisy, 2.0, {"steps": 80, "time_budget_s": None}, True)
    assert bundle.axes == "SYX" and len(outs) == 2 and bundle.info["steps"] == 80
    assert abs(bundle.norm_offset[0]) < 0.05 and abs(bundle.norm_scale[0] - 1) < 0.05
    for x, o in zip(noisy, outs):
        assert o.shape == x.shape
        assert abs(float(o.mean()) - float(x.mean())) < 0.2 * float(x.std())


def test_supervised_loo_maps_each_clean_image_into_its_noisy_units(monkeypatch):
    """The clean image, rescaled by its publisher, is put back on its noisy image's scale
    (least-squares affine fit) before standardising: a known affine map is recovered."""
    import numpy as np

    monkeypatch.syspath_prepend(str(BENCH))
    loo = runpy.run_path(str(BENCH / "quality_supervised_loo.py"), run_name="loo")
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.0, 1.0, (64, 64)).astype(np.float32)
    noisy = (3.0 * clean + 5.0 + rng.normal(0.0, 0.1, clean.shape)).astype(np.float32)
    mapped = loo["in_noisy_units"](clean, noisy)
    assert np.abs(mapped - (3.0 * clean + 5.0)).max() < 0.02
    x, y, (m, sd) = loo["standardised"](noisy, clean * 40.0 - 7.0)  # any clean scale
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1.0) < 1e-5
    assert np.abs(y - (3.0 * clean + 5.0 - m) / sd).max() < 0.02


def test_supervised_loo_never_trains_on_the_held_out_image(monkeypatch, capsys, tmp_path,
                                                            one_torch_thread):
    """One network per held-out image, trained on every other noisy / clean pair only (the
    held-out noisy image is not in its training stack), then scored on the held-out one."""
    import numpy as np
    import tifffile

    from napari_selfdenoise.core.samples import add_poisson_gaussian, render_clean

    names = ["a", "b", "c"]
    for sub in ("noisy", "gt"):
        (tmp_path / sub).mkdir()
    noisies = {}
    for i, name in enumerate(names):
        clean = render_clean((128, 64), seed=i)
        noisy, _ = add_poisson_gaussian(clean, photons=5.0, seed=i)
        noisies[name] = np.asarray(noisy * (1 + i) + 10 * i, np.float32)
        tifffile.imwrite(tmp_path / "noisy" / f"{name}.tif", noisies[name])
        tifffile.imwrite(tmp_path / "gt" / f"{name}.tif", np.asarray(clean * 255, np.float32))
    monkeypatch.syspath_prepend(str(BENCH))
    loo = runpy.run_path(str(BENCH / "quality_supervised_loo.py"), run_name="loo")
    qm = loo["qm"]
    monkeypatch.setitem(qm.DATASETS, "w2s", (tmp_path, names))
    for flag in ("CPU_TIME", "TTA", "CONSTANT_LR"):  # main() sets them: restore after
        monkeypatch.setattr(qm, flag, getattr(qm, flag))
    stacks, real = [], qm.run_method

    def spy(method, xs, seconds, extra, **kw):
        stacks.append((method, xs, kw["target"], extra))
        return real(method, xs, seconds, extra, **kw)

    monkeypatch.setattr(qm, "run_method", spy)
    out_json = tmp_path / "r.jsonl"
    monkeypatch.setattr(sys, "argv", [
        "quality_supervised_loo.py", "--cpu-time", "--no-tta", "--seconds", "2",
        "--held-out", "a", "c", "--json", str(out_json),
        "--set", 'network={"base_filters": 4, "depth": 1}', "batch_size=2", "steps=3",
        "time_budget_s=null", 'patch_size=[32, 32]'])
    loo["main"]()
    rows = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [r["image"] for r in rows] == ["a", "c"]
    assert [r["train_images"] for r in rows] == [["b", "c"], ["a", "b"]]
    for (method, xs, ys, extra), held in zip(stacks, ["a", "c"]):
        assert method == "n2n" and extra["params"]["swap"] is False
        assert xs.shape == ys.shape == (2, 128, 64)
        x_held = loo["standardised"](noisies[held])[0]
        assert not any(np.allclose(x, x_held) for x in xs)  # held out of training
        others = [loo["standardised"](noisies[n])[0] for n in names if n != held]
        assert all(np.allclose(x, o) for x, o in zip(xs, others))
    for r in rows:
        assert r["method"] == "supervised:loo" and r["steps"] == 3
        assert math.isfinite(r["psnr"]) and math.isfinite(r["noisy_psnr"])
    assert "supervised:loo - noisy: mean" in capsys.readouterr().out


def test_correlated_ceiling_other_kernel_and_auto_factor(monkeypatch, capsys, tmp_path,
                                                         one_torch_thread):
    """``--kernel 5``: the 5 x 5 binomial phantom; ``bsn:mean:pdauto`` records the factor
    its training chose (the 5 x 5 kernel's measurable range, 3, plus one)."""
    _run_script("correlated_ceiling.py", [
        "--size", "128", "--kernel", "5", "--cases", "--methods", "bsn:mean:pdauto",
        "--set", 'network={"base_filters":4,"depth":1}', "steps=2", "batch_size=2",
        "time_budget_s=null", "--json", str(tmp_path / "r.jsonl")], monkeypatch, capsys)
    (row,) = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert row["kernel"] == 5 and row["pd_train"] == 4 and math.isfinite(row["psnr"])


def test_correlation_range_reports_the_phantoms(monkeypatch, capsys):
    out = _run_script("correlation_range.py", ["--datasets", "phantoms"], monkeypatch, capsys)
    rows = {line.split("|")[2].strip(): line.split("|")[6].strip()
            for line in out.splitlines() if line.startswith("| phantoms")}
    assert len(rows) == 12
    assert {rows[f"white, seed {s}"] for s in range(3)} == {"2"}
    assert {rows[f"binomial 3x3, seed {s}"] for s in range(3)} == {"3"}
    assert {rows[f"binomial 5x5, seed {s}"] for s in range(3)} == {"4"}


def test_clock_options_pay_the_optimiser_import_before_any_budget():
    """The first optimiser of a process imports torch._dynamo (seconds of CPU): the clock
    options pay it up front, so a benchmark's first run gets the budget its others get."""
    import subprocess

    code = ("import argparse, sys; import machine\n"
            "before = 'torch._dynamo' in sys.modules\n"
            "machine.apply_clock_options(argparse.Namespace(cpu_time=True, threads=None))\n"
            "print(before, 'torch._dynamo' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCH, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


def _bound_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    return runpy.run_path(str(BENCH / "posterior_bound.py"), run_name="posterior_bound")


def test_posterior_bound_oracle_is_the_closed_form(monkeypatch):
    import numpy as np

    pb = _bound_module(monkeypatch)
    # one pixel by hand: y 10, blind mean 6, clean 8, noise variance 1 -> prior variance
    # (6 - 8)^2 = 4, posterior (10 * 4 + 6 * 1) / (4 + 1) = 9.2
    one = pb["oracle_posterior"](np.array([[10.0]]), np.array([[6.0]]), np.array([[8.0]]),
                                 np.array([[1.0]]), 1)
    assert one[0, 0] == pytest.approx(9.2)
    # per pixel, the exact error as prior variance gives error^2 = v e^2 / (v + e^2) in
    # expectation: below both the blind mean's e^2 and the noise's v
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 100, (256, 256))
    err = rng.choice([-6.0, 0.5, 4.0], size=clean.shape)
    y = clean + rng.normal(0, 3.0, clean.shape)
    post = pb["oracle_posterior"](y, clean + err, clean, np.full(clean.shape, 9.0), 1)
    expected = float(np.mean(9.0 * err**2 / (9.0 + err**2)))
    assert float(np.mean((post - clean) ** 2)) == pytest.approx(expected, rel=0.03)
    assert expected < min(float(np.mean(err**2)), 9.0)


def test_posterior_bound_runs_end_to_end(monkeypatch, capsys, tmp_path, one_torch_thread):
    _tiny_dataset(tmp_path, photons=20.0)
    pb = _bound_module(monkeypatch)
    monkeypatch.setitem(pb["qm"].DATASETS, "w2s", (tmp_path, ["tiny"]))
    monkeypatch.setattr(sys, "argv", [
        "posterior_bound.py", "--methods", "n2s", "bsn", "--set", "steps=3",
        "time_budget_s=null", 'network={"base_filters":4}', "--json",
        str(tmp_path / "r.jsonl")])
    pb["main"]()
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["n2s", "bsn"]
    for r in rows:
        assert r["steps"] == 3 and r["image"] == "tiny"
        for key in ("delivered", "blind", "oracle 1", "oracle 3", "oracle 7"):
            assert math.isfinite(r[key])
    assert "| w2s | tiny | bsn | 3 |" in out
