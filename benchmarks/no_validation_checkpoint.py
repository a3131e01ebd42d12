"""Which weights does training without a validation region keep? (issue #14)

n2s trained on compare's training pieces of one W2S image (``core.holdout``: pieces under
two patches high, so no validation band) for ``SECONDS`` CPU-s; prints the kept step
(``info["best_step"]``), the step count and the MSE of the kept weights against the
400-frame average (affine-mapped to the noisy units) on the bands and on the pieces. Run
it at commit 912729d (before the fix) for the old rule, the lowest training-loss window,
and at any later commit for the final weights. Usage::

    PYTHONPATH=src python benchmarks/no_validation_checkpoint.py 010_0 40
"""

from __future__ import annotations

import sys

import numpy as np
import tifffile
import torch

from napari_selfdenoise.core.config import default_config
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.holdout import plan
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.training import train
from machine import print_header
from quality_methods import DATASETS


def main() -> None:
    torch.set_num_threads(1)
    print_header("bf16 (auto)")
    name, seconds = sys.argv[1], float(sys.argv[2])
    folder = DATASETS["w2s"][0]
    y = tifffile.imread(folder / "noisy" / f"{name}.tif").astype(np.float32)
    gt = tifffile.imread(folder / "gt" / f"{name}.tif").astype(np.float64)
    a = np.stack([gt.ravel(), np.ones(gt.size)], 1)
    alpha, beta = np.linalg.lstsq(a, y.ravel().astype(np.float64), rcond=None)[0]
    clean = alpha * gt + beta
    hold = plan(y.shape[0], 0.2)
    band = np.zeros(y.shape[0], bool)
    for s, e in hold.bands:
        band[s:e] = True
    cfg = default_config("n2s", steps=10**9, seed=0, time_budget_s=seconds, clock="cpu",
                         log_every=5)
    bundle = run_to_end(train([p[0] for p in hold.pieces(y[None])], cfg, axes="YX"))
    err = (predict_array(bundle, y, axes="YX").astype(np.float64) - clean) ** 2
    print(f"{name}: kept step {bundle.info['best_step']} of {bundle.info['steps']} "
          f"({bundle.info['selected_by']}); MSE bands {err[band].mean():.1f}, pieces "
          f"{err[~band].mean():.1f}, all {err.mean():.1f}")


if __name__ == "__main__":
    main()
