"""A blend of the best network and the best filter, weighted by Stein's unbiased risk
estimate (SURE-LET: Blu & Luisier 2007, a linear expansion whose weights minimise SURE).

The network and the classical filter make different errors (the filter blurs edges the
network keeps; the network leaves artefacts where it is undertrained), so a weighted sum
``w_net * f_net + w_filter * f_filter + w_0`` can beat both. Its estimated error is
quadratic in the weights,

    SURE(w) = mean((sum_k w_k f_k - y)^2) - mean(v) + 2 mean(v * sum_k w_k div_k)

(:mod:`~napari_selfdenoise.core.sure`; ``div_k`` is 0 for a J-invariant part), so the
weights minimising it solve one small linear system, ``A w = c`` with ``A_kl = mean(f_k
f_l)`` and ``c_k = mean(f_k y) - mean(v div_k)``. Three weights fitted on tens of
thousands of pixels add a negligible optimism (about ``2 * 3 * v / N``) to the estimate.
The weights are kept non-negative (a part whose weight comes out negative is dropped and
the rest refitted): a negative weight extrapolates beyond both parts and amplifies any bias
of the estimate (measured on W2S 020_1, docs/benchmarks.md section 8: ``-0.41 n2s + 1.41
gaussian`` on the band, 0.7 dB below the best part on the whole image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .noise_level import per_pixel_noise
from .sure import local_variance

#: relative ridge added to the system's diagonal (only against exact collinearity)
RIDGE = 1e-9


@dataclass(frozen=True)
class Blend:
    """``sum(weights[k] * output of parts[k]) + offset``."""

    parts: tuple[str, ...]
    weights: tuple[float, ...]
    offset: float

    def apply(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The blend of ``outputs`` (one per part, in order), float32."""
        out = np.full(np.shape(outputs[0]), self.offset, dtype=np.float64)
        for w, o in zip(self.weights, outputs):
            out += w * np.asarray(o, dtype=np.float64)
        return out.astype(np.float32)

    def divergence(self, divergences: Sequence[Optional[np.ndarray]]) -> Optional[np.ndarray]:
        """The blend's divergence from its parts' (None for a J-invariant part)."""
        terms = [w * d for w, d in zip(self.weights, divergences) if d is not None]
        return None if not terms else np.sum(terms, axis=0)

    def describe(self) -> str:
        """E.g. ``0.71 n2s + 0.31 gaussian - 0.4``."""
        text = " + ".join(f"{w:.2f} {p}" for w, p in zip(self.weights, self.parts))
        return f"{text} {'+' if self.offset >= 0 else '-'} {abs(self.offset):.3g}"

    def to_dict(self) -> dict:
        """JSON-safe record (report, provenance)."""
        return {"parts": list(self.parts), "weights": [float(w) for w in self.weights],
                "offset": float(self.offset)}


def fit_blend(y: np.ndarray, parts: Sequence[str], outputs: Sequence[np.ndarray],
              divergences: Sequence[Optional[np.ndarray]], reference: np.ndarray) -> Blend:
    """The weights minimising Stein's estimate of the blend's error on region ``y``; the
    returned blend holds only the parts with a positive weight (possibly none).

    Parameters
    ----------
    y : numpy.ndarray
        The noisy region ``(..., Y, X)``.
    parts, outputs, divergences : sequences
        The candidates' names, their outputs on ``y`` and divergences (None: J-invariant).
    reference : numpy.ndarray
        The best J-invariant output (the residual noise estimate's reference, as in
        :func:`~napari_selfdenoise.core.scoring.estimate_quality`).
    """
    y64 = np.asarray(y, dtype=np.float64)[..., 1:-1, 1:-1].ravel()
    v = local_variance(per_pixel_noise(y, reference)).ravel()
    cols = [np.asarray(o, dtype=np.float64)[..., 1:-1, 1:-1].ravel() for o in outputs]
    cols.append(np.ones_like(y64))
    f = np.stack(cols, axis=1)
    a = f.T @ f / len(y64)
    c = f.T @ y64 / len(y64)
    for k, d in enumerate(divergences):
        if d is not None:
            c[k] -= float(np.mean(v * np.asarray(d, np.float64)[..., 1:-1, 1:-1].ravel()))
    a[np.diag_indices_from(a)] += RIDGE * np.trace(a) / len(a)
    keep = list(range(len(cols)))
    while True:  # non-negative weights: drop the most negative part and solve again
        w = np.zeros(len(cols))
        w[keep] = np.linalg.solve(a[np.ix_(keep, keep)], c[keep])
        negative = [k for k in keep[:-1] if w[k] < 0]
        if not negative:
            break
        keep.remove(min(negative, key=lambda k: w[k]))
    # only the parts it weights: a dropped part is not computed on the whole image
    kept = keep[:-1]
    return Blend(tuple(parts[k] for k in kept), tuple(float(w[k]) for k in kept),
                 float(w[-1]))


__all__ = ["Blend", "fit_blend"]
