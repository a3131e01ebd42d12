"""The ceiling on the correlated-noise phantom (issue #13; docs/benchmarks.md section 7,
"The correlated phantom: the ceiling").

What a method could reach on ``samples.phantom_correlated`` (Poisson-Gaussian noise
convolved with a unit-energy 3 x 3 binomial kernel) at the budget the single-image methods
get, PSNR against the clean image (no normalisation, as ``quality_methods.py
--correlated``):

* ``n2n``: Noise2Noise on a synthetic pair: the phantom and a second, independent draw of
  the same correlated noise on the same clean image (noise seed 100, as ``quality_methods.py
  --n2n`` builds the plain phantom's pair). The target's noise is independent of the
  input's, so correlated noise leaves it unbiased.
* ``supervised``: the same network and budget with the clean image as the target (``n2n``
  with the truth as its second acquisition, input and target never swapped).
* ``classical``: ``calibrate --denoiser auto`` on the whole image, its J-invariant output
  (as ``quality_methods.py``) and the plain filter at the chosen value.
* ``oracle``: every classical denoiser with its parameter chosen by the true PSNR (plain
  output; the calibration's grid widened 4x each way): what calibration would give if the
  J-invariant loss were not biased by the neighbours' correlated noise.
* ``blind-block``: the Gaussian filter calibrated by a self-supervised loss blind to a
  ``(2h+1) x (2h+1)`` block around each pixel (the kernel's centre block removed and the
  rest renormalised, h = 0 .. 3): the loss is unbiased once the block covers the noise's
  correlation range (the 3 x 3 kernel correlates pixels up to 2 apart: 5 x 5); the plain
  and the blind filter at the chosen sigma are scored, and the sigma by the true PSNR.
* ``--methods``: single-image methods and ``quality_methods.py``'s columns (``n2v2``,
  ``bsn:mean:pd``, ...), same budget and seeds.

Usage::

    python benchmarks/correlated_ceiling.py [--cases n2n supervised classical oracle]
        [--methods n2v2 bsn:mean:pd] [--seeds 0 1] [--seconds 60] [--cpu-time]
        [--set KEY=JSON ...] [--json out.jsonl] [--size 256] [--kernel 3]

``--kernel 5``: the noise convolved with the 5 x 5 binomial kernel instead (correlated up
to lag 4), so a rule tuned on the 3 x 3 kernel can be checked on another.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import quality_methods as qm  # noqa: E402  (benchmarks/ is on sys.path)
from machine import (  # noqa: E402
    add_clock_options, apply_clock_options, engine_precision, print_header,
)
from napari_selfdenoise.core.calibration import calibrate
from napari_selfdenoise.core.config import CalibrateConfig
from napari_selfdenoise.core.denoisers import DENOISERS, get_denoiser
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.samples import (
    CORRELATION_KERNEL, add_poisson_gaussian, correlate_noise, phantom_correlated, psnr,
    render_clean,
)

NETWORK_CASES = {  # case -> (method, extra settings); the target is chosen in network_case
    "n2n": ("n2n", {}),
    "supervised": ("n2n", {"params": {"method": "n2n", "swap": False}}),
}
CASES = [*NETWORK_CASES, "classical", "oracle", "blind-block"]
#: ``--kernel``: side -> the binomial kernel (unit energy once applied)
KERNELS = {3: CORRELATION_KERNEL, 5: np.outer([1.0, 4, 6, 4, 1], [1.0, 4, 6, 4, 1])}
#: ``blind-block``: the Gaussian's sigma grid
BLOCK_SIGMAS = np.geomspace(0.4, 6.0, 30)


def phantom_pair(size: int, kernel: np.ndarray = CORRELATION_KERNEL):
    """The correlated phantom (seed 0) and a second draw of its noise: ``(phantom, b)``."""
    ph = phantom_correlated((size, size), kernel=kernel, seed=0)
    clean = render_clean((size, size), seed=0)
    b, expected = add_poisson_gaussian(clean, photons=ph.photons, background=ph.background,
                                       read_noise=ph.read_noise, seed=100)
    assert np.array_equal(expected, ph.clean)  # the same clean image under both draws
    return ph, correlate_noise(b, expected.astype(np.float64), kernel)


def network_case(case: str, ph, second: np.ndarray, seconds: float, extra: dict,
                 seed: int) -> dict:
    """One network trained ``seconds`` on the phantom (``n2n`` / ``supervised`` / a
    single-image method or column), its prediction of the phantom scored."""
    method, own = NETWORK_CASES.get(case, (case, {}))
    target = {"n2n": second, "supervised": ph.clean}.get(case)
    out, bundle, s = qm.run_method(method, ph.noisy, seconds, {**extra, **own, "seed": seed},
                                   target=target)
    return {"method": case, "seed": seed, "psnr": psnr(ph.clean, out),
            "steps": bundle.info["steps"], "train_s": s,
            "pd_train": getattr(bundle.config.params, "pd_train", None),
            "out_mean": float(out.mean()), "out_std": float(out.std())}


def plain_filter(name: str, noisy: np.ndarray, value: float) -> np.ndarray:
    """The plain classical denoiser ``name`` at ``value`` on the whole image."""
    x = torch.from_numpy(np.ascontiguousarray(noisy, np.float32))[None, None]
    with torch.no_grad():
        return get_denoiser(name)(x, [value])[0, 0].numpy()


def oracle_values(den, values: list) -> list:
    """The calibration's grid widened 4x each way (radii: 1 .. its largest + 2)."""
    if den.integer:
        return [float(v) for v in range(1, int(max(values)) + 3)]
    wide = np.geomspace(min(values) / 4.0, max(values) * 4.0, 25)
    return sorted({float(v) for v in (*values, *wide)})


def classical_cases(ph, cases: list, emit) -> None:
    """``calibrate --denoiser auto`` (J-invariant and plain) and the oracle per filter."""
    t = time.perf_counter()
    res = run_to_end(calibrate(ph.noisy, CalibrateConfig(
        denoiser="auto", j_invariant_output=True, crop=None), axes="YX"))
    s = time.perf_counter() - t
    if "classical" in cases:
        plain = plain_filter(res.denoiser, ph.noisy, res.best_value)
        for method, out in (("classical", res.image), ("classical:plain", plain)):
            emit({"method": method, "denoiser": res.denoiser, "value": res.best_value,
                  "psnr": psnr(ph.clean, out), "train_s": s,
                  "out_mean": float(out.mean()), "out_std": float(out.std())})
    if "oracle" not in cases:
        return
    for name, den in DENOISERS.items():
        curve = res.curves.get(name)
        if curve is None:
            continue
        t = time.perf_counter()
        scores = {v: psnr(ph.clean, plain_filter(name, ph.noisy, v))
                  for v in oracle_values(den, list(curve.values))}
        best = max(scores, key=scores.get)
        emit({"method": "oracle", "denoiser": name, "value": best, "psnr": scores[best],
              "calibrated_value": curve.best_value,
              "calibrated_psnr": psnr(ph.clean, plain_filter(name, ph.noisy,
                                                             curve.best_value)),
              "at_grid_edge": best in (min(scores), max(scores)),
              "train_s": time.perf_counter() - t})


def gaussian_kernel(sigma: float, hole: int = -1) -> np.ndarray:
    """A normalised 2D Gaussian kernel; ``hole >= 0``: its centre ``(2 hole + 1)^2``
    block zeroed and the rest renormalised (the output is blind to that block)."""
    r = max(int(np.ceil(4.0 * sigma)), hole + 1)
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2.0 * sigma**2))
    k = np.outer(g, g)
    if hole >= 0:
        k[r - hole:r + hole + 1, r - hole:r + hole + 1] = 0.0
    return k / k.sum()


def blind_block_cases(ph, emit) -> None:
    """The Gaussian calibrated blind to a centre block of growing size (``blind-block``)."""
    from scipy import ndimage

    y = ph.noisy.astype(np.float64)

    def filt(k: np.ndarray) -> np.ndarray:
        return ndimage.convolve(y, k, mode="reflect")

    plain = {s: psnr(ph.clean, filt(gaussian_kernel(s))) for s in BLOCK_SIGMAS}
    for hole in range(4):
        t = time.perf_counter()
        blind = {s: filt(gaussian_kernel(s, hole)) for s in BLOCK_SIGMAS}
        loss = {s: float(np.mean((b - y) ** 2)) for s, b in blind.items()}
        s = min(loss, key=loss.get)
        emit({"method": f"blind-block {2 * hole + 1}x{2 * hole + 1}", "denoiser": "gaussian",
              "value": float(s), "psnr": plain[s], "blind_psnr": psnr(ph.clean, blind[s]),
              "oracle_value": float(max(plain, key=plain.get)),
              "oracle_psnr": max(plain.values()), "train_s": time.perf_counter() - t})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    ap.add_argument("--methods", nargs="*", default=[], choices=qm.CHOICES,
                    help="single-image methods / columns of quality_methods.py, same budget")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training budget per network")
    add_clock_options(ap, "the training budget")
    ap.add_argument("--size", type=int, default=256, help="phantom side (256 in the docs)")
    ap.add_argument("--kernel", type=int, default=3, choices=list(KERNELS),
                    help="side of the binomial kernel correlating the noise (3 in the docs)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="extra TrainConfig settings for every network")
    ap.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = ap.parse_args()
    qm.CPU_TIME = args.cpu_time
    apply_clock_options(args)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    print_header(engine_precision(precision=extra.get("precision", "auto")))
    ph, second = phantom_pair(args.size, KERNELS[args.kernel])
    print(f"correlated phantom {ph.noisy.shape}, {args.kernel} x {args.kernel} kernel: "
          f"noisy {psnr(ph.clean, ph.noisy):.2f} dB, "
          f"second draw {psnr(ph.clean, second):.2f} dB; {args.seconds:g} "
          f"{'CPU' if args.cpu_time else 'wall-clock'} s per network, extra={extra}",
          flush=True)

    def emit(row: dict) -> None:
        row = {"dataset": "correlated", "image": "phantom_correlated", **row,
               "noisy_psnr": psnr(ph.clean, ph.noisy), "seconds": args.seconds,
               "kernel": args.kernel,
               "cpu_time": args.cpu_time, "load_avg": os.getloadavg()[0], "extra": extra}
        what = row.get("denoiser", f"seed {row.get('seed')}, {row.get('steps')} steps, "
                       f"pd_train {row.get('pd_train')}")
        print(f"  {row['method']:16s} {row['psnr']:.2f} dB ({what}, value "
              f"{row.get('value', '-')}, {row['train_s']:.0f} s)", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    for seed in args.seeds:
        for case in [c for c in args.cases if c in NETWORK_CASES] + args.methods:
            emit(network_case(case, ph, second, args.seconds, extra, seed))
    if {"classical", "oracle"} & set(args.cases):
        classical_cases(ph, args.cases, emit)
    if "blind-block" in args.cases:
        blind_block_cases(ph, emit)


if __name__ == "__main__":
    main()
