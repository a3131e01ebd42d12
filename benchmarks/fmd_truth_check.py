"""Why compare's estimated PSNR misses the FMD "truth" (docs/benchmarks.md section 8).

Compare's estimate is within 1 dB of the truth on W2S and 1-6 dB too optimistic on FMD,
filters included. This separates the ground truth's share from the estimator's, with
deterministic filters only (no training; seconds per image):

* the ground truth mapped to the noisy frame by an affine fit (what section 8 uses) and
  by a least-squares ``(2k+1) x (2k+1)`` kernel plus offset (``--kernel k``; a
  registration: it absorbs a sub-pixel shift or blur between the single frame and the
  average; ~26 parameters fitted on 262 144 pixels, so it cannot fit the noise);
* the residual noise ``noisy - mapped truth``: its variance and its lag-1 autocorrelation
  along X and Y (about 0 for pixel-independent noise and a right truth);
* compare's noise-variance estimate and the estimated PSNR of the calibrated Gaussian's
  J-invariant form on compare's scoring bands, against its true PSNR under each mapping;
  the two noise-variance estimates behind it (the 8-neighbour residual less the
  reference's, and the directional high-pass cap, ``core.noise_level.noise_variance``) and
  the detected lag-1 noise correlation per axis (``noise_level.axis_correlations``);
* ``--correlation-term``: the estimate with a Stein-type correction for noise correlated
  at lag 1 (twice the detected lag-1 covariance per axis times the output's response to
  its two neighbours along that axis, probed with random signs; tried, not adopted).

Usage::

    python benchmarks/fmd_truth_check.py [--datasets fmd w2s] [--kernel 1] [--correlation-term]
"""

from __future__ import annotations

import argparse

import numpy as np

from napari_selfdenoise.core import noise_level, scoring
from napari_selfdenoise.core.holdout import plan
from quality_methods import DATASETS, images

FRAMES = {"fmd": 50, "w2s": 400}
SIGMAS = (0.75, 1.0, 1.5, 2.0, 3.0)


def mapped_truth(noisy: np.ndarray, gt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``gt`` mapped to ``noisy``'s units: least squares over a ``(2k+1)^2`` kernel and an
    offset (``k=0``: the affine fit). Returns the mapped image and the kernel."""
    h, w = gt.shape
    padded = np.pad(gt.astype(np.float64), k, mode="reflect")
    cols = [padded[k + dy:k + dy + h, k + dx:k + dx + w].ravel()
            for dy in range(-k, k + 1) for dx in range(-k, k + 1)]
    design = np.stack(cols + [np.ones(h * w)], 1)
    coef = np.linalg.lstsq(design, noisy.astype(np.float64).ravel(), rcond=None)[0]
    return (design @ coef).reshape(h, w), coef[:-1].reshape(2 * k + 1, 2 * k + 1)


def region_truth(noisy: np.ndarray, gt: np.ndarray, hold, frames: int, kernel: int = 0):
    """The clean scoring bands (stacked as ``hold.region``; ``hold`` None: the whole
    image) in the noisy image's units, the MSE offset of the average's own noise, and the
    noise variance. ``kernel`` 0: the average mapped by an affine fit; k > 0: by a
    least-squares (2k+1)^2 kernel (a registration, ``fmd_truth_check.py``)."""
    clean = mapped_truth(noisy, gt, kernel)[0][None]
    y = noisy.astype(np.float64)[None]
    if hold is not None:
        clean, y = hold.region(clean), hold.region(y)
    noise_var = float(np.mean((y - clean) ** 2)) / (1.0 + 1.0 / frames)
    return clean, noise_var / frames, noise_var


def region_psnr(f: np.ndarray, clean: np.ndarray, gt_noise: float, peak: float) -> float:
    """PSNR of ``f`` against the ground truth mapped to the noisy units, on the scoring
    region's interior (as the estimate), less the ground truth's own residual noise."""
    err = f[..., 1:-1, 1:-1] - clean[..., 1:-1, 1:-1]
    mse = float(np.mean(err**2)) - gt_noise
    return float(10 * np.log10(peak**2 / max(mse, 1e-12)))


def lag1(e: np.ndarray) -> tuple[float, float]:
    """Lag-1 autocorrelation of ``e`` along X and along Y."""
    e = e - e.mean()
    v = float(np.mean(e * e))
    return (float(np.mean(e[:, 1:] * e[:, :-1])) / v, float(np.mean(e[1:] * e[:-1])) / v)


def correlation_term(smooth, noisy: np.ndarray, hold, f: np.ndarray, var: float,
                     probes: int = 2) -> float:
    """``2 var sum_axis rho_axis mean_i(df_i/dy_(i-1) + df_i/dy_(i+1))`` on the bands, for
    a linear J-invariant ``smooth(image) -> band output`` (so a unit probe is exact)."""
    rho = noise_level.axis_correlations(hold.region(noisy[None].astype(np.float64)))
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(probes):
        b = rng.integers(0, 2, size=noisy.shape) * 2.0 - 1.0
        d = smooth(noisy + b) - f
        br = hold.region(b[None])
        for axis, r in rho.items():
            total += r * float(np.mean((np.roll(br, 1, axis) + np.roll(br, -1, axis)) * d))
    return 2.0 * var * total / probes


def check(dataset: str, name: str, noisy: np.ndarray, gt: np.ndarray, k: int,
          corr_term: bool = False) -> None:
    """One image's line: the truth's mapping, the residual noise, and the estimate."""
    hold = plan(noisy.shape[0], 0.2)
    region = hold.region(noisy[None].astype(np.float32))

    def smooth(img: np.ndarray, s: float) -> np.ndarray:
        crops = hold.crops(img[None].astype(np.float32))
        return hold.strip(scoring.invariant_filter("gaussian", s, crops)).astype(np.float64)

    outs = {s: smooth(noisy, s) for s in SIGMAS}
    best = min(SIGMAS, key=lambda s: scoring.score_of(region, outs[s]))
    peak = scoring.data_range(noisy)
    q = scoring.estimate_quality(region, outs[best], outs[best], peak)
    resid = float(noise_level._residual_map(region, outs[best]).mean())
    rho = noise_level.axis_correlations(region.astype(np.float64))
    line = (f"{dataset} {name}: gaussian {best} est {q.psnr:.2f} (noise var {q.noise_variance:.1f}"
            f"; residual {resid:.1f}, high-pass {noise_level.directional_noise_variance(region):.1f}"
            f"; detected lag-1 X {rho[-1]:.3f} Y {rho[-2]:.3f})")
    if corr_term:
        t = correlation_term(lambda a: smooth(a, best), noisy, hold, outs[best],
                             q.noise_variance)
        line += f" | with the correlation term: est {10 * np.log10(peak**2 / (q.mse + t)):.2f}"
    for kk in sorted({0, k}):
        clean, gt_noise, var = region_truth(noisy, gt, hold, FRAMES[dataset], kernel=kk)
        mapped, kern = mapped_truth(noisy, gt, kk)
        lx, ly = lag1(noisy - mapped)
        true = region_psnr(outs[best], clean, gt_noise, peak)
        centre = f", kernel centre {kern[kk, kk]:.2f}" if kk else ""
        line += (f" | {'affine' if kk == 0 else f'{2 * kk + 1}x{2 * kk + 1} kernel'}: true "
                 f"{true:.2f}, noise var {var:.1f}, lag-1 X {lx:.3f} Y {ly:.3f}{centre}")
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["fmd", "w2s"], choices=list(DATASETS))
    ap.add_argument("--images", nargs="+", default=None)
    ap.add_argument("--kernel", type=int, default=1, help="half-width k of the kernel fit")
    ap.add_argument("--correlation-term", action="store_true",
                    help="also the estimate corrected for lag-1 correlated noise (not adopted)")
    args = ap.parse_args()
    for dataset, name, noisy, gt in images(args):
        check(dataset, name, noisy, gt, args.kernel, args.correlation_term)


if __name__ == "__main__":
    main()
