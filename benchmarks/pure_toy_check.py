"""Stein's cross term under Poisson noise: Gaussian Stein against first-order PURE (issue #14).

A smooth shrinkage denoiser (a J-invariant 3 x 3 donut mean plus a tanh-shrunk residual)
on a 256 x 256 phantom at 3, 10 and 30 photons, Poisson or Gaussian noise of the same
variance, four realisations each. Prints the cross term ``mean((y - m)(f - m))`` (the
truth, ``m`` the expected image) and its estimates: ``mean(v div)`` with the true variance
(Gaussian Stein), and with the noisy pixel (first-order PURE, Hudson's identity). Usage::

    PYTHONPATH=src python benchmarks/pure_toy_check.py
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_selfdenoise.core import sure
from napari_selfdenoise.core.samples import render_clean

DONUT = np.ones((3, 3)) / 8.0
DONUT[1, 1] = 0.0


def shrink(a: np.ndarray) -> np.ndarray:
    """The donut mean plus a smoothly shrunk residual (own-pixel slope between 0 and 0.8)."""
    m = ndimage.convolve(a, DONUT, mode="reflect")
    s = 2.0 * np.sqrt(np.maximum(m, 0.5))
    return m + 0.8 * s * np.tanh((a - m) / s)


def main() -> None:
    clean = render_clean((256, 256), seed=0)
    clean = clean / clean.max()
    inner = (slice(1, -1), slice(1, -1))
    for photons in (3, 10, 30):
        for kind in ("poisson", "gauss"):
            lam = clean * photons + 0.5
            truth, gauss, pure = [], [], []
            for seed in range(4):
                rng = np.random.default_rng(seed)
                noise = rng.normal(size=lam.shape) * np.sqrt(lam)
                y = (rng.poisson(lam) if kind == "poisson" else lam + noise).astype(np.float64)
                fy = shrink(y)
                div = sure.divergence(lambda a: shrink(a[0].astype(np.float64))[None],
                                      y[None], fy[None], 0.02)[0][inner]
                truth.append(np.mean(((y - lam) * (fy - lam))[inner]))
                gauss.append(np.mean(lam[inner] * div))
                pure.append(np.mean(y[inner] * div))
            t = np.mean(truth)
            print(f"{kind:7s} {photons:2d} photons: truth {t:.4f} (+-{np.std(truth) / 2:.4f}); "
                  f"Gaussian Stein, true variance {np.mean(gauss):.4f} "
                  f"({np.mean(gauss) / t - 1:+.1%}); first-order PURE {np.mean(pure):.4f} "
                  f"({np.mean(pure) / t - 1:+.1%})", flush=True)


if __name__ == "__main__":
    main()
