"""The cost of an OME-Zarr output's pyramid over a plain zarr output (issue #15).

The same prediction (the default N2V network as a 2D model over a synthetic noisy
``T x SIZE x SIZE`` uint16 stack, as in ``predict_throughput.py``) is written, alternating,
``--repeats`` times each, to

- ``zarr``: a plain ``.zarr`` output (chunked like the tiles, resumable);
- ``ome``: a ``.ome.zarr`` output (NGFF 0.5 by default: level 0 chunked like the tiles,
  plus the 2x-mean pyramid built chunk by chunk as the level-0 chunks finish, and the
  multiscales / omero metadata).

The best time of each and their ratio are reported, with the store sizes and the number
of pyramid chunks computed; the levels are checked against level 0. The pyramid alone is
also timed (``pyramid_s``: the same chunk-wise build, from the finished level 0 into a
fresh store), a figure less exposed to the noise of two whole predictions. Usage::

    python benchmarks/ome_zarr_pyramid.py --planes 4 --size 1024 --repeats 2 --cpu-time
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from machine import (  # noqa: E402  (benchmarks/ is on sys.path)
    add_clock_options, apply_clock_options, engine_precision, print_header,
)
from predict_throughput import default_bundle, noisy_stack  # noqa: E402


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _pyramid_alone(levels: list, path: Path, version: str, clock) -> float:
    """Time of building the pyramid chunk by chunk from a finished level 0 (read from its
    store, as the sink does) into a fresh store."""
    from napari_selfdenoise.core import ome_zarr
    from napari_selfdenoise.core.ome_zarr_store import Pyramid, create_store

    shape, chunks = tuple(levels[0].shape), tuple(levels[0].chunks)
    plan = ome_zarr.plan_levels(shape, "TYX", chunks)
    group = create_store(path, version, "TYX", plan, chunks, ome_zarr.ImageMetadata(), "p")
    arrays = [levels[0]] + [group[str(i)] for i in range(1, len(plan))]
    pyramid = Pyramid(arrays, plan, chunks, [np.zeros(Pyramid.grid(lev.shape, chunks), bool)
                                             for lev in plan[1:]])
    t0 = clock()
    pyramid.update(np.ones(Pyramid.grid(shape, chunks), bool))
    return clock() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--planes", type=int, default=4)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--version", default="0.5", choices=["0.4", "0.5"])
    ap.add_argument("--tile", type=int, default=None, help="tile side (default: automatic)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    add_clock_options(ap, "times (all the process's threads)")
    args = ap.parse_args()
    clock = apply_clock_options(args)
    print_header(engine_precision())

    import zarr

    from napari_selfdenoise.core import ome_zarr
    from napari_selfdenoise.core.inference import predict_array

    bundle = default_bundle()
    stack = noisy_stack((args.planes, args.size, args.size))
    cfg = dict(axes="TYX", overwrite=True, ome_zarr_version=args.version)
    if args.tile:
        cfg["tile_shape"] = (args.tile, args.tile)
    folder = Path(tempfile.mkdtemp(prefix="ome-bench-"))
    times: dict[str, list[float]] = {"zarr": [], "ome": []}
    try:
        for _ in range(args.repeats):
            for name, out in (("zarr", folder / "o.zarr"), ("ome", folder / "o.ome.zarr")):
                t0 = clock()
                predict_array(bundle, stack, out=out, **cfg)
                times[name].append(clock() - t0)
        plain = zarr.open_array(str(folder / "o.zarr"), mode="r")
        group = zarr.open_group(str(folder / "o.ome.zarr"), mode="r")
        levels = [group[k] for k in sorted(group.array_keys(), key=int)]
        same = bool(np.array_equal(plain[...], levels[0][...]))
        low = levels[0][...]
        exact = True
        for lev in levels[1:]:  # each level: the 2x mean of the one above
            low = ome_zarr.downsample_mean(low, (1, 2, 2))
            exact &= bool(np.array_equal(low, lev[...]))
            low = lev[...]
        chunks = sum(int(np.prod([-(-s // c) for s, c in zip(lev.shape, lev.chunks)]))
                     for lev in levels[1:])
        sizes = {"zarr": _size(folder / "o.zarr"), "ome": _size(folder / "o.ome.zarr")}
        pyramid_s = _pyramid_alone(levels, folder / "p.ome.zarr", args.version, clock)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    result = {
        "planes": args.planes, "size": args.size, "version": args.version,
        "threads": torch.get_num_threads(),
        "clock": "cpu time" if args.cpu_time else "wall time",
        "zarr_s": best["zarr"], "ome_s": best["ome"], "ratio": best["ome"] / best["zarr"],
        "pyramid_s": pyramid_s, "pyramid_fraction": pyramid_s / best["zarr"],
        "levels": [list(lev.shape) for lev in levels], "chunks_level0": list(levels[0].chunks),
        "pyramid_chunks": chunks, "level0_equals_zarr": same, "levels_exact": exact,
        "zarr_bytes": sizes["zarr"], "ome_bytes": sizes["ome"], "all_times": times,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.planes} x {args.size} x {args.size} uint16 (TYX, 2D model), NGFF "
          f"{args.version}, {torch.get_num_threads()} threads, "
          f"{'CPU' if args.cpu_time else 'wall'} time, best of {args.repeats}")
    print(f"  zarr      {best['zarr']:8.2f} s  {sizes['zarr'] / 1e6:8.1f} MB")
    print(f"  ome.zarr  {best['ome']:8.2f} s  {sizes['ome'] / 1e6:8.1f} MB  "
          f"({len(levels)} levels, {chunks} pyramid chunks, level-0 chunks "
          f"{tuple(levels[0].chunks)})")
    print(f"  ratio ome.zarr / zarr: {result['ratio']:.3f}; level 0 == zarr output: {same}; "
          f"levels == 2x mean: {exact}")
    print(f"  pyramid alone: {pyramid_s:.3f} s = {100 * result['pyramid_fraction']:.1f} % of "
          "the zarr prediction")


if __name__ == "__main__":
    main()
