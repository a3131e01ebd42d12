"""Stein's correction at low photon counts: which per-pixel variance map? (issue #14)

A phantom at ``PHOTONS`` photons (argv 1) with Poisson (``poisson``) or Gaussian noise of
the same per-pixel variance (``gauss``) (argv 2), or a real image (``w2s 030_2``, ``fmd
BPAE_B``: its many-frame average mapped to the noisy units as in ``compare_quality.py``,
``fmd_truth_check.region_truth``);
n2s trained 60 CPU-s on the top 80 %; the plain pass's estimate on the bottom band with
several variance maps for the ``2 v_i div_i`` term, against the truth, and the J-invariant
form's estimate (no Stein term) for reference. Usage::

    PYTHONPATH=src python benchmarks/sure_variance_check.py 10 poisson
    PYTHONPATH=src python benchmarks/sure_variance_check.py w2s 030_2 [arrays.npz]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from napari_selfdenoise.core import noise_level, scoring, sure
from napari_selfdenoise.core.config import default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.noise_model import estimate_noise_model
from napari_selfdenoise.core.samples import add_poisson_gaussian, render_clean
from napari_selfdenoise.core.training import train

READ_NOISE = 0.5


def phantom(photons: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, expected)``: Poisson-Gaussian, or Gaussian with the same variance."""
    clean = render_clean((512, 512), seed=0)
    noisy, expected = add_poisson_gaussian(clean, photons=photons, background=1.0,
                                           read_noise=READ_NOISE, seed=1)
    if kind == "gauss":
        var = np.maximum(expected, 0) + READ_NOISE**2
        rng = np.random.default_rng(2)
        noisy = (expected + rng.normal(size=expected.shape) * np.sqrt(var)).astype(np.float32)
    return noisy, expected


def real(dataset: str, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """``(noisy, expected, gt_noise)``: the average mapped to the noisy image's units by an
    affine fit, and the MSE offset of its own residual noise."""
    import tifffile
    from fmd_truth_check import FRAMES, region_truth
    from quality_methods import DATASETS

    folder = DATASETS[dataset][0]
    noisy = tifffile.imread(folder / "noisy" / f"{name}.tif").astype(np.float32)
    gt = tifffile.imread(folder / "gt" / f"{name}.tif").astype(np.float32)
    clean, gt_noise, _ = region_truth(noisy, gt, None, FRAMES[dataset])
    return noisy, clean[0], gt_noise


def main() -> None:
    torch.set_num_threads(1)
    gt_noise, read = 0.0, READ_NOISE**2
    if sys.argv[1] in ("w2s", "fmd"):
        noisy, expected, gt_noise = real(sys.argv[1], sys.argv[2])
        kind, photons, read = f"{sys.argv[1]} {sys.argv[2]}", float("nan"), float("nan")
    else:
        photons, kind = float(sys.argv[1]), sys.argv[2]
        noisy, expected = phantom(photons, kind)
    y0 = noisy.shape[0] - int(np.ceil(0.2 * noisy.shape[0]))
    cfg = default_config("n2s", steps=10**9, seed=0, time_budget_s=60, clock="cpu")
    bundle = run_to_end(train(noisy[:y0], cfg, axes="YX"))
    crop = noisy[None, y0 - 32:].astype(np.float32)
    out, div = sure.network_delivered(bundle, crop, "YX")
    out, div = out[:, 32:], div[:, 32:]
    jinv = scoring.invariant_network(bundle, crop)[:, 32:]
    y, x = noisy[None, y0:].astype(np.float32), expected[None, y0:].astype(np.float64)
    peak = scoring.data_range(noisy)
    inner = (Ellipsis, slice(1, -1), slice(1, -1))

    def psnr(mse: float) -> float:
        return float(10 * np.log10(peak**2 / mse))

    true = psnr(float(np.mean((out[inner] - x[inner]) ** 2)) - gt_noise)
    true_j = psnr(float(np.mean((jinv[inner] - x[inner]) ** 2)) - gt_noise)
    est_j = scoring.estimate_quality(y, jinv, jinv, peak).psnr
    per_pixel = noise_level.per_pixel_noise(y, jinv)
    base = (out[inner] - y[inner]) ** 2 - per_pixel
    nm = estimate_noise_model(noisy)
    maps = {"window 9": sure.local_variance(per_pixel),
            "window 3": sure.local_variance(per_pixel, 3),
            "noise model": np.maximum(nm.a[0] * jinv + nm.b[0], 0)[inner],
            # first-order PURE (Hudson's identity for the Poisson part): the noise model
            # evaluated at the noisy pixel instead of the signal
            "noise model at y (PURE)": nm.a[0] * y[inner] + nm.b[0],
            "constant": np.full(base.shape, per_pixel.mean())}
    if not np.isnan(read):
        maps["true"] = (np.maximum(x, 0) + read)[inner]
    else:  # real image: a line fitted to the ground-truth noise (y - x)^2 against x
        xi, e2 = x[inner].ravel(), ((y - x)[inner] ** 2).ravel() - gt_noise
        slope, icpt = np.polyfit(xi, e2, 1)
        maps["ground-truth noise model"] = slope * x[inner] + icpt
    print(f"{kind}, {photons:g} photons, mean {expected.mean():.2f} counts: plain pass "
          f"true {true:.2f} dB; J-invariant form true {true_j:.2f}, est {est_j:.2f} "
          f"({est_j - true_j:+.2f}); true gain of the plain pass {true - true_j:+.2f}")
    e = (y - x)[inner]  # the noise (plus the ground truth's own, 1/frames of it)
    # the average's own noise adds gt_noise to the cross term; E[n (f - g)] is the same
    # expectation with the J-invariant g (E[n g] = 0), another realisation of the truth
    cross = float(np.mean(e * (out[inner] - x[inner]))) - gt_noise
    other = float(np.mean(e * (out[inner] - jinv[inner])))
    print(f"  Stein's term mean(v div) against its truth mean((y - x)(f - x)) = {cross:.3f} "
          f"(or mean((y - x)(f - g)) = {other:.3f}); "
          f"mean((y - x)^2 div) = {float(np.mean(e * e * div[inner])):.3f}; "
          f"J-invariant mean((y - x)(g - x)) = {float(np.mean(e * (jinv[inner] - x[inner]))):.3f}; "
          f"noise variance: estimate {per_pixel.mean():.2f}, truth {float(np.mean(e * e)):.2f}",
          flush=True)
    if len(sys.argv) > 3:  # keep the arrays for a closer look
        np.savez(sys.argv[3], y=y[inner], x=x[inner], out=out[inner], jinv=jinv[inner],
                 div=div[inner], per_pixel=per_pixel, gt_noise=gt_noise)
    for label, v in maps.items():
        print(f"  mean(v div), {label}: {float(np.mean(v * div[inner])):.3f}")
    for label, v in maps.items():
        est = psnr(float(np.mean(base + 2 * v * div[inner])))
        print(f"  {label:18s} {est:.2f} ({est - true:+.2f})", flush=True)


if __name__ == "__main__":
    main()
