"""``napari-selfdenoise noise IMAGE``: the Poisson-Gaussian noise model of one image.

Prints ``var = a * signal + b`` per channel (in the image's units), estimated from the
image alone (:func:`~napari_selfdenoise.core.noise_model.estimate_noise_model`); ``--json``
prints ``{"a": [...], "b": [...]}``. ``train`` prints and stores the same estimate.
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
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Estimate and print the noise model."""
    import numpy as np

    from ..core import io
    from ..core.axes import infer_axes, to_canonical, validate_axes
    from ..core.noise_model import estimate_noise_model

    data, file_axes = io.open_image(args.input)
    axes = validate_axes(args.axes or file_axes or infer_axes(data.shape), data.shape)
    canon = np.asarray(to_canonical(np.asarray(data), axes), dtype=np.float32)  # N, C, *S
    nm = estimate_noise_model(canon, channel_axis=1)
    print(json.dumps(nm.to_dict()) if args.json else f"noise model: {nm.describe()}")
    return 0
