"""Noise2Self J-invariant calibration of classical denoisers (Batson & Royer 2019).

For a J-invariant denoiser f and noise independent across pixels and zero-mean,
``E||f(x) - x||^2 = E||f(x) - y||^2 + E||x - y||^2``: the self-supervised loss ranks the
parameters as the ground-truth loss would. :func:`calibrate` measures that loss for every
value of a parameter grid and keeps the lowest:

* donut filters (median, mean without the centre) are J-invariant by construction;
* every other denoiser is made J-invariant by grid masking: the pixels ``J`` of one subset of
  a ``GRID``-wide grid are replaced by the interpolation of their neighbours
  (:func:`~napari_selfdenoise.core.masking.grid_masked_input`), the denoiser runs on that
  input, and the loss is taken on ``J`` only.

The loss is measured on a central crop (``config.crop``) and on enough grid subsets to reach
a target number of loss pixels; all grid values (and masks) go through the torch filters of
:mod:`~napari_selfdenoise.core.denoisers` together. The chosen denoiser is then applied to the
whole image block by block (:func:`denoise_image`), reading one block at a time from lazy
(zarr / memory-mapped) input.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Optional, Sequence

import numpy as np
import torch

from .axes import AxesError, infer_axes, spatial_axes, validate_axes
from .config import CalibrateConfig
from .denoisers import DENOISERS, Denoiser, get_denoiser
from .device import autocast, resolve_precision, select_device
from .events import CalibrationStep, TileDone
from .masking import (
    grid_mask, grid_masked_input, grid_offsets, grid_phase, interpolate_neighbours,
    invariant_apply,
)
from .validation import check_array, check_parameter_values

#: rounds of :func:`grid_extension` (2 values each) when a default grid's minimum is on its edge
MAX_GRID_EXTENSIONS = 3
GRID = 4  # Noise2Self grid width (GRID ** ndim masks), as scikit-image's stride
LOSS_PIXELS = 2**16  # target loss pixels for the cheap local filters (mean, Gaussian)
MASKED_LOSS_PIXELS = 2**14  # ... for the others (scikit-image uses 1/16 of the image)
MIN_SIDE = {2: 16, 3: 8}  # smallest calibratable size along Y/X, and along Z in 3D
CHUNK_ELEMENTS = 2**22  # elements of one batched evaluation (images x values x pixels)
TILES_PER_SIDE = 4  # large 2D images: calibrate on 4 x 4 tiles of side crop / 4
BLOCK_VOXELS = 2**22  # spatial block size when applying to a whole image


# ------------------------------------------------------------------------ results
@dataclass
class DenoiserCurve:
    """Self-supervised loss of one denoiser over its parameter grid."""

    denoiser: str
    parameter: str
    values: list[float]
    losses: list[float]

    @property
    def best_index(self) -> int:
        """Index of the lowest loss."""
        return int(np.argmin(self.losses))

    @property
    def best_value(self) -> float:
        """Parameter value with the lowest loss."""
        return self.values[self.best_index]

    @property
    def best_loss(self) -> float:
        """The lowest loss."""
        return self.losses[self.best_index]

    def sort(self) -> None:
        """Order the tried values increasingly (extensions may append lower ones)."""
        pairs = sorted(zip(self.values, self.losses))
        self.values = [v for v, _ in pairs]
        self.losses = [loss for _, loss in pairs]

    def to_dict(self) -> dict:
        """JSON-safe form."""
        return {"denoiser": self.denoiser, "parameter": self.parameter,
                "values": [float(v) for v in self.values],
                "losses": [float(v) for v in self.losses],
                "best_value": float(self.best_value), "best_loss": float(self.best_loss)}


@dataclass
class CalibrationResult:
    """What :func:`calibrate` returns.

    Attributes
    ----------
    denoiser, parameter : str
        The chosen denoiser and the name of its parameter.
    values, losses : list of float
        Its grid and self-supervised loss per value (mean squared error on masked pixels).
    best_value, best_loss : float
        The chosen value and its loss.
    image : array or None
        The denoised image in the input's axes and shape (``None`` when stopped).
    j_invariant : bool
        Whether ``image`` is the J-invariant output (else the plain denoiser's).
    curves : dict
        ``{name: DenoiserCurve}`` for every denoiser tried (several for ``"auto"``).
    noise_sigma : float
        Estimated noise standard deviation of the crop (data units).
    """

    denoiser: str
    parameter: str
    values: list[float]
    losses: list[float]
    best_value: float
    best_loss: float
    image: Any = field(default=None, repr=False)
    j_invariant: bool = False
    curves: dict[str, DenoiserCurve] = field(default_factory=dict)
    noise_sigma: float = float("nan")
    axes: str = ""
    crop_shape: tuple[int, ...] = ()
    loss_pixels: int = 0
    stopped: bool = False
    calibration_s: float = 0.0
    elapsed_s: float = 0.0

    def to_report(self) -> dict:
        """JSON-safe summary: the choice, every curve, timings (no pixel data)."""
        return {
            "denoiser": self.denoiser, "parameter": self.parameter,
            "best_value": float(self.best_value), "best_loss": float(self.best_loss),
            "values": [float(v) for v in self.values],
            "losses": [float(v) for v in self.losses],
            "j_invariant_output": bool(self.j_invariant),
            "curves": {k: c.to_dict() for k, c in self.curves.items()},
            "noise_sigma": float(self.noise_sigma), "axes": self.axes,
            "crop_shape": [int(s) for s in self.crop_shape],
            "loss_pixels": int(self.loss_pixels), "grid": GRID, "stopped": self.stopped,
            "calibration_s": round(self.calibration_s, 4),
            "elapsed_s": round(self.elapsed_s, 4),
        }


# ----------------------------------------------------------------- input checks
def _resolve_axes(image: Any, axes: Optional[str]) -> str:
    shape = tuple(np.shape(image))
    return validate_axes(axes, shape) if axes else infer_axes(shape)


def check_image(x: np.ndarray, spatial_dims: int) -> None:
    """Raise ``ValueError`` for non-finite, constant or too small data (``(N, *S)``)."""
    spatial = x.shape[-spatial_dims:]
    need = (MIN_SIDE[3],) * (spatial_dims - 2) + (MIN_SIDE[2],) * 2
    if any(n < m for n, m in zip(spatial, need)):
        raise ValueError(
            f"image too small to calibrate: spatial shape {tuple(spatial)}; need at least "
            f"{MIN_SIDE[2]} pixels along Y and X" + (
                f" and {MIN_SIDE[3]} along Z" if spatial_dims == 3 else "")
        )
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ValueError(
            f"image contains {bad} NaN or infinite values; replace them (e.g. with "
            "numpy.nan_to_num or an inpainting) before denoising"
        )
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi <= lo:
        raise ValueError(f"image is constant (every pixel is {lo:g}): there is no noise to "
                         "calibrate a denoiser on")


def _central(n: int, side: int) -> slice:
    side = min(n, side)
    start = (n - side) // 2
    return slice(start, start + side)


def read_crop(image: Any, axes: str, crop: Optional[int]) -> np.ndarray:
    """The calibration crop as float32 ``(N, *S)`` (one image per channel and tile).

    Only the crop is read from lazy input: the middle sample / time point and every
    channel. 2D: a central region of side ``crop`` in Y and X, or, when the image is at
    least twice as large in both, four ``crop / 2`` tiles centred in its quadrants (the same
    number of pixels, more representative). 3D: side ``crop // 2`` in Y and X and at most
    16 planes in Z (about as many voxels as four 2D crops).
    """
    shape = np.shape(image)
    nd = len(spatial_axes(axes))
    quads = nd == 2 and crop is not None and all(
        n >= 2 * crop for a, n in zip(axes, shape) if a in "YX")
    tiles: list[list[Any]] = [[]]
    kept = ""
    for a, n in zip(axes, shape):
        if a in "ST":
            tiles = [t + [n // 2] for t in tiles]
            continue
        kept += a
        if a == "C" or crop is None:
            tiles = [t + [slice(None)] for t in tiles]
        elif quads:
            side = crop // TILES_PER_SIDE
            centres = [(2 * k + 1) * n // (2 * TILES_PER_SIDE) for k in range(TILES_PER_SIDE)]
            tiles = [t + [slice(c - side // 2, c - side // 2 + side)]
                     for t in tiles for c in centres]
        else:
            side = crop if nd == 2 else (16 if a == "Z" else max(crop // 2, 32))
            tiles = [t + [_central(n, side)] for t in tiles]
    order = [kept.index(a) for a in ("C" if "C" in kept else "") + spatial_axes(kept)]
    parts = []
    for t in tiles:
        # a copy: memory-mapped input stays read-only and untouched
        arr = np.transpose(np.array(image[tuple(t)], dtype=np.float32), order)
        parts.append(arr.reshape((-1,) + arr.shape[arr.ndim - nd:]))
    return np.concatenate(parts)


def estimate_noise_sigma(x: np.ndarray, spatial_dims: int) -> float:
    """Gaussian noise sigma (wavelet MAD, ``skimage.restoration.estimate_sigma``) averaged
    over the images of ``x`` (``(N, *S)``)."""
    from skimage.restoration import estimate_sigma

    sig = [float(estimate_sigma(a)) for a in x[:4]]
    s = float(np.mean(sig))
    if not s > 0:  # piecewise-constant data: fall back to the data's spread
        s = float(np.std(x)) * 0.1 or 1.0
    return s


# ------------------------------------------------------------------------ losses
def _offsets(spatial_dims: int, per_offset_pixels: float, target: int) -> list[tuple[int, ...]]:
    """``k`` grid subsets spread over the ``GRID ** nd`` possible ones, enough for ``target``."""
    every = grid_offsets(spatial_dims, GRID)
    n = len(every)
    k = int(min(n, max(1, math.ceil(target / max(per_offset_pixels, 1.0)))))
    return [every[(n // 2 + (j * n) // k) % n] for j in range(k)]


def _sse(den: Denoiser, x: torch.Tensor, interp: torch.Tensor, values: Sequence[float],
         offsets: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """Sum of squared J-invariant errors on the subsets ``offsets`` for every value (P,)."""
    total = torch.zeros(len(values), dtype=torch.float64, device=x.device)
    sdims = tuple(range(2, x.ndim))

    def add(out: torch.Tensor, o: tuple[int, ...]) -> None:
        target = x[(slice(None), slice(None)) + tuple(slice(a, None, GRID) for a in o)]
        nonlocal total
        total = total + ((out - target) ** 2).double().sum(dim=(0,) + sdims)

    if den.donut:
        for o in offsets:
            add(den(x, values, exclude_centre=True, lattice=(o, GRID)), o)
        return total
    if den.local:
        for o in offsets:
            masked = torch.where(grid_mask(x.shape, o, GRID, x.device), interp, x)
            add(den(masked, values, lattice=(o, GRID)), o)
        return total
    masked = torch.cat([grid_masked_input(x, o, GRID) for o in offsets])
    out = den(masked, values)
    b = x.shape[0]
    for i, o in enumerate(offsets):
        sub = out[i * b : (i + 1) * b]
        add(sub[(slice(None), slice(None)) + tuple(slice(a, None, GRID) for a in o)], o)
    return total


def grid_extension(den: Denoiser, curve: "DenoiserCurve", n: int = 2) -> list[float]:
    """Values that continue ``curve``'s grid past the edge where its minimum lies.

    Empty when the minimum is inside the grid. Integer parameters (radii) step by one
    (never below 1); others continue the grid's geometric (or arithmetic) spacing.
    """
    vals = sorted(curve.values)
    if len(vals) < 2:
        return []
    best = curve.best_value
    if best == vals[-1]:
        a, b, sign = vals[-2], vals[-1], 1
    elif best == vals[0]:
        a, b, sign = vals[1], vals[0], -1
    else:
        return []
    if den.integer:
        out = [b + sign * k for k in range(1, n + 1)]
        return [float(v) for v in out if v >= 1]
    if a > 0 and b > 0:
        ratio = b / a
        return [b * ratio**k for k in range(1, n + 1)]
    step = b - a
    return [b + step * k for k in range(1, n + 1)]


def _chunks(den: Denoiser, values: list[float], elements: int,
            device: torch.device) -> list[list[float]]:
    budget = CHUNK_ELEMENTS * (16 if device.type == "cuda" else 1)  # GPUs like large batches
    size = max(1, int(budget // max(1.0, elements * den.cost / 4.0)))
    return [values[i : i + size] for i in range(0, len(values), size)]


def _grid_for(den: Denoiser, values: Optional[Sequence[float]], sigma: float,
              nd: int) -> list[float]:
    vals = [float(v) for v in (values if values else den.default_values(sigma, nd))]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{den.name}: parameter values must be finite numbers, got {vals}")
    return vals


# ----------------------------------------------------------------------- engine
def calibrate(
    image: Any,
    config: Optional[CalibrateConfig] = None,
    *,
    axes: Optional[str] = None,
    stop: Optional[threading.Event] = None,
    out: Any = None,
) -> Generator[CalibrationStep, None, CalibrationResult]:
    """Choose a denoiser's parameter by its Noise2Self self-supervised loss.

    Parameters
    ----------
    image : array-like
        numpy, dask, zarr or memory-mapped data; only the crop is read for the calibration.
    config : CalibrateConfig, optional
        Denoiser name (or ``"auto"``: every registered denoiser, lowest loss wins), grid
        (``None``: from the estimated noise level), crop, output kind, device.
    axes : str, optional
        Axes of ``image`` (overrides ``config.axes``; ``None`` infers them). ``Z`` among
        them selects the 3D denoisers.
    stop : threading.Event, optional
        When set, the search ends after the current chunk of values and no image is made.
    out : array-like, optional
        Writable array of ``image``'s shape (zarr, memmap) that receives the denoised
        image block by block; by default a float32 numpy array is returned.

    Yields
    ------
    CalibrationStep
        One per tried value, with its loss.

    Returns
    -------
    CalibrationResult
    """
    t0 = time.perf_counter()
    config = config if config is not None else CalibrateConfig()
    check_array(image, "the image", purpose="calibrate")
    axes = _resolve_axes(image, axes or config.axes)
    nd = len(spatial_axes(axes))
    if nd not in (2, 3):
        raise AxesError(f"calibration needs 2 or 3 spatial axes, got {axes!r}")
    auto = config.denoiser.lower() == "auto"
    if auto and config.values:
        raise ValueError("a user grid (values) needs one denoiser, not 'auto'")
    dens = list(DENOISERS.values()) if auto else [get_denoiser(config.denoiser)]
    crop = read_crop(image, axes, config.crop)
    check_image(crop, nd)
    sigma = estimate_noise_sigma(crop, nd)
    grids = {d.name: _grid_for(d, config.values, sigma, nd) for d in dens}
    if config.values:  # user grids: bounded by what the image can use (core.validation)
        for d in dens:
            check_parameter_values(d, grids[d.name], crop.shape[-nd:])
    device = select_device(config.device)
    x = torch.from_numpy(crop).to(device)[:, None]
    interp = interpolate_neighbours(x)
    per_offset = x.numel() / GRID**nd
    masked_offsets = _offsets(nd, per_offset, MASKED_LOSS_PIXELS)
    total = sum(len(v) for v in grids.values())
    curves: dict[str, DenoiserCurve] = {}
    done, stopped, loss_pixels = 0, False, 0
    with torch.no_grad():
        for den in dens:
            cheap = (den.donut or den.local) and den.cost <= 1.0
            offsets = masked_offsets if (auto or not cheap) else _offsets(
                nd, per_offset, LOSS_PIXELS)
            npix = sum(int(np.prod(x[(0, 0) + tuple(slice(a, None, GRID) for a in o)].shape))
                       for o in offsets) * x.shape[0]
            loss_pixels = max(loss_pixels, npix)
            elements = x.numel() * (1 if den.local else len(offsets))
            curve = DenoiserCurve(den.name, den.parameter, [], [])
            pending = grids[den.name]
            rounds = 0
            while pending and not stopped:
                for chunk in _chunks(den, pending, elements, device):
                    if stop is not None and stop.is_set():
                        stopped = True
                        break
                    losses = (_sse(den, x, interp, chunk, offsets) / npix).tolist()
                    for v, loss in zip(chunk, losses):
                        curve.values.append(v)
                        curve.losses.append(float(loss))
                        yield CalibrationStep(den.name, den.parameter, v, float(loss), done,
                                              total, time.perf_counter() - t0)
                        done += 1
                # a data-derived grid whose minimum lies on its edge continues past it
                pending = [] if config.values or rounds >= MAX_GRID_EXTENSIONS else (
                    grid_extension(den, curve))
                rounds += 1
                total += len(pending)
            curve.sort()
            if curve.values:
                curves[den.name] = curve
            if stopped:
                break
    if curves:
        best = min(curves.values(), key=lambda c: c.best_loss)
        choice = (best.denoiser, best.parameter, best.values, best.losses, best.best_value,
                  best.best_loss)
    else:  # stopped before the first value: nothing chosen
        choice = (dens[0].name, dens[0].parameter, [], [], float("nan"), float("nan"))
    result = CalibrationResult(
        *choice, None, bool(config.j_invariant_output), curves, sigma, axes,
        tuple(crop.shape[1:]), loss_pixels, stopped, time.perf_counter() - t0,
    )
    if not stopped:
        gen = denoise_image(image, result.denoiser, result.best_value, axes=axes,
                            j_invariant=config.j_invariant_output, device=config.device,
                            out=out, stop=stop)
        while True:
            try:
                next(gen)
            except StopIteration as fin:
                result.image = fin.value
                break
        result.stopped = result.image is None
    result.elapsed_s = time.perf_counter() - t0
    return result


# ------------------------------------------------------------ applying a choice
def j_invariant_apply(den: Denoiser, x: torch.Tensor, value: float) -> torch.Tensor:
    """The J-invariant output of ``den`` at ``value`` on ``x`` (B, 1, *S).

    Donut filters: one pass without the centre. Others: one masked pass per grid subset
    (``GRID ** ndim``), each output kept on its own subset.
    """
    if den.donut:
        return den(x, [value], exclude_centre=True)
    nd = x.ndim - 2
    offsets = grid_offsets(nd, GRID)
    if den.local:  # evaluated on each subset's lattice only (same result, less work)
        out = torch.empty_like(x)
        interp = interpolate_neighbours(x)
        for o in offsets:
            masked = torch.where(grid_mask(x.shape, o, GRID, x.device), interp, x)
            sel = (slice(None), slice(None)) + tuple(slice(a, None, GRID) for a in o)
            out[sel] = den(masked, [value], lattice=(o, GRID))
        return out
    per = max(1, int(CHUNK_ELEMENTS // max(1.0, x.numel() * den.cost / 4.0)))
    return invariant_apply(lambda masked: den(masked, [value]), x,
                           grid_phase(x.shape[2:], GRID, x.device), len(offsets), batch=per)


def apply_denoiser(den: Denoiser | str, x: np.ndarray, value: float, *,
                   j_invariant: bool = False, device: str = "auto") -> np.ndarray:
    """Denoise an in-memory ``(N, *S)`` float array (each image independently)."""
    den = get_denoiser(den) if isinstance(den, str) else den
    if den.integer and value != int(value):
        raise ValueError(f"{den.name} needs an integer {den.parameter}, got {value}")
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if not arr.flags.writeable:  # memory-mapped input: copy rather than alias it
        arr = arr.copy()
    t = torch.from_numpy(arr).to(select_device(device))[:, None]
    with torch.no_grad():
        res = j_invariant_apply(den, t, value) if j_invariant else den(t, [value])
    return res[:, 0].cpu().numpy()


def _block_side(n: int, side: int) -> int:
    return n if n <= side else max(GRID, (side // GRID) * GRID)


def denoise_image(
    image: Any,
    denoiser: Denoiser | str,
    value: float,
    *,
    axes: Optional[str] = None,
    j_invariant: bool = False,
    device: str = "auto",
    out: Any = None,
    stop: Optional[threading.Event] = None,
) -> Generator[TileDone, None, Any]:
    """Apply ``denoiser`` at ``value`` to a whole (possibly lazy) image, block by block.

    Every sample, time point and channel is denoised independently (2D planes, or 3D
    volumes when the axes hold ``Z``); each is cut into spatial blocks with a halo of the
    denoiser's reach (aligned to the masking grid), so only one block is in memory at a
    time. Local filters give exactly the whole-image result; TV and wavelets are global,
    their blocks are large and overlap by 24-32 pixels.

    Yields
    ------
    TileDone
        After every block.

    Returns
    -------
    array-like or None
        ``out`` (or a new float32 numpy array); ``None`` if stopped.
    """
    den = get_denoiser(denoiser) if isinstance(denoiser, str) else denoiser
    axes = _resolve_axes(image, axes)
    shape = tuple(int(s) for s in np.shape(image))
    sp = spatial_axes(axes)
    nd = len(sp)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
    halo = den.halo(value, nd) + (1 if j_invariant else 0)
    halo = -(-halo // GRID) * GRID
    side = round(BLOCK_VOXELS ** (1.0 / nd))
    sdims = [axes.index(a) for a in sp]  # positions of Z, Y, X in the input
    blocks = [_block_side(shape[d], side) for d in sdims]
    other = [d for d in range(len(shape)) if d not in sdims]
    starts = [range(0, shape[d], b) for d, b in zip(sdims, blocks)]
    letters = [axes[d] for d in sorted(sdims)]
    order = [letters.index(a) for a in sp]  # input order -> Z, Y, X
    jobs = [(o, s) for o in np.ndindex(*[shape[d] for d in other])
            for s in np.ndindex(*[len(r) for r in starts])]
    t0 = time.perf_counter()
    for k, (oidx, sidx) in enumerate(jobs):
        if stop is not None and stop.is_set():
            return None
        read = [slice(None)] * len(shape)
        write = [slice(None)] * len(shape)
        inner = []
        for d, i in zip(other, oidx):
            read[d] = write[d] = i
        for j, d in enumerate(sdims):
            a = sidx[j] * blocks[j]
            b = min(a + blocks[j], shape[d])
            lo, hi = max(0, a - halo), min(shape[d], b + halo)
            read[d], write[d] = slice(lo, hi), slice(a, b)
            inner.append(slice(a - lo, b - lo))
        block = np.asarray(image[tuple(read)], dtype=np.float32)
        # the block's remaining dims are the spatial ones in input order: to Z, Y, X
        block = np.transpose(block, order)
        if not np.isfinite(block).all():
            raise ValueError("image contains NaN or infinite values; replace them (e.g. with "
                             "numpy.nan_to_num) before denoising")
        res = apply_denoiser(den, block[None], value, j_invariant=j_invariant, device=device)[0]
        res = res[tuple(inner)]
        out[tuple(write)] = np.transpose(res, np.argsort(order))
        elapsed = time.perf_counter() - t0
        done = k + 1
        yield TileDone(done, len(jobs), float(np.prod(res.shape)) * done / max(elapsed, 1e-9),
                       elapsed, elapsed / done * (len(jobs) - done))
    return out


# ------------------------------------------------------------ trained networks
def calibrate_network(
    bundle: Any,
    image: Any,
    *,
    axes: Optional[str] = None,
    grids: Sequence[int] = (2, 3, 4, 5, 6),
    crop: Optional[int] = 256,
    device: str = "auto",
    precision: str = "auto",
    stop: Optional[threading.Event] = None,
) -> Generator[CalibrationStep, None, CalibrationResult]:
    """Choose the Noise2Self grid width of a trained network's J-invariant inference.

    The network runs at ``precision`` (:func:`~napari_selfdenoise.core.device.resolve_precision`:
    bf16 where the device computes it natively); the losses are summed in float64.

    For every grid width ``w`` the network's J-invariant output (``w ** ndim`` masked
    passes, :func:`~napari_selfdenoise.core.masking.j_invariant_apply`) is J-invariant, so
    its self-supervised loss ``mean((f_w(x) - x) ** 2)`` (in data units, on the crop)
    ranks the widths as the ground-truth loss would: a small ``w`` hides many pixels at
    once (less context), a large one departs from a Noise2Self network's training masks.
    The losses are comparable with the classical denoisers' curves of :func:`calibrate`.
    Apply the choice with ``bundle.config.masking.grid = int(result.best_value)`` and
    J-invariant prediction (``PredictConfig(j_invariant=True)``).

    Yields
    ------
    CalibrationStep
        ``denoiser="network"``, ``parameter="grid"``, one per width.

    Returns
    -------
    CalibrationResult
        ``image`` is ``None`` (use :mod:`~napari_selfdenoise.core.inference`).
    """
    from .masking import j_invariant_apply as network_j_invariant
    from .methods import get_method

    t0 = time.perf_counter()
    axes = _resolve_axes(image, axes or bundle.axes)
    nd = len(spatial_axes(axes))
    if nd != bundle.spatial_dims:
        raise AxesError(f"axes {axes!r} have {nd} spatial dims; the model is "
                        f"{bundle.spatial_dims}D")
    if any(int(w) != w or w < 2 for w in grids) or not grids:
        raise ValueError(f"grid widths must be integers >= 2, got {list(grids)}")
    x = read_crop(image, axes, crop)
    check_image(x, nd)
    x = x.reshape((-1, bundle.n_channels) + x.shape[1:])
    dev = select_device(device)
    dtype = resolve_precision(dev, precision)
    net = bundle.build_model(dev)
    xn = torch.from_numpy(bundle.normalize(x)).to(dev)
    mode = get_method(bundle.method).fill(bundle.config)  # as predict() fills hidden pixels
    curve = DenoiserCurve("network", "grid", [], [])
    stopped = False
    with torch.no_grad(), autocast(dev, dtype):
        for i, w in enumerate(grids):
            if stop is not None and stop.is_set():
                stopped = True
                break
            out = network_j_invariant(net, xn, int(w), mode).float().cpu().numpy()
            out = bundle.denormalize(out)
            loss = float(np.mean((out.astype(np.float64) - x) ** 2))
            curve.values.append(float(w))
            curve.losses.append(loss)
            yield CalibrationStep("network", "grid", float(w), loss, i, len(grids),
                                  time.perf_counter() - t0)
    best = (curve.best_value, curve.best_loss) if curve.values else (float("nan"),) * 2
    elapsed = time.perf_counter() - t0
    return CalibrationResult(
        "network", "grid", curve.values, curve.losses, *best, None, True,
        {"network": curve} if curve.values else {}, estimate_noise_sigma(x[:, 0], nd), axes,
        tuple(x.shape[2:]), int(x.size), stopped, elapsed, elapsed)
