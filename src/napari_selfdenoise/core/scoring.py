"""One comparable score for anything that denoises, and its quality without ground truth.

Noise2Self (Batson & Royer 2019): for a J-invariant denoiser ``f`` (no output pixel depends
on its own input pixel) and noise that is zero-mean and independent between pixels,

    E ||f(y) - y||^2 = E ||f(y) - x||^2 + E ||x - y||^2

(``y`` noisy, ``x`` clean). The self-supervised loss on the left (the **score**) therefore
ranks denoisers as the unknown supervised loss would, and the score minus the noise
variance estimates the error against the clean image (the **estimated MSE**, and a PSNR).

Every candidate is scored through a J-invariant form, on the same region with the same
masks: networks by grid-masked passes (:func:`invariant_network`; masking methods, and
methods whose delivered output is not J-invariant such as Noise2Noise and
Neighbor2Neighbor), complementary masks (``ams``) or their blind-spot output (``bsn``'s
prior mean); classical filters by their calibrated J-invariant form
(:func:`invariant_filter`); any other function by grid masking (:func:`invariant_function`).
A non-J-invariant output is never scored as it is: its score would reward copying the
noise (the identity would score 0).

The noise variance and the noise's correlation, which the estimate needs, are estimated
in :mod:`.noise_level`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from scipy import ndimage

from .noise_level import _block_se, _interior, noise_terms

#: grid width of the J-invariant form of functions that are not J-invariant themselves
GRID = 4


def data_range(image: np.ndarray) -> float:
    """The peak of the estimated PSNR: the 0.1-99.9 percentile range of the image after a
    3 x 3 mean (so the noise hardly widens it). The same for every candidate."""
    a = np.asarray(image, dtype=np.float32)
    size = (1,) * (a.ndim - 2) + (3, 3)
    lo, hi = np.percentile(ndimage.uniform_filter(a, size=size), [0.1, 99.9])
    return float(max(hi - lo, 1e-12))


@dataclass(frozen=True)
class Quality:
    """A candidate's score and its estimated quality against the unknown clean image.

    Attributes
    ----------
    score : float
        The J-invariant self-supervised loss ``mean((f(y) - y) ** 2)`` (data units squared).
    noise_variance : float
        The region's estimated mean noise variance.
    mse, mse_err : float
        ``score - noise_variance`` (interior pixels) and its uncertainty (one standard
        error of the block means combined with the noise variance's systematic error).
    psnr, psnr_low, psnr_high : float
        ``10 log10(peak^2 / mse)`` and the range from ``mse -/+ mse_err``.
    peak : float
        :func:`data_range` of the image.
    pixels : int
        Pixels scored.
    """

    score: float
    noise_variance: float
    mse: float
    mse_err: float
    psnr: float
    psnr_low: float
    psnr_high: float
    peak: float
    pixels: int

    def to_dict(self) -> dict:
        """JSON-safe (finite floats)."""
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """E.g. ``est. PSNR 31.2 dB (30.9-31.6)``."""
        return (f"est. PSNR {self.psnr:.1f} dB ({self.psnr_low:.1f}-{self.psnr_high:.1f})")


def _psnr(peak: float, mse: float) -> float:
    return float(10.0 * math.log10(peak * peak / mse))


def estimate_quality(y: np.ndarray, output: np.ndarray, reference: np.ndarray,
                     peak: float, divergence: Optional[np.ndarray] = None) -> Quality:
    """Score of ``output`` on region ``y`` and its estimated MSE / PSNR.

    Parameters
    ----------
    y, output : numpy.ndarray
        The noisy region and a denoised version of it, ``(..., Y, X)``: J-invariant, or
        any output with its ``divergence``.
    reference : numpy.ndarray
        The best candidate's J-invariant output on ``y`` (for the noise variance; the same
        for every candidate, so the estimated MSEs keep the order of the scores).
    peak : float
        The PSNR's peak (:func:`data_range` of the image).
    divergence : numpy.ndarray, optional
        ``d output_i / d y_i`` per pixel (:func:`~napari_selfdenoise.core.sure.divergence`)
        when ``output`` is not J-invariant: Stein's correction ``2 v_i div_i`` is added to
        every pixel's error (:mod:`~napari_selfdenoise.core.sure`). None: ``output`` is
        J-invariant (its divergence is 0) and this is Noise2Self's estimate.
    """
    y64, f64 = np.asarray(y, dtype=np.float64), np.asarray(output, dtype=np.float64)
    if y64.shape != f64.shape:
        raise ValueError(f"output shape {f64.shape} differs from the region {y64.shape}")
    score = float(np.mean((f64 - y64) ** 2))
    # per pixel: loss minus the residual noise estimate; noise terms largely cancel
    per_pixel_var, var, sys_err = noise_terms(y64, reference)
    d = (_interior(f64) - _interior(y64)) ** 2 - per_pixel_var
    if divergence is not None:
        from .sure import local_variance

        d = d + 2.0 * local_variance(per_pixel_var) * _interior(divergence)
    mse = float(np.mean(d))
    err = math.hypot(_block_se(d), sys_err)
    floor = max(1e-6 * var, 1e-12 * peak * peak)
    return Quality(score, var, mse, err, _psnr(peak, max(mse, floor)),
                   _psnr(peak, max(mse + err, floor)), _psnr(peak, max(mse - err, floor)),
                   float(peak), int(y64.size))


# ------------------------------------------------------------- J-invariant forms
def invariant_function(fn: Callable[[np.ndarray], np.ndarray], y: np.ndarray,
                       grid: int = GRID) -> np.ndarray:
    """The J-invariant form of any denoising function ``fn`` on ``y`` (``(N, *S)``).

    ``grid ** ndim`` passes, each with one grid subset hidden (replaced by the
    interpolation of its neighbours), each output kept on its subset
    (:func:`~napari_selfdenoise.core.masking.invariant_apply`). Use it for anything that
    is not J-invariant by construction: its own output would be scored as copying noise.
    """
    from .masking import grid_phase, invariant_apply

    x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[:, None]
    nd = x.ndim - 2

    def apply(t: torch.Tensor) -> torch.Tensor:
        out = np.asarray(fn(t[:, 0].numpy()), dtype=np.float32)
        return torch.from_numpy(out)[:, None]

    out = invariant_apply(apply, x, grid_phase(x.shape[2:], grid), grid**nd)
    return out[:, 0].numpy()


def invariant_filter(denoiser: Any, value: float, y: np.ndarray) -> np.ndarray:
    """A classical denoiser's calibrated J-invariant form on ``y`` (``(N, *S)``)."""
    from .calibration import apply_denoiser

    return apply_denoiser(denoiser, np.asarray(y, dtype=np.float32), value, j_invariant=True,
                          device="cpu")


def delivered_is_scored(method: Any, config: Any) -> bool:
    """Whether a model's delivered output (its predictor) is the J-invariant form it is
    scored through (else its estimate needs Stein's divergence, :mod:`.sure`)."""
    form, delivered = method.scoring_form(config), method.predictor(config)
    return (form == "grid" and delivered == "j_invariant") or (
        form == "complementary" and delivered == "complementary")


def scored_as(bundle: Any) -> tuple[str, bool]:
    """How a model is scored, in words, and whether its delivered output is that form."""
    from .methods import get_method

    method = get_method(bundle.method)
    form = method.scoring_form(bundle.config)
    text = {"grid": f"grid-masked J-invariant form ({bundle.config.masking.grid}^d passes)",
            "complementary": "complementary masks (its own predictor)",
            "blind_spot": "blind-spot output (prior mean)"}[form]
    return text, delivered_is_scored(method, bundle.config)


@torch.no_grad()
def invariant_net_output(net: Any, method: Any, config: Any, x: torch.Tensor) -> torch.Tensor:
    """The J-invariant form of a network ``net`` trained by ``method`` with ``config`` on
    normalised ``x`` (B, C, *S): grid-masked passes (the model's grid and fill) for masking
    methods and for methods whose delivered output is not J-invariant, the complementary
    masks of ``ams``, the blind-spot prior mean of ``bsn``."""
    from .inference import refine_network
    from .masking import complementary_phase, invariant_apply, j_invariant_apply
    from .models import apply_padded

    nd = x.ndim - 2
    form = method.scoring_form(config)

    def run(t: torch.Tensor) -> torch.Tensor:
        return apply_padded(net, t).float()

    if form == "blind_spot":
        return apply_padded(refine_network(net), x).float()
    if form == "complementary":
        n = method.n_subsets(config, nd)
        phase = complementary_phase([np.arange(s) for s in x.shape[2:]], n)
        return invariant_apply(run, x, torch.from_numpy(phase.astype(np.int64))[None, None]
                               .to(x.device), n, method.fill(config))
    return j_invariant_apply(net, x, int(config.masking.grid), method.fill(config)).float()


@torch.no_grad()
def invariant_network(bundle: Any, y: np.ndarray, device: str = "cpu") -> np.ndarray:
    """A trained model's J-invariant form (:func:`invariant_net_output`) on ``y``
    (``(N, *S)``, one channel, data units)."""
    from .methods import get_method

    if bundle.n_channels != 1:
        raise ValueError("scoring needs a one-channel model")
    dev = torch.device(device)
    net = bundle.build_model(dev)
    net.eval()
    x = torch.from_numpy(bundle.normalize(np.asarray(y, np.float32)[:, None])).to(dev)
    out = invariant_net_output(net, get_method(bundle.method), bundle.config, x)
    return bundle.denormalize(out.cpu().numpy())[:, 0]


def score_of(y: np.ndarray, output: np.ndarray) -> float:
    """The self-supervised loss ``mean((output - y) ** 2)`` (only meaningful for a
    J-invariant ``output``)."""
    return float(np.mean((np.asarray(output, np.float64) - np.asarray(y, np.float64)) ** 2))
