"""Several fields of view in one training (issue #12, section 7): one Noise2Self network
trained on all chosen images stacked along a sample axis (axes ``SYX``, as a user who opens
several fields of view as one stack), then each image predicted and scored as
``quality_methods.py`` scores (``score``: PSNR after CSBDeep ``norm_minmse``).

The budget ``--seconds`` is the whole training's (default 480: eight 60-s runs' worth);
training and prediction are ``quality_methods.run_method`` with ``axes="SYX"``, so the
clock, the learning-rate decay and TTA are the same as for the single-image runs.
Normalisation: by default the plugin's own (one offset / scale per channel over the whole
stack, ``core.normalization``); ``--per-image-norm`` standardises each image to zero mean
and unit variance here, before stacking, and maps each prediction back with its own mean
and standard deviation (the plugin has no per-sample option; the score's affine fit makes
the inverse immaterial to the PSNR, it is done for honesty).

``--filter FILE ...`` and ``--single LABEL=FILE[,FILE] ...``: JSON lines of
``quality_methods.py`` runs; each image's calibrated filter (``method == "classical"``) and
single-image Noise2Self at default settings (``method == "n2s"``, no ``extra``; the last
such row, one column per LABEL) are put next to the pooled figure in the printed table.

Usage::

    python benchmarks/quality_pooled.py [--datasets w2s] [--images 010_0 ...]
        [--seconds 480] [--cpu-time] [--no-tta] [--per-image-norm] [--set KEY=JSON ...]
        [--filter a.jsonl ...] [--single A=b.jsonl,c.jsonl ...] [--json out.jsonl]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

import quality_methods as qm  # noqa: E402  (benchmarks/ is on sys.path)


def pooled(noisies: list[np.ndarray], seconds: float, extra: dict,
           per_image_norm: bool) -> tuple[list[np.ndarray], object, float]:
    """One ``n2s`` network trained ``seconds`` on ``noisies`` stacked along S, each image
    predicted: ``(outputs, bundle, s)``. All images must have one shape."""
    stats = [(float(x.mean()), float(x.std())) for x in noisies]
    if per_image_norm:
        noisies = [(x - m) / s for x, (m, s) in zip(noisies, stats)]
    stack = np.stack(noisies).astype(np.float32)
    out, bundle, s = qm.run_method("n2s", stack, seconds, extra, axes="SYX")
    outs = [np.asarray(o, np.float32) for o in out]
    if per_image_norm:
        outs = [o * sd + m for o, (m, sd) in zip(outs, stats)]
    return outs, bundle, s


def curve(bundle, points: int = 12) -> list[list]:
    """The training log thinned to about ``points`` validated records (every record when
    none was validated), the last always kept: ``[step, training loss, validation loss or
    None]``: is the loss still falling?"""
    hist = [h for h in bundle.history if h.get("val_loss") is not None] or bundle.history
    keep = hist[:: max(1, len(hist) // points)] + hist[-1:]
    return [[h["step"], round(h["loss"], 5),
             None if h.get("val_loss") is None else round(h["val_loss"], 5)] for h in keep]


def _info(bundle) -> dict:
    """Steps, the kept step, its validation loss and the thinned loss curve."""
    info = bundle.info
    return {"steps": info["steps"], "best_step": info["best_step"],
            "best_loss": info["best_loss"], "curve": curve(bundle)}


def references(filters: list[Path], singles: list[str]) -> tuple[dict, list[dict]]:
    """The calibrated filter per image (``method == "classical"`` rows of ``filters``) and,
    per ``LABEL=FILE[,FILE]`` of ``singles``, single-image Noise2Self at default settings
    (``method == "n2s"``, no ``extra``, no ensemble): ``(dataset, image) -> psnr``."""
    filt: dict = {}
    for f in filters:
        for line in f.read_text().splitlines():
            r = json.loads(line)
            if r["method"] == "classical":
                filt[(r["dataset"], r["image"])] = (r["psnr"], r.get("denoiser"))
    columns = []
    for spec in singles:
        label, _, files = spec.partition("=")
        single = {}
        for f in files.split(","):
            for line in Path(f).read_text().splitlines():
                r = json.loads(line)
                if r["method"] == "n2s" and not r.get("extra") and r.get("ensemble", 1) == 1:
                    single[(r["dataset"], r["image"])] = r["psnr"]
        columns.append({"file": label, "psnr": single})
    return filt, columns


def report(rows: list[dict], filt: dict, singles: list[dict]) -> None:
    """Markdown table: noisy, filter, each single-image column, pooled, the differences
    (without a pooled run: the first single-image column against the filter)."""
    if not rows and singles and filt:
        gains = {k: v - filt[k][0] for k, v in singles[0]["psnr"].items() if k in filt}
        for k, g in gains.items():
            print(f"  {k[0]} {k[1]}: n2s single {singles[0]['psnr'][k]:.2f} - filter "
                  f"{filt[k][0]:.2f} = {g:+.2f} dB")
        print(f"n2s single ({singles[0]['file']}) - filter: mean "
              f"{np.mean(list(gains.values())):+.2f} dB over {len(gains)} images")
        return
    heads = [f"n2s single ({s['file']})" for s in singles]
    first = singles[0]["file"] if singles else "single"
    print("\n| data | image | noisy | filter | " + " | ".join(heads + ["pooled"])
          + f" | pooled - filter | pooled - n2s single ({first}) |")
    print("|---|---|---|---|" + "---|" * (len(heads) + 3))
    gains, vs_single = [], []
    for r in rows:
        key = (r["dataset"], r["image"])
        f = filt.get(key)
        single = [s["psnr"].get(key) for s in singles]
        g = r["psnr"] - f[0] if f else None
        d = r["psnr"] - single[0] if single and single[0] is not None else None
        if g is not None:
            gains.append(g)
        if d is not None:
            vs_single.append(d)
        cells = [f"{f[0]:.2f} ({f[1]})" if f else "-"]
        cells += [f"{v:.2f}" if v is not None else "-" for v in single]
        cells += [f"{r['psnr']:.2f}", f"{g:+.2f}" if g is not None else "-",
                  f"{d:+.2f}" if d is not None else "-"]
        print(f"| {key[0]} | {key[1]} | {r['noisy_psnr']:.2f} | " + " | ".join(cells) + " |")
    if gains:
        print(f"\npooled - filter: mean {np.mean(gains):+.2f} dB, above on "
              f"{sum(g > 0 for g in gains)}/{len(gains)} images (min {min(gains):+.2f})")
    if vs_single:
        print(f"pooled - single-image n2s ({first}): mean {np.mean(vs_single):+.2f} dB "
              f"over {len(vs_single)} images")


def main() -> None:
    ap = qm.script_parser(__doc__, 480.0,
                          "training budget of the one pooled run (0: no pooled run)")
    ap.add_argument("--single-seconds", type=float, default=0.0,
                    help="also train single-image n2s this long on each image (paired "
                    "reference in the same process; 0: none)")
    ap.add_argument("--per-image-norm", action="store_true",
                    help="standardise each image before stacking (benchmark-side)")
    ap.add_argument("--filter", nargs="*", type=Path, default=[], metavar="JSONL",
                    help="quality_methods.py results holding the calibrated filter")
    ap.add_argument("--single", nargs="*", default=[], metavar="LABEL=JSONL[,JSONL]",
                    help="quality_methods.py results of single-image n2s, one column each")
    args = ap.parse_args()
    extra = qm.start(args, tta=not args.no_tta)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.seconds:g} {'CPU' if args.cpu_time else 'wall-clock'} s for the pooled "
          f"run, tta={qm.TTA}, per_image_norm={args.per_image_norm}, extra={extra}",
          flush=True)
    data = list(qm.images(args))
    if not data:
        raise SystemExit("quality_pooled: no image chosen")

    def emit(row: dict) -> dict:
        row = {"dataset": row.pop("dataset"), "image": row.pop("image"), **row,
               "cpu_time": args.cpu_time, "tta": qm.TTA, "extra": extra,
               "load_avg": os.getloadavg()[0]}
        print(f"  {row['dataset']} {row['image']} {row['method']} {row['psnr']:.2f} dB "
              f"({row['steps']} steps, best {row['best_step']})", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        return row

    singles = {}
    for dataset, name, noisy, gt in data if args.single_seconds else []:
        out, bundle, s = qm.run_method("n2s", noisy, args.single_seconds, extra)
        r = emit({"dataset": dataset, "image": name, "method": "n2s",
                  "psnr": qm.score(gt, out), "noisy_psnr": qm.score(gt, noisy),
                  "seconds": args.single_seconds, "train_s": s, **_info(bundle)})
        singles[(dataset, name)] = r["psnr"]
    rows = []
    if args.seconds > 0:
        outs, bundle, s = pooled([d[2] for d in data], args.seconds, extra,
                                 args.per_image_norm)
        print(f"pooled n2s on {len(data)} images, {s:.0f} s wall (train + predict), "
              f"normalisation offset {bundle.norm_offset} scale {bundle.norm_scale}",
              flush=True)
        for (dataset, name, noisy, gt), out in zip(data, outs):
            rows.append(emit({
                "dataset": dataset, "image": name,
                "method": "pooled:per-image-norm" if args.per_image_norm else "pooled",
                "psnr": qm.score(gt, out), "noisy_psnr": qm.score(gt, noisy),
                "seconds": args.seconds, "train_s": s, "n_images": len(data),
                "images": [d[1] for d in data], "per_image_norm": args.per_image_norm,
                "norm_offset": bundle.norm_offset, "norm_scale": bundle.norm_scale,
                **_info(bundle)}))
    filt, columns = references(args.filter, args.single)
    if singles:
        columns.insert(0, {"file": f"this run, {args.single_seconds:g} s", "psnr": singles})
    report(rows, filt, columns)

if __name__ == "__main__":
    main()
