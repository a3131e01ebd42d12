"""The self-supervised loss of each denoiser over its parameter grid, and :func:`calibrate`."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Generator, Optional, Sequence

import numpy as np
import torch

from ..axes import AxesError, spatial_axes
from ..config import CalibrateConfig
from ..denoisers import DENOISERS, Denoiser, get_denoiser
from ..device import select_device
from ..events import CalibrationStep, run_to_end
from ..masking import grid_mask, grid_masked_input, grid_offsets, interpolate_neighbours
from ..validation import check_array, check_parameter_values
from .blockwise import denoise_image
from .crop import check_image, estimate_noise_sigma, image_axes, read_crop
from .limits import (
    CHUNK_ELEMENTS, GRID, LOSS_PIXELS, MASKED_LOSS_PIXELS, MAX_GRID_EXTENSIONS,
)
from .results import CalibrationResult, DenoiserCurve


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


def grid_extension(den: Denoiser, curve: DenoiserCurve, n: int = 2) -> list[float]:
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
    axes = image_axes(image, axes or config.axes)
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
    masked_offsets = _offsets(nd, x.numel() / GRID**nd, MASKED_LOSS_PIXELS)
    progress = _Progress(t0, sum(len(v) for v in grids.values()))
    curves: dict[str, DenoiserCurve] = {}
    stopped, loss_pixels = False, 0
    with torch.no_grad():
        for den in dens:
            offsets, npix = _loss_subsets(den, x, auto, masked_offsets)
            loss_pixels = max(loss_pixels, npix)
            curve, stopped = yield from _search_denoiser(
                den, x, interp, offsets, npix, grids[den.name], not config.values, device,
                stop, progress)
            if curve.values:
                curves[den.name] = curve
            if stopped:
                break
    result = _choose(curves, dens[0], config, sigma, axes, crop.shape[1:], loss_pixels,
                     stopped, time.perf_counter() - t0)
    if not stopped:
        # the blocks' events are not passed on: a calibration yields CalibrationSteps only
        result.image = run_to_end(denoise_image(
            image, result.denoiser, result.best_value, axes=axes,
            j_invariant=config.j_invariant_output, device=config.device, out=out, stop=stop))
        result.stopped = result.image is None
    result.elapsed_s = time.perf_counter() - t0
    return result


def _loss_subsets(den: Denoiser, x: torch.Tensor, auto: bool,
                  masked_offsets: list[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], int]:
    """The grid subsets the loss of ``den`` is taken on, and their number of pixels.

    The cheap local filters reach :data:`LOSS_PIXELS` (unless comparing denoisers, when
    all use the same subsets), the others :data:`MASKED_LOSS_PIXELS`.
    """
    nd = x.ndim - 2
    cheap = (den.donut or den.local) and den.cost <= 1.0
    offsets = masked_offsets if (auto or not cheap) else _offsets(
        nd, x.numel() / GRID**nd, LOSS_PIXELS)
    npix = sum(int(np.prod(x[(0, 0) + tuple(slice(a, None, GRID) for a in o)].shape))
               for o in offsets) * x.shape[0]
    return offsets, npix


@dataclass
class _Progress:
    """The step counter shared by the denoisers of one calibration (extensions add to it)."""

    t0: float
    total: int
    done: int = 0


def _search_denoiser(
    den: Denoiser, x: torch.Tensor, interp: torch.Tensor, offsets: Sequence[tuple[int, ...]],
    npix: int, grid: list[float], extend: bool, device: torch.device,
    stop: Optional[threading.Event], progress: _Progress,
) -> Generator[CalibrationStep, None, tuple[DenoiserCurve, bool]]:
    """One denoiser's loss curve over ``grid`` (continued past an edge minimum when
    ``extend``); returns it, sorted, and whether ``stop`` ended the search."""
    elements = x.numel() * (1 if den.local else len(offsets))
    curve = DenoiserCurve(den.name, den.parameter, [], [])
    pending, rounds, stopped = grid, 0, False
    while pending and not stopped:
        for chunk in _chunks(den, pending, elements, device):
            if stop is not None and stop.is_set():
                stopped = True
                break
            losses = (_sse(den, x, interp, chunk, offsets) / npix).tolist()
            for v, loss in zip(chunk, losses):
                curve.values.append(v)
                curve.losses.append(float(loss))
                yield CalibrationStep(den.name, den.parameter, v, float(loss), progress.done,
                                      progress.total, time.perf_counter() - progress.t0)
                progress.done += 1
        # a data-derived grid whose minimum lies on its edge continues past it
        pending = (grid_extension(den, curve)
                   if extend and rounds < MAX_GRID_EXTENSIONS else [])
        rounds += 1
        progress.total += len(pending)
    curve.sort()
    return curve, stopped


def _choose(curves: dict[str, DenoiserCurve], first: Denoiser, config: CalibrateConfig,
            sigma: float, axes: str, crop_shape: tuple[int, ...], loss_pixels: int,
            stopped: bool, calibration_s: float) -> CalibrationResult:
    """The result holding the lowest-loss curve (none chosen when stopped before any)."""
    if curves:
        best = min(curves.values(), key=lambda c: c.best_loss)
        choice = (best.denoiser, best.parameter, best.values, best.losses, best.best_value,
                  best.best_loss)
    else:  # stopped before the first value: nothing chosen
        choice = (first.name, first.parameter, [], [], float("nan"), float("nan"))
    return CalibrationResult(
        *choice, None, bool(config.j_invariant_output), curves, sigma, axes,
        tuple(crop_shape), loss_pixels, stopped, calibration_s,
    )

