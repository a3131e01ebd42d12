"""Atomic zarr / BigTIFF output: whole-file writes that never leave a half-written file.

:func:`write_zarr_atomic` and :func:`write_tiff_atomic` write to a temporary sibling and
rename it onto the destination; :func:`temporary_sibling` is that pattern for any writer
(model files, bioimage.io packages). Re-exported by :mod:`~napari_selfdenoise.core.io`,
the import path the rest of the package uses (``io.write_tiff_atomic``...).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is False."""
    from .outputs import OutputError

    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
    if p.is_dir() and not any((p / n).exists() for n in ("zarr.json", ".zarray", ".zgroup")):
        raise OutputError(f"{p} is a folder that is not a zarr store; it is never replaced: "
                          "choose another output")
    return p


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path`` (file or directory), removing what was there."""
    if path.is_dir() and not path.is_symlink():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def iter_blocks(shape: tuple[int, ...], block: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """Slices of a regular grid of ``block``-shaped pieces covering ``shape`` (C order)."""
    counts = [max(1, -(-s // b)) for s, b in zip(shape, block)]
    for idx in np.ndindex(*counts):
        yield tuple(slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(idx, block, shape))


def write_zarr_atomic(
    path: str | os.PathLike,
    data: Any,
    *,
    attrs: Optional[dict] = None,
    chunks: Optional[tuple[int, ...]] = None,
    dimension_names: Optional[str] = None,
    overwrite: bool = False,
    max_block_bytes: int = 64 * 1024**2,
) -> Path:
    """Write ``data`` (numpy, dask or zarr) to a zarr v3 array store, block by block.

    Written to a temporary sibling then renamed, so a failure never leaves a half store at
    ``path``. Only one block (at most ``max_block_bytes``) is in memory at a time.
    """
    import zarr

    path = check_output_path(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(s) for s in data.shape)
    dtype = np.dtype(data.dtype)
    if chunks is None:
        chunks = _default_chunks(shape, dtype)
    tmp = path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        out = zarr.create_array(
            str(tmp), shape=shape, dtype=dtype, chunks=chunks, attributes=attrs or {},
            dimension_names=tuple(dimension_names) if dimension_names else None,
        )
        block = _block_shape(shape, chunks, dtype.itemsize, max_block_bytes)
        for sl in iter_blocks(shape, block):
            out[sl] = np.asarray(data[sl])
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _default_chunks(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    chunks = [1] * len(shape)
    chunks[-1] = min(shape[-1], 1024)
    if len(shape) > 1:
        chunks[-2] = min(shape[-2], 1024)
    return tuple(max(1, c) for c in chunks)


def _block_shape(
    shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, max_bytes: int
) -> tuple[int, ...]:
    """Grow whole chunks along leading dims while the block stays under ``max_bytes``."""
    block = list(chunks)
    for d in range(len(shape)):
        while block[d] < shape[d]:
            trial = block.copy()
            trial[d] = min(shape[d], block[d] + chunks[d])
            if int(np.prod(trial)) * itemsize > max_bytes:
                return tuple(block)
            block = trial
    return tuple(block)


def write_tiff_atomic(
    path: str | os.PathLike,
    data: Any,
    *,
    axes: Optional[str] = None,
    document: Optional[dict] = None,
    resolution: Optional[tuple[float, float]] = None,
    overwrite: bool = False,
    rgb: bool = False,
) -> Path:
    """Write ``data`` (numpy, dask or zarr; Y and X last) as a BigTIFF, page by page.

    Reads one YX plane of ``data`` at a time; ``document`` goes into
    :data:`~napari_selfdenoise.core.io.TIFF_TAG`.
    Written to a temporary sibling and renamed. ``rgb``: ``data`` is ``(Y, X, 3 or 4)``
    colour samples, written as one RGB(A) page.
    """
    import tifffile

    from .io import TIFF_TAG

    path = check_output_path(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(s) for s in data.shape)
    if len(shape) < 2:
        raise ValueError(f"a TIFF needs at least 2 dimensions, got shape {shape}")
    extratags = []
    if document is not None:
        payload = json.dumps(document).encode("utf-8")
        extratags.append((TIFF_TAG, 7, len(payload), payload, True))
    metadata = {"axes": axes} if axes else {}

    def pages() -> Iterator[np.ndarray]:
        for idx in np.ndindex(*shape[:-2]) if len(shape) > 2 else [()]:
            yield np.asarray(data[idx], dtype=data.dtype)

    with temporary_sibling(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
            if rgb:
                tif.write(np.asarray(data), photometric="rgb", metadata=metadata,
                          extratags=extratags, resolution=resolution)
                return path
            tif.write(
                pages(), shape=shape, dtype=np.dtype(data.dtype), metadata=metadata,
                extratags=extratags, resolution=resolution, photometric="minisblack",
                planarconfig=None, contiguous=False,
            )
    return path


@contextlib.contextmanager
def temporary_sibling(path: Path) -> Iterator[str]:
    """A temporary file beside ``path``, renamed onto it on success, removed on failure."""
    from .outputs import apply_umask

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    apply_umask(tmp)  # mkstemp creates 0600: give the file the mode open() would
    ok = False
    try:
        yield tmp
        os.replace(tmp, path)
        ok = True
    except OSError as exc:
        from .outputs import disk_full_error

        full = disk_full_error(exc, path)
        if full is not None:
            raise full from None
        raise
    finally:
        if not ok and os.path.exists(tmp):
            os.unlink(tmp)
