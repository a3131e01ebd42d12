"""Quality of every method and of the calibrated classical filter at a wall-clock budget
(issue #12, section 3): FMD confocal pairs and W2S widefield pairs, plus Noise2Noise cases.

Each registered single-image method (``core.methods.METHODS`` without those that need a
target) trains ``--seconds`` (default 60, everything included) on each noisy image alone
and denoises it with its own predictor (``inference.predict_array``: one pass, or the
complementary masks of ``ams``). ``classical`` is ``calibrate --denoiser auto``: every
classical denoiser calibrated by Noise2Self, lowest loss wins, its J-invariant output.
PSNR against the many-frame average after CSBDeep ``norm_minmse``, as ``quality_fmd.py``.

Variants of a method's parameters are columns of their own (``VARIANTS``): ``bsn`` is the
posterior blind-spot network (Poisson-Gaussian noise model estimated from the image),
``bsn:mean`` its mean-only (MSE) mode, ``:pd`` adds pixel-shuffle down-sampling (5 in
training, 2 at inference; ``:pdauto``: the training factor chosen from the image, the
noise's correlation range plus one) and ``:pd+r3`` also R3 refinement at inference.
``--also-predict r3 pd1 pd3 ...``: each network trained on the correlated phantom predicts
again with R3 and / or another inference pixel-shuffle factor (same weights, paired).

``--correlated``: the correlated-noise phantom (``samples.phantom_correlated``, 256 x 256,
noise convolved with a 3 x 3 binomial kernel), PSNR against its clean image.

``--supervised``: the supervised ceiling of the same network and budget: ``n2n`` with the
image's clean (many-frame) image as its target, input and target never swapped (as
``correlated_ceiling.py``'s ``supervised`` case), trained on the noisy image it then
denoises and scored like every column (an oracle: no user has the clean image).

``--n2n``: Noise2Noise on a synthetic pair of the 2D phantom (PSNR against the clean
phantom, with Noise2Self on one of the two images for comparison), and on the lysosome
time-lapse interlaced along T (no ground truth: the best validation loss).

Usage::

    python benchmarks/quality_methods.py [--datasets fmd w2s] [--methods n2s ne2ne ams ...]
        [--images BPAE_B 010_0 ...] [--seconds 60] [--threads N] [--no-classical] [--n2n]
        [--supervised] [--set KEY=JSON ...] [--json out.jsonl] [--cpu-time] [--tta]
        [--correlated]
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

from napari_selfdenoise.core.calibration import calibrate
from napari_selfdenoise.core.config import CalibrateConfig
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.methods import METHODS
from napari_selfdenoise.core.normalization import norm_minmse
from napari_selfdenoise.core.samples import (
    add_poisson_gaussian, phantom_correlated, psnr, render_clean,
)
from napari_selfdenoise.core.training import default_config, train
from machine import (  # noqa: E402  (benchmarks/ is on sys.path)
    apply_clock_options, add_clock_options, engine_precision, print_header,
)

DATA = Path(os.environ.get("NAPARI_SELFDENOISE_DATA",
                           Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
DATASETS = {
    "fmd": (DATA / "fmd_confocal_n2f", ["BPAE_B", "BPAE_G", "BPAE_R", "fish", "mice"]),
    "w2s": (DATA / "w2s_widefield_train",
            ["010_0", "020_1", "030_2", "040_0", "050_1", "060_2", "070_0", "075_1"]),
}
SINGLE_IMAGE = [n for n, m in METHODS.items() if not m.needs_target]
_PD = {"pixel_shuffle": True}
#: column -> (method, its params, prediction settings)
VARIANTS = {
    "bsn:mean": ("bsn", {"noise_model": "none"}, {}),
    "bsn:pd": ("bsn", _PD, {}),
    "bsn:mean:pd": ("bsn", {"noise_model": "none", **_PD}, {}),
    "bsn:mean:pdauto": ("bsn", {"noise_model": "none", **_PD, "pd_train": "auto"}, {}),
    "bsn:pd+r3": ("bsn", _PD, {"r3": True}),
    "bsn:mean:pd+r3": ("bsn", {"noise_model": "none", **_PD}, {"r3": True}),
    "ams:pd": ("ams", _PD, {}),
    "ams:pd+r3": ("ams", _PD, {"r3": True}),
}
CHOICES = SINGLE_IMAGE + list(VARIANTS)
#: ``--supervised``: (method, its settings); the clean image is the target
SUPERVISED = ("n2n", {"params": {"method": "n2n", "swap": False}})
#: ``--also-predict``: more predictions of each network trained on the correlated phantom,
#: name -> prediction settings (``pixel_shuffle_infer``: the same weights on K x K
#: sub-images); a paired comparison free of the training's run-to-run spread
INFER_VARIANTS = {
    "r3": {"r3": True},
    "pd1": {"pixel_shuffle_infer": 1},
    "pd3": {"pixel_shuffle_infer": 3},
    "pd1+r3": {"pixel_shuffle_infer": 1, "r3": True},
    "pd3+r3": {"pixel_shuffle_infer": 3, "r3": True},
}


def score(gt: np.ndarray, x: np.ndarray) -> float:
    """PSNR (dB) after percentile + affine normalisation (CSBDeep norm_minmse)."""
    gt_n, x_fit = norm_minmse(gt, x)
    return psnr(gt_n, x_fit)


#: training budget in CPU seconds of this process instead of wall-clock seconds
#: (``--cpu-time``, one thread: what an idle core gives, robust to other load)
CPU_TIME = False
#: average the network over the 8 dihedral transforms at inference (``--tta``)
TTA = False
#: with ``--cpu-time``: stop from outside and give the loop no budget, so the learning rate
#: never decays (``--constant-lr``; how every --cpu-time run before 2026-12-02 trained)
CONSTANT_LR = False


def start(args: argparse.Namespace, tta: bool, constant_lr: bool = False) -> dict:
    """Set this module's clock, TTA and schedule from a script's ``args``, apply
    ``--cpu-time``, print the machine header; return the ``--set`` settings (shared by the
    scripts built on this one)."""
    global CPU_TIME, TTA, CONSTANT_LR
    CPU_TIME, TTA, CONSTANT_LR = args.cpu_time, tta, constant_lr
    apply_clock_options(args)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    print_header(engine_precision(precision=extra.get("precision", "auto")))
    return extra


def script_parser(doc: str, seconds: float, seconds_help: str) -> argparse.ArgumentParser:
    """The options shared by the scripts built on this one (``--datasets`` (W2S),
    ``--images``, ``--seconds``, the clock options, ``--no-tta``, ``--set``, ``--json``);
    each adds its own. Read them with :func:`start`."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["w2s"], choices=list(DATASETS))
    ap.add_argument("--images", nargs="+", default=None,
                    help="the images that take part (default: all of the datasets)")
    ap.add_argument("--seconds", type=float, default=seconds, help=seconds_help)
    add_clock_options(ap, "the training budget")
    ap.add_argument("--no-tta", action="store_true", help="no 8-fold dihedral averaging")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="extra TrainConfig settings, e.g. seed=1")
    ap.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    return ap


def run_method(method: str, noisy: np.ndarray, seconds: float, extra: dict,
               target: np.ndarray | None = None, axes: str = "YX",
               predict: bool = True) -> tuple:
    """Train ``method`` (or a :data:`VARIANTS` column) for ``seconds`` and denoise
    ``noisy``: ``(output, bundle, s)`` (output ``None`` with ``predict=False``)."""
    # the budget on the process's CPU clock under --cpu-time: the learning rate's cosine
    # decay follows it (before 2026-12-02 a stop event ended CPU-time runs and the rate
    # stayed at its peak: section 7's first tables were trained that way)
    budget = {"time_budget_s": seconds, "clock": "cpu" if CPU_TIME else "wall"}
    stop, start = threading.Event(), time.process_time()
    if CPU_TIME and CONSTANT_LR:  # the old way: stopped from outside, the loop sees no budget
        budget = {"log_every": 1}
    name, params, predict_kw = VARIANTS.get(method, (method, {}, {}))
    if params:  # --set params=... adds to (and overrides) the column's own
        extra = {**extra, "params": {"method": name, **params, **extra.get("params", {})}}
    cfg = default_config(name, **{"steps": 10**9, "seed": 0, **budget, **extra})

    def watch(event) -> None:
        if CPU_TIME and CONSTANT_LR and time.process_time() - start >= seconds:
            stop.set()

    t = time.perf_counter()
    bundle = run_to_end(train(noisy, cfg, axes=axes, target=target, stop=stop), watch)
    out = predict_array(bundle, noisy, axes=axes, tta=TTA, **predict_kw) if predict else None
    return out, bundle, time.perf_counter() - t


def run_ensemble(method: str, noisy: np.ndarray, seconds: float, extra: dict,
                 n: int) -> tuple:
    """``n`` networks (seeds 0 .. n-1), each trained ``seconds / n``, their outputs
    averaged (``--ensemble``): ``(output, steps of all, s)``; ``n = 1`` is one run."""
    outs, steps, total = [], 0, 0.0
    for i in range(n):
        out, bundle, s = run_method(method, noisy, seconds / n,
                                    {**extra, "seed": i} if n > 1 else extra)
        outs.append(out)
        steps, total = steps + bundle.info["steps"], total + s
    return np.mean(outs, axis=0), steps, total


def run_supervised(noisy: np.ndarray, clean: np.ndarray, seconds: float, extra: dict,
                   axes: str = "YX") -> tuple:
    """The network trained ``seconds`` with ``clean`` as the target of ``noisy``
    (:data:`SUPERVISED`), then denoising ``noisy``: ``(output, bundle, s)``."""
    method, own = SUPERVISED
    return run_method(method, noisy, seconds, {**extra, **own}, target=clean, axes=axes)


def run_classical(noisy: np.ndarray) -> tuple:
    """``calibrate --denoiser auto``, J-invariant output: ``(output, name, value, s)``."""
    t = time.perf_counter()
    res = run_to_end(calibrate(noisy.astype(np.float32), CalibrateConfig(
        denoiser="auto", j_invariant_output=True, crop=None), axes="YX"))
    return res.image, res.denoiser, res.best_value, time.perf_counter() - t


def table(rows: list[dict], columns: list[str]) -> None:
    """One markdown table: image, noisy, one column per method."""
    print("\n| data | image | noisy | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for key in dict.fromkeys((r["dataset"], r["image"]) for r in rows):
        got = {r["method"]: r for r in rows if (r["dataset"], r["image"]) == key}
        first = next(iter(got.values()))
        cells = [f"{got[c]['psnr']:.2f}" if c in got else "" for c in columns]
        print(f"| {key[0]} | {key[1]} | {first['noisy_psnr']:.2f} | " + " | ".join(cells) + " |")


def images(args: argparse.Namespace):
    """``(dataset, name, noisy, gt)`` for every chosen image."""
    for dataset in args.datasets:
        folder, names = DATASETS[dataset]
        for name in names:
            if args.images and name not in args.images:
                continue
            noisy = tifffile.imread(folder / "noisy" / f"{name}.tif").astype(np.float32)
            gt = tifffile.imread(folder / "gt" / f"{name}.tif").astype(np.float32)
            yield dataset, name, noisy, gt


def noise2noise_cases(args: argparse.Namespace, extra: dict, emit) -> None:
    """A synthetic phantom pair (PSNR) and the lysosome time-lapse interlaced along T."""
    clean = render_clean((256, 256), seed=0)
    a, expected = add_poisson_gaussian(clean, photons=30.0, seed=0)
    b, _ = add_poisson_gaussian(clean, photons=30.0, seed=100)
    for method, target in (("n2n", b), ("n2s", None)):
        out, bundle, s = run_method(method, a, args.seconds, extra, target=target)
        emit({"dataset": "phantom pair", "image": "phantom_2d", "method": method,
              "psnr": psnr(expected, out), "noisy_psnr": psnr(expected, a),
              "steps": bundle.info["steps"], "train_s": s})
    lyso = DATA / "lysosome_confocal_timelapse_noisy" / "lysosome_1.tif"
    if lyso.exists():
        stack = tifffile.imread(lyso).astype(np.float32)
        cfg = default_config("n2n", steps=10**9, seed=0, time_budget_s=args.seconds,
                             params={"method": "n2n", "pairs_along": "T"}, **extra)
        bundle = run_to_end(train(stack, cfg, axes="TYX"))
        print(f"lysosome_1 (TYX {stack.shape}) n2n pairs along T: best validation loss "
              f"{bundle.info['best_loss']:.5f} after {bundle.info['steps']} steps", flush=True)
        if args.n2n_figure:
            lysosome_figure(stack, bundle, Path(args.n2n_figure))


def lysosome_figure(stack: np.ndarray, bundle, path: Path) -> None:
    """The middle frame of the time-lapse, its Noise2Noise prediction and what was removed
    (noisy - prediction: structure there would be signal lost), a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = stack.shape[0] // 2
    out = predict_array(bundle, stack[t], axes="YX")
    lo, hi = np.percentile(stack[t], [0.5, 99.8])
    resid = stack[t] - out
    r = float(np.percentile(np.abs(resid), 99.5))
    fig, axs = plt.subplots(1, 3, figsize=(12, 4.2))
    panels = ((stack[t], f"noisy frame {t}", "gray", lo, hi),
              (out, "n2n (frames interlaced along T)", "gray", lo, hi),
              (resid, "removed: noisy - n2n", "RdBu", -r, r))
    for ax, (img, title, cmap, vmin, vmax) in zip(axs, panels):
        ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"figure: {path}", flush=True)


def repredict(bundle, noisy: np.ndarray, variant: str, predict_kw: dict) -> np.ndarray:
    """``bundle`` predicting ``noisy`` with :data:`INFER_VARIANTS` ``variant`` on top of
    its column's own prediction settings (the trained weights unchanged)."""
    kw = {**predict_kw, **INFER_VARIANTS[variant]}
    if not getattr(bundle.config.params, "pixel_shuffle", False):
        kw.pop("pixel_shuffle_infer", None)  # nothing to change: its own prediction again
    return predict_array(bundle, noisy, axes="YX", tta=TTA, **kw)


def correlated_case(args: argparse.Namespace, extra: dict, emit) -> None:
    """Every chosen method on the correlated-noise phantom (PSNR against the clean image);
    with ``--also-predict`` each trained network predicts again in those variants."""
    ph = phantom_correlated((256, 256), seed=0)
    for method in args.methods:
        out, bundle, s = run_method(method, ph.noisy, args.seconds, extra)
        row = {"dataset": "correlated", "image": "phantom_correlated", "method": method,
               "psnr": psnr(ph.clean, out), "noisy_psnr": psnr(ph.clean, ph.noisy),
               "steps": bundle.info["steps"], "train_s": s,
               "out_mean": float(out.mean()), "out_std": float(out.std())}
        emit(row)
        for variant in args.also_predict:
            out = repredict(bundle, ph.noisy, variant, VARIANTS.get(method, ("", {}, {}))[2])
            emit({**row, "method": f"{method}|{variant}", "psnr": psnr(ph.clean, out),
                  "out_mean": float(out.mean()), "out_std": float(out.std())})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--methods", nargs="*", default=SINGLE_IMAGE, choices=CHOICES,
                    help="methods and variants (bsn:mean, bsn:pd, bsn:pd+r3, ams:pd, ...)")
    ap.add_argument("--images", nargs="+", default=None, help="image names (default: all)")
    ap.add_argument("--seconds", type=float, default=60.0, help="training budget per run")
    add_clock_options(ap, "the training budget")
    ap.add_argument("--tta", action="store_true", help="8-fold dihedral test-time averaging")
    ap.add_argument("--constant-lr", action="store_true",
                    help="with --cpu-time: the loop sees no budget and its learning rate "
                    "never decays (how --cpu-time runs trained before 2026-12-02)")
    ap.add_argument("--ensemble", type=int, default=1, metavar="N",
                    help="N networks (seeds 0..N-1) sharing the budget, outputs averaged")
    ap.add_argument("--no-classical", action="store_true", help="skip calibrate --denoiser auto")
    ap.add_argument("--n2n", action="store_true", help="also the Noise2Noise cases")
    ap.add_argument("--supervised", action="store_true",
                    help="also the same network trained with each image's clean image as "
                    "the target (the supervised ceiling; a column 'supervised')")
    ap.add_argument("--n2n-figure", default=None, metavar="PNG",
                    help="with --n2n: save the lysosome frame and its n2n prediction here")
    ap.add_argument("--correlated", action="store_true",
                    help="also the correlated-noise phantom (every chosen method)")
    ap.add_argument("--also-predict", nargs="+", default=[], choices=list(INFER_VARIANTS),
                    help="with --correlated: each trained network also predicts with R3 "
                    "and / or another inference pixel-shuffle factor (same weights)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="extra TrainConfig settings, e.g. precision='\"fp32\"'")
    ap.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = ap.parse_args()
    extra = start(args, args.tta, args.constant_lr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.seconds:g} {'CPU' if args.cpu_time else 'wall-clock'} s per run, "
          f"tta={args.tta}, constant_lr={args.constant_lr}, extra={extra}", flush=True)
    rows: list[dict] = []

    def emit(row: dict) -> None:
        row = {**row, "load_avg": os.getloadavg()[0], "extra": extra,
               "constant_lr": args.constant_lr}
        rows.append(row)
        rate = (f", {row['steps'] / row['train_s']:.1f} steps/s" if row.get("steps")
                and row.get("train_s") else "")
        print(f"  {row['dataset']} {row['image']} {row['method']:9s} {row['psnr']:.2f} dB "
              f"({row.get('steps', '-')} steps, {row['train_s']:.0f} s{rate})", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    for dataset, name, noisy, gt in images(args):
        base = {"dataset": dataset, "image": name, "noisy_psnr": score(gt, noisy)}
        for method in args.methods:
            out, steps, s = run_ensemble(method, noisy, args.seconds, extra, args.ensemble)
            emit({**base, "method": method, "psnr": score(gt, out), "steps": steps,
                  "train_s": s, "ensemble": args.ensemble})
        if args.supervised:
            out, bundle, s = run_supervised(noisy, gt, args.seconds, extra)
            emit({**base, "method": "supervised", "psnr": score(gt, out),
                  "steps": bundle.info["steps"], "best_step": bundle.info["best_step"],
                  "train_s": s})
        if not args.no_classical:
            out, den, value, s = run_classical(noisy)
            emit({**base, "method": "classical", "denoiser": den, "value": value,
                  "psnr": score(gt, out), "train_s": s})
    if args.correlated:
        correlated_case(args, extra, emit)
    if args.n2n:
        noise2noise_cases(args, extra, emit)
    columns = list(dict.fromkeys(r["method"] for r in rows))
    table(rows, columns)


if __name__ == "__main__":
    main()
