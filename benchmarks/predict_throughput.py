"""Tiled-inference throughput on CPU against a plain fp32 PyTorch whole-plane loop.

The default N2V network (U-Net, depth 2, 32 filters, batch norm; random weights and
batch-norm statistics: speed does not depend on training) is applied as a 2D model over
the planes of a synthetic noisy ``T x 2048 x 2048`` uint16 stack (axes ``TYX``, the
default reading of a 3D stack), by

- ``plain``: for each plane, normalise, ``net(x)`` in fp32 (contiguous memory format,
  ``torch.no_grad``, the network as built), denormalise: the whole plane as one tile;
- ``predict``: ``core.inference.predict_array`` with default settings (aligned tiles with
  receptive-field context, blending, batch norm folded, channels_last, prefetch and
  write-behind threads, ``torch.inference_mode``).

Both run in the same process, alternating, ``--repeats`` times; the best time of each is
reported. Usage::

    python benchmarks/predict_throughput.py --planes 4 --repeats 2
    python benchmarks/predict_throughput.py --planes 2 --repeats 2 --cpu-time  # shared machine
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from machine import (  # noqa: E402  (benchmarks/ is on sys.path)
    add_clock_options, apply_clock_options, engine_precision, print_header,
)


def default_bundle(spatial_dims: int = 2):
    """The default N2V network (``TrainConfig().network``: 32 filters) with plausible
    random batch-norm statistics, as a 2D model over ``TYX`` or a 3D one over ``ZYX``."""
    from napari_selfdenoise.core.bundle import ModelBundle
    from napari_selfdenoise.core.config import TrainConfig
    from napari_selfdenoise.core.models import build_network

    torch.manual_seed(0)
    cfg = TrainConfig()
    net = build_network(cfg.network, spatial_dims, 1, cfg.method)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    axes = "TYX" if spatial_dims == 2 else "ZYX"
    return ModelBundle(config=cfg, axes=axes, spatial_dims=spatial_dims, n_channels=1,
                       norm_offset=[100.0], norm_scale=[400.0], state_dict=net.state_dict())


def noisy_stack(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A synthetic uint16 Poisson stack of ``shape`` (the same pattern in every plane)."""
    rng = np.random.default_rng(seed)
    y, x = np.indices(shape[-2:])
    clean = 200 + 150 * (np.sin(x / 37.0) * np.cos(y / 53.0) > 0.3)
    return rng.poisson(np.broadcast_to(clean, shape)).astype(np.uint16)


def plain_loop(bundle, stack: np.ndarray) -> np.ndarray:
    from napari_selfdenoise.core.models import apply_padded

    net = bundle.build_model()
    out = np.empty(stack.shape, np.float32)
    with torch.no_grad():
        for t, plane in enumerate(stack):
            x = torch.from_numpy(bundle.normalize(plane[None, None]))
            out[t] = bundle.denormalize(apply_padded(net, x).numpy())[0, 0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--planes", type=int, default=4)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    add_clock_options(ap, "times (all the process's threads)")
    args = ap.parse_args()
    clock = apply_clock_options(args)
    print_header(engine_precision())

    from napari_selfdenoise.core.inference import flops_per_voxel, predict_array

    bundle = default_bundle()
    stack = noisy_stack((args.planes, args.size, args.size))
    voxels = stack.size
    fpv = flops_per_voxel(bundle.build_model(), 2, 1)
    times: dict[str, list[float]] = {"plain": [], "predict": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, fn in (("plain", plain_loop), ("predict", predict_array)):
            t0 = clock()
            outputs[name] = fn(bundle, stack)
            times[name].append(clock() - t0)
    best = {k: min(v) for k, v in times.items()}
    border = 32  # the plain loop zero-pads at the plane border, predict reflects
    inner = (slice(None), slice(border, -border), slice(border, -border))
    diff = float(np.abs(outputs["plain"][inner] - outputs["predict"][inner]).max())
    result = {
        "planes": args.planes, "size": args.size, "threads": torch.get_num_threads(),
        "clock": "cpu time" if args.cpu_time else "wall time",
        "flops_per_voxel": fpv,
        "plain_s": best["plain"], "predict_s": best["predict"],
        "plain_vox_s": voxels / best["plain"], "predict_vox_s": voxels / best["predict"],
        "speedup": best["plain"] / best["predict"],
        "predict_gflop_s": voxels * fpv / best["predict"] / 1e9,
        "max_abs_diff_inner": diff, "all_times": times,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.planes} x {args.size} x {args.size} uint16 (TYX, 2D model over planes), "
          f"{torch.get_num_threads()} threads, {fpv / 1e3:.1f} kFLOP/voxel, "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    for k in ("plain", "predict"):
        print(f"  {k:8s} {best[k]:8.2f} s  {voxels / best[k] / 1e6:7.3f} Mvoxel/s  "
              f"({voxels * fpv / best[k] / 1e9:.1f} GFLOP/s)")
    print(f"  speed-up predict / plain: {result['speedup']:.2f}x; "
          f"max |plain - predict| away from the border: {diff:.3g}")


if __name__ == "__main__":
    main()
