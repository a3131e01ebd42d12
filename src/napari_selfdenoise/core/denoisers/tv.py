"""Total-variation denoising (Chambolle 2004), scikit-image's iteration and stopping rule."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .base import Denoiser
from .helpers import _geom

TV_EPS = 2e-4  # scikit-image's stopping rule for Chambolle's algorithm
TV_MAX_ITER = 200


def tv(x: torch.Tensor, values: Sequence[float], **_: object) -> torch.Tensor:
    """Total-variation denoising (Chambolle 2004), batched over weights and images.

    The same iteration and stopping rule as ``skimage.restoration.denoise_tv_chambolle``
    (``eps=2e-4``, at most 200 iterations), applied to each batch member: a member that has
    converged keeps that iteration's output and leaves the batch.
    """
    if any(v <= 0 for v in values):
        raise ValueError(f"TV weights must be positive, got {list(values)}")
    nd = x.ndim - 2
    b, p = x.shape[0], len(values)
    spatial = tuple(x.shape[2:])
    img = x.expand((b, p) + spatial).reshape((b * p,) + spatial)
    w = torch.tensor(list(values), dtype=x.dtype, device=x.device).repeat(b)
    w = w.reshape((-1,) + (1,) * nd)
    sdims = tuple(range(1, 1 + nd))
    npix = math.prod(spatial)
    tau = 1.0 / (2.0 * nd)
    pdual = torch.zeros((nd,) + img.shape, dtype=x.dtype, device=x.device)
    g = torch.zeros_like(pdual)
    out, d = img, torch.zeros_like(img)
    result = torch.empty_like(img)
    active = torch.arange(b * p, device=x.device)
    e_init = e_prev = None
    for i in range(TV_MAX_ITER):
        if i > 0:
            d = -pdual.sum(0)
            for ax, n in enumerate(spatial):
                d.narrow(1 + ax, 1, n - 1).add_(pdual[ax].narrow(1 + ax, 0, n - 1))
            out = img + d
        energy = (d * d).sum(dim=sdims)
        for ax, n in enumerate(spatial):
            torch.diff(out, dim=1 + ax, out=g[ax].narrow(1 + ax, 0, n - 1))
        norm = (g * g).sum(0).sqrt_()
        energy = (energy + (w * norm).sum(dim=sdims)) / npix
        norm.mul_(tau / w).add_(1.0)
        pdual.sub_(tau * g).div_(norm)
        if e_init is None:
            e_init = e_prev = energy
            continue
        # a member stops where scikit-image would stop it: keep that iteration's output
        converged = (e_prev - energy).abs() < TV_EPS * e_init
        if bool(converged.any()):
            result[active[converged]] = out[converged]
            keep = ~converged
            if not bool(keep.any()):
                return result.reshape((b, p) + spatial)
            img, w, active = img[keep], w[keep], active[keep]
            pdual, g = pdual[:, keep], g[:, keep]
            e_init, energy = e_init[keep], energy[keep]
        e_prev = energy
    result[active] = out
    return result.reshape((b, p) + spatial)


#: the registry entry (:data:`~napari_selfdenoise.core.denoisers.DENOISERS`)
DENOISER = Denoiser(
    "tv", "weight", tv, lambda s, nd: _geom(0.2, 5.0, 9, s), lambda v, nd: 24, cost=40.0)
