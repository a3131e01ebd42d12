"""Axes strings: validation, inference from shapes, and the canonical layout.

An axes string names each array dimension with one letter of ``STCZYX``:
``S`` sample, ``T`` time, ``C`` channel, ``Z``/``Y``/``X`` space. ``S`` and ``T`` are
both treated as independent samples. The canonical layout used inside the engine is
``(N, C, [Z], Y, X)`` where ``N`` merges ``S`` and ``T``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

AXES_LETTERS = "STCZYX"
CANONICAL_ORDER = "STCZYX"


class AxesError(ValueError):
    """The axes string does not fit the data or is malformed."""


def validate_axes(axes: str, shape: Sequence[int] | None = None) -> str:
    """Check an axes string (and optionally that it fits ``shape``).

    Parameters
    ----------
    axes : str
        Letters from ``STCZYX``, each at most once, with ``Y`` and ``X``.
    shape : sequence of int, optional
        The data shape the axes must describe.

    Returns
    -------
    str
        The upper-cased axes string.
    """
    if not isinstance(axes, str) or not axes:
        raise AxesError(f"axes must be a non-empty string such as 'YX' or 'TZYX', got {axes!r}")
    axes = axes.upper()
    bad = sorted(set(axes) - set(AXES_LETTERS))
    if bad:
        raise AxesError(f"axes {axes!r} contains unknown letters {bad}; use letters from STCZYX")
    dup = sorted({a for a in axes if axes.count(a) > 1})
    if dup:
        raise AxesError(f"axes {axes!r} repeats {dup}; each letter may appear once")
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"axes {axes!r} must contain both Y and X")
    if shape is not None and len(shape) != len(axes):
        raise AxesError(
            f"axes {axes!r} name {len(axes)} dimensions but the data has {len(shape)} "
            f"(shape {tuple(shape)}); give one letter per dimension, e.g. "
            f"{infer_axes(shape, allow_rgb=True)!r}"
        )
    return axes


def infer_axes(shape: Sequence[int], *, allow_rgb: bool = False) -> str:
    """Guess an axes string for ``shape``.

    2D -> ``YX``; 3D -> ``CYX`` when the first dimension is at most 4 long, else ``TYX``
    (a 2D model over planes, the safe default for time-lapses and thin stacks: pass
    ``ZYX`` to train a 3D model); 4D -> ``CZYX`` / ``TZYX``; 5D -> ``TCZYX``.
    A trailing dimension of 3 or 4 on a 3D array looks like RGB(A) and raises unless
    ``allow_rgb``.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    if nd == 2:
        return "YX"
    if nd == 3:
        if shape[-1] in (3, 4) and shape[0] > 4 and shape[1] > 4:
            if not allow_rgb:
                raise AxesError(
                    f"shape {shape} looks like an RGB(A) image; RGB is not a fluorescence "
                    "channel layout. Convert it to grayscale or split the channels, or pass "
                    "axes='YXC' explicitly if these really are independent channels"
                )
            return "YXC"
        return "CYX" if shape[0] <= 4 else "TYX"
    if nd == 4:
        return "CZYX" if shape[0] <= 4 else "TZYX"
    if nd == 5:
        return "TCZYX"
    if nd == 6:
        return "STCZYX"
    raise AxesError(f"cannot infer axes for a {nd}-dimensional array of shape {shape}")


def spatial_axes(axes: str) -> str:
    """The spatial letters of ``axes`` in canonical order (``ZYX`` or ``YX``)."""
    return "".join(a for a in "ZYX" if a in axes.upper())


def canonical_permutation(axes: str) -> tuple[int, ...]:
    """Permutation that reorders ``axes`` into canonical ``STCZYX`` order."""
    axes = axes.upper()
    return tuple(axes.index(a) for a in CANONICAL_ORDER if a in axes)


def to_canonical(array: Any, axes: str) -> np.ndarray:
    """Return ``array`` as a numpy array shaped ``(N, C, [Z], Y, X)``.

    ``S`` and ``T`` merge into ``N`` (missing ones give ``N = 1``); a missing ``C`` gives
    ``C = 1``. The input is never modified (a copy or a read-only view is returned).
    """
    axes = validate_axes(axes, np.shape(array))
    arr = np.asarray(array)
    arr = np.transpose(arr, canonical_permutation(axes))
    ordered = "".join(a for a in CANONICAL_ORDER if a in axes)
    shape = arr.shape
    n = 1
    for a, s in zip(ordered, shape):
        if a in "ST":
            n *= s
    c = shape[ordered.index("C")] if "C" in ordered else 1
    spatial = tuple(s for a, s in zip(ordered, shape) if a in "ZYX")
    return arr.reshape((n, c) + spatial)


def from_canonical(array: np.ndarray, axes: str, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`to_canonical`: back to ``axes`` order with the original ``shape``."""
    axes = validate_axes(axes, shape)
    ordered = "".join(a for a in CANONICAL_ORDER if a in axes)
    perm = canonical_permutation(axes)
    ordered_shape = tuple(shape[i] for i in perm)
    arr = np.asarray(array).reshape(ordered_shape)
    inverse = np.argsort(perm)
    del ordered
    return np.transpose(arr, inverse)
