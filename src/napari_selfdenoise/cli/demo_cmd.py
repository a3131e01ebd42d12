"""``napari-selfdenoise demo``: the main job, headless, on the bundled 2D phantom.

Trains a self-supervised denoiser on the noisy phantom for a short wall-clock budget,
denoises it, writes the denoised TIFF (plus the noisy input and the model, so that
``napari-selfdenoise predict`` can be tried next), a PNG figure (noisy / denoised / ground
truth / loss curve) and prints the PSNR of the noisy input and of the result against the
ground truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..core.config import METHOD_NAMES
from ..core.methods import METHODS

DEFAULT_SECONDS = 40.0
DEFAULT_METHOD = "n2s"
#: the demo trains on one noisy image: methods that need a second one are left out
SINGLE_IMAGE_METHODS = [n for n, m in METHODS.items() if not m.needs_target]
#: fewer steps than this give a visibly under-trained network (warned about)
FEW_STEPS = 50


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="train and denoise the bundled phantom headless; write TIFF + PNG, print PSNR",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--out", default="demo_output", type=Path,
                        help="output folder (default: %(default)s)")
    parser.add_argument("--seconds", default=DEFAULT_SECONDS, type=float,
                        help="training wall-clock budget in seconds (default: %(default)s)")
    parser.add_argument("--steps", default=None, type=int,
                        help="also stop after this many steps (default: the time budget only)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=SINGLE_IMAGE_METHODS,
                        help="self-supervised method (default: %(default)s)")
    parser.add_argument("--seed", default=0, type=int, help="seed (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="'auto', 'cpu', 'cuda', 'mps' (default: %(default)s)")
    parser.set_defaults(func=run)
    return parser


class _Progress:
    """Collects training steps for the loss curve and prints one line every few seconds."""

    def __init__(self, budget_s: float, every_s: float = 3.0) -> None:
        self.steps: list[Any] = []
        self.budget_s = budget_s
        self.every_s = every_s
        self._last = -float("inf")

    def __call__(self, event: Any) -> None:
        from ..core.events import Message, TrainStep

        if isinstance(event, Message):
            print(f"  {event.level}: {event.text}", file=sys.stderr)
        if not isinstance(event, TrainStep):
            return
        self.steps.append(event)
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            val = "" if event.val_loss is None else f"  val {event.val_loss:.4g}"
            print(f"  step {event.step:5d}  loss {event.loss:.4g}{val}  "
                  f"{event.patches_per_s:6.0f} patches/s  "
                  f"{event.elapsed_s:5.1f}/{self.budget_s:.0f} s", file=sys.stderr)


def _write_tiff(path: Path, data: Any, axes: str) -> None:
    import tifffile

    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": axes})


def _figure(path: Path, phantom: Any, denoised: Any, steps: list, scores: dict,
            title: str) -> None:
    """Noisy / denoised / ground truth (full and zoomed) and the loss curve."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    clean = phantom.clean
    lo, hi = np.percentile(clean, [0.5, 99.9])
    h, w = clean.shape
    zy, zx = slice(h // 2 - h // 8, h // 2 + h // 8), slice(w // 2 - w // 8, w // 2 + w // 8)
    panels = [("noisy", phantom.noisy, scores["noisy"]),
              ("denoised", denoised, scores["denoised"]),
              ("ground truth", clean, None)]

    fig = plt.figure(figsize=(15, 7.6), layout="constrained")
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 1.25])
    for col, (name, image, score) in enumerate(panels):
        for row, crop in enumerate(((slice(None), slice(None)), (zy, zx))):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(image[crop], cmap="magma", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                label = name if score is None else f"{name}: {score:.2f} dB"
                ax.set_title(label, fontsize=12)
                ax.add_patch(plt.Rectangle((zx.start, zy.start), zx.stop - zx.start,
                                           zy.stop - zy.start, fill=False, ec="w", lw=1))
            else:
                ax.set_title(f"{name} (zoom)", fontsize=10)

    ax = fig.add_subplot(grid[:, 3])
    if steps:
        ax.plot([s.step for s in steps], [s.loss for s in steps], label="training loss",
                color="tab:blue", lw=1)
        val = [(s.step, s.val_loss) for s in steps if s.val_loss is not None]
        if val:
            ax.plot(*zip(*val), "o-", label="validation loss", color="tab:orange", ms=3)
        ax.set_yscale("log")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("loss (normalised units)")
    ax.set_title("loss curve")
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=13)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Train, predict, write the outputs and print PSNR against the ground truth."""
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds:g}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    from ..core import samples
    from ..core.config import TrainConfig
    from ..core.events import run_to_end
    from ..core.inference import predict_array
    from ..core.training import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phantom = samples.phantom_2d(seed=args.seed)
    name = METHOD_NAMES[args.method]
    print(f"demo: {name} on the 2D phantom {phantom.noisy.shape} for {args.seconds:g} s "
          f"(Poisson-Gaussian noise, peak {phantom.photons:g} photons)", file=sys.stderr)

    config = TrainConfig(method=args.method, axes=phantom.axes, steps=args.steps or 10**9,
                         time_budget_s=args.seconds, seed=args.seed, device=args.device)
    progress = _Progress(args.seconds)
    t0 = time.monotonic()
    bundle = run_to_end(train(phantom.noisy, config, axes=phantom.axes), progress)
    train_s = time.monotonic() - t0
    denoised = predict_array(bundle, phantom.noisy, axes=phantom.axes).astype("float32")

    scores = {"noisy": samples.psnr(phantom.clean, phantom.noisy),
              "denoised": samples.psnr(phantom.clean, denoised)}
    n_steps = progress.steps[-1].step if progress.steps else 0
    paths = {
        "denoised": out / "phantom2d_denoised.tif",
        "noisy": out / "phantom2d_noisy.tif",
        "model": out / f"phantom2d_{args.method}.sdmodel",
        "figure": out / "phantom2d_demo.png",
    }
    _write_tiff(paths["denoised"], denoised, phantom.axes)
    _write_tiff(paths["noisy"], phantom.noisy, phantom.axes)
    bundle.save(paths["model"])
    title = (f"{name}, {train_s:.0f} s of training ({n_steps} steps) on the 2D phantom: "
             f"{scores['noisy']:.2f} dB -> {scores['denoised']:.2f} dB")
    _figure(paths["figure"], phantom, denoised, progress.steps, scores, title)

    if n_steps < FEW_STEPS:
        print(f"demo: only {n_steps} training steps fitted in {args.seconds:g} s (a busy or slow "
              f"CPU?); the result improves with more, e.g. --seconds {4 * args.seconds:g}",
              file=sys.stderr)
    print(f"PSNR noisy:    {scores['noisy']:.2f} dB")
    print(f"PSNR denoised: {scores['denoised']:.2f} dB  ({name}, {train_s:.1f} s, "
          f"{n_steps} steps, gain {scores['denoised'] - scores['noisy']:+.2f} dB)")
    for key, path in paths.items():
        print(f"wrote {key}: {path}")
    return 0
