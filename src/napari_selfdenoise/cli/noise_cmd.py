"""``napari-selfdenoise noise IMAGE``: the Poisson-Gaussian noise model of one image.

Prints ``var = a * signal + b`` per channel (in the image's units), estimated from the
image alone (:func:`~napari_selfdenoise.core.noise_model.estimate_noise_model`), and how far
the noise is correlated between pixels (:mod:`~napari_selfdenoise.core.noise_correlation`:
its autocorrelation at lags 1-3 per axis, its range, and the pixel-shuffle training factor
``--pixel-shuffle auto`` would choose); ``--json`` prints ``{"a": [...], "b": [...],
"correlation_range": R, "pd_train_auto": F}``. ``train`` prints and stores the same
noise-model estimate.
The image is opened lazily and at most ``--max-pixels`` pixels per channel are read
(evenly spaced planes, or tiles of planes), so stacks larger than memory work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``noise`` sub-command."""
    parser = subparsers.add_parser(
        "noise", help="estimate the noise model (variance = a * signal + b) of an image",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("input", type=Path, help="image (.tif, .zarr, .npy)")
    parser.add_argument("--axes", default=None, help="axes of the input, e.g. YX, CYX, ZYX")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="pixels per channel read for the estimate (default 4000000; a smaller image "
        "is read whole)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Estimate and print the noise model."""
    from ..core import io
    from ..core.axes import infer_axes, validate_axes
    from ..core.methods.pd_option import auto_factor
    from ..core.noise_correlation import describe, lag_correlations, range_of
    from ..core.noise_model import NOISE_PIXELS, estimate_noise_model, read_noise_sample
    from ..core.validation import UserError

    if args.max_pixels is not None and args.max_pixels < 1:
        raise UserError(f"--max-pixels must be a positive number of pixels, got "
                        f"{args.max_pixels}")
    data, file_axes = io.open_image(args.input)
    axes = validate_axes(args.axes or file_axes or infer_axes(data.shape), data.shape)
    sample = read_noise_sample(data, axes, args.max_pixels or NOISE_PIXELS)  # C, P, h, w
    nm = estimate_noise_model(sample, channel_axis=0)
    found = lag_correlations(sample)  # measured once: the lags and the range
    reach = range_of(found)
    if args.json:
        print(json.dumps({**nm.to_dict(), "correlation_range": reach,
                          "pd_train_auto": auto_factor(reach)}))
        return 0
    print(f"noise model: {nm.describe()}")
    print(f"noise correlation at lags 1-3: {describe(found) or 'not measurable'}; range "
          f"{reach} (pixel shuffle auto: training factor {auto_factor(reach)})")
    return 0
