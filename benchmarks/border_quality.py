"""How many voxels to reflect beyond the image's edges: PSNR against the ground truth.

A model is trained (default settings, ``--seconds`` wall-clock) on one noisy image, then
the image is denoised by the engine (``predict_array``) reflected ``b`` voxels beyond each
end of the measured axes, for each ``b`` of ``--borders``; the other axes keep the full
context. 2D: an FMD confocal image (``--image``, ground truth the 50-frame
average, CSBDeep ``norm_minmse`` as in ``quality_fmd.py``), border on Y and X, PSNR over the
whole image, a 16-pixel band along its edges and the inside. 3D: a ``Z x 192 x 192``
Poisson-Gaussian phantom (``core.samples.phantom_3d``), border on Z, PSNR over the volume,
its first and last planes and the planes four or more away from the ends. Usage::

    python benchmarks/border_quality.py --dims 2 --image BPAE_B --method n2v --seconds 60
    python benchmarks/border_quality.py --dims 3 --depth 16 --method n2v --seconds 150
"""

from __future__ import annotations

import argparse

import numpy as np
import tifffile
import torch

from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.normalization import norm_minmse
from napari_selfdenoise.core.samples import phantom_3d, psnr
from napari_selfdenoise.core.tiling import round_up
from napari_selfdenoise.core.training import default_config, train
from quality_fmd import FMD
from machine import engine_precision, print_header  # noqa: E402  (benchmarks/ is on sys.path)


def denoise(bundle, image: np.ndarray, border: dict[int, int]) -> np.ndarray:
    """The engine's prediction with ``border[axis]`` reflected voxels (else the context)."""
    net = bundle.build_model()
    context = [round_up(h, net.size_multiple) for h in net.halo]
    full = tuple(border.get(axis, c) for axis, c in enumerate(context))
    return predict_array(bundle, image, bundle.axes, border=full)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, choices=[2, 3], default=3)
    ap.add_argument("--method", default="n2v")
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--image", default="BPAE_B", help="2D: FMD image")
    ap.add_argument("--depth", type=int, default=16, help="3D: Z planes of the phantom")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--borders", type=int, nargs="+", default=[0, 4, 8, 16, 32])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print_header(engine_precision())

    if args.dims == 2:
        noisy = tifffile.imread(FMD / "noisy" / f"{args.image}.tif").astype(np.float32)
        clean = tifffile.imread(FMD / "gt" / f"{args.image}.tif").astype(np.float32)
        axes, name = "YX", args.image
    else:
        ph = phantom_3d((args.depth, 192, 192), seed=args.seed)
        noisy, clean, axes = ph.noisy, ph.clean, "ZYX"
        name = f"phantom {args.depth}x192x192 seed {args.seed}"
    config = default_config(args.method, axes=axes, time_budget_s=args.seconds, steps=10**7,
                            seed=args.seed)
    bundle = run_to_end(train(noisy, config))
    print(f"{args.method} on {name}, {args.seconds:.0f} s")
    for b in args.borders:
        if args.dims == 2:
            gt, den = norm_minmse(clean, denoise(bundle, noisy, {0: b, 1: b}))
            band = np.ones(gt.shape, bool)
            band[16:-16, 16:-16] = False
            peak = float(gt.max() - gt.min())
            print(f"  border {b:2d}: all {psnr(gt, den):.3f}  "
                  f"band {psnr(gt[band], den[band], data_range=peak):.3f}  "
                  f"inside {psnr(gt[~band], den[~band], data_range=peak):.3f}", flush=True)
        else:
            den = denoise(bundle, noisy, {0: b})
            peak = float(clean.max() - clean.min())
            planes = [psnr(clean[z], den[z], data_range=peak) for z in range(len(clean))]
            print(f"  border {b:2d}: all {psnr(clean, den, data_range=peak):.3f}  "
                  f"first {planes[0]:.2f}  last {planes[-1]:.2f}  "
                  f"inside {psnr(clean[4:-4], den[4:-4], data_range=peak):.3f}", flush=True)


if __name__ == "__main__":
    main()
