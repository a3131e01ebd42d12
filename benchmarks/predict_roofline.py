"""Inference voxels/s and the fraction of the compute roofline reached (issue #3, benchmark 3).

For the default U-Net (depth 2, 32 filters, batch norm; random weights: speed does not
depend on training) as a 2D model over the planes of a ``T x 2048 x 2048`` stack and as a
3D model over a ``Z x 512 x 512`` volume, on ``--device`` (default: CUDA when present):

- ``peak``: the device's practical dense-matmul rate at the precision the engine uses there
  (``core.device.resolve_precision``: bf16 on CUDA and AMX CPUs, else fp32), a large
  ``torch.mm`` timed after warm-up: the compute roofline;
- ``network``: the network alone on a batch of device-resident tiles (BN folded,
  channels_last, ``inference_mode``, the engine's precision): what a perfect pipeline reaches;
- ``predict``: ``core.inference.predict_array`` end to end from a host uint16 array to a host
  float32 array (reading, copies, tiling, blending included).

FLOPs per voxel come from ``core.inference.flops_per_voxel`` (2 per multiply-add, convs only);
each rate is reported in voxels/s, GFLOP/s and as a fraction of ``peak``. Usage::

    python benchmarks/predict_roofline.py                         # CUDA when present
    python benchmarks/predict_roofline.py --device cpu --planes 2 --depth-3d 16 --size-3d 256
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Callable

import torch

from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.device import autocast, resolve_precision, select_device
from napari_selfdenoise.core.inference import flops_per_voxel, fold_batch_norm, predict_array
from predict_throughput import default_bundle, noisy_stack  # same network and data
from machine import engine_precision, print_header  # noqa: E402  (benchmarks/ is on sys.path)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    """Practical dense matmul FLOP/s of ``device`` in ``dtype`` (n x n x n, 2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    inner = 10 if device.type == "cuda" else 1

    def run() -> None:
        for _ in range(inner):
            torch.mm(a, b)

    return 2.0 * n**3 * inner / timed(run, device, repeats)


def network_rate(bundle: ModelBundle, device: torch.device, dtype, tile: tuple[int, ...],
                 batch: int, repeats: int) -> float:
    """Voxels/s of the network alone on device-resident tiles, as the engine runs it."""
    net = fold_batch_norm(bundle.build_model()).to(device).eval()
    fmt = torch.channels_last if len(tile) == 2 else torch.channels_last_3d
    net = net.to(memory_format=fmt)
    x = torch.randn((batch, 1) + tile, device=device).contiguous(memory_format=fmt)

    def run() -> None:
        with torch.inference_mode(), autocast(device, dtype):
            net(x)

    return x.numel() / timed(run, device, repeats)


def measure(spatial_dims: int, data_shape: tuple[int, ...], tile: tuple[int, ...], batch: int,
            device: torch.device, dtype, peak: float, repeats: int) -> dict:
    bundle = default_bundle(spatial_dims)
    fpv = flops_per_voxel(bundle.build_model(), spatial_dims, 1)
    data = noisy_stack(data_shape)
    net_vox = network_rate(bundle, device, dtype, tile, batch, repeats)
    dev = str(device)
    pred_s = timed(lambda: predict_array(bundle, data, bundle.axes, device=dev), device, repeats)
    pred_vox = data.size / pred_s
    plan = plan_of(bundle, data.shape, device)
    return {
        "model": f"{spatial_dims}D U-Net", "data_shape": list(data_shape),
        "flops_per_voxel": fpv, "network_tile": list(tile), "network_batch": batch,
        "network_vox_s": net_vox, "network_gflop_s": net_vox * fpv / 1e9,
        "network_fraction_of_peak": net_vox * fpv / peak,
        "predict_s": pred_s, "predict_vox_s": pred_vox, "predict_gflop_s": pred_vox * fpv / 1e9,
        "predict_fraction_of_peak": pred_vox * fpv / peak,
        "predict_tiles": plan.n_tiles, "predict_tile": list(plan.tile_shape),
        "computed_per_output_voxel": plan.n_tiles * math.prod(plan.tile_shape)
        / math.prod(plan.shape),
    }


def plan_of(bundle: ModelBundle, shape: tuple[int, ...], device: torch.device,
            config: PredictConfig | None = None):
    """The tile plan ``predict_array`` makes for one plane / volume of ``shape``."""
    from napari_selfdenoise.core.inference import (
        _plan, bytes_per_voxel, map_axes, memory_budget,
    )

    net = fold_batch_norm(bundle.build_model())
    dims = bundle.spatial_dims
    config = config or PredictConfig(device=str(device))
    layout = map_axes(bundle, bundle.axes, tuple(shape))
    return _plan(layout, net, bundle, config, bytes_per_voxel(net, dims, 1, False),
                 memory_budget(device, config), device.type, False, 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cuda', 'cpu'")
    ap.add_argument("--planes", type=int, default=32, help="2D: T planes of --size^2")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--depth-3d", type=int, default=64, help="3D: Z of the volume")
    ap.add_argument("--size-3d", type=int, default=512, help="3D: Y = X of the volume")
    ap.add_argument("--matmul", type=int, default=None, help="matmul side (default by device)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()

    device = select_device(args.device)
    dtype = resolve_precision(device, "auto")
    n = args.matmul or (8192 if device.type == "cuda" else 2048)
    peak = matmul_peak(device, dtype or torch.float32, n, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    precision = str(dtype).replace("torch.", "") if dtype else "fp32"
    print_header(engine_precision(device), device)
    big = device.type == "cuda"
    if not args.json:
        print(f"{name}, {precision}, practical peak {peak / 1e9:.0f} GFLOP/s ({n}^3 matmul)",
              flush=True)
    cases = [
        (2, (args.planes, args.size, args.size), (512, 512) if big else (256, 256),
         16 if big else 2),
        (3, (args.depth_3d, args.size_3d, args.size_3d), (64, 128, 128) if big else (16, 64, 64),
         8 if big else 1),
    ]
    rows = []
    for dims, shape, tile, batch in cases:
        r = measure(dims, shape, tile, batch, device, dtype, peak, args.repeats)
        rows.append(r)
        if not args.json:
            print(f"{r['model']} on {' x '.join(map(str, r['data_shape']))} "
                  f"({r['flops_per_voxel']:,.0f} FLOP/voxel)")
            for k in ("network", "predict"):
                print(f"  {k:8s} {r[k + '_vox_s'] / 1e6:9.2f} Mvoxel/s  "
                      f"{r[k + '_gflop_s']:9.1f} GFLOP/s  "
                      f"{100 * r[k + '_fraction_of_peak']:5.1f} % of peak", flush=True)
            print(f"  predict plan: {r['predict_tiles']} tiles of "
                  f"{' x '.join(map(str, r['predict_tile']))}, "
                  f"{r['computed_per_output_voxel']:.2f} computed voxels per output voxel "
                  f"(GFLOP/s above count output voxels)", flush=True)
    if args.json:
        print(json.dumps({"device": name, "precision": precision,
                          "threads": torch.get_num_threads(), "peak_gflop_s": peak / 1e9,
                          "matmul_n": n, "rows": rows}))


if __name__ == "__main__":
    main()
