"""``napari-selfdenoise run PRESET INPUT... --out DIR``: batch-apply a widget preset.

The preset's kind decides what happens to each input: a Train preset trains a model on
it and denoises it (writing ``<stem>_<method>.tif`` and ``<stem>_<method>.sdmodel``), a
Predict preset denoises it with the preset's model file (or ``--model``), a Calibrate
preset calibrates a classical denoiser on it and denoises it. ``--ome-zarr`` writes
``<stem>_<method>.ome.zarr`` (OME-Zarr multiscale) instead. Folders given as inputs
are searched for TIFF / zarr / ``.npy`` images. A bad input is reported and skipped;
the exit status is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="apply a saved widget preset to several images (batch)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("preset", type=Path, help="preset file saved from a widget (.json)")
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="image files (.tif, .zarr, .npy) or folders of them")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file for a Predict preset (overrides the preset's)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs in --out (refused otherwise)")
    parser.add_argument("--ome-zarr", nargs="?", const="0.5", default=None,
                        choices=["0.4", "0.5"], metavar="VERSION",
                        help="write <stem>_<method>.ome.zarr (OME-Zarr multiscale, NGFF 0.5 or "
                        "the VERSION given) instead of .tif")
    parser.add_argument("--quiet", action="store_true", help="only print the summary")
    from .predict_cmd import add_cluster_options

    add_cluster_options(parser)  # Predict presets: outputs become <stem>_<method>.zarr
    parser.set_defaults(func=run)
    return parser


class _Printer:
    """One line per input started / finished, and progress at most every few seconds."""

    def __init__(self, quiet: bool, every_s: float = 5.0) -> None:
        self.quiet = quiet
        self.every_s = every_s
        self._last = -float("inf")

    def __call__(self, progress: Any) -> None:
        import time

        from ..core import events

        if self.quiet:
            return
        head = f"[{progress.index + 1}/{progress.total}] {progress.name}"
        if progress.status == "started":
            print(f"{head}: started", flush=True)
        elif progress.status == "done":
            print(f"{head}: wrote {progress.output}", flush=True)
        elif progress.status == "failed":
            print(f"{head}: FAILED: {progress.message}", file=sys.stderr, flush=True)
        elif time.perf_counter() - self._last >= self.every_s:
            self._last = time.perf_counter()
            event = progress.event
            if isinstance(event, events.TrainStep):
                print(f"{head}: step {event.step} loss {event.loss:.4g}", flush=True)
            elif isinstance(event, events.TileDone):
                print(f"{head}: tile {event.tiles_done}/{event.tiles_total}", flush=True)
            elif isinstance(event, events.CalibrationStep):
                print(f"{head}: {event.denoiser} {event.parameter}={event.value:.3g} "
                      f"loss {event.loss:.4g}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the batch; 0 when every input succeeded, 1 when some failed."""
    from ..core import outputs, presets
    from ..core.bundle import ModelBundle
    from ..core.events import run_to_end

    settings = presets.load_preset(args.preset)
    if args.scheduler is not None or args.workers is not None:
        if presets.kind_of(settings) != "predict":
            raise ValueError("--scheduler / --workers only apply to a Predict preset")
    inputs = presets.expand_inputs(args.inputs)
    if not inputs:
        raise ValueError("no input images found (give files, or folders with .tif/.zarr/.npy)")
    model = ModelBundle.load(args.model) if args.model is not None else None
    if model is not None and presets.kind_of(settings) != "predict":
        raise ValueError("--model only applies to a Predict preset")
    if args.out.exists() and not args.out.is_dir():
        raise outputs.OutputError(f"--out {args.out} is a file; give a folder")
    if model is None and presets.kind_of(settings) == "predict":
        model = presets._preset_model(settings)
    # every output name checked before any work: collisions, inputs, existing files
    presets.plan_outputs(settings, inputs, args.out, model=model, overwrite=args.overwrite,
                         ome_zarr=args.ome_zarr)
    args.out.mkdir(parents=True, exist_ok=True)
    outputs.check_writable(args.out, "--out", args.out)
    with outputs.OutputLock(args.out), _cluster(args, settings) as settings:
        report = run_to_end(presets.run_batch(settings, inputs, args.out, model=model,
                                              overwrite=args.overwrite, ome_zarr=args.ome_zarr),
                            _Printer(args.quiet))
    print(report.summary())
    return 1 if report.failures else 0


@contextlib.contextmanager
def _cluster(args: argparse.Namespace, settings: Any) -> Iterator[Any]:
    """The settings with ``--scheduler`` applied; ``--workers N`` starts one local cluster
    for the whole batch (closed after) and points every input at it."""
    if args.scheduler is None and args.workers is None:
        yield settings
        return
    from ..core.inference.backends import cluster

    predict = settings.predict
    local = None
    address = args.scheduler
    if args.workers is not None:
        cluster.require_distributed()
        local = cluster.local_cluster(args.workers, cluster.local_gpu_count(predict.device))
        address = local.scheduler_address
    try:
        yield settings.model_copy(update={"predict": predict.model_copy(
            update={"scheduler": address, "workers": None})})
    finally:
        if local is not None:
            local.close()
