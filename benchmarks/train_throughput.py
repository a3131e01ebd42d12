"""Training throughput: our ``train()`` against a plain fp32 PyTorch loop, same run.

Both train the same network (U-Net depth 2, 32 base filters, batch norm) with N2V on
64 x 64 patches, batch 16, from a 512 x 512 synthetic phantom. The plain loop is what a
straightforward implementation does: numpy patch extraction and N2V masking on the host,
contiguous (NCHW) tensors, fp32. The two alternate in rounds so machine noise hits both.

``--quality`` instead (a) applies one trained Noise2Self model to a 128 x 128 phantom in
each memory format / precision (PSNR and largest change), and (b) trains the same seeded
run with channels_last on / off and fp32 / bf16 autocast and prints each PSNR.

Usage::

    python benchmarks/train_throughput.py [--steps 30] [--rounds 3] [--threads N] [--device cuda]
    python benchmarks/train_throughput.py --cpu-time   # one thread, CPU time: shared machines
    python benchmarks/train_throughput.py --quality [--threads N]
    python benchmarks/train_throughput.py --profile {channels_last,contiguous} [--threads N] \
        [--bf16]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from napari_selfdenoise.core.config import NetworkConfig
from napari_selfdenoise.core.events import TrainStep
from napari_selfdenoise.core.models import build_network
from napari_selfdenoise.core.samples import phantom_2d
from napari_selfdenoise.core.training import default_config, train
from machine import (  # noqa: E402  (benchmarks/ is on sys.path)
    add_clock_options, apply_clock_options, engine_precision, print_header,
)

PATCH, BATCH = 64, 16
#: the clock rates are measured with: wall time, or this process's CPU time (``--cpu-time``,
#: one thread: what an idle core gives, robust to other load on a shared machine)
CLOCK = time.perf_counter


def naive_n2v_batch(img: np.ndarray, rng: np.random.Generator, fraction: float = 0.02):
    """Host-side numpy patches + N2V masking (random neighbour in a 5x5 window)."""
    patches = np.empty((BATCH, 1, PATCH, PATCH), np.float32)
    for b in range(BATCH):
        y, x = rng.integers(0, img.shape[0] - PATCH + 1), rng.integers(0, img.shape[1] - PATCH + 1)
        p = img[y : y + PATCH, x : x + PATCH]
        if rng.random() < 0.5:
            p = p[::-1]
        if rng.random() < 0.5:
            p = p[:, ::-1]
        patches[b, 0] = np.rot90(p, rng.integers(4))
    masked = patches.copy()
    mask = np.zeros_like(patches)
    n = int(PATCH * PATCH * fraction)
    for b in range(BATCH):
        ys, xs = rng.integers(0, PATCH, n), rng.integers(0, PATCH, n)
        for yy, xx in zip(ys, xs):
            dy, dx = 0, 0
            while dy == 0 and dx == 0:
                dy, dx = rng.integers(-2, 3, 2)
            sy, sx = np.clip(yy + dy, 0, PATCH - 1), np.clip(xx + dx, 0, PATCH - 1)
            masked[b, 0, yy, xx] = patches[b, 0, sy, sx]
            mask[b, 0, yy, xx] = 1.0
    return patches, masked, mask


def run_naive(img: np.ndarray, steps: int, seed: int = 0, *, device: str = "cpu",
              bf16: bool = False, channels_last: bool = False) -> float:
    """Patches per second of the plain loop (after 3 warm-up steps).

    ``bf16=True, channels_last=True`` is the plain loop with the two switches a PyTorch
    user would flip for speed: the practical ceiling of any engine on this network.
    """
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = build_network(NetworkConfig(depth=2, base_filters=32, residual=False), 2, 1).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    t = None
    for step in range(steps + 3):
        if step == 3:
            _sync(dev)
            t = CLOCK()
        x, xm, m = (torch.from_numpy(a).to(dev) for a in naive_n2v_batch(img, rng))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(xm.contiguous(memory_format=fmt)).float()
        loss = ((out - x) ** 2 * m).sum() / m.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(dev)
    return steps * BATCH / (CLOCK() - t)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run_ours(img: np.ndarray, steps: int, **settings) -> float:
    """Patches per second of ``train()``, timed between its own TrainStep events (the first
    window dropped as warm-up; validation disabled so only training steps are timed)."""
    cfg = default_config(
        "n2v", steps=steps + 5, batch_size=BATCH, patch_size=(PATCH, PATCH), log_every=5,
        val_fraction=0.0, network={"depth": 2, "base_filters": 32}, **settings,
    )
    stamps = [(CLOCK(), e.step) for e in train(img, cfg) if isinstance(e, TrainStep)]
    (t0, s0), (t1, s1) = stamps[0], stamps[-1]
    return (s1 - s0) * BATCH / (t1 - t0)


def quality_effect(steps: int = 100) -> None:
    """PSNR of the same seeded run under each memory format / precision."""
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.models import apply_padded
    from napari_selfdenoise.core.samples import psnr

    ph = phantom_2d((128, 128), seed=4)
    print(f"noisy: {psnr(ph.clean, ph.noisy):.2f} dB")
    for channels_last, precision in [(True, "fp32"), (False, "fp32"), (True, "bf16")]:
        cfg = default_config("n2s", steps=steps, batch_size=8, patch_size=(32, 32), seed=0,
                             channels_last=channels_last, precision=precision,
                             network={"base_filters": 16})
        t = time.perf_counter()
        bundle = run_to_end(train(ph.noisy, cfg))
        net = bundle.build_model()
        x = torch.from_numpy(bundle.normalize(ph.noisy[None, None]))
        with torch.no_grad():
            out = bundle.denormalize(apply_padded(net, x).numpy())[0, 0]
        print(f"channels_last={channels_last!s:5s} precision={precision}: "
              f"{psnr(ph.clean, out):.2f} dB ({time.perf_counter() - t:.0f} s)", flush=True)


def inference_effect(steps: int = 100) -> None:
    """One trained model applied in each memory format / precision: PSNR and max change."""
    from napari_selfdenoise.core.device import autocast
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.models import apply_padded
    from napari_selfdenoise.core.samples import psnr

    ph = phantom_2d((128, 128), seed=4)
    cfg = default_config("n2s", steps=steps, batch_size=8, patch_size=(32, 32), seed=0,
                         network={"base_filters": 16})
    bundle = run_to_end(train(ph.noisy, cfg))
    net = bundle.build_model()
    x = torch.from_numpy(bundle.normalize(ph.noisy[None, None]))
    ref = None
    for channels_last, dtype in [(False, None), (True, None), (True, torch.bfloat16)]:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        with torch.no_grad(), autocast(torch.device("cpu"), dtype):
            out = apply_padded(net.to(memory_format=fmt), x.contiguous(memory_format=fmt))
        out = bundle.denormalize(out.float().numpy())[0, 0]
        ref = out if ref is None else ref
        print(f"apply: channels_last={channels_last!s:5s} precision={dtype or 'fp32'}: "
              f"{psnr(ph.clean, out):.3f} dB, max |change| {np.abs(out - ref).max():.2e}")


def profile_step(channels_last: bool = True, steps: int = 5, bf16: bool = False) -> None:
    """torch.profiler table of the network's training step alone (same network / batch),
    in fp32 or under bf16 autocast."""
    from torch.profiler import ProfilerActivity, profile

    net = build_network(NetworkConfig(depth=2, base_filters=32, residual=False), 2, 1)
    x = torch.randn(BATCH, 1, PATCH, PATCH)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters())

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = (net(x).float() ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    add_clock_options(ap, "rates")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (all variants run there)")
    ap.add_argument("--json", action="store_true", help="print the medians as one JSON line")
    ap.add_argument("--quality", action="store_true", help="PSNR per memory format / precision")
    ap.add_argument("--profile", choices=["channels_last", "contiguous"], default=None,
                    help="profile the network's training step alone")
    ap.add_argument("--bf16", action="store_true", help="with --profile: under bf16 autocast")
    args = ap.parse_args()
    global CLOCK
    CLOCK = apply_clock_options(args)
    print_header(engine_precision())
    if args.profile:
        profile_step(args.profile == "channels_last", bf16=args.bf16)
        return
    if args.quality:
        inference_effect()
        quality_effect()
        return
    img = phantom_2d((512, 512), seed=0).noisy
    img = (img - img.mean()) / img.std()
    dev = args.device
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, "
          f"train() precision {engine_precision(dev)}, clock "
          f"{'CPU time' if args.cpu_time else 'wall time'}")
    variants = {
        "plain fp32 loop (numpy patches, NCHW)": lambda: run_naive(img, args.steps, device=dev),
        "plain loop, bf16 autocast + channels_last": lambda: run_naive(
            img, args.steps, device=dev, bf16=True, channels_last=True),
        "train() channels_last (default)": lambda: run_ours(img, args.steps, device=dev),
        "train() contiguous": lambda: run_ours(img, args.steps, device=dev,
                                               channels_last=False),
    }
    results: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, fn in variants.items():
            results[name].append(fn())
            print(f"round {r + 1}: {name}: {results[name][-1]:.1f} patches/s", flush=True)
    medians = {name: float(np.median(vals)) for name, vals in results.items()}
    base = medians["plain fp32 loop (numpy patches, NCHW)"]
    ceiling = medians["plain loop, bf16 autocast + channels_last"]
    print("\nmedian patches/s (ratio to the plain fp32 loop; fraction of the plain "
          "bf16 + channels_last loop)")
    for name, val in medians.items():
        print(f"  {name:44s} {val:7.1f}  ({val / base:.2f}x; {val / ceiling:.0%})")
    if args.json:
        print(json.dumps({"device": dev, "precision": engine_precision(dev),
                          "patches_per_s": medians, "all": results}))


if __name__ == "__main__":
    main()
