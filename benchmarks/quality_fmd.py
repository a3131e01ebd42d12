"""Quality at a wall-clock budget on the FMD confocal pairs (issue #2, benchmark 2).

Each method trains ``--seconds`` (default 60, everything included: data preparation,
validation, the final check) on each noisy image alone, then denoises it with one plain
pass (``--tta``: average of the 8 dihedral transforms; ``--j-invariant``: Noise2Self's
J-invariant prediction). PSNR against the 50-frame average after CSBDeep ``norm_minmse``
(ground truth percentile-normalised, prediction affinely fitted), as in algorithms.md,
with the normalised ground truth's range as peak value.

``--cpu-time`` counts the budget in CPU seconds of this process (checked every step)
instead of wall-clock seconds: with ``--threads 1`` that is what an idle core would give,
whatever else runs on a shared machine.

Usage::

    python benchmarks/quality_fmd.py [--methods n2v n2v2 n2s n2same] [--images BPAE_B ...]
        [--seconds 60] [--cpu-time] [--threads N] [--tta] [--j-invariant]
        [--set KEY=JSON ...] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.masking import j_invariant_apply
from napari_selfdenoise.core.models import apply_padded
from napari_selfdenoise.core.normalization import norm_minmse
from napari_selfdenoise.core.samples import psnr
from napari_selfdenoise.core.training import default_config, train
from machine import engine_precision, print_header  # noqa: E402  (benchmarks/ is on sys.path)

DATA = Path(os.environ.get("NAPARI_SELFDENOISE_DATA",
                           Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
FMD = DATA / "fmd_confocal_n2f"
IMAGES = ["BPAE_B", "BPAE_G", "BPAE_R", "fish", "mice"]
METHODS = ["n2v", "n2v2", "n2s", "n2same"]


def score(gt: np.ndarray, x: np.ndarray) -> float:
    """PSNR (dB) after percentile + affine normalisation (CSBDeep norm_minmse), with the
    normalised ground truth's range as peak (reproduces the issue's noisy column)."""
    gt_n, x_fit = norm_minmse(gt, x)
    return psnr(gt_n, x_fit)


def predict(bundle, image: np.ndarray, *, tta: bool, j_invariant: bool) -> np.ndarray:
    """Denoise a 2D image with the trained bundle (whole image at once)."""
    net = bundle.build_model()
    x = torch.from_numpy(bundle.normalize(image[None, None]))
    with torch.no_grad():
        if j_invariant:
            out = j_invariant_apply(net, x, bundle.config.masking.grid, bundle.config.replacement())
        elif tta:
            outs = []
            for k in range(4):
                for flip in (False, True):
                    t = torch.rot90(x, k, (-2, -1))
                    t = t.flip(-1) if flip else t
                    o = apply_padded(net, t)
                    o = o.flip(-1) if flip else o
                    outs.append(torch.rot90(o, -k, (-2, -1)))
            out = torch.stack(outs).mean(0)
        else:
            out = apply_padded(net, x)
    return bundle.denormalize(out.numpy())[0, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--images", nargs="+", default=IMAGES)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cpu-time", action="store_true",
                    help="budget in CPU seconds of this process instead of wall-clock seconds "
                    "(robust to other load on a shared machine; use with --threads 1)")
    ap.add_argument("--tta", action="store_true", help="8-fold dihedral test-time averaging")
    ap.add_argument("--j-invariant", action="store_true", help="n2s: J-invariant prediction")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="extra TrainConfig settings, e.g. batch_size=32 'network={\"depth\":3}'")
    ap.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header(engine_precision())
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.seconds:g} s per run, tta={args.tta}, extra={extra}", flush=True)
    rows = []
    stop = threading.Event()
    for name in args.images:
        noisy = tifffile.imread(FMD / "noisy" / f"{name}.tif")
        gt = tifffile.imread(FMD / "gt" / f"{name}.tif")
        print(f"{name}: noisy {score(gt, noisy):.2f} dB", flush=True)
        for method in args.methods:
            cfg = default_config(method, steps=10**9, seed=0, time_budget_s=args.seconds,
                                 clock="cpu" if args.cpu_time else "wall", **extra)
            t = time.perf_counter()
            bundle = run_to_end(train(noisy, cfg, stop=stop), None)
            t_train = time.perf_counter() - t
            out = predict(bundle, noisy, tta=args.tta,
                          j_invariant=args.j_invariant and method == "n2s")
            stop.clear()
            row = {"image": name, "method": method, "psnr": score(gt, out),
                   "noisy_psnr": score(gt, noisy), "steps": bundle.info["steps"],
                   "best_step": bundle.info["best_step"], "train_s": t_train, "load_avg": os.getloadavg()[0],
                   "tta": args.tta, "extra": extra}
            rows.append(row)
            print(f"  {method:7s} {row['psnr']:.2f} dB  ({row['steps']} steps, best "
                  f"{row['best_step']}, {t_train:.0f} s)", flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print("\n| image | noisy | " + " | ".join(args.methods) + " |")
    print("|---|---|" + "---|" * len(args.methods))
    for name in args.images:
        r = {x["method"]: x for x in rows if x["image"] == name}
        first = next(iter(r.values()))
        print(f"| {name} | {first['noisy_psnr']:.2f} | "
              + " | ".join(f"{r[m]['psnr']:.2f}" for m in args.methods) + " |")


if __name__ == "__main__":
    main()
