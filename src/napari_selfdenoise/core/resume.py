"""What a resumable output belongs to: its input, identified by path, size, modification
time and a fingerprint of sampled blocks, stored in the output's progress record.

A rerun continues an interrupted output only when its input is the same; otherwise it is
refused (an output mixing two images is worse than no output).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .validation import UserError

#: blocks hashed for the fingerprint, and their side along Y and X
N_SAMPLES = 12
BLOCK = 32


class ResumeMismatchError(UserError):
    """An existing resumable output belongs to another input."""


def _sample_index(shape: tuple[int, ...], k: int) -> tuple[slice, ...]:
    index = []
    for d, n in enumerate(shape):
        side = min(n, BLOCK) if d >= len(shape) - 2 else 1
        span = max(1, n - side + 1)
        # spread the samples: the first and last corners, then a low-discrepancy walk
        start = 0 if k == 0 else (span - 1 if k == 1 else (k * 2654435761 * (d + 3)) % span)
        index.append(slice(start, start + side))
    return tuple(index)


def fingerprint(data: Any) -> str:
    """SHA-256 (hex, 32 chars) of the shape, dtype and :data:`N_SAMPLES` sampled blocks."""
    shape = tuple(int(s) for s in data.shape)
    h = hashlib.sha256(repr((shape, str(np.dtype(data.dtype)))).encode())
    for k in range(N_SAMPLES):
        block = np.ascontiguousarray(np.asarray(data[_sample_index(shape, k)]))
        h.update(block.tobytes())
    return h.hexdigest()[:32]


def _store_stat(path: Path) -> tuple[Optional[int], Optional[int]]:
    """(size, mtime_ns) of a file, or of a zarr store's array metadata file."""
    if path.is_dir():
        for name in ("zarr.json", ".zarray", ".zgroup"):
            meta = path / name
            if meta.exists():
                st = meta.stat()
                return st.st_size, st.st_mtime_ns
        return None, path.stat().st_mtime_ns
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def input_identity(data: Any, path: Optional[Any] = None) -> dict:
    """The record identifying an input: fingerprint, and path / size / mtime for files."""
    record: dict = {"shape": [int(s) for s in data.shape], "dtype": str(np.dtype(data.dtype)),
                    "fingerprint": fingerprint(data)}
    if path is not None:
        p = Path(path).resolve()
        size, mtime = _store_stat(p)
        record.update(path=str(p), size=size, mtime_ns=mtime)
    return record


def _describe(rec: dict) -> str:
    where = rec.get("path") or "an in-memory array"
    return f"{where} (shape {tuple(rec.get('shape', ()))}, {rec.get('dtype')})"


def check_same_input(recorded: Optional[dict], current: dict, output: Any) -> None:
    """Refuse to resume ``output`` when ``recorded`` (its input) differs from ``current``.

    Raises
    ------
    ResumeMismatchError
        Naming both inputs and what differs; ``--overwrite`` starts the output afresh.
    """
    if not isinstance(recorded, dict):
        raise ResumeMismatchError(
            f"{output} is an unfinished prediction that does not record its input (written by "
            "an older version); pass --overwrite (overwrite=True) to start it afresh")
    keys = ["shape", "dtype", "fingerprint"]
    if recorded.get("path") is not None and current.get("path") is not None:
        keys += ["path", "size", "mtime_ns"]
    changed = [k for k in keys if recorded.get(k) != current.get(k)]
    if changed:
        what = {"fingerprint": "content", "mtime_ns": "modification time"}
        raise ResumeMismatchError(
            f"{output} belongs to another input: it was started from {_describe(recorded)}, "
            f"this input is {_describe(current)} (different "
            f"{', '.join(what.get(k, k) for k in changed)}); pass --overwrite "
            "(overwrite=True) to replace it, or give another output")


def source_path(data: Any) -> Optional[str]:
    """The file behind a path or a memory-mapped array, when there is one."""
    if isinstance(data, (str, os.PathLike)):
        return str(data)
    name = getattr(data, "filename", None)  # numpy.memmap
    if isinstance(name, (str, os.PathLike)):
        return str(name)
    root = getattr(getattr(data, "store", None), "root", None)  # zarr.Array on a LocalStore
    if isinstance(root, (str, os.PathLike)):
        return str(Path(root) / getattr(data, "path", "")) if getattr(data, "path", "") \
            else str(root)
    return None
