"""Forward throughput of the default 2D U-Net alone (no tiling, no I/O), per tile size.

The ceiling for tiled inference on this machine: BN folded, channels_last, fp32,
``torch.inference_mode``, best of 3 after one warm-up. Also prints the practical fp32 peak
(a 2048 x 2048 matrix product), the roofline that sections 1 and 3 of docs/benchmarks.md
compare against.

    python benchmarks/network_forward.py [--threads 2] [--precision bf16] [--cpu-time] [--profile]
"""

from __future__ import annotations

import argparse
import time

import torch

from napari_selfdenoise.core.config import NetworkConfig
from napari_selfdenoise.core.inference import flops_per_voxel, fold_batch_norm
from napari_selfdenoise.core.models import build_network
from machine import (  # noqa: E402  (benchmarks/ is on sys.path)
    add_clock_options, apply_clock_options, engine_precision, print_header,
)

TILES = [(128, 16), (256, 4), (384, 2), (512, 1), (768, 1), (1104, 1)]


CLOCK = time.perf_counter


def best_of(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = CLOCK()
        fn()
        times.append(CLOCK() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clock_options(parser, "times", threads=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="matmul dtype and autocast of the network")
    parser.add_argument("--profile", action="store_true",
                        help="also print a torch.profiler table of the largest tile")
    args = parser.parse_args()
    global CLOCK
    CLOCK = apply_clock_options(args)
    print_header(engine_precision(precision=args.precision))
    bf16 = args.precision == "bf16"
    a = torch.randn(2048, 2048, dtype=torch.bfloat16 if bf16 else torch.float32)
    peak = 2 * 2048**3 / best_of(lambda: a @ a) / 1e9
    print(f"torch {torch.__version__}, {args.threads} threads; {args.precision} matmul 2048^2: "
          f"{peak:.0f} GFLOP/s")
    net = build_network(NetworkConfig(), 2, 1, "n2v").eval()
    flops = flops_per_voxel(net, 2, 1)
    net = fold_batch_norm(net).to(memory_format=torch.channels_last)
    for side, batch in TILES:
        x = torch.randn(batch, 1, side, side).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            dt = best_of(lambda: net(x))
        rate = batch * side * side * flops / dt / 1e9
        print(f"tile {side} x {side}, batch {batch}: {rate:.0f} GFLOP/s "
              f"({rate / peak:.0%} of the matmul peak)")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode(), \
                torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            net(x)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
