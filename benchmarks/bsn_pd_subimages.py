"""Why the mean-only ``bsn`` with pixel shuffle collapsed on the correlated phantom
(issue #13): train it, then report its output statistics and its error when the trained
network runs on sub-images of growing size.

The network is trained a fixed number of steps (seed 0, deterministic on one thread) on
``samples.phantom_correlated`` (256 x 256). Its prediction (the model's own pixel-shuffle
factor at inference) is scored against the clean image, with the mean of the output
next to the clean mean. Then the central 240 x 240 is cut into tiles of ``s * n``
pixels, each shuffled by ``s`` into ``n x n`` sub-images and denoised at full
resolution of the sub-image (no halo): the same pixels scored for every sub-image size
``n``, so a network that learnt only what it saw in training (12 x 12 sub-images before
the fix) shows an error that grows with ``n``.

Usage::

    python benchmarks/bsn_pd_subimages.py [--steps 300] [--method bsn:mean:pd]
        [--set KEY=JSON ...]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.methods import get_method
from napari_selfdenoise.core.pixel_shuffle import shuffle_down, shuffle_up
from napari_selfdenoise.core.samples import phantom_correlated, psnr
from napari_selfdenoise.core.training import default_config, train
from machine import engine_precision, print_header  # noqa: E402  (benchmarks/ on sys.path)
from quality_methods import VARIANTS  # noqa: E402

CROP = 240
SIZES = {5: (12, 24, 48), 2: (12, 24, 60, 120)}


def by_sub_image_size(bundle, noisy: np.ndarray, clean: np.ndarray) -> list[tuple]:
    """``(s, n, psnr, output mean - clean mean)`` on the central crop, per size."""
    net = get_method(bundle.config.method).build_network(
        bundle.config.network, 2, 1, bundle.config.params)
    net.load_state_dict(bundle.state_dict)
    net.eval()
    off, sc = bundle.norm_offset[0], bundle.norm_scale[0]
    y0 = (noisy.shape[0] - CROP) // 2
    x0 = (noisy.shape[1] - CROP) // 2
    crop = (slice(y0, y0 + CROP), slice(x0, x0 + CROP))
    x = torch.from_numpy((noisy[crop] - off) / sc).float()[None, None]
    rows = []
    for s, sizes in SIZES.items():
        for n in sizes:
            t = s * n
            out = torch.zeros_like(x)
            with torch.no_grad():
                for i in range(0, CROP, t):
                    for j in range(0, CROP, t):
                        tile = x[..., i : i + t, j : j + t]
                        out[..., i : i + t, j : j + t] = shuffle_up(
                            net.denoise(shuffle_down(tile, s)).float(), s)
            est = out[0, 0].numpy() * sc + off
            rows.append((s, n, psnr(clean[crop], est), float(est.mean() - clean[crop].mean())))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps (seed 0)")
    ap.add_argument("--method", default="bsn:mean:pd", choices=[k for k in VARIANTS
                                                                 if k.startswith("bsn")])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="extra TrainConfig settings, e.g. batch_size=16")
    args = ap.parse_args()
    torch.set_num_threads(1)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    print_header(engine_precision(precision=extra.get("precision", "auto")))
    name, params, _ = VARIANTS[args.method]
    cfg = default_config(name, **{"steps": args.steps, "seed": 0,
                                  "params": {"method": name, **params}, **extra})
    print(f"{args.method}: {args.steps} steps, batch {cfg.batch_size}, "
          f"{cfg.network.base_filters} filters, extra={extra}", flush=True)
    ph = phantom_correlated((256, 256), seed=0)
    bundle = run_to_end(train(ph.noisy, cfg, axes="YX"))
    out = predict_array(bundle, ph.noisy, axes="YX")
    print(f"noisy {psnr(ph.clean, ph.noisy):.2f} dB; prediction {psnr(ph.clean, out):.2f} dB, "
          f"mean {out.mean():.2f} (clean {ph.clean.mean():.2f}), std {out.std():.2f} "
          f"(clean {ph.clean.std():.2f}); best step {bundle.info['best_step']}, "
          f"validation loss {bundle.info['best_loss']:.4f}")
    print(f"\n| shuffle s | sub-image n | PSNR (dB), central {CROP}^2 | mean - clean mean |")
    print("|---|---|---|---|")
    for s, n, p, bias in by_sub_image_size(bundle, ph.noisy, ph.clean):
        print(f"| {s} | {n} | {p:.2f} | {bias:+.2f} |")


if __name__ == "__main__":
    main()
