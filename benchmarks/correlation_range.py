"""What pixel shuffle's ``pd_train = "auto"`` resolves to (issue #13): the noise's
correlation range (``core.noise_correlation``) and the training factor chosen, per image,
on the FMD confocal and W2S widefield noisy images and on phantoms whose kernel fixes the
truth. Detector only: no training.

Usage::

    python benchmarks/correlation_range.py [--datasets fmd w2s phantoms] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

from machine import print_header  # noqa: E402  (benchmarks/ is on sys.path)
from napari_selfdenoise.core.methods.bsn import BSNParams
from napari_selfdenoise.core.noise_correlation import describe, lag_correlations
from napari_selfdenoise.core.samples import phantom_2d, phantom_correlated
from quality_methods import DATASETS  # noqa: E402

PHANTOMS = {  # name -> kernel (None: pixel-independent noise), 256 x 256, seeds 0-2
    "white": None,
    "binomial 3x3": np.outer([1.0, 2, 1], [1.0, 2, 1]),
    "binomial 5x5": np.outer([1.0, 4, 6, 4, 1], [1.0, 4, 6, 4, 1]),
    "weak lag-1 X (0.08)": np.array([[0.0, 0, 0], [0, 1, 0.08], [0, 0, 0]]),
}


def images(datasets: list):
    """``(dataset, name, noisy)`` for every chosen image."""
    for dataset in datasets:
        if dataset == "phantoms":
            for name, kernel in PHANTOMS.items():
                for seed in range(3):
                    ph = (phantom_2d((256, 256), seed=seed) if kernel is None else
                          phantom_correlated((256, 256), kernel=kernel, seed=seed))
                    yield dataset, f"{name}, seed {seed}", ph.noisy
            continue
        folder, names = DATASETS[dataset]
        for name in names:
            yield dataset, name, tifffile.imread(folder / "noisy" / f"{name}.tif")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["fmd", "w2s", "phantoms"],
                    choices=[*DATASETS, "phantoms"])
    ap.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = ap.parse_args()
    print_header()
    auto = BSNParams(pixel_shuffle=True, pd_train="auto")
    print("| data | image | shape | range X / Y | lags 1-3 | pd_train auto | ms |")
    print("|---|---|---|---|---|---|---|")
    for dataset, name, noisy in images(args.datasets):
        y = np.asarray(noisy, np.float32)
        t = time.perf_counter()
        params, _ = auto.resolve([y.reshape((1, 1) + y.shape[-2:]) if y.ndim == 2
                                  else y[:, None]])
        ms = 1000 * (time.perf_counter() - t)
        found = lag_correlations(y)
        ranges = " / ".join(str(found[a].range) if a in found else "-" for a in (-1, -2))
        print(f"| {dataset} | {name} | {'x'.join(map(str, y.shape))} | {ranges} | "
              f"{describe(found)} | {params.pd_train} | {ms:.0f} |", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps({
                    "dataset": dataset, "image": name, "shape": list(y.shape),
                    "pd_train": params.pd_train, "ms": ms,
                    **{f"rho_{'xy'[i]}": [float(r) for r in found[a].rho]
                       for i, a in enumerate((-1, -2)) if a in found},
                    **{f"se_{'xy'[i]}": [float(s) for s in found[a].se]
                       for i, a in enumerate((-1, -2)) if a in found}}) + "\n")


if __name__ == "__main__":
    main()
