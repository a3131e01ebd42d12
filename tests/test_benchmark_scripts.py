"""The inference benchmark scripts, `make gpu-check`'s plumbing, the export timing and the
FMD truth check keep working on CPU, on tiny inputs (issue #3; CI has no GPU). The quality
scripts' tests are in test_benchmark_quality.py."""

from __future__ import annotations

import json
import math
import runpy
import sys

import pytest

from benchmark_helpers import BENCH, write_dataset
from benchmark_helpers import run_script as _run_script

SCRIPT = BENCH / "predict_roofline.py"


def test_predict_roofline_reports_rates_and_fractions(monkeypatch, capsys, one_torch_thread):
    args = ["--device", "cpu", "--planes", "1", "--size", "128", "--depth-3d", "4",
            "--size-3d", "32", "--matmul", "256", "--repeats", "1", "--json"]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as `python benchmarks/...` does
    runpy.run_path(str(SCRIPT), run_name="__main__")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "CPU" and result["precision"] == "fp32"  # the suite's "auto"
    assert result["peak_gflop_s"] > 0
    assert [r["model"] for r in result["rows"]] == ["2D U-Net", "3D U-Net"]
    for row in result["rows"]:
        assert row["flops_per_voxel"] > 1e5
        for key in ("network", "predict"):
            assert row[f"{key}_vox_s"] > 0
            frac = row[f"{key}_fraction_of_peak"]
            # no upper bound: two timings on a shared machine (the peak's and the run's)
            # can disagree by any factor; the script itself flags a rate above peak
            assert math.isfinite(frac) and frac > 0
            assert row[f"{key}_gflop_s"] == pytest.approx(
                row[f"{key}_vox_s"] * row["flops_per_voxel"] / 1e9)
        assert row["computed_per_output_voxel"] >= 1.0


def test_predict_border_speed_compares_the_two_borders(monkeypatch, capsys, one_torch_thread):
    out = _run_script("predict_border_speed.py", ["--depth", "4", "--size", "40",
                                                  "--repeats", "1"], monkeypatch, capsys)
    assert "default border  border [8, 16, 16]" in out
    assert "full context    border [32, 32, 32]" in out and "speed-up" in out


def test_border_quality_scores_each_border(monkeypatch, capsys, one_torch_thread):
    out = _run_script("border_quality.py", ["--dims", "3", "--depth", "12", "--seconds", "2",
                                            "--borders", "0", "8", "--threads", "1"],
                      monkeypatch, capsys)
    rows = [line for line in out.splitlines() if line.strip().startswith("border")]
    assert len(rows) == 2 and all("all" in r and "inside" in r for r in rows)
    assert "nan" not in out


def _gpu_check():
    spec = runpy.run_path(str(SCRIPT.parents[1] / "scripts" / "gpu_check.py"))
    return spec["main"]


def test_gpu_check_refuses_at_once_without_cuda(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: `make gpu-check` runs for real")
    assert _gpu_check()(["--out", str(tmp_path / "g.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu-check: ") and "sees no CUDA device" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "g.txt").exists()


def test_gpu_check_plumbing_runs_on_cpu(tmp_path, capsys):
    """The same steps on tiny CPU inputs: every benchmark it calls still runs, and the
    report holds the machine header and each step's figures."""
    out = tmp_path / "gpu_check.txt"
    assert _gpu_check()(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    report = out.read_text()
    assert "# cpu_bf16: " in report and "# threads: " in report and "# torch: " in report
    assert "## predict_roofline (exit 0" in report and "practical peak" in report
    assert "## train_throughput (exit 0" in report and "bf16 autocast + channels_last" in report


def test_predict_distributed_compares_workers_with_the_threaded_engine(monkeypatch, capsys,
                                                                       one_torch_thread):
    pytest.importorskip("distributed")
    out = _run_script("predict_distributed.py", ["--planes", "1", "--size", "128",
                                                 "--repeats", "1", "--workers", "1", "--json"],
                      monkeypatch, capsys)
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["rows"]) == {"threaded", "dask-1"}
    row = result["rows"]["dask-1"]
    assert row["wall_s"] > 0 and row["cpu_s"] > 0 and len(row["worker_peak_rss_mb"]) == 1
    assert row["max_abs_diff"] < 1e-4  # the same prediction


def test_export_time_reports_a_passed_package(monkeypatch, capsys, one_torch_thread):
    pytest.importorskip("bioimageio.core")
    out = _run_script("export_time.py", ["--dims", "2", "--depth", "1", "--filters", "4",
                                         "--json"], monkeypatch, capsys)
    row = json.loads(out.strip().splitlines()[-1])
    assert row["dims"] == 2 and row["test_status"] == "passed"
    assert row["export_s"] > 0 and row["package_test_s"] > 0 and row["package_bytes"] > 0


def test_the_ground_truth_registration_recovers_a_known_sub_pixel_shift(monkeypatch):
    """fmd_truth_check.mapped_truth (the registered truth of compare_quality.py): a frame
    that is the average shifted by half a pixel, plus noise, is fitted by that kernel; k=0
    is the affine fit."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import numpy as np
    from fmd_truth_check import mapped_truth

    rng = np.random.default_rng(0)
    gt = 50 + 40 * rng.random((96, 96))  # texture at the pixel scale: a well-posed fit
    frame = 0.9 * (0.5 * gt + 0.5 * np.roll(gt, 1, axis=0)) + 3.0
    noisy = frame + rng.normal(0, 0.5, gt.shape)
    fitted, kern = mapped_truth(noisy, gt, 1)
    want = np.zeros((3, 3))
    want[1, 1] = want[0, 1] = 0.45  # np.roll(gt, 1, 0)[i] = gt[i - 1]: the row above
    np.testing.assert_allclose(kern, want, atol=0.02)
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(fitted - frame)[inner].max() < 0.5
    affine, k0 = mapped_truth(noisy, gt, 0)
    a = np.stack([gt.ravel(), np.ones(gt.size)], 1)
    coef = np.linalg.lstsq(a, noisy.ravel(), rcond=None)[0]
    np.testing.assert_allclose(affine, coef[0] * gt + coef[1], rtol=1e-9, atol=1e-9)
    assert k0.shape == (1, 1)


def test_the_correlation_term_of_fmd_truth_check_is_exact_for_a_linear_filter(monkeypatch):
    """fmd_truth_check.correlation_term: for f = the mean of the two X neighbours (a
    J-invariant linear filter), mean_i(df_i/dy_(i-1) + df_i/dy_(i+1)) is 1 along X and 0
    along Y, so the term is 2 * var * rho_x (up to the probes' noise); rho_x is the
    detected X correlation of noise blurred along X (lag-1 0.4)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import numpy as np
    from fmd_truth_check import correlation_term

    from napari_selfdenoise.core import noise_level
    from napari_selfdenoise.core.holdout import plan

    rng = np.random.default_rng(0)
    white = rng.normal(0, 1.0, (128, 96))
    noisy = 10.0 + np.sqrt(0.8) * white + np.sqrt(0.2) * np.roll(white, 1, 1)
    hold = plan(noisy.shape[0], 0.2)

    def smooth(img):
        return hold.region(0.5 * (np.roll(img, 1, 1) + np.roll(img, -1, 1))[None])

    f = smooth(noisy)
    rho = noise_level.axis_correlations(hold.region(noisy[None]))
    term = correlation_term(smooth, noisy, hold, f, var=2.0, probes=2)
    assert rho[-1] == pytest.approx(0.4, abs=0.03) and abs(rho[-2]) < 0.03
    assert term == pytest.approx(2 * 2.0 * rho[-1], rel=0.08)


def test_compare_quality_runs_end_to_end_with_its_seed(monkeypatch, capsys, tmp_path,
                                                       one_torch_thread):
    """compare_quality.py: compare, the truths of every candidate and the single method,
    with ``--seed`` reaching both (the seed study of docs/benchmarks.md section 8)."""
    from napari_selfdenoise.core.samples import phantom_2d

    ph = phantom_2d((288, 96), seed=7)  # tall enough for compare's two scoring bands
    write_dataset(tmp_path, ph.noisy, ph.clean)
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import quality_methods

    monkeypatch.setitem(quality_methods.DATASETS, "w2s", (tmp_path, ["tiny"]))
    seen = []
    from napari_selfdenoise.core import training

    real = training.train

    def spy(data, config, **kw):
        seen.append(config.seed)
        return real(data, config, **kw)

    monkeypatch.setattr(training, "train", spy)
    _run_script("compare_quality.py", ["--datasets", "w2s", "--budget", "3", "--cpu-time",
                                       "--seed", "3", "--json", str(tmp_path / "r.jsonl")],
                monkeypatch, capsys)
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert row["seed"] == 3 and row["image"] == "tiny" and row["budget"] == 3
    assert math.isfinite(row["single_psnr"]) and row["pick"] in {c["name"] for c in row["candidates"]}
    assert seen and set(seen) == {3}  # compare's network and the single method
