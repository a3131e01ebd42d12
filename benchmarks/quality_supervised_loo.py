"""Supervised training on the other images (CARE-style, leave-one-out; issue #12, section 7
"Widefield: the supervised ceiling").

For each held-out image, one network (the default U-Net, ``quality_methods.SUPERVISED``:
``n2n`` with clean targets, never swapped) trains ``--seconds`` on the noisy / clean pairs
of every OTHER chosen image stacked along a sample axis (axes ``SYX``), then denoises the
held-out noisy image, scored exactly as ``quality_methods.py`` scores (``score``: PSNR
after CSBDeep ``norm_minmse``, 8-fold TTA unless ``--no-tta``). The held-out image's clean
image is used for the score only.

Normalisation (CARE normalises every source and target image on its own): each clean
image is first mapped into its noisy image's units by a least-squares affine fit
(:func:`in_noisy_units`; the W2S 8-bit files were rescaled per image by their publisher,
so the raw clean values of two images are not on one scale), then the noisy image and
its mapped target are standardised by the noisy image's mean and standard deviation;
the held-out noisy image is standardised by its own and its prediction mapped back (the
score's affine fit makes that inverse immaterial to the PSNR).

Usage::

    python benchmarks/quality_supervised_loo.py [--datasets w2s] [--images 010_0 ...]
        [--held-out 050_1 ...] [--seconds 60] [--cpu-time] [--no-tta]
        [--set KEY=JSON ...] [--json out.jsonl]
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

import quality_methods as qm  # noqa: E402  (benchmarks/ is on sys.path)


def in_noisy_units(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """``clean`` mapped affinely onto ``noisy`` (least squares): ``a * clean + b``."""
    c = clean.astype(np.float64).ravel()
    a, b = np.polyfit(c, noisy.astype(np.float64).ravel(), 1)
    return (a * clean + b).astype(np.float32)


def standardised(noisy: np.ndarray, clean: np.ndarray | None = None) -> tuple:
    """``noisy`` (and ``clean`` in its units) standardised by the noisy image's mean and
    standard deviation: ``(noisy, clean or None, (mean, sd))``."""
    m, sd = float(noisy.mean()), float(noisy.std())
    target = None if clean is None else (in_noisy_units(clean, noisy) - m) / sd
    return (noisy - m) / sd, target, (m, sd)


def leave_one_out(noisy: np.ndarray, data: list, held: int, seconds: float,
                  extra: dict) -> tuple:
    """Train on every pair of ``data`` (``(dataset, name, noisy, gt)``) but ``held``,
    stacked along S; denoise ``noisy`` (the held-out image): ``(output, bundle, s)``."""
    pairs = [standardised(d[2], d[3])[:2] for i, d in enumerate(data) if i != held]
    xs = np.stack([p[0] for p in pairs]).astype(np.float32)
    ys = np.stack([p[1] for p in pairs]).astype(np.float32)
    method, own = qm.SUPERVISED
    _, bundle, s = qm.run_method(method, xs, seconds, {**extra, **own}, target=ys,
                                 axes="SYX", predict=False)
    x, _, (m, sd) = standardised(noisy)
    out = qm.predict_array(bundle, x.astype(np.float32), axes="YX", tta=qm.TTA)
    return out * sd + m, bundle, s


def main() -> None:
    ap = qm.script_parser(__doc__, 60.0, "training budget per network")
    ap.add_argument("--held-out", nargs="+", default=None,
                    help="the images to hold out, one network each (default: every one)")
    args = ap.parse_args()
    extra = qm.start(args, tta=not args.no_tta)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.seconds:g} {'CPU' if args.cpu_time else 'wall-clock'} s per network, "
          f"tta={qm.TTA}, extra={extra}", flush=True)
    data = list(qm.images(args))
    if len(data) < 2:
        raise SystemExit("quality_supervised_loo: needs at least two images")
    gains = []
    for i, (dataset, name, noisy, gt) in enumerate(data):
        if args.held_out and name not in args.held_out:
            continue
        out, bundle, s = leave_one_out(noisy, data, i, args.seconds, extra)
        row = {"dataset": dataset, "image": name, "method": "supervised:loo",
               "psnr": qm.score(gt, out), "noisy_psnr": qm.score(gt, noisy),
               "train_images": [d[1] for j, d in enumerate(data) if j != i],
               "steps": bundle.info["steps"], "best_step": bundle.info["best_step"],
               "best_loss": bundle.info["best_loss"], "seconds": args.seconds,
               "train_s": s, "cpu_time": args.cpu_time, "tta": qm.TTA, "extra": extra,
               "load_avg": os.getloadavg()[0]}
        gains.append(row["psnr"] - row["noisy_psnr"])
        print(f"  {dataset} {name} supervised:loo {row['psnr']:.2f} dB (noisy "
              f"{row['noisy_psnr']:.2f}; {row['steps']} steps, best {row['best_step']}, "
              f"trained on {len(row['train_images'])} pairs)", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    if gains:
        print(f"supervised:loo - noisy: mean {np.mean(gains):+.2f} dB over {len(gains)} "
              "held-out images")


if __name__ == "__main__":
    main()
