"""Where a ``bsn`` training step spends its CPU time (issue #13).

Runs the training path's own pieces (``default_config("bsn")``, the method's network,
channels-last, the resolved autocast precision, the patch sampler, augmentation and
``make_batch``) on one thread and reports, in process CPU time: the phases of a step
(data, forward + loss, backward, optimiser), the parts of the network timed alone
(the four rotated branches as one batch, the 1 x 1 merge, the posterior head) and the
torch profiler's heaviest operators (its times are wall-clock: on a loaded machine read
them as shares only). ``--set`` passes TrainConfig fields as in
``quality_methods.py``::

    python benchmarks/bsn_step_profile.py --steps 20
    python benchmarks/bsn_step_profile.py --steps 20 --set 'network={"base_filters":16}' \
        batch_size=16                                   # the old default
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from napari_selfdenoise.core.device import autocast, resolve_precision
from napari_selfdenoise.core.methods import METHODS
from napari_selfdenoise.core.methods.base import StepContext
from napari_selfdenoise.core.patches import PatchSampler, augment
from napari_selfdenoise.core.training import default_config
from napari_selfdenoise.core.training_loop import to_memory_format
from machine import header  # noqa: E402  (benchmarks/ is on sys.path)


def build(extra: dict):
    cfg = default_config("bsn", seed=0, **extra)
    method = METHODS["bsn"]
    net = method.build_network(cfg.network, 2, 1, cfg.params)
    if cfg.params.noise_model != "none":
        net.set_noise([0.05], [0.1])
    net.to(memory_format=torch.channels_last).train()
    return cfg, method, net


def phases(cfg, method, net, amp, steps: int) -> dict:
    """CPU seconds per step of each phase (mean over ``steps`` after 3 warm-up steps)."""
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.normal(0, 1, (512, 512)).astype(np.float32))
    patch = cfg.patch_size or (64, 64)
    sampler = PatchSampler([img[None, None]], patch, 0)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    cpu = torch.device("cpu")
    ctx = StepContext((-2.0, 2.0), 0.0)
    sums = {"data": 0.0, "forward+loss": 0.0, "backward": 0.0, "optimiser": 0.0}
    for i in range(steps + 3):
        t0 = time.process_time()
        x = to_memory_format(augment(sampler.sample(cfg.batch_size), gen), True)
        batch = method.make_batch(x, cfg, gen, ctx)
        t1 = time.process_time()
        with autocast(cpu, amp):
            loss = method.loss(net, batch, cfg, ctx)
        t2 = time.process_time()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.process_time()
        opt.step()
        t4 = time.process_time()
        if i >= 3:
            for k, v in zip(sums, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                sums[k] += v / steps
    sums["step"] = sum(sums.values())
    return sums


def _time_fwd_bwd(fn, x: torch.Tensor, amp, repeats: int) -> float:
    """Best CPU seconds of ``fn(x)`` forward + backward under ``amp``."""
    cpu = torch.device("cpu")
    best = float("inf")
    for _ in range(repeats):
        x.grad = None
        t = time.process_time()
        with autocast(cpu, amp):
            y = fn(x)
        y.float().square().mean().backward()
        best = min(best, time.process_time() - t)
    return best


def parts(cfg, net, amp, repeats: int) -> dict:
    """CPU seconds of forward + backward of the network's parts alone, each on the input
    shape it gets in a step: every block of the half-plane U-Net (run once on the four
    rotations' batch), the whole branch group with its rotations and concatenation, the
    1 x 1 merge, and the posterior head with the loss."""
    bsn = net.net
    p = tuple(cfg.patch_size or (64, 64))
    x = to_memory_format(torch.randn((cfg.batch_size, 1) + p), True)
    shapes: dict = {}
    blocks = {f"branch enc{i}": m for i, m in enumerate(bsn.branch.enc)}
    blocks["branch bottom"] = bsn.branch.bottom
    blocks.update({f"branch dec{i}": m for i, m in enumerate(bsn.branch.dec)})
    blocks["merge (1x1 convs)"] = bsn.merge
    def record(name: str):
        def hook(module, args) -> None:
            shapes.setdefault(name, args[0].shape)
        return hook

    hooks = [m.register_forward_pre_hook(record(k)) for k, m in blocks.items()]
    with torch.no_grad():
        bsn(x)
    for h in hooks:
        h.remove()
    out = {}
    for name, m in blocks.items():
        inp = to_memory_format(torch.randn(shapes[name]), True)
        out[name] = _time_fwd_bwd(m, inp.requires_grad_(name != "branch enc0"), amp, repeats)
    out["branches with rotations + cat"] = _time_fwd_bwd(bsn.features, x, amp, repeats)
    out["whole network"] = _time_fwd_bwd(bsn, x, amp, repeats)
    out["denoiser loss (network + posterior)"] = _time_fwd_bwd(
        lambda t: net.loss(t)[None], x, amp, repeats)
    return out


def profile(cfg, method, net, amp, steps: int, top: int) -> None:
    rng = np.random.default_rng(0)
    x = to_memory_format(torch.from_numpy(
        rng.normal(0, 1, (cfg.batch_size, 1) + tuple(cfg.patch_size or (64, 64)))
        .astype(np.float32)), True)
    ctx = StepContext((-2.0, 2.0), 0.0)
    cpu = torch.device("cpu")
    for _ in range(2):  # warm-up: oneDNN's weight reorders and caches
        with autocast(cpu, amp):
            method.loss(net, {"x": x}, cfg, ctx).backward()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with autocast(cpu, amp):
                loss = method.loss(net, {"x": x}, cfg, ctx)
            loss.backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--profile-steps", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON")
    ap.add_argument("--json", help="append the figures as one JSON line")
    args = ap.parse_args()
    torch.set_num_threads(1)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    print(header())
    cfg, method, net = build(extra)
    amp = resolve_precision(torch.device("cpu"), cfg.precision)
    print(f"settings: {extra or 'defaults'}; network {cfg.network.model_dump()}; "
          f"batch {cfg.batch_size}; precision {amp}")
    ph = phases(cfg, method, net, amp, args.steps)
    pa = parts(cfg, net, amp, 3)
    for k, v in {**ph, **pa}.items():
        print(f"  {k:40s} {1000 * v:8.1f} ms")
    print(f"  steps per 60 CPU-s (step only): {60 / ph['step']:.0f}")
    profile(cfg, method, net, amp, args.profile_steps, args.top)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps({"settings": extra, "phases_s": ph, "parts_s": pa}) + "\n")


if __name__ == "__main__":
    main()
