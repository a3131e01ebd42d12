"""``napari-selfdenoise predict MODEL INPUT --out OUTPUT``.

Denoises INPUT (.tif, .zarr, .npy; opened lazily) with MODEL: a model file written by
training (``.sdmodel``) or an image file that carries a model (saved by the plugin's
writer or by an earlier ``predict``). OUTPUT ending in ``.zarr`` is written chunk by chunk
and is resumable: rerunning an interrupted command continues where it stopped. ``.tif``
gives a BigTIFF (written through a resumable sibling zarr), ``.npy`` a numpy file.
``.ome.zarr`` gives an OME-Zarr multiscale image (NGFF 0.5, or 0.4 with
``--ome-zarr-version 0.4``), resumable, its pyramid built as the chunks are written; an
OME-Zarr INPUT's axes, units, scale, translation and channel names are kept.
``--pixel-shuffle-infer K`` predicts a model trained with pixel shuffle on its K x K
sub-images instead of the factor it was trained with (1: full resolution).
The output carries the model and the provenance of the result. With ``--scheduler`` or
``--workers`` the work runs on a dask.distributed cluster, each worker writing its own
chunks of a ``.zarr`` output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict",
        help="denoise an image or stack of any size with a trained model",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("model", type=Path,
                        help="model file (.sdmodel), a bioimage.io package (.zip) exported by "
                        "napari-selfdenoise, or an image file that carries a model")
    parser.add_argument("input", type=Path, help="image to denoise (.tif, .zarr, .ome.zarr, .npy)")
    parser.add_argument("--out", required=True, type=Path, help="output .zarr, .ome.zarr, .tif or .npy")
    parser.add_argument("--ome-zarr-version", default="0.5", choices=["0.4", "0.5"],
                        help="OME-NGFF version of a .ome.zarr output: 0.5 (zarr v3, default) "
                        "or 0.4 (zarr v2, for readers without zarr v3)")
    parser.add_argument("--axes", default=None, help="axes of the input, e.g. YX, TYX, TZYX")
    parser.add_argument("--tile", type=int, nargs="+", default=None, metavar="N",
                        help="largest tile per spatial dim, context included "
                             "(default: from the memory budget)")
    parser.add_argument("--overlap", type=int, nargs="+", default=None, metavar="N",
                        help="context per side (default and minimum: the receptive field)")
    parser.add_argument("--border", type=int, nargs="+", default=None, metavar="N",
                        help="voxels mirrored beyond the image per spatial dim, at most the "
                             "context (default: half the context, a quarter along an axis "
                             "the model's training patches were shorter than its receptive "
                             "field)")
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per batch")
    parser.add_argument("--memory-mb", type=float, default=None,
                        help="memory budget for one batch (default: from free memory)")
    parser.add_argument("--tta", action="store_true",
                        help="average the 8 flips/rotations in YX (8x slower)")
    parser.add_argument("--j-invariant", action=argparse.BooleanOptionalAction, default=None,
                        help="J-invariant inference (ams: its complementary masks); --no-j-invariant: "
                        "one plain pass (default: the model's method decides)")
    parser.add_argument("--r3", nargs="*", type=float, default=None, metavar="PASSES FRACTION",
                        help="R3 refinement (AP-BSN) for blind-spot and masked models: PASSES "
                        "more passes (8) on the prediction with FRACTION (0.16) of the pixels "
                        "set back to noisy, averaged; '--r3' alone uses the defaults")
    parser.add_argument("--pixel-shuffle-infer", type=int, default=None, metavar="K",
                        help="for a model trained with --pixel-shuffle: predict on its K x K "
                        "pixel-shuffled sub-images (1: full resolution; default: the "
                        "factor it was trained with); an error for other models")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output instead of resuming / refusing")
    add_cluster_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler`` / ``--workers``: distributed prediction on dask.distributed."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on the dask.distributed cluster whose scheduler is at "
                       "ADDRESS (e.g. tcp://host:8786); the input must be a file and --out a "
                       ".zarr store every worker can reach (needs the 'distributed' extra)")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run on N local worker processes (a dask LocalCluster started "
                       "for this run; one per GPU on a GPU machine); --out must be a .zarr")


def load_model(path: Path) -> Any:
    """A :class:`ModelBundle` from a model file or from an image file that carries one."""
    from ..core import io
    from ..core.bundle import ModelBundle, ModelFileError

    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist")
    if io.is_zarr_path(path) or io.is_tiff_path(path):
        doc = io.read_document(path)
        if not doc or not isinstance(doc.get("model"), dict):
            why = (doc or {}).get("model_omitted") or (doc or {}).get("error") or \
                "it carries no napari-selfdenoise model"
            raise ModelFileError(f"cannot use {path} as a model: {why}")
        return ModelBundle.from_metadata(doc["model"])
    return ModelBundle.load(path)


class ProgressBar:
    """A one-line text progress bar on stderr (tiles, voxels/s, time left)."""

    def __init__(self, enabled: bool, width: int = 30) -> None:
        self.enabled = enabled and sys.stderr is not None
        self.width = width
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        from ..core.events import Message, TileDone

        if isinstance(event, Message):
            self._newline()
            print(f"{event.level}: {event.text}", file=sys.stderr, flush=True)
            return
        if not (self.enabled and isinstance(event, TileDone)):
            return
        now = time.monotonic()
        last = event.tiles_done >= event.tiles_total
        if not last and now - self._last < 0.2:
            return
        self._last = now
        frac = event.tiles_done / max(event.tiles_total, 1)
        fill = int(round(frac * self.width))
        eta = f"{event.eta_s:5.0f}s left" if event.eta_s is not None else "       "
        print(f"\r[{'#' * fill}{'.' * (self.width - fill)}] {event.tiles_done}/"
              f"{event.tiles_total} tiles  {event.voxels_per_s / 1e6:7.2f} Mvox/s  {eta}",
              end="\n" if last else "", file=sys.stderr, flush=True)
        self._printed = not last

    def _newline(self) -> None:
        if getattr(self, "_printed", False):
            print(file=sys.stderr)
            self._printed = False


def _r3(values: Optional[list[float]]) -> dict[str, Any]:
    """``PredictConfig`` fields for ``--r3 [PASSES [FRACTION]]``."""
    if values is None:
        return {}
    if len(values) > 2:
        raise ValueError(f"--r3 takes at most PASSES and FRACTION, got {values}")
    out: dict[str, Any] = {"r3": True}
    if values:
        if values[0] != int(values[0]):
            raise ValueError(f"--r3 PASSES must be a whole number, got {values[0]}")
        out["r3_passes"] = int(values[0])
    if len(values) == 2:
        out["r3_fraction"] = values[1]
    return out


def run(args: argparse.Namespace) -> int:
    """Load the model, denoise the input tile by tile, write the output."""
    from ..core import io
    from ..core.config import PredictConfig
    from ..core.inference import inference_bundle, predict
    from ..core.provenance import make_provenance
    from ..core.events import run_to_end

    from ..core import outputs

    outputs.check_not_input(args.out, [args.model, args.input], "--out")
    bundle = load_model(args.model)
    config = PredictConfig(
        tile_shape=tuple(args.tile) if args.tile else None,
        overlap=tuple(args.overlap) if args.overlap else None,
        border=tuple(args.border) if args.border is not None else None,
        batch_size=args.batch_size, memory_budget_mb=args.memory_mb, tta=args.tta,
        j_invariant=args.j_invariant, precision=args.precision, device=args.device,
        overwrite=args.overwrite, scheduler=args.scheduler, workers=args.workers,
        ome_zarr_version=args.ome_zarr_version, pixel_shuffle_infer=args.pixel_shuffle_infer,
        **_r3(args.r3),
    )
    bundle = inference_bundle(bundle, config, source=f"model {args.model}")
    settings = dict(config.model_dump(mode="json"), model=str(args.model))
    prov = make_provenance("predict", args.input.name, settings, bundle=bundle)
    # the path, not an opened array: predict records the input's identity for resuming
    gen = predict(bundle, args.input, axes=args.axes, config=config, out=args.out,
                  provenance=prov)
    t0 = time.perf_counter()
    try:
        out = run_to_end(gen, ProgressBar(not args.quiet))
    except KeyboardInterrupt:
        gen.close()  # records the finished chunks
        resumable = io.is_zarr_path(args.out) or io.is_tiff_path(args.out)
        print("\ninterrupted" + ("; run the same command again to resume" if resumable else ""),
              file=sys.stderr)
        return 130
    print(f"{args.input} -> {out} ({time.perf_counter() - t0:.1f} s)")
    return 0
