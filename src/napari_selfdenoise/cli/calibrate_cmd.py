"""``napari-selfdenoise calibrate INPUT --denoiser NAME|auto --out OUTPUT``.

Chooses a classical denoiser's parameter by its Noise2Self self-supervised loss (on a
central crop), then denoises the whole image block by block. ``--out`` ending in ``.zarr``
streams the result to a zarr store (the input is never loaded whole); ``.tif`` gives a
float32 TIFF, ``.npy`` a numpy file; other extensions are refused before any work. ``--report`` saves the loss curve(s) and the choice as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``calibrate`` sub-command."""
    parser = subparsers.add_parser(
        "calibrate",
        help="calibrate a classical denoiser (J-invariant, self-supervised) and apply it",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("input", type=Path, help="image (.tif, .zarr, .npy)")
    parser.add_argument("--denoiser", default="auto",
                        help="median, mean, gaussian, tv, wavelet, nlm, bilateral, or 'auto' "
                        "to try them all and keep the lowest loss (default)")
    parser.add_argument("--out", required=True, type=Path, help="output .tif, .zarr or .npy")
    parser.add_argument("--report", type=Path, default=None, help="write a JSON report here")
    parser.add_argument("--axes", default=None, help="axes of the input, e.g. YX, ZYX, TYX")
    parser.add_argument("--values", type=float, nargs="+", default=None,
                        help="parameter grid (default: derived from the noise level)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--j-invariant-output", dest="j_invariant", action="store_true",
                        default=None, help="write the J-invariant output (the default)")
    output.add_argument("--plain-output", dest="j_invariant", action="store_false",
                        help="write the plain denoiser's output at the chosen parameter")
    parser.add_argument("--crop", type=int, default=512,
                        help="calibrate on a central crop of this side (0: whole image)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ...")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="only print the choice")
    parser.set_defaults(func=run)
    return parser


def _check_outputs(args: argparse.Namespace, image: Any) -> None:
    """Before any work: known extensions, not the input, writable, room, no silent replace."""
    import math

    from ..core import io, outputs, validation

    size = 4 * math.prod(int(s) for s in image.shape)
    if not io.is_zarr_path(args.out):  # TIFF / npy outputs hold the result in memory
        validation.check_fits_in_memory(2 * size, f"denoising {args.input}",
                                        "write a .zarr output (streamed block by block)")
    outputs.check_output(args.out, overwrite=args.overwrite, inputs=[args.input],
                         suffixes=outputs.IMAGE_SUFFIXES, label="--out", expected_bytes=size,
                         directory_ok=True)
    if args.report is not None:
        outputs.check_output(args.report, overwrite=args.overwrite,
                             inputs=[args.input, args.out], suffixes=(".json",),
                             label="--report")


def run(args: argparse.Namespace) -> int:
    """Calibrate, denoise, write the output (and the report)."""
    from contextlib import ExitStack

    from ..core import io, outputs

    image, file_axes = io.open_image(args.input)
    _check_outputs(args, image)
    with ExitStack() as locks:
        for path in (args.out, args.report):
            if path is not None:
                locks.enter_context(outputs.OutputLock(path))
                outputs.remove_stale_temporaries(path)
        result, report = _calibrate_and_write(args, image, file_axes)
        if args.report is not None:
            _write_report(args.report, report)
    print(f"{result.denoiser} {result.parameter}={result.best_value:.4g} "
          f"(loss {result.best_loss:.6g}, noise sigma {result.noise_sigma:.4g}, "
          f"{'J-invariant' if result.j_invariant else 'plain'} output) -> {args.out}",
          file=sys.stdout)
    return 0


def _write_report(path: Path, report: dict) -> None:
    from ..core import outputs

    tmp = outputs.prepare_parent(path).with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _calibrate_and_write(args: argparse.Namespace, image: Any, file_axes: Any) -> tuple:
    """Run the calibration and write the denoised image atomically (zarr, TIFF or npy)."""
    import numpy as np

    from ..core import io, outputs
    from ..core.calibration import calibrate
    from ..core.config import CalibrateConfig
    from ..core.events import CalibrationStep, run_to_end

    out_path = outputs.prepare_parent(args.out)
    config = CalibrateConfig(
        denoiser=args.denoiser, values=args.values, axes=args.axes or file_axes,
        crop=args.crop or None, device=args.device,
    )
    if args.j_invariant is not None:
        config.j_invariant_output = args.j_invariant

    def show(event: Any) -> None:
        if isinstance(event, CalibrationStep) and not args.quiet:
            print(f"[{event.index + 1}/{event.total}] {event.denoiser} "
                  f"{event.parameter}={event.value:.4g}: loss {event.loss:.6g}", flush=True)

    zarr_out = io.is_zarr_path(out_path)
    target, tmp = None, None
    if zarr_out:
        import zarr

        tmp = out_path.with_name(f".{out_path.name}.part-{uuid.uuid4().hex[:8]}")
        shape = tuple(int(s) for s in image.shape)
        chunks = tuple([1] * (len(shape) - 2) + [min(shape[-2], 1024), min(shape[-1], 1024)])
        target = zarr.create_array(str(tmp), shape=shape, dtype="float32", chunks=chunks)
    try:
        result = run_to_end(calibrate(image, config, axes=config.axes, out=target), show)
        report = result.to_report()
        report["input"] = str(args.input)
        report["output"] = str(out_path)
        if zarr_out:
            target.attrs[io.DOC_KEY] = {"calibration": report}
            if out_path.exists():
                shutil.rmtree(out_path) if out_path.is_dir() else out_path.unlink()
            os.replace(tmp, out_path)
        elif out_path.suffix.lower() == ".npy":
            _save_npy(out_path, np.asarray(result.image, dtype=np.float32))
        else:
            io.write_tiff_atomic(out_path, np.asarray(result.image, dtype=np.float32),
                                 axes=result.axes, document={"calibration": report},
                                 overwrite=args.overwrite)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result, report


def _save_npy(path: Path, array: Any) -> None:
    """``numpy.save`` to a temporary sibling, renamed into place."""
    import numpy as np

    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
