"""Self-supervised training: ``train(...)`` yields progress events and returns the model.

The methods are registered in :mod:`napari_selfdenoise.core.methods` (see
``algorithms.md``). The data are normalised once (statistics stored in the model), held
out by region for validation, and kept on the training device, where patches are cut,
augmented and handed to the method's step every step. This module prepares the data and
the network; :mod:`~napari_selfdenoise.core.training_loop` runs the loop, keeps the best
weights, logs, and previews.
"""

from __future__ import annotations

import threading
from typing import Any, Generator, Optional

import numpy as np
import torch

from .axes import AxesError, infer_axes, to_canonical, validate_axes
from .bundle import ModelBundle
from .config import (
    METHOD_DEFAULTS, TrainConfig, default_config, default_patch_size, resolve_config,
)
from .device import (
    execution_record, precision_name, resolve_precision, select_device, use_channels_last,
)
from .events import NOISE_CORRELATION, Message, TrainFinished
from .live_quality import LiveQuality
from .methods import Method, StepContext, get_method
from .methods.pd_option import sampling_patch
from .noise_model import NOISE_PIXELS, NoiseModel, estimate_noise_model
from .normalization import compute_normalization
from .patches import PatchSampler, fit_patch_size, split_validation, tile_patches
from .preload import preload_optimiser
from .training_loop import (
    Checkpoint, LivePreview, Log, Preview, PreviewRequest, Run, TrainingDataError,
    budget_clock, run_loop, to_memory_format,
)
from .validation import UserError, check_array, check_train_args

#: at most this many fixed validation patches (held-out tiles, repeated with different
#: fixed masks when there are fewer tiles)
MAX_VAL_PATCHES = 48


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
        try:  # the one input rule of every entry point (core.validation)
            check_array(arr, name, purpose="train")
        except UserError as exc:
            raise TrainingDataError(str(exc)) from None
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


def pair_data(arrays: list[np.ndarray], targets: list[np.ndarray]) -> list[np.ndarray]:
    """Input and target images side by side on the channel axis, ``(N, 2C, *S)``.

    Patches, flips and validation regions are then cut from both at the same place; the
    method splits the channels again (:meth:`Method.make_batch`).
    """
    if len(targets) != len(arrays):
        raise TrainingDataError(f"{len(arrays)} training image(s) but {len(targets)} target(s)")
    for i, (a, t) in enumerate(zip(arrays, targets), 1):
        if a.shape != t.shape:
            raise TrainingDataError(
                f"image {i} has shape {a.shape[2:]} ({a.shape[0]} sample(s), "
                f"{a.shape[1]} channel(s)) but its target {t.shape[2:]} ({t.shape[0]}, "
                f"{t.shape[1]}); a target must be an acquisition of the same shape")
    return [np.concatenate([a, t], axis=1) for a, t in zip(arrays, targets)]


def _data(method: Method, config: TrainConfig, data: Any, target: Any,
          axes: Optional[str]) -> tuple[list[np.ndarray], Optional[list[np.ndarray]], str]:
    """Training arrays, their targets (methods that need one) and the axes."""
    if method.needs_target and target is None:
        data, target, axes = method.split_pairs(data, target, axes, config)
    elif not method.needs_target and target is not None:
        raise TrainingDataError(f"{method.title} trains without a target image")
    arrays, axes = prepare_data(data, axes)
    targets = None
    if target is not None:
        targets, _ = prepare_data(target, axes)
    return arrays, targets, axes


def _network(method: Method, config: TrainConfig, init: Optional[ModelBundle],
             spatial_dims: int, n_channels: int, seed: int) -> torch.nn.Module:
    if init is not None and (init.spatial_dims, init.n_channels) != (spatial_dims, n_channels):
        raise TrainingDataError(
            f"the model to continue was trained on {init.spatial_dims}D data with "
            f"{init.n_channels} channel(s); this data is {spatial_dims}D with {n_channels}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return method.build_network(config.network, spatial_dims, n_channels, config.params)


def _patch(config: TrainConfig, arrays: list[np.ndarray], axes: str,
           multiple: int) -> tuple[tuple[int, ...], Optional[str]]:
    spatial_dims = arrays[0].ndim - 2
    patch = tuple(config.patch_size or default_patch_size(spatial_dims))
    if len(patch) != spatial_dims:
        raise TrainingDataError(
            f"patch size {patch} has {len(patch)} dims but the data ({axes}) is "
            f"{spatial_dims}D; give {'Z, Y, X' if spatial_dims == 3 else 'Y, X'} sizes"
        )
    return fit_patch_size(patch, [a.shape[2:] for a in arrays], multiple)


def _load_init(net: torch.nn.Module, init: ModelBundle, config: TrainConfig) -> None:
    try:
        net.load_state_dict(init.state_dict)
    except RuntimeError:
        raise TrainingDataError(
            f"cannot continue the {init.config.method} model with method "
            f"{config.method}: the networks differ (N2V2 uses its own U-Net variant)"
        ) from None


def _normalised(arrays: list[np.ndarray], offsets: list, scales: list) -> list[np.ndarray]:
    nd = arrays[0].ndim - 2
    off = np.asarray(offsets, np.float32).reshape((1, -1) + (1,) * nd)
    sc = np.asarray(scales, np.float32).reshape((1, -1) + (1,) * nd)
    return [(a - off) / sc for a in arrays]


def _noise_model(arrays: list[np.ndarray]) -> Generator[Any, None, Optional[NoiseModel]]:
    """The Poisson-Gaussian noise model of the training data (raw units), announced."""
    first = arrays[0]  # (N, C, *S)
    planes = np.moveaxis(first, 1, 0).reshape((first.shape[1], -1) + first.shape[-2:])
    step = max(1, planes.shape[1] * planes[0, 0].size // NOISE_PIXELS)  # bounded cost
    try:
        noise = estimate_noise_model(planes[:, ::step], channel_axis=0)
    except ValueError as exc:
        yield Message(f"noise model not estimated: {exc}", "warning")
        return None
    yield Message(f"noise model (estimated, data units): {noise.describe()}")
    return noise


def _resolve_params(config: TrainConfig, arrays: list[np.ndarray]
                    ) -> Generator[Any, None, TrainConfig]:
    """``config`` with the method's data-dependent choices made (``pd_train = "auto"``:
    the model then stores the factor chosen), announced."""
    params, notes = config.params.resolve(arrays)
    for text, level in notes:
        yield Message(text, level)
    return config.model_copy(update={"params": params})


def _validation_batch(run: Run, val_regions: list, patch: tuple[int, ...]) -> Optional[dict]:
    """The fixed validation batch: held-out tiles, each copy with its own fixed mask."""
    if not val_regions or run.config.val_fraction <= 0:
        return None
    tiles = tile_patches(val_regions, patch, MAX_VAL_PATCHES)
    if not len(tiles):
        return None
    # few held-out tiles (a 512 x 512 image gives 8) mask too few pixels for a steady
    # loss: repeat them, each copy with its own fixed mask, up to the cap; a method
    # drawing nothing at random (bsn, with or without pixel shuffle) gets each tile once
    n_tiles = len(tiles)
    if run.method.validation_draws(run.config):
        tiles = np.concatenate([tiles] * max(1, MAX_VAL_PATCHES // n_tiles))
    val_x = to_memory_format(torch.from_numpy(tiles).to(run.device), run.channels_last)
    val_gen = torch.Generator(device=run.device)
    val_gen.manual_seed(12345)  # fixed masks: comparable across steps and runs
    batch = run.method.validation_batch(val_x, run.config, val_gen,
                                        StepContext(run.struct_range))
    batch["n_tiles"] = n_tiles
    return batch


# ---------------------------------------------------------------------- train
def train(
    data: Any,
    config: TrainConfig,
    *,
    axes: Optional[str] = None,
    stop: Optional[threading.Event] = None,
    preview: Optional[PreviewRequest | LivePreview] = None,
    init: Optional[ModelBundle] = None,
    target: Any = None,
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
    target : array or list of arrays, optional
        Methods that need a target (Noise2Noise): a second, independent noisy
        acquisition of ``data`` (same shapes and axes). Without it such a method makes
        pairs from ``data`` (``config.params.pairs_along``).

    Yields
    ------
    Message, TrainStep, TrainPreview, TrainFinished

    Returns
    -------
    ModelBundle
        The weights with the best validation loss (the final weights when no region
        could be held out), with the logged history and provenance in ``info``. With
        ``config.ema > 0`` they are the weights' moving average (:mod:`.ema`): validation,
        the checkpoint and the preview all see the averaged network.
    """
    check_train_args(data, config)  # paths, dicts: one clear error (core.validation)
    preload_optimiser().join()  # torch's one-time import is not training (core.preload)
    t0 = budget_clock(config)()  # the time budget counts from here
    config = resolve_config(config)
    method = get_method(config.method)
    if init is not None:
        network = init.config.network
        if get_method(init.config.method).n2v2_network:
            network = network.model_copy(update=dict(n2v2=True))
        config = config.model_copy(update={"network": network})
    arrays, targets, axes = _data(method, config, data, target,
                                  axes or config.axes or (init.axes if init else None))
    config = yield from _resolve_params(config, arrays)
    spatial_dims, n_channels = arrays[0].ndim - 2, arrays[0].shape[1]
    if config.masking.struct_axis is not None and spatial_dims != 2:
        raise TrainingDataError("structN2V masks are defined for 2D data only")
    device = select_device(config.device)
    amp = resolve_precision(device, config.precision)
    channels_last = use_channels_last(device, config.channels_last)
    seed = config.seed if config.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    net = _network(method, config, init, spatial_dims, n_channels, seed)
    patch, note = _patch(config, arrays, axes, int(net.size_multiple))
    if note:
        yield Message(note, "warning")
    config = config.model_copy(update={"axes": axes, "patch_size": patch})
    if init is not None:
        _load_init(net, init, config)
        offsets, scales = list(init.norm_offset), list(init.norm_scale)
    else:
        offsets, scales = compute_normalization(arrays, config.normalization)
    noise = yield from _noise_model(arrays)
    if init is None:  # a continued model keeps its own (possibly learned) noise model
        method.prepare_network(net, config, noise, offsets, scales)
    normed = _normalised(arrays, offsets, scales)
    if targets is not None:
        normed = pair_data(normed, _normalised(targets, offsets, scales))
    del arrays, targets
    run = yield from _start(config, method, net, normed, patch, seed, device, amp,
                            channels_last, t0)
    norm_only = ModelBundle(config, axes, spatial_dims, n_channels, offsets, scales, {},
                            info={"noise_model": noise.to_dict() if noise else None})
    return (yield from _finish(run, normed, norm_only, stop, preview))


def _start(config: TrainConfig, method: Method, net: torch.nn.Module, normed: list,
           patch: tuple[int, ...], seed: int, device: torch.device, amp: Any,
           channels_last: bool, t0: float) -> Generator[Any, None, Run]:
    """Validation split, device placement, patch sampler and the validation batch."""
    train_regions, val_regions = split_validation(normed, patch[-2], config.val_fraction)
    # pixel shuffle: patches pd_train times larger, so each sub-image is a patch
    multiple = int(net.size_multiple)
    cut = sampling_patch(config.params, patch, [r.shape[2:] for r in train_regions], multiple)
    val_cut = sampling_patch(config.params, patch, [r.shape[2:] for r in val_regions],
                             multiple) if val_regions else patch
    if cut != patch:
        yield Message(f"pixel shuffle: training patches of {cut} (validation {val_cut}), "
                      f"a step keeps {config.batch_size} patches' worth of sub-images")
    sample = np.concatenate([r.reshape(-1)[:: max(1, r.size // 100_000)] for r in train_regions])
    struct_range = tuple(float(v) for v in np.percentile(sample, [1, 99]))
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last if len(patch) == 2
               else torch.channels_last_3d)
    net.train()
    sampler = PatchSampler([torch.from_numpy(np.ascontiguousarray(r)).to(device)
                            for r in train_regions], cut, seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    run = Run(config, method, net, sampler, gen, device, amp, channels_last, struct_range,
              seed=seed, t0=t0)
    run.val_batch = _validation_batch(run, val_regions, val_cut)
    if run.val_batch is not None:
        run.quality = LiveQuality.from_regions(train_regions, val_regions, device, amp,
                                               paired=method.needs_target)
        if run.quality is not None and run.quality.warning:
            yield Message(run.quality.warning, "warning", topic=NOISE_CORRELATION)
    if run.val_batch is None:
        yield Message(
            "the images are too small to hold out a validation region; the final weights "
            "are kept", "warning"
        )
    else:
        n_tiles = run.val_batch.pop("n_tiles")
        yield Message(f"validation: {n_tiles} tiles of a held-out band of each image, "
                      f"{method.validation_note(config, run.n_val, n_tiles)}")
    return run


def _finish(run: Run, normed: list, norm_only: ModelBundle, stop: Optional[threading.Event],
            preview: Optional[PreviewRequest | LivePreview]) -> Generator[Any, None, ModelBundle]:
    """Run the loop and package the best weights as a :class:`ModelBundle`."""
    live = preview if isinstance(preview, LivePreview) else (
        LivePreview(preview) if preview is not None else None)
    viewer = Preview(live, norm_only) if live is not None else None
    if viewer is not None:
        viewer.refresh()
    checkpoint = Checkpoint()
    log = Log(run, checkpoint)
    step, reason = yield from run_loop(run, stop, viewer, checkpoint, log)
    state = checkpoint.final(run.net, run.eval_net)
    elapsed = run.now() - run.t0
    has_val = run.val_batch is not None
    if not has_val:
        checkpoint.step = step  # the final weights
    best_loss = checkpoint.loss
    best_val = best_loss if (has_val and np.isfinite(best_loss)) else None
    bundle = ModelBundle(
        config=norm_only.config, axes=norm_only.axes, spatial_dims=norm_only.spatial_dims,
        n_channels=norm_only.n_channels, norm_offset=[float(v) for v in norm_only.norm_offset],
        norm_scale=[float(v) for v in norm_only.norm_scale], state_dict=state,
        history=log.history,
        info={
            "stop_reason": reason, "steps": step, "best_step": checkpoint.step,
            "best_loss": best_loss if np.isfinite(best_loss) else None,
            "selected_by": "validation loss" if has_val else "final weights",
            "elapsed_s": elapsed, "device": str(run.device),
            "precision": precision_name(run.amp), "channels_last": run.channels_last,
            "execution": execution_record(run.device, run.amp, run.channels_last),
            "seed": run.seed,
            "data_shapes": [list(np.shape(r)) for r in normed],
            "validation_patches": run.n_val,
            "estimated_quality": run.quality.info() if run.quality is not None else None,
            **norm_only.info,
        },
    )
    yield TrainFinished(step, reason, elapsed, best_val)
    if viewer is not None:  # the kept weights, now in run.net
        yield from viewer.events(run, step, run.net)
    return bundle


__all__ = [
    "PreviewRequest", "LivePreview", "TrainingDataError", "METHOD_DEFAULTS", "train",
    "resolve_config", "default_config", "prepare_data", "pair_data",
]
