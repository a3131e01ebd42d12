"""Compare (issue #14, docs/benchmarks.md section 8): ranking denoisers without ground truth.

For each FMD / W2S image (as ``quality_methods.py``): ``core.compare.compare`` with one
total budget (``--budget``, default 120 s; ``--cpu-time``: this process's CPU seconds,
one thread), then, against the many-frame average:

* every candidate's **true PSNR of its delivered output** on the whole image (CSBDeep
  ``norm_minmse``, as section 7), its score and its estimated PSNR; for a network that
  hands out its J-invariant form, also its plain pass's (``psnr_plain``), which counts
  for the true best;
* the **true PSNR of its scored (J-invariant) form on the scoring region**, the quantity
  the estimate estimates: the average is mapped to the noisy image's units by an affine
  fit (``noisy ~ alpha * gt + beta``), the average's own noise (``1 / frames`` of the
  noise variance) is subtracted from the MSE, and the peak is the estimate's;
* the same truths against the average registered to the frame by a 3 x 3 least-squares
  kernel (``*_registered_*``; ``fmd_truth_check.py``: the FMD averages are about half a
  pixel off their single frames);
* the pick, the true best, the best filter, and the best single method (``--single``,
  default ``n2s``) trained alone on the whole image with the same budget.

Usage::

    python benchmarks/compare_quality.py --cpu-time [--datasets fmd w2s] [--images ...]
        [--budget 120] [--single n2s | --single ''] [--single-only] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from napari_selfdenoise.core.compare import compare, deliver
from napari_selfdenoise.core.config import CompareConfig, default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.training import train
from machine import add_clock_options, apply_clock_options, engine_precision, print_header
from fmd_truth_check import FRAMES, region_psnr, region_truth
from quality_methods import DATASETS, images, score

def single(method: str, noisy: np.ndarray, seconds: float, cpu: bool,
           seed: int = 0) -> tuple[float, int]:
    """``method`` trained alone on the whole image for ``seconds``: (output, steps)."""
    cfg = default_config(method, steps=10**9, seed=seed, time_budget_s=seconds,
                         clock="cpu" if cpu else "wall")
    bundle = run_to_end(train(noisy, cfg, axes="YX"), None)
    return predict_array(bundle, noisy, axes="YX"), bundle.info["steps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--images", nargs="+", default=None)
    ap.add_argument("--budget", type=float, default=120.0)
    ap.add_argument("--methods", nargs="+", default=None, help="candidate networks")
    ap.add_argument("--single", default="n2s", help="the single method to beat ('' : none)")
    ap.add_argument("--single-only", action="store_true",
                    help="only the single method (its own JSON rows), no comparison")
    add_clock_options(ap, "the budget")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of compare's networks and of the single method (a seed study)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    apply_clock_options(args)
    print_header(engine_precision())
    cfg = CompareConfig(budget_s=args.budget, clock="cpu" if args.cpu_time else "wall",
                        seed=args.seed,
                        **({"methods": args.methods} if args.methods else {}))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cfg}", flush=True)
    for dataset, name, noisy, gt in images(args):
        if args.single_only:
            out, steps = single(args.single, noisy, args.budget, args.cpu_time, args.seed)
            row = {"dataset": dataset, "image": name, "single": args.single, "seed": args.seed,
                   "single_psnr": score(gt, out), "single_steps": steps,
                   "budget": args.budget, "load_avg": os.getloadavg()[0]}
            print(f"{dataset} {name}: single {args.single} {row['single_psnr']:.2f} dB",
                  flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
            continue
        t = time.process_time()
        res = run_to_end(compare(noisy, cfg, axes="YX"))
        used = time.process_time() - t
        hold = res.holdout
        clean, gt_noise, true_var = region_truth(noisy, gt, hold, FRAMES[dataset])
        # the average registered to the frame (3 x 3 kernel): on FMD it is half a pixel off
        reg, reg_noise, reg_var = region_truth(noisy, gt, hold, FRAMES[dataset], kernel=1)
        cands = []
        delivered: dict = {}

        # a network hands out its plain pass, or its J-invariant form where the ranking
        # estimated that better (CandidateScore.plain set)
        inv = {r.name: r.delivered_is_scored for r in res.ranking if r.kind == "network"}

        def output(name: str, invariant: bool = False) -> np.ndarray:
            """A candidate's output on the whole image (cached): a network's plain pass,
            or its J-invariant form."""
            if (name, invariant) not in delivered:
                c = res.candidates[name]
                entry = ({"kind": "network", "bundle": c, "invariant": invariant}
                         if not isinstance(c, tuple) else
                         {"kind": "filter", "name": c[0], "value": c[1]})
                delivered[name, invariant] = run_to_end(deliver(entry, noisy, "YX", cfg))
            return delivered[name, invariant]

        for r in res.ranking:
            if r.kind == "blend":  # the fitted weights on the parts' whole-image outputs
                out = res.blend.apply([output(p, inv.get(p, False)) for p in res.blend.parts])
            else:
                out = output(r.name, inv.get(r.name, False))
            f = res.region_outputs[r.name].astype(np.float64)
            true_region = region_psnr(f, clean, gt_noise, r.quality.peak)
            # the delivered output on the bands (rows of the whole-image output)
            fd = hold.region(np.asarray(out, np.float64)[None])
            d = r.best
            cand = {"name": r.name, "kind": r.kind, "detail": r.detail,
                    "score": r.quality.score, "est_psnr": r.quality.psnr,
                    "est_range": [r.quality.psnr_low, r.quality.psnr_high],
                    "true_region_psnr": true_region,
                    "est_delivered_psnr": d.psnr,
                    "est_delivered_range": [d.psnr_low, d.psnr_high],
                    "true_region_delivered_psnr": region_psnr(fd, clean, gt_noise, d.peak),
                    "true_region_registered_psnr": region_psnr(f, reg, reg_noise,
                                                               r.quality.peak),
                    "true_region_delivered_registered_psnr": region_psnr(fd, reg, reg_noise,
                                                                         d.peak),
                    "delivered_form": "j-invariant" if r.delivered_is_scored else "plain",
                    "psnr": score(gt, out)}
            if r.plain is not None:  # the plain pass it did not hand out: its truth too
                plain = output(r.name, False)
                fp = hold.region(np.asarray(plain, np.float64)[None])
                cand.update(est_plain_psnr=r.plain.psnr, psnr_plain=score(gt, plain),
                            true_region_plain_psnr=region_psnr(fp, clean, gt_noise,
                                                               r.plain.peak))
            cands.append(cand)
        row = {"dataset": dataset, "image": name, "noisy_psnr": score(gt, noisy),
               "pick": res.pick, "pick_kind": res.kind, "candidates": cands,
               "noise_var_est": res.noise_variance, "noise_var_true": true_var,
               "noise_var_true_registered": reg_var,
               "noise_correlation": res.noise_correlation, "warning": res.warning,
               "compare_cpu_s": used, "budget": args.budget, "clock": cfg.clock,
               "seed": args.seed,
               "load_avg": os.getloadavg()[0]}
        if args.single:
            out, steps = single(args.single, noisy, args.budget, args.cpu_time, args.seed)
            row.update(single=args.single, single_psnr=score(gt, out), single_steps=steps)
        # the true best of everything compare could have handed out (plain passes too)
        outs = [(c["name"], c["psnr"]) for c in cands] + [
            (c["name"] + " (plain)", c["psnr_plain"]) for c in cands if "psnr_plain" in c]
        best = max(outs, key=lambda o: o[1])
        pick = next(c for c in cands if c["name"] == res.pick)
        row.update(true_best=best[0], true_best_psnr=best[1])
        print(f"{dataset} {name}: pick {res.pick} {pick['psnr']:.2f} dB, true best "
              f"{best[0]} {best[1]:.2f}, single {row.get('single_psnr', 0):.2f}; "
              + ", ".join(f"{c['name']} est {c['est_psnr']:.2f}/true {c['true_region_psnr']:.2f}"
                          for c in cands), flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
