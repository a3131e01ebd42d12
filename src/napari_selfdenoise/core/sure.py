"""The quality of an output that is *not* J-invariant: Stein's unbiased risk estimate.

Noise2Self's score (:mod:`~napari_selfdenoise.core.scoring`) is only valid for a J-invariant
output. A network's delivered output (its plain pass, or a posterior mean that uses the
noisy pixel) is not, and is usually better than its J-invariant form: ranking networks by
that form passes over a network that would have beaten the filter (docs/benchmarks.md
section 8). For noise that is independent between pixels with variance ``v_i`` (Gaussian;
Poisson-Gaussian in its Gaussian approximation), Stein's lemma gives, for any weakly
differentiable denoiser ``f`` that does not itself depend on the noise of ``y``,

    E ||f(y) - x||^2 = E ||f(y) - y||^2 - sum_i v_i + 2 sum_i v_i df_i/dy_i

(Stein 1981; the divergence of a black box by Monte-Carlo, Ramani, Blu & Unser 2008:
``df_i/dy_i ~ b_i (f(y + eps b) - f(y))_i / eps`` for a random sign vector ``b``). For a
J-invariant ``f`` the divergence is 0 and this is the Noise2Self estimate. "Does not depend
on the noise of ``y``": a network is estimated on a region it never trained on (compare's
held-out band); its weights are then a fixed function.

The per-pixel variance ``v_i`` is the local mean of the residual noise estimate
(:func:`local_variance`): model-free, and it follows a signal-dependent (Poisson) variance.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import ndimage

#: finite-difference step of the Monte-Carlo divergence, as a fraction of the noise's std
EPS_FRACTION = 0.02
#: random sign vectors averaged for the divergence (its noise is far below the rest)
PROBES = 2
#: side of the window over which the residual noise estimate is averaged into ``v_i``
VARIANCE_WINDOW = 9


def divergence(fn: Callable[[np.ndarray], np.ndarray], y: np.ndarray, fy: np.ndarray,
               eps: float, probes: int = PROBES, seed: int = 0) -> np.ndarray:
    """Per-pixel Monte-Carlo estimate of ``df_i / dy_i`` (same shape as ``y``).

    Parameters
    ----------
    fn : callable
        The denoiser, ``array -> array`` of the same shape, deterministic.
    y, fy : numpy.ndarray
        Its input and ``fn(y)``.
    eps : float
        Finite-difference step in data units (small against the noise, large against the
        denoiser's numerical noise: run ``fn`` in fp32).
    probes, seed : int
        Random sign vectors averaged, and their seed (fixed: the same for every candidate).
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    rng = np.random.default_rng(seed)
    y32 = np.asarray(y, dtype=np.float32)
    base = np.asarray(fy, dtype=np.float64)
    total = np.zeros(y32.shape, dtype=np.float64)
    for _ in range(probes):
        b = rng.integers(0, 2, size=y32.shape).astype(np.float32) * 2.0 - 1.0
        moved = np.asarray(fn(y32 + np.float32(eps) * b), dtype=np.float64)
        total += b * (moved - base) / eps
    return total / probes


def local_variance(per_pixel: np.ndarray, window: int = VARIANCE_WINDOW) -> np.ndarray:
    """``v_i``: the local mean of a per-pixel noise-variance estimate over the last two axes
    (``window`` x ``window``), clipped at 0."""
    a = np.asarray(per_pixel, dtype=np.float64)
    size = (1,) * (a.ndim - 2) + (window, window)
    return np.maximum(ndimage.uniform_filter(a, size=size, mode="reflect"), 0.0)


def noise_std(y: np.ndarray) -> float:
    """A rough noise standard deviation of ``y`` (its residual against the 8 neighbours),
    for the finite-difference step only."""
    from .noise_level import RESIDUAL_GAIN, residual

    return float(np.sqrt(max(np.mean(residual(y) ** 2) / RESIDUAL_GAIN, 1e-24)))


def network_delivered(bundle: Any, y: np.ndarray, spatial: str, *, tta: bool = False,
                      device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """A model's delivered output on ``y`` (``(N, *S)``, data units) and its divergence.

    The model's own predictor (``inference.predict``: its plain pass, posterior or
    complementary masks, with ``tta``), in fp32 so that the finite differences are not
    rounding noise (bf16 keeps three significant digits).

    Returns
    -------
    (output, divergence) : tuple of numpy.ndarray
        Both ``(N, *S)``.
    """
    from .config import PredictConfig
    from .events import run_to_end
    from .inference import predict

    cfg = PredictConfig(tta=tta, device=device, precision="fp32")
    n = y.shape[0]

    def fn(a: np.ndarray) -> np.ndarray:
        img, axes = (a[0], spatial) if n == 1 else (a, "T" + spatial)
        out = np.asarray(run_to_end(predict(bundle, img, axes=axes, config=cfg)), np.float32)
        return out.reshape(a.shape)

    y32 = np.ascontiguousarray(y, dtype=np.float32)
    fy = fn(y32)
    return fy, divergence(fn, y32, fy, EPS_FRACTION * noise_std(y32))


__all__ = ["EPS_FRACTION", "PROBES", "divergence", "local_variance", "network_delivered",
           "noise_std"]
