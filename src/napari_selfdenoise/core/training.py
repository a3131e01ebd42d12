"""Self-supervised training: ``train(...)`` yields progress events and returns the model.

Methods (see ``algorithms.md``): Noise2Void (``n2v``, optionally structN2V), N2V2
(``n2v2``), Noise2Self (``n2s``) and Noise2Same (``n2same``). The data are normalised
once (statistics stored in the model), held out by region for validation, and kept on
the training device, where patches are cut, augmented and masked every step.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Generator, Optional, Sequence

import numpy as np
import torch

from .axes import AxesError, from_canonical, infer_axes, to_canonical, validate_axes
from .bundle import ModelBundle
from .config import (
    METHOD_DEFAULTS, TrainConfig, default_config, default_patch_size, resolve_config,
)
from .device import autocast, resolve_precision, select_device, use_channels_last
from .events import Message, TrainFinished, TrainPreview, TrainStep
from .masking import (
    apply_grid_mask,
    masked_mse,
    n2v_mask,
    noise2same_loss,
    random_grid_mask,
)
from .models import apply_padded, build_network
from .normalization import compute_normalization
from .patches import PatchSampler, augment, fit_patch_size, split_validation
from .patches import tile_patches
from .validation import check_train_args

#: integer data beyond this magnitude is not represented exactly in float32
FLOAT32_EXACT = 2**24
#: at most this many fixed validation patches (held-out tiles, repeated with different
#: fixed masks when there are fewer tiles)
MAX_VAL_PATCHES = 48
#: the learning rate decays (cosine) from its value to this fraction of it
FINAL_LR_FRACTION = 0.05
#: linear learning-rate warm-up (steps)
WARMUP_STEPS = 20


class TrainingDataError(ValueError):
    """The training data cannot be used as given (empty, too small, NaN, ...)."""


@dataclass(frozen=True)
class PreviewRequest:
    """Ask :func:`train` to denoise ``image`` every ``every_s`` seconds.

    Attributes
    ----------
    image : numpy.ndarray
        The region to preview (in original units).
    axes : str
        Its axes (e.g. ``"YX"``, ``"CYX"``, ``"ZYX"``), with the model's spatial
        dimensions and channels.
    every_s : float
        Seconds between previews.
    region : tuple
        Free-form tag echoed in :class:`~napari_selfdenoise.core.events.TrainPreview`.
    """

    image: np.ndarray
    axes: str
    every_s: float = 3.0
    region: tuple = ()


class LivePreview:
    """The latest preview region, replaceable while :func:`train` runs.

    A viewer hands it to :func:`train` instead of a fixed :class:`PreviewRequest` and calls
    :meth:`update` (from its own thread, with a snapshot it took there) whenever the view
    changes; the next preview denoises the newest region. Thread-safe.
    """

    def __init__(self, request: PreviewRequest) -> None:
        self._lock = threading.Lock()
        self._request = request
        self._version = 0

    def update(self, request: PreviewRequest) -> None:
        """Replace the region to preview."""
        with self._lock:
            self._request = request
            self._version += 1

    def current(self) -> tuple[int, PreviewRequest]:
        """``(version, request)``: the version grows with every :meth:`update`."""
        with self._lock:
            return self._version, self._request


# ----------------------------------------------------------------------- data
def prepare_data(data: Any, axes: Optional[str]) -> tuple[list[np.ndarray], str]:
    """Load and check training data; return canonical ``(N, C, *S)`` float32 arrays.

    Raises
    ------
    TrainingDataError, AxesError
        Empty data, NaN / Inf, integers beyond float32 precision, arrays that disagree
        in dimensionality or channels, axes that do not fit.
    """
    items = list(data) if isinstance(data, (list, tuple)) else [data]
    if not items:
        raise TrainingDataError("no training images given")
    arrays = []
    for i, item in enumerate(items):
        name = f"image {i + 1}" if len(items) > 1 else "the image"
        arr = np.asarray(item)
        if arr.size == 0:
            raise TrainingDataError(f"{name} is empty (shape {arr.shape})")
        if arr.dtype.kind not in "uif":
            raise TrainingDataError(f"{name} has data type {arr.dtype}; expected numbers")
        if arr.dtype.kind in "ui":
            peak = max(abs(int(arr.min())), abs(int(arr.max())))
            if peak > FLOAT32_EXACT:
                raise TrainingDataError(
                    f"{name} ({arr.dtype}) holds values up to {peak}, beyond 2^24 = "
                    f"{FLOAT32_EXACT}, where float32 (used for training) cannot represent "
                    "every integer; subtract the offset or divide the data (e.g. by 256) "
                    "before training, or convert it to float yourself"
                )
        if axes is None:
            axes = infer_axes(arr.shape)
        try:
            canon = to_canonical(arr, axes)
        except AxesError as exc:
            raise AxesError(f"{name}: {exc}") from None
        canon = np.asarray(canon, dtype=np.float32)
        bad = int(canon.size - np.count_nonzero(np.isfinite(canon)))
        if bad:
            raise TrainingDataError(
                f"{name} contains {bad} NaN or infinite values; replace them (e.g. by the "
                "median) or crop them away before training"
            )
        arrays.append(canon)
    assert axes is not None
    first = arrays[0]
    for i, a in enumerate(arrays[1:], 2):
        if a.ndim != first.ndim or a.shape[1] != first.shape[1]:
            raise TrainingDataError(
                f"image {i} has {a.shape[1]} channel(s) and {a.ndim - 2} spatial dims, "
                f"image 1 has {first.shape[1]} and {first.ndim - 2}; all training images "
                "must share axes and channels"
            )
    return arrays, validate_axes(axes)


def _to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if not channels_last:
        return x
    fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    return x.contiguous(memory_format=fmt)


# --------------------------------------------------------------------- losses
def make_inputs(
    x: torch.Tensor, config: TrainConfig, generator: Optional[torch.Generator],
    struct_range: tuple[float, float] = (0.0, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked network input and the loss mask ``(B, 1, *S)`` for batch ``x``."""
    m = config.masking
    if config.method in ("n2v", "n2v2"):
        return n2v_mask(
            x, masked_fraction=m.masked_fraction, neighbourhood=m.neighbourhood,
            replacement=config.replacement(), generator=generator,
            struct_axis=m.struct_axis, struct_span=m.struct_span, struct_range=struct_range,
        )
    mask = random_grid_mask(x, m.grid, generator)
    return apply_grid_mask(x, mask, config.replacement()), mask


def compute_loss(
    net: torch.nn.Module, x: torch.Tensor, x_in: torch.Tensor, mask: torch.Tensor,
    config: TrainConfig,
) -> torch.Tensor:
    """The method's loss for clean-less targets ``x`` and masked inputs ``x_in``."""
    if config.method == "n2same":
        out = net(torch.cat([x, x_in])).float()  # both passes carry gradient
        out_full, out_masked = out[: x.shape[0]], out[x.shape[0] :]
        return noise2same_loss(out_full, out_masked, x, mask, config.lambda_inv)
    return masked_mse(net(x_in).float(), x, mask)


def _lr_factor(step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return warm * (FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cos)


# -------------------------------------------------------------------- preview
def _denoise(net: torch.nn.Module, x: np.ndarray, device: torch.device,
             dtype: Optional[torch.dtype], channels_last: bool) -> np.ndarray:
    """Run ``net`` on normalised canonical ``x`` one sample at a time (eval mode)."""
    was_training = net.training
    net.eval()
    out = np.empty_like(x)
    with torch.no_grad(), autocast(device, dtype):
        for n in range(x.shape[0]):
            t = _to_memory_format(torch.from_numpy(x[n : n + 1]).to(device), channels_last)
            out[n] = apply_padded(net, t).float().cpu().numpy()[0]
    net.train(was_training)
    return out


def _preview_input(preview: PreviewRequest, bundle_like: ModelBundle) -> np.ndarray:
    img = np.asarray(preview.image)
    canon = to_canonical(img, preview.axes)
    if canon.ndim - 2 != bundle_like.spatial_dims or canon.shape[1] != bundle_like.n_channels:
        raise TrainingDataError(
            f"the preview image (axes {preview.axes}, shape {img.shape}) does not match the "
            f"training data ({bundle_like.spatial_dims}D, {bundle_like.n_channels} channel(s))"
        )
    return bundle_like.normalize(canon)


# ---------------------------------------------------------------------- train
def train(
    data: Any,
    config: TrainConfig,
    *,
    axes: Optional[str] = None,
    stop: Optional[threading.Event] = None,
    preview: Optional[PreviewRequest | LivePreview] = None,
    init: Optional[ModelBundle] = None,
) -> Generator[Any, None, ModelBundle]:
    """Train a self-supervised denoiser.

    Parameters
    ----------
    data : array or list of arrays
        numpy / dask / zarr arrays (loaded into memory), all with the same axes; sizes
        may differ.
    config : TrainConfig
        Method, network, masking, budgets, device... Unset settings get the method's
        defaults (:func:`resolve_config`).
    axes : str, optional
        Axes of ``data``; default ``config.axes``, else inferred from the shape.
    stop : threading.Event, optional
        Set it to stop; the best model so far is returned.
    preview : PreviewRequest or LivePreview, optional
        A region to denoise every ``preview.every_s`` seconds (yields ``TrainPreview``);
        a :class:`LivePreview` follows the region its owner updates while training runs.
    init : ModelBundle, optional
        Continue training this model (its network and normalisation are kept).

    Yields
    ------
    Message, TrainStep, TrainPreview, TrainFinished

    Returns
    -------
    ModelBundle
        The weights with the best validation loss (training loss when no region could be
        held out), with the logged history and provenance in ``info``.
    """
    t0 = time.perf_counter()
    check_train_args(data, config)  # paths, dicts: one clear error (core.validation)
    config = resolve_config(config)
    if init is not None:
        network = init.config.network
        if init.config.method == "n2v2":
            network = network.model_copy(update={"n2v2": True})
        config = config.model_copy(update={"network": network})
    arrays, axes = prepare_data(data, axes or config.axes or (init.axes if init else None))
    spatial_dims = arrays[0].ndim - 2
    n_channels = arrays[0].shape[1]
    if config.masking.struct_axis is not None and spatial_dims != 2:
        raise TrainingDataError("structN2V masks are defined for 2D data only")
    if init is not None and (init.spatial_dims, init.n_channels) != (spatial_dims, n_channels):
        raise TrainingDataError(
            f"the model to continue was trained on {init.spatial_dims}D data with "
            f"{init.n_channels} channel(s); this data is {spatial_dims}D with {n_channels}"
        )
    device = select_device(config.device)
    amp = resolve_precision(device, config.precision)
    channels_last = use_channels_last(device, config.channels_last)
    seed = config.seed if config.seed is not None else int(np.random.SeedSequence().entropy % 2**31)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(config.network, spatial_dims, n_channels, config.method)
    multiple = int(net.size_multiple)

    patch = tuple(config.patch_size or default_patch_size(spatial_dims))
    if len(patch) != spatial_dims:
        raise TrainingDataError(
            f"patch size {patch} has {len(patch)} dims but the data ({axes}) is "
            f"{spatial_dims}D; give {'Z, Y, X' if spatial_dims == 3 else 'Y, X'} sizes"
        )
    patch, note = fit_patch_size(patch, [a.shape[2:] for a in arrays], multiple)
    if note:
        yield Message(note, "warning")
    config = config.model_copy(update={"axes": axes, "patch_size": patch})
    if init is not None:
        try:
            net.load_state_dict(init.state_dict)
        except RuntimeError:
            raise TrainingDataError(
                f"cannot continue the {init.config.method} model with method "
                f"{config.method}: the networks differ (N2V2 uses its own U-Net variant)"
            ) from None
        offsets, scales = list(init.norm_offset), list(init.norm_scale)
    else:
        offsets, scales = compute_normalization(arrays, config.normalization)

    off = np.asarray(offsets, np.float32).reshape((1, -1) + (1,) * spatial_dims)
    sc = np.asarray(scales, np.float32).reshape((1, -1) + (1,) * spatial_dims)
    normed = [(a - off) / sc for a in arrays]
    del arrays
    train_regions, val_regions = split_validation(normed, patch[-2], config.val_fraction)
    sample = np.concatenate([r.reshape(-1)[:: max(1, r.size // 100_000)] for r in train_regions])
    struct_range = tuple(float(v) for v in np.percentile(sample, [1, 99]))

    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last if spatial_dims == 2 else torch.channels_last_3d)
    net.train()
    sampler = PatchSampler([torch.from_numpy(np.ascontiguousarray(r)).to(device)
                            for r in train_regions], patch, seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    val_x = val_in = val_mask = None
    if val_regions and config.val_fraction > 0:
        tiles = tile_patches(val_regions, patch, MAX_VAL_PATCHES)
        if len(tiles):
            # few held-out tiles (a 512 x 512 image gives 8) mask too few pixels for a
            # steady loss: repeat them, each copy with its own fixed mask, up to the cap
            n_tiles = len(tiles)
            tiles = np.concatenate([tiles] * max(1, MAX_VAL_PATCHES // n_tiles))
            val_x = _to_memory_format(torch.from_numpy(tiles).to(device), channels_last)
            val_gen = torch.Generator(device=device)
            val_gen.manual_seed(12345)  # fixed masks: comparable across steps and runs
            val_in, val_mask = make_inputs(val_x, config, val_gen, struct_range)
    if val_x is None:
        yield Message(
            "the images are too small to hold out a validation region; the model with the "
            "lowest training loss is kept", "warning"
        )
    else:
        yield Message(f"validation: {n_tiles} tiles of a held-out band of each image, "
                      f"{len(val_x) // n_tiles} fixed mask(s) each")

    def validate() -> float:
        net.eval()
        total = 0.0
        with torch.no_grad(), autocast(device, amp):
            for i in range(0, len(val_x), config.batch_size):
                sl = slice(i, i + config.batch_size)
                loss = compute_loss(net, val_x[sl], val_in[sl], val_mask[sl], config)
                total += float(loss) * len(val_x[sl])
        net.train()
        return total / len(val_x)

    live = preview if isinstance(preview, LivePreview) else (
        LivePreview(preview) if preview is not None else None)
    preview_version, preview_in = -1, None
    norm_only = ModelBundle(config, axes, spatial_dims, n_channels, offsets, scales, {})

    def refresh_preview() -> Optional[Message]:
        """Pick up a region the viewer changed since the last preview."""
        nonlocal preview, preview_version, preview_in
        version, request = live.current()
        if version == preview_version:
            return None
        preview_version = version
        try:
            preview_in, preview = _preview_input(request, norm_only), request
        except (TrainingDataError, AxesError) as exc:
            if preview_in is None:  # the first region must fit: a caller mistake
                raise
            return Message(f"preview region ignored: {exc}", "warning")
        return None

    if live is not None:
        refresh_preview()

    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    budget = config.time_budget_s
    history: list[dict] = []
    best_state: Optional[dict] = None
    best_loss, best_step = math.inf, 0
    best_val: Optional[float] = None
    step, reason = 0, "steps"
    window: list[torch.Tensor] = []
    t_train = time.perf_counter()
    t_window, last_preview = t_train, t_train
    validated_at = -1

    def snapshot(loss: float) -> None:
        nonlocal best_state, best_loss, best_step
        if loss < best_loss:
            best_loss, best_step = loss, step
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def log(val_loss: Optional[float]) -> TrainStep:
        nonlocal window, t_window
        now = time.perf_counter()
        loss = float(torch.stack(window).mean()) if window else math.nan
        rate = len(window) * config.batch_size / max(now - t_window, 1e-9)
        elapsed = now - t0
        left = (config.steps - step) * (now - t_train) / max(step, 1)
        if budget is not None:
            left = min(left, max(budget - elapsed, 0.0))
        if val_x is None:
            snapshot(loss)
        ev = TrainStep(step, config.steps, loss, val_loss, rate, elapsed, left,
                       opt.param_groups[0]["lr"], best_loss if val_x is not None else None)
        history.append({"step": step, "loss": loss, "val_loss": val_loss,
                        "patches_per_s": rate, "elapsed_s": elapsed,
                        "learning_rate": ev.learning_rate})
        window, t_window = [], now
        return ev

    while True:
        if stop is not None and stop.is_set():
            reason = "stopped"
            break
        if step >= config.steps:
            reason = "steps"
            break
        elapsed = time.perf_counter() - t0
        if budget is not None and elapsed >= budget:
            reason = "time"
            break
        progress = step / config.steps
        if budget is not None:
            progress = max(progress, elapsed / budget)
        for group in opt.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(step, progress)
        x = sampler.sample(config.batch_size)
        if config.augment:
            x = augment(x, gen)
        x = _to_memory_format(x, channels_last)
        x_in, mask = make_inputs(x, config, gen, struct_range)
        with autocast(device, amp):
            loss = compute_loss(net, x, x_in, mask, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(loss.detach())
        step += 1
        val_loss = None
        if val_x is not None and (step % config.val_every == 0 or step == config.steps):
            val_loss = validate()
            validated_at = step
            snapshot(val_loss)
        if step % config.log_every == 0 or val_loss is not None:
            yield log(val_loss)
        if live is not None and time.perf_counter() - last_preview >= preview.every_s:
            note = refresh_preview()
            if note is not None:
                yield note
            out = _denoise(net, preview_in, device, amp, channels_last)
            yield TrainPreview(step, _preview_output(out, offsets, scales, preview),
                               preview.region)
            last_preview = time.perf_counter()

    final_val: Optional[float] = None
    if step > 0 and val_x is not None and validated_at != step:
        final_val = validate()  # the final weights compete for "best" too
        snapshot(final_val)
        if not window:  # this step was logged already: complete its record
            history[-1]["val_loss"] = final_val
    if window:
        yield log(final_val)
    if best_state is None:
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    elapsed = time.perf_counter() - t0
    best_val = best_loss if (val_x is not None and math.isfinite(best_loss)) else None
    net.load_state_dict(best_state)
    state = {k: v.detach().to("cpu").contiguous() for k, v in best_state.items()}
    bundle = ModelBundle(
        config=config, axes=axes, spatial_dims=spatial_dims, n_channels=n_channels,
        norm_offset=[float(v) for v in offsets], norm_scale=[float(v) for v in scales],
        state_dict=state, history=history,
        info={
            "stop_reason": reason, "steps": step, "best_step": best_step,
            "best_loss": best_loss if math.isfinite(best_loss) else None,
            "selected_by": "validation loss" if val_x is not None else "training loss",
            "elapsed_s": elapsed, "device": str(device),
            "precision": str(amp).replace("torch.", "") if amp else "fp32",
            "channels_last": channels_last, "seed": seed,
            "data_shapes": [list(np.shape(r)) for r in normed],
            "validation_patches": 0 if val_x is None else len(val_x),
        },
    )
    yield TrainFinished(step, reason, elapsed, best_val)
    if live is not None:
        note = refresh_preview()
        if note is not None:
            yield note
        out = _denoise(net, preview_in, device, amp, channels_last)
        yield TrainPreview(step, _preview_output(out, offsets, scales, preview), preview.region)
    return bundle


def _preview_output(out: np.ndarray, offsets: Sequence[float], scales: Sequence[float],
                    preview: PreviewRequest) -> np.ndarray:
    shape = (1, -1) + (1,) * (out.ndim - 2)
    den = out * np.asarray(scales, np.float32).reshape(shape) + np.asarray(
        offsets, np.float32).reshape(shape)
    return from_canonical(den, preview.axes, np.shape(preview.image))


__all__ = [
    "PreviewRequest", "TrainingDataError", "METHOD_DEFAULTS", "train", "resolve_config",
    "default_config", "prepare_data", "make_inputs", "compute_loss",
]
