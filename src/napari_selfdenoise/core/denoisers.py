"""Classical denoisers for J-invariant calibration, 2D and 3D, in torch where possible.

Every denoiser takes a batch ``x`` shaped ``(B, 1, [Z], Y, X)`` (float32 torch tensor) and a
list of ``P`` parameter values and returns ``(B, P, [Z], Y, X)``: one output per value,
computed together (vectorised across the parameter grid) for the torch filters.

* ``median`` (radius of a disk / ball footprint) and ``mean`` (radius of a box): with
  ``exclude_centre=True`` they are the "donut" filters of Noise2Self, exactly J-invariant.
* ``gaussian`` (sigma), ``tv`` (Chambolle weight), ``wavelet`` (soft threshold),
  ``nlm`` (non-local means ``h``), ``bilateral`` (range sigma) are made J-invariant by grid
  masking in :mod:`~napari_selfdenoise.core.calibration`.

The local filters (median, mean, Gaussian, bilateral) can evaluate their output on a regular
sub-lattice only (``lattice=(offset, stride)``), which is all the calibration loss needs.
Intensity parameters (TV weight, wavelet threshold, NLM ``h``, bilateral range sigma) are in
the units of the data; their default grids are multiples of the estimated noise sigma.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Lattice = Optional[tuple[tuple[int, ...], int]]  # (offset per spatial dim, stride) or None

NETWORK_MEDIAN_MAX = 128  # windows up to this size use a sorting network, larger ones sort
_MAX_ELEMENTS = 2**24  # largest stacked neighbourhood tensor (elements) built at once
TV_EPS = 2e-4  # scikit-image's stopping rule for Chambolle's algorithm
TV_MAX_ITER = 200
BILATERAL_SIGMA_SPATIAL = 1.0
WAVELET = "sym4"


# ------------------------------------------------------------------------ helpers
def _lattice_view(x: torch.Tensor, lattice: Lattice) -> torch.Tensor:
    """The pixels of ``x`` on ``lattice`` (all of ``x`` for ``None``)."""
    if lattice is None:
        return x
    offset, stride = lattice
    return x[(slice(None), slice(None)) + tuple(slice(o, None, stride) for o in offset)]


def _lattice_shape(shape: Sequence[int], lattice: Lattice) -> tuple[int, ...]:
    if lattice is None:
        return tuple(shape)
    offset, stride = lattice
    return tuple(-(-(n - o) // stride) for n, o in zip(shape, offset))


def _shifted(xp: torch.Tensor, shift: Sequence[int], out_shape: Sequence[int], lattice: Lattice,
             pad: int) -> torch.Tensor:
    """``x[p + shift]`` for every output pixel ``p`` (``xp`` is ``x`` padded by ``pad``)."""
    offset, stride = lattice if lattice is not None else ((0,) * len(shift), 1)
    idx = tuple(
        slice(pad + o + s, pad + o + s + (n - 1) * stride + 1, stride)
        for o, s, n in zip(offset, shift, out_shape)
    )
    return xp[(slice(None), slice(None)) + idx]


def _pad(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.pad(x, (r, r) * (x.ndim - 2), mode="replicate") if r else x


def _separable(x: torch.Tensor, kernels: torch.Tensor, lattice: Lattice) -> torch.Tensor:
    """Apply ``P`` separable kernels (``(P, K)``, same 1D kernel on every axis) at once."""
    nd = x.ndim - 2
    p, k = kernels.shape
    r = (k - 1) // 2
    conv = F.conv2d if nd == 2 else F.conv3d
    fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
    offset, stride = lattice if lattice is not None else ((0,) * nd, 1)
    y = _pad(x, r)
    if p == 1:  # one kernel: shifted multiply-adds beat a 1-channel convolution ~5x on CPU
        taps = [(k, float(v)) for k, v in enumerate(kernels[0].tolist()) if v != 0.0]
        for d in range(nd):
            dim = 2 + d
            n_out = -(-(y.shape[dim] - 2 * r - offset[d]) // stride)
            acc = None
            for k, v in taps:
                idx = [slice(None)] * y.ndim
                idx[dim] = slice(offset[d] + k, offset[d] + k + (n_out - 1) * stride + 1, stride)
                acc = y[tuple(idx)] * v if acc is None else acc.add_(y[tuple(idx)], alpha=v)
            y = acc
        return y.contiguous()
    for d in range(nd):
        dim = 2 + d
        y = y.narrow(dim, offset[d], y.shape[dim] - offset[d])
        shape = [1] * nd
        shape[d] = k
        strides = [1] * nd
        strides[d] = stride
        w = kernels.to(x.dtype).reshape([p, 1] + shape)
        # channels-last convolutions are several times faster on CPU (see core/device.py)
        y = conv(y.contiguous(memory_format=fmt), w, stride=strides, groups=1 if d == 0 else p)
    return y.contiguous()


def _footprint(radius: int, nd: int, exclude_centre: bool) -> list[tuple[int, ...]]:
    """Offsets of a disk / ball of ``radius`` (scikit-image's ``disk`` / ``ball``)."""
    r = int(radius)
    offs = [
        d for d in itertools.product(range(-r, r + 1), repeat=nd)
        if sum(v * v for v in d) <= r * r
    ]
    if exclude_centre:
        offs.remove((0,) * nd)
    return offs


def _middle(stack: torch.Tensor) -> torch.Tensor:
    """Median along the last dim (mean of the two middle values for an even count)."""
    if stack.shape[-1] % 2:
        return stack.median(dim=-1).values
    # torch gives the lower middle value; the upper one is minus the lower of -stack
    return 0.5 * (stack.median(dim=-1).values - (-stack).median(dim=-1).values)


def _batcher_merge(lo: int, hi: int, r: int) -> Iterator[tuple[int, int]]:
    step = r * 2
    if step < hi - lo:
        yield from _batcher_merge(lo, hi, step)
        yield from _batcher_merge(lo + r, hi, step)
        yield from ((i, i + r) for i in range(lo + r, hi - r, step))
    else:
        yield (lo, lo + r)


def _batcher_sort(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    if hi - lo >= 1:
        mid = lo + (hi - lo) // 2
        yield from _batcher_sort(lo, mid)
        yield from _batcher_sort(mid + 1, hi)
        yield from _batcher_merge(lo, hi, 1)


@functools.lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs that put the middle value(s) of ``n`` values in place.

    Batcher's odd-even merge sort for the next power of two (pairs reaching past ``n`` act
    on +inf padding and are dropped), pruned to the pairs the middle positions depend on.
    """
    size = 1 << max(0, (n - 1).bit_length())
    pairs = [(i, j) for i, j in _batcher_sort(0, size - 1) if j < n]
    need = {n // 2} if n % 2 else {n // 2 - 1, n // 2}
    kept = []
    for i, j in reversed(pairs):
        if i in need or j in need:
            kept.append((i, j))
            need |= {i, j}
    return tuple(reversed(kept))


def _network_median(values: list[torch.Tensor]) -> torch.Tensor:
    """Median of equally shaped tensors (mean of the two middle ones for an even count)."""
    v = list(values)
    n = len(v)
    for i, j in median_network(n):
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _check_radius(values: Sequence[float]) -> list[int]:
    radii = [round(v) for v in values]
    if any(abs(r - v) > 1e-6 or r < 1 for r, v in zip(radii, values)):
        raise ValueError(f"radii must be positive integers, got {list(values)}")
    return radii


# ---------------------------------------------------------------------- filters
def median(x: torch.Tensor, values: Sequence[float], *, exclude_centre: bool = False,
           lattice: Lattice = None) -> torch.Tensor:
    """Median over a disk (2D) / ball (3D) of each radius; ``exclude_centre``: donut."""
    nd = x.ndim - 2
    out_shape = _lattice_shape(x.shape[2:], lattice)
    outs = []
    for r in _check_radius(values):
        offs = _footprint(r, nd, exclude_centre)
        xp = _pad(x, r)
        # chunk along the first output dimension so the stacked window stays bounded
        per_row = len(offs) * x.shape[0] * math.prod(out_shape[1:])
        rows = max(1, _MAX_ELEMENTS // max(per_row, 1))
        parts = []
        stride = lattice[1] if lattice is not None else 1
        off0 = lattice[0] if lattice is not None else (0,) * nd
        for start in range(0, out_shape[0], rows):
            n0 = min(rows, out_shape[0] - start)
            sub = ((off0[0] + start * stride,) + tuple(off0[1:]), stride)
            shape = (n0,) + tuple(out_shape[1:])
            views = [_shifted(xp, d, shape, sub, r) for d in offs]
            if len(views) <= NETWORK_MEDIAN_MAX:  # a sorting network: 2-4x faster than sort
                parts.append(_network_median(views))
            else:
                parts.append(_middle(torch.stack(views, dim=-1)))
        outs.append(torch.cat(parts, dim=2))
    return torch.cat(outs, dim=1)


def mean(x: torch.Tensor, values: Sequence[float], *, exclude_centre: bool = False,
         lattice: Lattice = None) -> torch.Tensor:
    """Mean over a box of side ``2 r + 1``; ``exclude_centre``: the donut mean."""
    nd = x.ndim - 2
    radii = _check_radius(values)
    rmax = max(radii)
    kernels = torch.zeros((len(radii), 2 * rmax + 1), dtype=torch.float64)
    for i, r in enumerate(radii):
        kernels[i, rmax - r : rmax + r + 1] = 1.0
    total = _separable(x, kernels, lattice)
    n = torch.tensor([(2 * r + 1) ** nd for r in radii], dtype=x.dtype, device=x.device)
    n = n.reshape((1, -1) + (1,) * nd)
    if exclude_centre:
        return (total - _lattice_view(x, lattice)) / (n - 1)
    return total / n


def gaussian_kernels(sigmas: Sequence[float]) -> torch.Tensor:
    """``(P, K)`` normalised 1D Gaussians truncated at 4 sigma (as scipy), zero-padded."""
    if any(s <= 0 for s in sigmas):
        raise ValueError(f"Gaussian sigmas must be positive, got {list(sigmas)}")
    radii = [int(4.0 * s + 0.5) for s in sigmas]
    rmax = max(radii)
    t = torch.arange(-rmax, rmax + 1, dtype=torch.float64)
    kernels = torch.zeros((len(sigmas), 2 * rmax + 1), dtype=torch.float64)
    for i, (s, r) in enumerate(zip(sigmas, radii)):
        k = torch.exp(-0.5 * (t / s) ** 2) * (t.abs() <= r)
        kernels[i] = k / k.sum()
    return kernels


def gaussian(x: torch.Tensor, values: Sequence[float], *, lattice: Lattice = None,
             **_: object) -> torch.Tensor:
    """Gaussian filter for each sigma (replicate borders, truncated at 4 sigma)."""
    return _separable(x, gaussian_kernels(values), lattice)


def bilateral(x: torch.Tensor, values: Sequence[float], *, lattice: Lattice = None,
              **_: object) -> torch.Tensor:
    """Bilateral filter (spatial sigma 1, window radius 3 in 2D / 2 in 3D) per range sigma."""
    nd = x.ndim - 2
    if any(v <= 0 for v in values):
        raise ValueError(f"bilateral range sigmas must be positive, got {list(values)}")
    r = 3 if nd == 2 else 2
    out_shape = _lattice_shape(x.shape[2:], lattice)
    xp = _pad(x, r)
    centre = _lattice_view(x, lattice)
    inv = torch.tensor([0.5 / v**2 for v in values], dtype=x.dtype, device=x.device)
    inv = inv.reshape((1, -1) + (1,) * nd)
    num = torch.zeros((x.shape[0], len(values)) + out_shape, dtype=x.dtype, device=x.device)
    den = torch.zeros_like(num)
    for d in itertools.product(range(-r, r + 1), repeat=nd):
        ws = math.exp(-0.5 * sum(v * v for v in d) / BILATERAL_SIGMA_SPATIAL**2)
        xq = _shifted(xp, d, out_shape, lattice, r)
        w = torch.exp(-((xq - centre) ** 2) * inv) * ws
        num += w * xq
        den += w
    return num / den


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


def _numpy_loop(fn: Callable[[np.ndarray, float], np.ndarray], x: torch.Tensor,
                values: Sequence[float]) -> torch.Tensor:
    arr = x[:, 0].detach().cpu().numpy()
    out = np.stack([np.stack([fn(a, float(v)) for v in values]) for a in arr])
    return torch.from_numpy(out.astype(np.float32)).to(x.device)


def wavelet_levels(shape: Sequence[int]) -> int:
    """Decomposition levels: scikit-image's rule (the maximum level minus 3) on the
    *largest* side, capped at the smallest side's maximum. So a band cropped from an image
    (compare's scoring region) is decomposed as deeply as the image it came from; on the
    smallest side, as scikit-image does, a 135-row band of a 512 x 512 image got one level
    less, and its output on the band differed from the image's by 2-12 dB (W2S)."""
    import pywt

    length = pywt.Wavelet(WAVELET).dec_len
    deepest = pywt.dwt_max_level(max(shape), length) - 3
    return max(min(deepest, pywt.dwt_max_level(min(shape), length)), 1)


def _wavelet_one(a: np.ndarray, threshold: float) -> np.ndarray:
    import pywt

    level = wavelet_levels(a.shape)
    coeffs = pywt.wavedecn(a, WAVELET, level=level, mode="symmetric")
    shrunk = [coeffs[0]] + [
        {k: pywt.threshold(v, threshold, mode="soft") for k, v in detail.items()}
        for detail in coeffs[1:]
    ]
    rec = pywt.waverecn(shrunk, WAVELET, mode="symmetric")
    return rec[tuple(slice(0, n) for n in a.shape)]


def wavelet(x: torch.Tensor, values: Sequence[float], **_: object) -> torch.Tensor:
    """Soft thresholding of all detail coefficients (``sym4``, levels as scikit-image)."""
    if any(v < 0 for v in values):
        raise ValueError(f"wavelet thresholds must be >= 0, got {list(values)}")
    return _numpy_loop(_wavelet_one, x, values)


def _nlm_one(a: np.ndarray, h: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    size, dist = (5, 6) if a.ndim == 2 else (3, 2)
    return denoise_nl_means(a, h=h, patch_size=size, patch_distance=dist, fast_mode=True)


def nlm(x: torch.Tensor, values: Sequence[float], **_: object) -> torch.Tensor:
    """Non-local means (scikit-image, fast mode; patch 5 / distance 6, 3D: 3 / 2)."""
    if any(v <= 0 for v in values):
        raise ValueError(f"NL-means h values must be positive, got {list(values)}")
    return _numpy_loop(_nlm_one, x, values)


# --------------------------------------------------------------------- registry
def _geom(lo: float, hi: float, n: int, scale: float = 1.0) -> list[float]:
    return [float(f"{v:.4g}") for v in np.geomspace(lo * scale, hi * scale, n)]


@dataclass(frozen=True)
class Denoiser:
    """One classical denoiser and how it is calibrated.

    Attributes
    ----------
    name, parameter : str
        Registry name and the name of its single parameter.
    donut : bool
        ``True``: the J-invariant version excludes the centre (no masking needed);
        ``False``: J-invariance comes from grid masking.
    local : bool
        Supports ``lattice=`` (evaluate on a sub-lattice only).
    integer : bool
        The parameter is an integer (a radius).
    cost : float
        Rough relative cost per value and pixel (chooses chunking of the grid).
    """

    name: str
    parameter: str
    fn: Callable[..., torch.Tensor]
    grid: Callable[[float, int], list[float]]
    halo_fn: Callable[[float, int], int]
    donut: bool = False
    local: bool = False
    integer: bool = False
    cost: float = 1.0

    def __call__(self, x: torch.Tensor, values: Sequence[float], *,
                 exclude_centre: bool = False, lattice: Lattice = None) -> torch.Tensor:
        """Denoise ``x`` (B, 1, *S) with every value: ``(B, P, *S')``."""
        if not values:
            raise ValueError(f"{self.name}: empty parameter grid")
        if exclude_centre and not self.donut:
            raise ValueError(f"{self.name} has no donut form; use grid masking")
        if lattice is not None and not self.local:
            return _lattice_view(self.fn(x, values), lattice)
        if self.donut:
            return self.fn(x, values, exclude_centre=exclude_centre, lattice=lattice)
        return self.fn(x, values, lattice=lattice) if self.local else self.fn(x, values)

    def default_values(self, sigma: float, spatial_dims: int) -> list[float]:
        """The default grid for data with noise ``sigma`` (data units)."""
        return self.grid(max(float(sigma), 1e-12), spatial_dims)

    def halo(self, value: float, spatial_dims: int) -> int:
        """Context (pixels) needed around a tile for the output to match the whole image."""
        return int(self.halo_fn(float(value), spatial_dims))


DENOISERS: dict[str, Denoiser] = {
    "median": Denoiser(
        "median", "radius", median, lambda s, nd: [1, 2, 3, 4, 5, 6] if nd == 2 else [1, 2, 3],
        lambda v, nd: int(v), donut=True, local=True, integer=True, cost=4.0),
    "mean": Denoiser(
        "mean", "radius", mean, lambda s, nd: [1, 2, 3, 4, 5, 6] if nd == 2 else [1, 2, 3, 4],
        lambda v, nd: int(v), donut=True, local=True, integer=True, cost=0.5),
    "gaussian": Denoiser(
        "gaussian", "sigma", gaussian,
        lambda s, nd: _geom(0.5, 4.0, 8) if nd == 2 else _geom(0.5, 3.0, 7),
        lambda v, nd: int(4.0 * v + 0.5), local=True, cost=0.5),
    "tv": Denoiser(
        "tv", "weight", tv, lambda s, nd: _geom(0.2, 5.0, 9, s), lambda v, nd: 24, cost=40.0),
    "wavelet": Denoiser(
        "wavelet", "threshold", wavelet, lambda s, nd: _geom(0.5, 6.0, 8, s),
        lambda v, nd: 32, cost=4.0),
    "nlm": Denoiser(
        "nlm", "h", nlm, lambda s, nd: _geom(0.3, 2.0, 7, s),
        lambda v, nd: 8 if nd == 2 else 3, cost=60.0),
    "bilateral": Denoiser(
        "bilateral", "range_sigma", bilateral, lambda s, nd: _geom(0.5, 8.0, 8, s),
        lambda v, nd: 3 if nd == 2 else 2, local=True, cost=8.0),
}


def get_denoiser(name: str) -> Denoiser:
    """The registered denoiser called ``name`` (``ValueError`` listing the choices)."""
    try:
        return DENOISERS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown denoiser {name!r}; choose one of {sorted(DENOISERS)} or 'auto'"
        ) from None
