"""Peak memory of tiled inference from a large uint16 zarr stack into a zarr store.

Writes a synthetic ``T x 4096 x 8192`` uint16 zarr (chunks ``1 x 1024 x 1024``, uncompressed,
a cheap pattern plus fixed noise, written chunk by chunk) for ``T = 64`` (4.3 GB) and ``T = 32``
(2.1 GB), then runs ``predict`` on each in a fresh subprocess (default settings, output
``.zarr``) and reports the subprocess' peak RSS (``os.wait4`` rusage). A *tiny* network
(DnCNN, 3 layers, 4 filters, no batch norm) keeps the run to minutes on a CPU; the tiling,
buffering and I/O path is the same as for any model (the default U-Net adds its measured
~1 kB/voxel of activations per tile, which the memory budget accounts for).
Everything is written under ``--dir`` and deleted afterwards. Usage::

    python benchmarks/predict_memory.py --dir /tmp/sd_mem --planes 64 32
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import engine_precision, print_header  # noqa: E402  (benchmarks/ is on sys.path)

SHAPE_YX = (4096, 8192)
CHUNK = (1, 1024, 1024)


def tiny_bundle():
    import torch

    from napari_selfdenoise.core.bundle import ModelBundle
    from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
    from napari_selfdenoise.core.models import build_network

    torch.manual_seed(0)
    cfg = TrainConfig(network=NetworkConfig(arch="dncnn", dncnn_layers=3, base_filters=4,
                                            batch_norm=False))
    net = build_network(cfg.network, 2, 1, cfg.method)
    return ModelBundle(config=cfg, axes="TYX", spatial_dims=2, n_channels=1,
                       norm_offset=[300.0], norm_scale=[500.0], state_dict=net.state_dict())


def make_input(path: Path, planes: int) -> None:
    """Write the synthetic stack chunk by chunk (uncompressed; one chunk in memory)."""
    import zarr

    shape = (planes,) + SHAPE_YX
    arr = zarr.create_array(str(path), shape=shape, dtype="uint16", chunks=CHUNK,
                            compressors=None)
    noise = np.random.default_rng(0).poisson(50, CHUNK[1:]).astype(np.uint16)
    yy, xx = np.mgrid[0 : CHUNK[1], 0 : CHUNK[2]]
    base = (yy + 3 * xx).astype(np.uint16)
    for t in range(planes):
        for i in range(SHAPE_YX[0] // CHUNK[1]):
            for j in range(SHAPE_YX[1] // CHUNK[2]):
                shift = np.uint16((i * 7 + j * 11 + t * 13) % 512)
                chunk = ((base + shift) & np.uint16(511)) + np.uint16(100) + noise
                arr[t, i * CHUNK[1] : (i + 1) * CHUNK[1], j * CHUNK[2] : (j + 1) * CHUNK[2]] = chunk


def child(inp: str, out: str) -> None:
    import zarr

    from napari_selfdenoise.core.events import TileDone
    from napari_selfdenoise.core.inference import predict_array

    data = zarr.open_array(inp, mode="r")
    last = {}

    def on_event(ev):
        if isinstance(ev, TileDone):
            last["ev"] = ev

    t0 = time.perf_counter()
    predict_array(tiny_bundle(), data, axes="TYX", out=out, on_event=on_event)
    wall = time.perf_counter() - t0
    print(json.dumps({"voxels": int(np.prod(data.shape)), "wall_s": wall,
                      "tiles": last["ev"].tiles_total}))


def measure(inp: Path, out: Path) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(inp), str(out)],
                            stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    stdout = proc.stdout.read()
    proc.stdout.close()
    if status != 0:
        raise RuntimeError(f"prediction subprocess failed ({status}): {stdout}")
    stats = json.loads(stdout.strip().splitlines()[-1])
    stats["peak_rss_mb"] = usage.ru_maxrss / 1024  # kB on Linux
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sd_predict_memory"))
    ap.add_argument("--planes", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--child", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="do not delete the files")
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    print_header(engine_precision())
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        for planes in args.planes:
            inp, out = args.dir / f"in_{planes}.zarr", args.dir / f"out_{planes}.zarr"
            t0 = time.perf_counter()
            make_input(inp, planes)
            gb = planes * SHAPE_YX[0] * SHAPE_YX[1] * 2 / 1e9
            print(f"input {planes} x {SHAPE_YX[0]} x {SHAPE_YX[1]} uint16 = {gb:.2f} GB "
                  f"(written in {time.perf_counter() - t0:.0f} s)", flush=True)
            stats = measure(inp, out)
            print(f"  predict -> zarr: peak RSS {stats['peak_rss_mb']:.0f} MB, "
                  f"{stats['wall_s']:.0f} s, {stats['voxels'] / stats['wall_s'] / 1e6:.1f} "
                  f"Mvoxel/s, {stats['tiles']} tiles", flush=True)
            if not args.keep:
                shutil.rmtree(inp)
                shutil.rmtree(out)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
