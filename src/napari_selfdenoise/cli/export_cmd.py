"""``napari-selfdenoise export MODEL --bioimageio OUT.zip``.

Writes MODEL (a .sdmodel file, or an image file that carries a model) as a bioimage.io
model package: spec 0.5, pytorch_state_dict weights with an architecture file that
imports only torch, TorchScript weights, the model's normalisation as pre- and
post-processing, test tensors, a cover image, citations, and the .sdmodel itself (so
napari-selfdenoise loads the package back losslessly). The package is tested with
bioimageio.core before it is written; a package that fails its test is never written.
Needs the optional extra: pip install "napari-selfdenoise[bioimageio]".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export", help="export a model as a bioimage.io package (Model Zoo, deepImageJ, Fiji)",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("model", type=Path,
                        help="model file (.sdmodel) or an image file that carries a model")
    parser.add_argument("--bioimageio", required=True, type=Path, metavar="OUT.zip",
                        help="the bioimage.io package to write")
    parser.add_argument("--sample", type=Path, default=None,
                        help="image (.tif, .zarr, .npy) the test tensors and the cover are "
                        "cropped from (default: a synthetic noisy image)")
    parser.add_argument("--sample-axes", default=None, help="axes of --sample, e.g. TYX")
    parser.add_argument("--author", action="append", default=None, metavar="NAME",
                        help="author of the package (repeat for several)")
    parser.add_argument("--license", default="CC-BY-4.0",
                        help="SPDX licence of the package (default CC-BY-4.0)")
    parser.add_argument("--name", default=None, help="name of the package")
    parser.add_argument("--description", default=None, help="one-sentence description")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.zip")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the model, build, test and write the package."""
    from ..core import io, outputs
    from ..core.bioimageio import require_bioimageio
    from ..core.events import run_to_end
    from .predict_cmd import load_model

    require_bioimageio()  # before any work: one line naming what to install
    inputs = [args.model] + ([args.sample] if args.sample else [])
    outputs.check_not_input(args.bioimageio, inputs, "--bioimageio")
    bundle = load_model(args.model)
    sample = None
    if args.sample is not None:
        data, axes = io.open_image(args.sample)
        axes = args.sample_axes or axes
        if not axes:
            raise ValueError(f"cannot tell the axes of {args.sample}; pass --sample-axes")
        sample = (data, axes)
    from ..core.bioimageio.export import export_bioimageio

    t0 = time.perf_counter()
    out = run_to_end(export_bioimageio(
        bundle, args.bioimageio, sample=sample,
        sample_name=args.sample.name if args.sample else None, authors=args.author or (),
        license=args.license, name=args.name, description=args.description,
        overwrite=args.overwrite), _print)
    print(f"{args.model} -> {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _print(event: Any) -> None:
    print(f"{event.level}: {event.text}", file=sys.stderr, flush=True)
