"""Noise2Self in a variance-stabilised domain (issue #12, section 7): does training and
predicting on the generalized Anscombe transform (GAT) of a Poisson-Gaussian image help?

For each chosen image, in one process and with the same seed: (1) ``n2s`` trained
``--seconds`` on the raw image and predicting it (the normal path, as
``quality_methods.py``); (2) the image's noise model ``var = a * signal + b`` estimated
(``core.noise_model.estimate_noise_model``, image units), the image mapped by the GAT

    z = (2 / a) * sqrt(max(a * y + 3/8 * a^2 + b, 0))

(noise ~ unit variance), ``n2s`` trained the same on ``z`` and predicting ``z_hat``, mapped
back with the closed-form approximation of the exact unbiased inverse (Makitalo & Foi 2011,
2013) and, from the same prediction, with the plain algebraic inverse.

The scaling: with ``y = a * p + n``, ``p ~ Poisson(lam)``, ``n ~ N(0, b)``,
``z = 2 * sqrt(p + n / a + 3/8 + s^2)`` with ``s^2 = b / a^2``: the standard GAT of a
Poisson variable with unit gain and Gaussian noise of variance ``s^2``, whose inverse
``I(D) - s^2`` (``I`` the Poisson one) estimates ``lam``; so ``y_hat = a * I(D) - b / a``.
PSNR as section 7 (``quality_methods.score``: CSBDeep ``norm_minmse``).

Usage::

    python benchmarks/vst_check.py [--datasets w2s fmd] [--images 010_0 ...]
        [--seconds 60] [--cpu-time] [--no-tta] [--json out.jsonl]
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

import quality_methods as qm  # noqa: E402  (benchmarks/ is on sys.path)
from napari_selfdenoise.core.noise_model import estimate_noise_model

_R = np.sqrt(1.5)


def gat(y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Generalized Anscombe transform of ``y`` with ``var = a * signal + b`` (mu = 0)."""
    y = np.asarray(y, dtype=np.float64)
    return (2.0 / a) * np.sqrt(np.maximum(a * y + 0.375 * a * a + b, 0.0))


def _poisson_exact(d: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse of the Poisson Anscombe
    transform (Makitalo & Foi 2011), no clipping."""
    return (0.25 * d**2 + 0.25 * _R / d - 11.0 / 8.0 / d**2 + 0.625 * _R / d**3 - 0.125)


#: the closed form rises again towards D -> 0 (its D^-3 term); below its minimum it is
#: held at the minimum so the inverse is monotone (reached only at near-zero counts)
_GRID = np.linspace(0.5, 3.0, 25001)
D_MIN = float(_GRID[np.argmin(_poisson_exact(_GRID))])


def gat_inverse_exact(d: np.ndarray, a: float, b: float) -> np.ndarray:
    """Closed-form exact unbiased inverse of :func:`gat`: ``a * max(I(D) - b/a^2, 0)``."""
    d = np.maximum(np.asarray(d, dtype=np.float64), D_MIN)
    return a * np.maximum(_poisson_exact(d) - b / (a * a), 0.0)


def gat_inverse_algebraic(d: np.ndarray, a: float, b: float) -> np.ndarray:
    """Algebraic inverse of :func:`gat` (biased low at low counts)."""
    d = np.asarray(d, dtype=np.float64)
    return (a * a * d * d / 4.0 - 0.375 * a * a - b) / a


def run_vst(noisy: np.ndarray, seconds: float, extra: dict) -> tuple:
    """``n2s`` on the GAT of ``noisy``: ``(exact, algebraic, model, steps, s)``."""
    nm = estimate_noise_model(noisy)
    a, b = nm.a[0], nm.b[0]
    if a <= 0:
        raise ValueError(f"noise model {nm.describe()}: no Poisson part, no GAT")
    z = gat(noisy, a, b).astype(np.float32)
    z_hat, bundle, s = qm.run_method("n2s", z, seconds, extra)
    return (gat_inverse_exact(z_hat, a, b).astype(np.float32),
            gat_inverse_algebraic(z_hat, a, b).astype(np.float32), (a, b),
            bundle.info["steps"], s)


def main() -> None:
    ap = qm.script_parser(__doc__, 60.0, "training budget per run")
    args = ap.parse_args()
    extra = qm.start(args, tta=not args.no_tta)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.seconds:g} {'CPU' if args.cpu_time else 'wall-clock'} s per run, "
          f"tta={qm.TTA}, extra={extra}", flush=True)
    rows = []
    for dataset, name, noisy, gt in qm.images(args):
        out, bundle, s_raw = qm.run_method("n2s", noisy, args.seconds, extra)
        raw = qm.score(gt, out)
        exact, alg, (a, b), steps, s_vst = run_vst(noisy, args.seconds, extra)
        row = {"dataset": dataset, "image": name, "noisy_psnr": qm.score(gt, noisy),
               "n2s": raw, "n2s_steps": bundle.info["steps"], "n2s_s": s_raw,
               "gat_exact": qm.score(gt, exact), "gat_algebraic": qm.score(gt, alg),
               "gat_steps": steps, "gat_s": s_vst, "a": a, "b": b,
               "seconds": args.seconds, "cpu_time": args.cpu_time, "tta": qm.TTA,
               "extra": extra, "load_avg": os.getloadavg()[0]}
        rows.append(row)
        print(f"  {dataset} {name}: a={a:.4g} b={b:.4g}  n2s {raw:.2f}  GAT exact "
              f"{row['gat_exact']:.2f} ({row['gat_exact'] - raw:+.2f})  algebraic "
              f"{row['gat_algebraic']:.2f} ({row['gat_algebraic'] - raw:+.2f})  "
              f"steps {row['n2s_steps']}/{steps}", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    print("\n| data | image | a | b | noisy | n2s | GAT n2s (exact) | GAT n2s (algebraic) "
          "| exact - n2s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['image']} | {r['a']:.4g} | {r['b']:.4g} | "
              f"{r['noisy_psnr']:.2f} | {r['n2s']:.2f} | {r['gat_exact']:.2f} | "
              f"{r['gat_algebraic']:.2f} | {r['gat_exact'] - r['n2s']:+.2f} |")
    if rows:
        d = np.mean([r["gat_exact"] - r["n2s"] for r in rows])
        d_alg = np.mean([r["gat_algebraic"] - r["n2s"] for r in rows])
        print(f"\nmean GAT - n2s: exact inverse {d:+.2f} dB, algebraic {d_alg:+.2f} dB "
              f"({len(rows)} images)")


if __name__ == "__main__":
    main()
