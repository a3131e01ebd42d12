"""``napari-selfdenoise train INPUT... --method METHOD --out MODEL``.

Trains a self-supervised denoiser on one or more images (TIFF, zarr, npy; same axes,
any sizes) and saves the model file. A progress bar runs on the terminal; ``--log-json``
writes one JSON object per logged step. Ctrl-C stops training and still saves the best
model so far (press it twice to abort without saving).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional, TextIO, get_args

from ..core.config import NetworkConfig
from ..core.methods import get_method
from .method_options import add_method_arguments, method_params

NETWORK_CHOICES = list(get_args(NetworkConfig.model_fields["arch"].annotation))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train", help="train a self-supervised denoiser and save the model",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="training images (.tif, .zarr, .npy)")
    add_method_arguments(parser)
    parser.add_argument("--target", type=Path, nargs="+", default=None, metavar="FILE",
                        help="methods that need a target (n2n): a second, independent noisy "
                        "acquisition of each INPUT (same shape); else use --pairs-along")
    parser.add_argument("--axes", default=None,
                        help="axes of the inputs, e.g. YX, TYX, ZYX, CYX (default: from the "
                        "file, else inferred)")
    parser.add_argument("--out", required=True, type=Path, help="model file to write")
    parser.add_argument("--steps", type=int, default=None, help="step budget (default 2000)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="wall-clock budget in seconds")
    parser.add_argument("--patch", type=int, nargs="+", default=None,
                        help="patch size: Y X (2D) or Z Y X (3D); one number N means N x N "
                        "(2D) or N x N x N (3D)")
    parser.add_argument("--batch", type=int, default=None, help="patches per step")
    parser.add_argument("--lr", type=float, default=None, help="learning rate")
    parser.add_argument("--network", choices=NETWORK_CHOICES, default=None,
                        help="network family (default unet); dncnn: DnCNN (Zhang et al. 2017), "
                        "its depth is --dncnn-layers, its width --filters; not with n2v2")
    parser.add_argument("--dncnn-layers", type=int, default=None,
                        help="convolutions of the DnCNN network (default 17)")
    parser.add_argument("--depth", type=int, default=None, help="U-Net depth")
    parser.add_argument("--filters", type=int, default=None, help="base filters")
    parser.add_argument("--ema", type=float, default=None, metavar="DECAY",
                        help="moving average of the weights, decay per step in [0, 1) "
                        "(0: off; e.g. 0.99); the model holds the averaged weights")
    parser.add_argument("--struct-axis", choices=["x", "y"], default=None,
                        help="structN2V: also mask a line along this axis (n2v, 2D)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'mps', ...")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-json", type=Path, default=None, metavar="FILE",
                        help="write one JSON object per logged step to FILE")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing model (and --log-json file)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`TrainConfig` for the parsed arguments (method defaults elsewhere)."""
    from ..core.config import TrainConfig

    settings: dict[str, Any] = {"method": args.method, "device": args.device,
                                "precision": args.precision, "seed": args.seed,
                                "params": method_params(args)}
    optional = {"steps": args.steps, "time_budget_s": args.time_budget,
                "batch_size": args.batch, "learning_rate": args.lr, "ema": args.ema,
                "patch_size": tuple(args.patch) if args.patch else None}
    settings.update({k: v for k, v in optional.items() if v is not None})
    if args.time_budget is not None and args.steps is None:
        settings["steps"] = 10**9  # the time budget decides
    network = {"arch": args.network, "depth": args.depth, "base_filters": args.filters,
               "dncnn_layers": getattr(args, "dncnn_layers", None)}
    settings["network"] = {k: v for k, v in network.items() if v is not None}
    valid = get_method(args.method).networks
    if args.network is not None and args.network not in valid:
        raise ValueError(f"--network {args.network}: method {args.method} trains "
                         f"{' or '.join(valid)}")
    if args.struct_axis:
        settings["masking"] = {"struct_axis": args.struct_axis}
    return TrainConfig(**settings)


class Progress:
    """A one-line terminal progress bar (plain lines when not on a terminal)."""

    def __init__(self, stream: TextIO, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()

    def update(self, e: Any) -> None:
        if self.quiet:
            return
        frac = min(1.0, e.elapsed_s / (e.elapsed_s + e.eta_s)) if e.eta_s else 1.0
        bar = "#" * int(frac * 24)
        val = f" val {e.val_loss:.5f}" if e.val_loss is not None else ""
        if getattr(e, "estimated_psnr", None) is not None:
            val += f" est. PSNR {e.estimated_psnr:.1f} dB"
        eta = f" ETA {_duration(e.eta_s)}" if e.eta_s is not None else ""
        line = (f"[{bar:<24}] step {e.step} loss {e.loss:.5f}{val} "
                f"{e.patches_per_s:.0f} patches/s {_duration(e.elapsed_s)}{eta}")
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:100])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
        self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _install_stop_handler(stop: threading.Event, progress: Progress) -> Optional[Any]:
    """First Ctrl-C sets ``stop``; a second one raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        progress.note("stopping after this step and saving the best model "
                      "(Ctrl-C again to abort)")

    return signal.signal(signal.SIGINT, handler)


def _check_outputs(args: argparse.Namespace) -> None:
    """Before any work: the model and log are not inputs, may be written, do not exist."""
    from ..core import outputs

    not_models = outputs.IMAGE_SUFFIXES + (".json", ".jsonl", ".png", ".jpg", ".txt")
    if args.out.suffix.lower() in not_models:
        raise outputs.OutputError(f"--out {args.out}: a model file ends in .sdmodel, not "
                                  f"{args.out.suffix}; e.g. --out {args.out.stem}.sdmodel")
    inputs = [*args.inputs, *(getattr(args, "target", None) or [])]
    outputs.check_output(args.out, overwrite=args.overwrite, inputs=inputs, label="--out")
    if args.log_json is not None:
        outputs.check_output(args.log_json, overwrite=args.overwrite,
                             inputs=[*inputs, args.out], label="--log-json")
        if outputs.same_path(args.log_json, args.out):
            raise outputs.OutputError("--log-json and --out name the same file")


def _open_inputs(args: argparse.Namespace) -> tuple[list, Optional[str], Optional[list]]:
    """Open and check every input (and Noise2Noise target), naming the file in any error."""
    from ..core import io, validation

    arrays, axes = [], args.axes
    for path in args.inputs:
        array, file_axes = io.open_image(path)
        validation.check_array(array, str(path), purpose="train")
        bad = validation.count_nonfinite(array)
        if bad:
            raise validation.UserError(
                f"{path} contains {bad} NaN or infinite values; replace them (e.g. by the "
                "median) or crop them away before training")
        axes = validation.resolve_axes(array.shape, axes, file_axes=file_axes, name=str(path))
        arrays.append(array)
    targets = None
    if getattr(args, "target", None):  # Noise2Noise: independent noisy acquisitions
        targets = []
        for path in args.target:
            target, _ = io.open_image(path)
            validation.check_array(target, str(path), purpose="train")
            targets.append(target)
    if args.patch and len(args.patch) == 1:  # one number: a square / cube patch
        from ..core.axes import spatial_axes

        args.patch = args.patch * len(spatial_axes(axes))
    return arrays, axes, targets


def run(args: argparse.Namespace) -> int:
    """Open the inputs, train, save the model."""
    from contextlib import ExitStack

    from ..core import outputs
    from ..core.preload import preload_optimiser

    _check_outputs(args)
    preload_optimiser()  # torch's one-time optimiser import, while the inputs load
    arrays, axes, targets = _open_inputs(args)
    config = build_config(args)
    with ExitStack() as locks:
        for path in (args.out, args.log_json):
            if path is not None:
                locks.enter_context(outputs.OutputLock(path))
                outputs.remove_stale_temporaries(path)
        bundle = _train(args, arrays, axes, config, targets)
        outputs.prepare_parent(args.out)
        path = bundle.save(args.out)
    est = bundle.info.get("estimated_quality")
    quality = (f", estimated PSNR {est['psnr']:.1f} dB ({est['psnr_low']:.1f}-"
               f"{est['psnr_high']:.1f}) on a held-out crop" if est else "")
    print(f"saved {bundle.method} model ({bundle.axes}, best step "
          f"{bundle.info.get('best_step')}{quality}) to {path}")
    return 0


def _train(args: argparse.Namespace, arrays: list, axes: Optional[str], config: Any,
           targets: Optional[list] = None) -> Any:
    """Run training with the progress bar, the JSON log and the Ctrl-C handler."""
    from ..core.events import Message, TrainFinished, TrainStep
    from ..core.training import train

    progress = Progress(sys.stderr, args.quiet)
    log, log_tmp = None, None
    if args.log_json:
        from ..core import outputs

        log_tmp = outputs.prepare_parent(args.log_json).with_name(
            f".{args.log_json.name}.{os.getpid()}.part")
        log = open(log_tmp, "w", encoding="utf-8")
    stop = threading.Event()
    previous = _install_stop_handler(stop, progress)
    bundle = None
    try:
        gen = train(arrays, config, axes=axes, stop=stop, target=targets)
        while True:
            try:
                event = next(gen)
            except StopIteration as done:
                bundle = done.value
                break
            if isinstance(event, TrainStep):
                progress.update(event)
                if log is not None:
                    log.write(json.dumps({
                        "step": event.step, "loss": event.loss, "val_loss": event.val_loss,
                        "elapsed_s": event.elapsed_s, "patches_per_s": event.patches_per_s,
                        "eta_s": event.eta_s, "learning_rate": event.learning_rate,
                        "estimated_psnr": event.estimated_psnr,
                    }) + "\n")
                    log.flush()
            elif isinstance(event, Message):
                progress.note(f"{event.level}: {event.text}")
            elif isinstance(event, TrainFinished):
                best = (f", best validation loss {event.best_val_loss:.5f}"
                        if event.best_val_loss is not None else "")
                progress.note(f"finished ({event.reason}) after {event.step} steps in "
                              f"{_duration(event.elapsed_s)}{best}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if log is not None:
            log.close()
            if bundle is not None:
                os.replace(log_tmp, args.log_json)  # the log appears whole, with the model
            else:
                os.unlink(log_tmp)
    return bundle
