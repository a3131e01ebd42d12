"""3D prediction speed with the default border against a full-context border (issue #3).

The default 3D U-Net (``predict_throughput.default_bundle``: depth 2, 32 filters) predicts a
``--depth x --size x --size`` volume with ``predict_array``, once with the default border
(``inference.default_border``) and once reflecting the full context at every edge (what the
engine did before), alternating in one process, best of ``--repeats``. Reports voxel/s,
the tile plan and how many voxels the network computes per output voxel. Usage::

    python benchmarks/predict_border_speed.py --depth 16 --size 256 --repeats 2
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from napari_selfdenoise.core import inference
from napari_selfdenoise.core.config import PredictConfig
from predict_roofline import plan_of
from predict_throughput import default_bundle, noisy_stack
from machine import engine_precision, print_header  # noqa: E402  (benchmarks/ is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print_header(engine_precision(args.device), args.device)
    bundle = default_bundle(3)
    shape = (args.depth, args.size, args.size)
    data = noisy_stack(shape)
    context = 32
    configs = {"default border": PredictConfig(device=args.device),
               "full context": PredictConfig(device=args.device, border=(context,) * 3)}
    best = {k: math.inf for k in configs}
    outs = {}
    for _ in range(args.repeats):
        for name, config in configs.items():
            t0 = time.perf_counter()
            outs[name] = inference.predict_array(bundle, data, "ZYX",
                                                 **config.model_dump(exclude_unset=True))
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"3D U-Net on {' x '.join(map(str, shape))}, {args.device}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    for name, config in configs.items():
        plan = plan_of(bundle, shape, torch.device(args.device), config)
        computed = plan.n_tiles * math.prod(plan.tile_shape) / math.prod(shape)
        print(f"  {name:15s} border {[a.border for a in plan.axes]}: {plan.n_tiles} tiles of "
              f"{' x '.join(map(str, plan.tile_shape))}, {computed:.2f} computed voxels per "
              f"output voxel, {best[name]:.1f} s, {math.prod(shape) / best[name] / 1e3:.1f} "
              f"kvoxel/s")
    print(f"  speed-up {best['full context'] / best['default border']:.2f}x")


if __name__ == "__main__":
    main()
