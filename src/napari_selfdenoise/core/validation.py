"""One validation layer for every entry point (CLI, widgets, batch runs, API, reader).

Inputs (type, dtype, range, shape and axes), embedded JSON documents (bounded size and
nesting), settings (strict types: ``"steps": true`` is not 1), model headers (schema,
finiteness, axes / channels / dims consistency) and the one-line messages users see for
the errors they can fix. Output checks live in :mod:`.outputs`.
"""

from __future__ import annotations

import errno
import json
import math
import os
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .axes import AxesError, infer_axes, spatial_axes, validate_axes

#: integers beyond this lose precision in float32 (the engine's working type)
FLOAT32_EXACT = 2**24
#: embedded JSON documents (presets, model headers, file documents) nest at most this deep
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 128 * 1024**2


class UserError(ValueError):
    """An error the user caused and can fix: printed as one line, exit code 2."""


# -------------------------------------------------------------------------- messages
_USER_OS_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT,
                   errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.ENOENT,
                   errno.EEXIST, errno.EFBIG}


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one a user causes and can fix (else: a programming error)."""
    if isinstance(exc, (ValueError, MemoryError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _USER_OS_ERRNOS or isinstance(
        exc, (FileNotFoundError, FileExistsError, PermissionError))


def user_message(exc: BaseException) -> str:
    """One line naming the file / field and what to do, for any user error."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        text = "invalid settings: " + describe_validation(exc)
    elif isinstance(exc, OSError) and exc.errno is not None and not isinstance(
            exc, (FileNotFoundError, FileExistsError)) or type(exc) is OSError:
        text = _os_message(exc)
    elif isinstance(exc, MemoryError):
        text = f"not enough memory ({exc or 'allocation failed'}); use a smaller input, " \
               "crop, or smaller tiles"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _os_message(exc: OSError) -> str:
    where = exc.filename or "the output"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"no space left on the device while writing {where}; free some space or " \
               "write the output elsewhere (nothing was replaced)"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where}: {exc.strerror or exc}; choose a writable folder"
    return f"{where}: {exc.strerror or exc}"


def describe_validation(exc: Any) -> str:
    """A pydantic ``ValidationError`` as ``field: problem (got value)``, ``;``-separated."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "(settings)"
        value = err.get("input")
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        if err.get("type") == "extra_forbidden":
            parts.append(f"{field}: unknown setting")
        else:
            parts.append(f"{field}: {err.get('msg')} (got {shown})")
    return "; ".join(parts)


# ---------------------------------------------------------------------------- JSON
def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (stops counting past ``limit``)."""
    depth, level = 0, [value]
    while level and depth <= limit:
        nxt: list = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        if not nxt:
            return depth
        depth += 1
        level = nxt
    return depth


def load_json(text: str | bytes, source: str, *, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from an untrusted file with bounded size and nesting.

    Raises
    ------
    UserError
        Naming ``source``: too large, too deeply nested or not valid JSON.
    """
    if len(text) > max_bytes:
        raise UserError(f"{source}: JSON document of {len(text)} bytes exceeds the "
                        f"{max_bytes} byte limit")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{source}: JSON document nested too deeply (limit "
                        f"{max_depth} levels)") from None
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{source} is not valid JSON: {exc}") from None
    if json_depth(value, max_depth) > max_depth:
        raise UserError(f"{source}: JSON document nested too deeply (limit {max_depth} levels)")
    return value


def strict_settings(cls: Any, raw: Any, source: str) -> Any:
    """Validate ``raw`` (parsed JSON) into the pydantic model ``cls`` with strict types.

    JSON ``true`` is not the number 1, ``"3"`` is not 3; lists are accepted for tuples.
    """
    from pydantic import ValidationError

    if not isinstance(raw, dict):
        raise UserError(f"{source}: settings must be a JSON object, got {type(raw).__name__}")
    try:
        return cls.model_validate_json(json.dumps(raw, allow_nan=True), strict=True)
    except ValidationError as exc:
        raise UserError(f"{source} has invalid settings: {describe_validation(exc)}") from None


# ---------------------------------------------------------------------------- inputs
def check_array(data: Any, name: str, *, purpose: str = "denoise") -> None:
    """Refuse data no entry point can use correctly.

    Empty arrays, non-numeric, boolean and complex dtypes, and integers beyond 2^24 (which
    float32, the working type, cannot hold exactly) are refused with a message naming
    ``name`` and what to do. Reads integer data of 4+ bytes block by block for its range.
    """
    if isinstance(data, (str, os.PathLike, dict)):
        raise UserError(f"{name}: expected an image array, got {type(data).__name__} "
                        f"{str(data)[:60]!r}; open files with core.io.open_image first")
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        raise UserError(f"{name}: expected an image array (numpy, dask or zarr), "
                        f"got {type(data).__name__}")
    shape = tuple(int(s) for s in data.shape)
    dtype = np.dtype(data.dtype)
    if math.prod(shape) == 0 or len(shape) < 2:
        raise UserError(f"{name} is empty or not an image (shape {shape}); give at least a "
                        "2D image")
    if dtype.kind == "b":
        raise UserError(f"{name} is a boolean mask ({dtype}), not an image; convert it "
                        "to numbers first if you really mean to denoise it")
    if dtype.kind == "c":
        raise UserError(f"{name} is complex ({dtype}); denoise its magnitude, or its real "
                        "and imaginary parts as two channels (axes with C)")
    if dtype.kind not in "uif":
        raise UserError(f"{name} has data type {dtype}; expected integer or float numbers")
    if dtype.kind in "ui" and dtype.itemsize >= 4:
        lo, hi = value_range(data)
        peak = max(abs(lo), abs(hi))
        if peak > FLOAT32_EXACT:
            raise UserError(
                f"{name} ({dtype}) holds values up to {peak}, beyond 2^24 = {FLOAT32_EXACT} "
                f"where float32 (used to {purpose}) cannot represent every integer; subtract "
                "the offset or divide the data (e.g. by 256), or convert it to float yourself")


def count_nonfinite(data: Any, max_block: int = 16 * 1024**2) -> int:
    """NaN and infinite values in float data, read one block of leading-dim slices at a
    time (0 for integer data)."""
    if np.dtype(data.dtype).kind != "f":
        return 0
    shape = tuple(int(s) for s in data.shape)
    step = max(1, max_block // max(1, math.prod(shape[1:])))
    return sum(int(np.size(b) - np.count_nonzero(np.isfinite(b)))
               for b in (np.asarray(data[i : i + step]) for i in range(0, shape[0], step)))


def value_range(data: Any, max_block: int = 16 * 1024**2) -> tuple[int, int]:
    """``(min, max)`` of integer data, read one block of leading-dim slices at a time."""
    shape = tuple(int(s) for s in data.shape)
    plane = max(1, math.prod(shape[1:]))
    step = max(1, max_block // plane)
    lo, hi = None, None
    for i in range(0, shape[0], step):
        block = np.asarray(data[i : i + step])
        bl, bh = int(block.min()), int(block.max())
        lo = bl if lo is None else min(lo, bl)
        hi = bh if hi is None else max(hi, bh)
    return int(lo or 0), int(hi or 0)


def resolve_axes(shape: Sequence[int], axes: Optional[str] = None, *,
                 file_axes: Optional[str] = None, model_axes: Optional[str] = None,
                 name: str = "the image") -> str:
    """The axes every entry point uses: given > file metadata > model (same rank) > guess.

    The guess (:func:`~.axes.infer_axes`) refuses RGB-looking shapes everywhere: pass the
    axes explicitly (e.g. ``YXC``) for them.
    """
    shape = tuple(int(s) for s in shape)
    try:
        if axes:
            return validate_axes(axes, shape)
        if file_axes and len(file_axes) == len(shape):
            return validate_axes(file_axes, shape)
        if model_axes and len(model_axes) == len(shape):
            return validate_axes(model_axes, shape)
        return validate_axes(infer_axes(shape), shape)
    except AxesError as exc:
        raise AxesError(f"{name}: {exc}") from None


# ---------------------------------------------------------------------------- models
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_model_header(header: Any, source: str, max_version: int) -> None:
    """Schema, types and consistency of a model file's JSON header.

    Raises
    ------
    UserError
        Naming ``source`` and the field: a missing or mistyped field, a format version
        that is not a positive integer, invalid axes, axes / spatial_dims / channel
        disagreement, non-finite normalisation or a scale that is not positive.
    """
    if not isinstance(header, dict):
        raise UserError(f"{source}: the model header must be a JSON object")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"{source}: field 'format_version' must be a positive integer, got "
                        f"{version!r}; the file is corrupt or was not written by this plugin")
    if version > max_version:
        raise UserError(f"{source} was written by a newer napari-selfdenoise (format "
                        f"{version}, this version reads {max_version}); upgrade the plugin")
    for key, kind in (("config", dict), ("axes", str), ("spatial_dims", int),
                      ("n_channels", int), ("norm_offset", list), ("norm_scale", list)):
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UserError(f"{source}: field {key!r} must be a {kind.__name__}, got "
                            f"{type(value).__name__}; the model file is corrupt")
    try:
        axes = validate_axes(header["axes"])
    except AxesError as exc:
        raise UserError(f"{source}: field 'axes' is invalid ({exc}); the model file is "
                        "corrupt") from None
    dims, n_c = header["spatial_dims"], header["n_channels"]
    if dims not in (2, 3) or dims != len(spatial_axes(axes)):
        raise UserError(f"{source}: field 'spatial_dims' is {dims} but the axes are "
                        f"{axes!r}; the model file is corrupt")
    if not 1 <= n_c <= 4096:
        raise UserError(f"{source}: field 'n_channels' must be a positive count, got {n_c}")
    for key in ("norm_offset", "norm_scale"):
        values = header[key]
        if len(values) != n_c or not all(_number(v) and math.isfinite(v) for v in values):
            raise UserError(f"{source}: field {key!r} must hold {n_c} finite number(s), got "
                            f"{values[:8]!r}; the model cannot be used")
    if not all(v > 0 for v in header["norm_scale"]):
        raise UserError(f"{source}: field 'norm_scale' must be positive, got "
                        f"{header['norm_scale'][:8]!r}; the model cannot be used")
    for key in ("history", "info"):
        if key in header and not isinstance(header[key], (list if key == "history" else dict)):
            raise UserError(f"{source}: field {key!r} has the wrong type "
                            f"({type(header[key]).__name__})")


def check_weights(tensors: dict, source: str) -> None:
    """Refuse weights holding NaN or infinite values."""
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise UserError(f"{source}: weight {key!r} holds NaN or infinite values; the "
                            "model is broken (retrain it)")


def check_paths_exist(paths: Iterable[Any], what: str = "input") -> None:
    """Raise ``FileNotFoundError`` naming the first missing path."""
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"{what} {p} does not exist")


# ------------------------------------------------------------------ non-finite policy
def fill_nonfinite(x: np.ndarray, value: float = 0.0) -> Optional[np.ndarray]:
    """Replace NaN / Inf in normalised network input ``x`` by ``value``, in place.

    The prediction policy: the network sees the filled value (0 is the data's mean after
    ``meanstd`` normalisation) and the caller puts NaN back at the returned mask in the
    output, so one NaN pixel never spreads over its neighbours.

    Returns
    -------
    numpy.ndarray of bool or None
        Where ``x`` was not finite; None when every value is finite.
    """
    bad = ~np.isfinite(x)
    if not bad.any():
        return None
    x[bad] = value
    return bad


def check_train_args(data: Any, config: Any) -> None:
    """``train()``'s arguments: arrays (not paths or dicts) and a ``TrainConfig``."""
    from .config import TrainConfig

    items = list(data) if isinstance(data, (list, tuple)) else [data]
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike, dict, bytes)):
            raise UserError(
                f"train(): data item {i + 1} is a {type(item).__name__} ({str(item)[:60]!r}), "
                "not an image array; open files with core.io.open_image(path)[0] first")
    if not isinstance(config, TrainConfig):
        raise UserError(f"train(): config must be a TrainConfig, got {type(config).__name__}; "
                        "build one with TrainConfig(**settings) or config.default_config()")
    # the data is loaded as float32, plus a normalised copy and patches
    total = sum(3 * 4 * math.prod(int(s) for s in getattr(a, "shape", ())) for a in items)
    check_fits_in_memory(total, "training on these images",
                         "crop them or train on fewer / smaller images")


#: largest window radius (pixels) of the windowed classical denoisers, per spatial rank:
#: their cost grows with the window's area / volume
MAX_RADIUS = {2: 50, 3: 16}


def check_parameter_values(den: Any, values: Sequence[float], spatial: Sequence[int]) -> None:
    """Refuse denoiser parameters the image cannot use, before anything is allocated.

    A window (radius, or 4 sigma for the Gaussian) is at most the largest spatial side of
    the calibration crop (beyond it, nothing changes but the cost), and a radius is at
    most :data:`MAX_RADIUS`.
    """
    nd = len(spatial)
    fit = max(int(s) for s in spatial)
    limit = min(fit, MAX_RADIUS[nd]) if den.integer else fit
    for v in values:
        if not (math.isfinite(v) and v > 0):
            raise UserError(f"{den.name}: {den.parameter} values must be positive finite "
                            f"numbers, got {v:g}")
        halo = den.halo(v, nd)
        if halo > limit:
            top = limit if den.integer else limit / 4.0
            raise UserError(
                f"{den.name}: {den.parameter} {v:g} is more than a {tuple(spatial)} "
                f"calibration crop can use (at most {top:g}); give smaller --values")


def check_fits_in_memory(nbytes: int, what: str, hint: str) -> None:
    """Refuse, before allocating, work needing more than 80 % of the available memory."""
    import psutil

    available = psutil.virtual_memory().available
    if nbytes > 0.8 * available:
        raise UserError(f"{what} needs about {nbytes / 1e9:.1f} GB of memory but only "
                        f"{available / 1e9:.1f} GB are available; {hint}")
