"""``napari-selfdenoise compare IMAGE --budget SECONDS --out OUTPUT [--report REPORT.json]``.

Which denoiser for this image? Trains the candidate networks and calibrates every classical
filter within one total budget, scores all of them on held-out bands of the image through their
J-invariant form (the self-supervised loss, comparable across candidates), estimates the
PSNR of the output each one hands out against the unknown clean image (Stein's estimate
where that output is not J-invariant), ranks a Stein-weighted blend of the best network and
the best filter too, and writes the best one's output (a filter's, when a filter is
estimated best). The output (.tif or .npy) carries the ranking in its
provenance; ``--report`` writes it as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``compare`` sub-command."""
    parser = subparsers.add_parser(
        "compare", help="rank networks and classical filters on this image, keep the best",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("input", type=Path, help="image (.tif, .zarr, .npy), one channel")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="total seconds for every candidate (default 120)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="count the budget in this process's CPU seconds (shared machines)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="candidate networks (default: n2s, chosen by measurement)")
    parser.add_argument("--no-filters", action="store_true", help="networks only")
    parser.add_argument("--no-blend", action="store_true",
                        help="do not rank the Stein-weighted blend of the best network and "
                             "the best filter")
    parser.add_argument("--out", required=True, type=Path, help="output .tif or .npy")
    parser.add_argument("--report", type=Path, default=None, help="write the ranking as JSON")
    parser.add_argument("--axes", default=None, help="axes of the input, e.g. YX, ZYX")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="only print the pick")
    parser.set_defaults(func=run)
    return parser


def _config(args: argparse.Namespace) -> Any:
    from ..core.config import CompareConfig

    extra = {"methods": args.methods} if args.methods else {}
    return CompareConfig(budget_s=args.budget, clock="cpu" if args.cpu_time else "wall",
                         filters=not args.no_filters, blend=not args.no_blend, seed=args.seed,
                         device=args.device,
                         **extra)


def _printer(quiet: bool) -> Any:
    from ..core.events import CompareRanking, CompareTraining, Message, TrainStep

    def show(event: Any) -> None:
        if isinstance(event, Message) and event.level == "warning":
            # once, as it comes, even with --quiet (the correlated-noise check, ...)
            print(f"warning: {event.text}", file=sys.stderr, flush=True)
        elif quiet:
            return
        elif isinstance(event, CompareRanking):
            print(f"ranking after {event.elapsed_s:.0f}/{event.budget_s:.0f} s:", flush=True)
            for i, r in enumerate(event.rows, 1):
                q = r.quality
                print(f"  {i}. {r.name:10s} {r.kind:7s} score {q.score:.6g}  "
                      f"{r.best.describe()}  [{r.detail}]", flush=True)
        elif isinstance(event, CompareTraining) and isinstance(event.event, TrainStep):
            e = event.event
            if e.estimated_psnr is not None:
                print(f"  {event.candidate}: step {e.step} loss {e.loss:.5f} "
                      f"est. PSNR {e.estimated_psnr:.1f} dB", flush=True)
        elif isinstance(event, Message):
            print(f"{event.level}: {event.text}", flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    """Compare, write the pick's output (and the report)."""
    import json

    import numpy as np

    from ..core import io, outputs
    from ..core.compare import compare
    from ..core.events import run_to_end
    from ..core.preload import preload_optimiser
    from ..core.provenance import make_provenance

    preload_optimiser()  # torch's one-time optimiser import, while the image loads
    image, file_axes = io.open_image(args.input)
    config = _config(args)
    outputs.check_output(args.out, overwrite=args.overwrite, inputs=[args.input],
                         suffixes=(".tif", ".tiff", ".npy"), label="--out")
    if args.report is not None:
        outputs.check_output(args.report, overwrite=args.overwrite,
                             inputs=[args.input, args.out], suffixes=(".json",),
                             label="--report")
    axes = args.axes or file_axes
    result = run_to_end(compare(np.asarray(image), config, axes=axes), _printer(args.quiet))
    report = {"input": str(args.input), "output": str(args.out), **result.report()}
    prov = make_provenance("compare", args.input.name, config, bundle=result.bundle,
                           ranking=report)
    out = np.asarray(result.image, dtype=np.float32)
    with outputs.OutputLock(args.out):
        outputs.prepare_parent(args.out)
        if args.out.suffix.lower() == ".npy":
            from .calibrate_cmd import _save_npy

            _save_npy(args.out, out)
        else:
            from ..core.validation import resolve_axes

            io.write_tiff_atomic(args.out, out, axes=resolve_axes(out.shape, axes),
                                 document={"format": io.DOC_FORMAT, "provenance": prov},
                                 overwrite=args.overwrite)
    if args.report is not None:
        from .calibrate_cmd import _write_report

        with outputs.OutputLock(args.report):
            _write_report(args.report, json.loads(json.dumps(report, default=str)))
    best = result.ranking[0]
    kind = "a classical filter" if result.kind == "filter" else "a network"
    print(f"pick: {result.pick} ({kind}, {best.best.describe()}) -> {args.out}",
          file=sys.stdout)
    return 0
