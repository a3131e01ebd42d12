"""Calibration speed and quality against ``skimage.restoration.calibrate_denoiser``.

Sections (all measured in one run, on the same images and the same grids):

* ``mice``: the same on the 512 x 512 original (the issue's reference image).
* ``2d``: a 1024 x 1024 image (FMD confocal ``mice`` noisy frame mirrored 2 x 2, ground truth
  mirrored the same way); median, Gaussian and TV. scikit-image: ``calibrate_denoiser``
  (its default one-mask loss) plus the plain denoiser at its choice. Ours: ``calibrate``
  (default 512 crop, then the whole image denoised) and with ``crop=None``.
* ``3d``: a 64 x 512 x 512 noisy phantom (``samples.phantom_3d`` 64 x 256 x 256 mirrored
  in Y and X); ours for median / Gaussian / TV, scikit-image for Gaussian (``--skimage-3d``:
  also median and TV, minutes).
* ``fmd``: ``auto`` on each of the 5 FMD confocal pairs, PSNR of the plain and the
  J-invariant output of every denoiser at its calibrated value.

PSNR: CSBDeep ``norm_minmse`` (ground truth percentile-normalised to 0.1 / 99.9, output
fitted by least squares), peak = range of the normalised ground truth (as
``benchmarks/quality_fmd.py``).

Usage::

    .venv/bin/python benchmarks/calibrate_vs_skimage.py [--sections 2d 3d fmd]
        [--threads N] [--skimage-3d] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from machine import print_header  # noqa: E402  (benchmarks/ is on sys.path)


def psnr_minmse(gt: np.ndarray, x: np.ndarray) -> float:
    """PSNR (dB) after CSBDeep ``norm_minmse``, peak = the normalised ground truth's range
    (as ``benchmarks/quality_fmd.py``; reproduces the issue's reference figures)."""
    from napari_selfdenoise.core.normalization import norm_minmse
    from napari_selfdenoise.core.samples import psnr

    return psnr(*norm_minmse(gt, x))


def mirror2(a: np.ndarray) -> np.ndarray:
    """Mirror-tile the last two axes 2 x 2 (no seams)."""
    top = np.concatenate([a, a[..., ::-1]], axis=-1)
    return np.concatenate([top, top[..., ::-1, :]], axis=-2)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def skimage_functions(ndim: int) -> dict[str, tuple[Callable, str]]:
    from skimage.filters import gaussian, median
    from skimage.morphology import ball, disk
    from skimage.restoration import denoise_tv_chambolle

    fp = disk if ndim == 2 else ball
    return {
        "median": (lambda im, radius: median(im, footprint=fp(int(radius))), "radius"),
        "gaussian": (lambda im, sigma: gaussian(im, sigma=sigma), "sigma"),
        "tv": (lambda im, weight: denoise_tv_chambolle(im, weight=weight), "weight"),
    }


def run_skimage(image: np.ndarray, name: str, grid: list[float]) -> dict:
    from skimage.restoration import calibrate_denoiser

    fn, param = skimage_functions(image.ndim)[name]
    t0 = time.perf_counter()
    _, (tried, losses) = calibrate_denoiser(image, fn, {param: grid}, extra_output=True)
    t_cal = time.perf_counter() - t0
    best = tried[int(np.argmin(losses))][param]
    out = fn(image, best)
    return {"best": float(best), "calib_s": t_cal, "total_s": time.perf_counter() - t0,
            "image": out}


def run_ours(image: np.ndarray, name: str, grid: list[float], crop, axes: str) -> dict:
    from napari_selfdenoise.core.calibration import calibrate
    from napari_selfdenoise.core.config import CalibrateConfig
    from napari_selfdenoise.core.events import run_to_end

    cfg = CalibrateConfig(denoiser=name, values=grid, crop=crop, j_invariant_output=False)
    res, t = timed(lambda: run_to_end(calibrate(image, cfg, axes=axes)))
    return {"best": res.best_value, "calib_s": res.calibration_s, "total_s": t,
            "image": res.image}


def grids(image: np.ndarray, axes: str) -> dict[str, list[float]]:
    from napari_selfdenoise.core.calibration import estimate_noise_sigma, read_crop
    from napari_selfdenoise.core.denoisers import DENOISERS

    nd = image.ndim
    sigma = estimate_noise_sigma(read_crop(image, axes, 512), nd)
    return {k: DENOISERS[k].default_values(sigma, nd) for k in ("median", "gaussian", "tv")}


def section_2d(data: Path, mirror: bool = True) -> None:
    import tifffile

    folder = data / "fmd_confocal_n2f"
    noisy = tifffile.imread(folder / "noisy" / "mice.tif").astype(np.float64) / 255
    gt = tifffile.imread(folder / "gt" / "mice.tif")
    if mirror:
        noisy, gt = mirror2(noisy), mirror2(gt)
    img32 = noisy.astype(np.float32)
    print(f"\n### 2D: FMD mice{' mirrored to' if mirror else ''} {noisy.shape}; noisy PSNR "
          f"{psnr_minmse(gt, noisy):.2f} dB\n")
    print("| denoiser | grid | skimage: choice, calib s, calib+apply s, PSNR | ours (crop 512): "
          "choice, calib s, total s, PSNR | speed-up (total) | ours (whole image): choice, "
          "total s, PSNR | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, grid in grids(img32, "YX").items():
        sk = run_skimage(noisy, name, grid)
        ours = run_ours(img32, name, grid, 512, "YX")
        whole = run_ours(img32, name, grid, None, "YX")
        print(f"| {name} | {', '.join(f'{v:g}' for v in grid)} | {sk['best']:g}, "
              f"{sk['calib_s']:.2f}, {sk['total_s']:.2f}, {psnr_minmse(gt, sk['image']):.2f} | "
              f"{ours['best']:g}, {ours['calib_s']:.2f}, {ours['total_s']:.2f}, "
              f"{psnr_minmse(gt, ours['image']):.2f} | {sk['total_s'] / ours['total_s']:.1f}x | "
              f"{whole['best']:g}, {whole['total_s']:.2f}, {psnr_minmse(gt, whole['image']):.2f} "
              f"| {sk['total_s'] / whole['total_s']:.1f}x |", flush=True)


def section_3d(all_skimage: bool) -> None:
    from napari_selfdenoise.core.samples import phantom_3d

    ph = phantom_3d((64, 256, 256), seed=0)
    noisy, gt = mirror2(ph.noisy), mirror2(ph.clean)
    print(f"\n### 3D: phantom {noisy.shape}; noisy PSNR {psnr_minmse(gt, noisy):.2f} dB\n")
    print("| denoiser | grid | ours (crop 16x256x256): choice, calib s, total s, PSNR | "
          "skimage: choice, calib s, calib+apply s, PSNR | speed-up |")
    print("|---|---|---|---|---|")
    for name, grid in grids(noisy, "ZYX").items():
        ours = run_ours(noisy, name, grid, 512, "ZYX")
        row = (f"| {name} | {', '.join(f'{v:g}' for v in grid)} | {ours['best']:g}, "
               f"{ours['calib_s']:.2f}, {ours['total_s']:.2f}, "
               f"{psnr_minmse(gt, ours['image']):.2f} |")
        if name == "gaussian" or all_skimage:
            sk = run_skimage(noisy.astype(np.float64), name, grid)
            row += (f" {sk['best']:g}, {sk['calib_s']:.2f}, {sk['total_s']:.2f}, "
                    f"{psnr_minmse(gt, sk['image']):.2f} | {sk['total_s'] / ours['total_s']:.1f}x |")
        else:
            row += " (not run) | |"
        print(row, flush=True)


def section_fmd(data: Path) -> None:
    import tifffile

    from napari_selfdenoise.core.calibration import apply_denoiser, calibrate
    from napari_selfdenoise.core.config import CalibrateConfig
    from napari_selfdenoise.core.events import run_to_end

    folder = data / "fmd_confocal_n2f"
    names = sorted(p.stem for p in (folder / "noisy").glob("*.tif"))
    print("\n### FMD confocal, `auto` (512 x 512, whole image)\n")
    print("| image | noisy | auto choice | auto s | PSNR plain | PSNR J-inv | best plain "
          "(denoiser) |")
    print("|---|---|---|---|---|---|---|")
    per_denoiser: dict[str, list[tuple[float, float]]] = {}
    for name in names:
        noisy = tifffile.imread(folder / "noisy" / f"{name}.tif").astype(np.float32) / 255
        gt = tifffile.imread(folder / "gt" / f"{name}.tif")
        t0 = time.perf_counter()
        res = run_to_end(calibrate(noisy, CalibrateConfig(denoiser="auto")))
        t = time.perf_counter() - t0
        scores = {}
        for den, curve in res.curves.items():
            plain = apply_denoiser(den, noisy[None], curve.best_value)[0]
            jinv = apply_denoiser(den, noisy[None], curve.best_value, j_invariant=True)[0]
            scores[den] = (psnr_minmse(gt, plain), psnr_minmse(gt, jinv))
            per_denoiser.setdefault(den, []).append(scores[den])
        top = max(scores, key=lambda k: scores[k][0])
        print(f"| {name} | {psnr_minmse(gt, noisy):.2f} | {res.denoiser} "
              f"{res.parameter}={res.best_value:.4g} | {t:.1f} | "
              f"{scores[res.denoiser][0]:.2f} | {scores[res.denoiser][1]:.2f} | "
              f"{scores[top][0]:.2f} ({top}) |", flush=True)
    print("\nMean PSNR over the 5 images at each denoiser's calibrated value "
          "(plain / J-invariant output):\n")
    print("| denoiser | plain | J-invariant |")
    print("|---|---|---|")
    for den, vals in per_denoiser.items():
        p, j = np.mean(vals, axis=0)
        print(f"| {den} | {p:.2f} | {j:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["2d", "3d", "fmd"],
                        choices=["mice", "2d", "3d", "fmd"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--skimage-3d", action="store_true",
                        help="also run scikit-image median and TV in 3D (slow)")
    here = Path(__file__).resolve().parents[1]
    default = Path(os.environ.get("NAPARI_SELFDENOISE_DATA", here / ".." / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print_header("fp32 (calibration always computes in fp32)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if "mice" in args.sections:
        section_2d(args.data, mirror=False)
    if "2d" in args.sections:
        section_2d(args.data)
    if "3d" in args.sections:
        section_3d(args.skimage_3d)
    if "fmd" in args.sections:
        section_fmd(args.data)


if __name__ == "__main__":
    main()
