"""Calibrating a trained network: the grid width of its J-invariant inference."""

from __future__ import annotations

import threading
import time
from typing import Any, Generator, Optional, Sequence

import numpy as np
import torch

from ..axes import AxesError, spatial_axes
from ..device import autocast, resolve_precision, select_device
from ..events import CalibrationStep
from .crop import check_image, estimate_noise_sigma, image_axes, read_crop
from .results import CalibrationResult, DenoiserCurve


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
    from ..masking import j_invariant_apply as network_j_invariant
    from ..methods import get_method

    t0 = time.perf_counter()
    axes = image_axes(image, axes or bundle.axes)
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
