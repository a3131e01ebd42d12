"""OME-Zarr stores we write: creation (levels and NGFF metadata), the pyramid built chunk
by chunk (:class:`Pyramid`), the ``omero`` block, and :func:`write_ome_zarr` for whole
images (the napari writer, ``run --ome-zarr``). The prediction's sink is
:class:`~napari_selfdenoise.core.inference.sinks.ome_zarr.OmeZarrSink`.

Store layout (NGFF 0.5 = zarr v3, or 0.4 = zarr v2)::

    out.ome.zarr/         group: NGFF "multiscales" (+ "omero" when complete), our
                          document (io.DOC_KEY) and, for predictions, the resume record
    out.ome.zarr/0        full resolution (a prediction's: chunked like the tiles)
    out.ome.zarr/1 ...    each level a 2x mean of the one above (core.ome_zarr)

When every level-``L-1`` chunk under a level-``L`` chunk is done, that chunk is computed
from them (:class:`Pyramid`): at most ``2 ** halved axes`` chunks are read at a time,
whatever the image size.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import io
from . import ome_zarr as ome

#: the pyramid's downsampling, recorded in the multiscales metadata
METHOD = "napari_selfdenoise.core.ome_zarr.downsample_mean"


class Pyramid:
    """Lower levels of a multiscale image, each chunk computed once all of its source
    chunks in the level above are done.

    ``done[L]`` is a boolean grid of level ``L``'s chunks (array axis order).
    ``peak_voxels`` is the largest region read at once (bounded by ``2 ** d`` chunks).
    """

    def __init__(self, arrays: list, levels: list[ome.Level], chunks: tuple[int, ...],
                 done: list[np.ndarray]) -> None:
        self.arrays, self.levels, self.chunks, self.done = arrays, levels, chunks, done
        self.peak_voxels = 0
        self.computed = 0

    @staticmethod
    def grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(shape, chunks))

    def update(self, level0: np.ndarray) -> None:
        """Compute every chunk that ``level0`` (done grid of level 0) now allows."""
        above = level0
        for lev, (level, done) in enumerate(zip(self.levels[1:], self.done), start=1):
            todo = ome.all_children_done(above, level.factors) & ~done
            for idx in zip(*np.nonzero(todo)):
                self._compute(lev, tuple(int(i) for i in idx))
                done[idx] = True
            above = done

    def _compute(self, lev: int, idx: tuple[int, ...]) -> None:
        level, src_shape = self.levels[lev], self.levels[lev - 1].shape
        dst, src = [], []
        for k, c, f, n, m in zip(idx, self.chunks, level.factors, level.shape, src_shape):
            dst.append(slice(k * c, min((k + 1) * c, n)))
            src.append(slice(k * c * f, min((k + 1) * c * f, m)))
        block = np.asarray(self.arrays[lev - 1][tuple(src)])
        self.peak_voxels = max(self.peak_voxels, block.size)
        self.arrays[lev][tuple(dst)] = ome.downsample_mean(block, level.factors)
        self.computed += 1

    @property
    def complete(self) -> bool:
        return all(d.all() for d in self.done)


def create_store(path: Path, version: str, axes: str, levels: list[ome.Level],
                 chunks: tuple[int, ...], meta: ome.ImageMetadata, name: str) -> Any:
    """A new OME-Zarr group at ``path``: one NaN-filled float32 array per level (chunked
    ``chunks``) and the multiscales metadata."""
    ome.require_ome_zarr()
    import zarr
    from ome_zarr.format import FormatV04, FormatV05

    fmt = FormatV05() if version == "0.5" else FormatV04()
    path.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    names = tuple(a.lower() for a in axes)
    for i, level in enumerate(levels):
        kw: dict = {"chunk_key_encoding": fmt.chunk_key_encoding}
        if fmt.zarr_format == 3:
            kw["dimension_names"] = names
        group.create_array(
            str(i), shape=level.shape, dtype="float32", fill_value=float("nan"),
            chunks=tuple(min(c, s) for c, s in zip(chunks, level.shape)), **kw)
    ome.write_multiscales(group, version, axes, levels, meta, meta.name or name, METHOD)
    return group


def write_omero(group: Any, version: str, axes: str, low: Any, chunks: tuple[int, ...],
                channel_names: Any) -> None:
    """The ``omero`` block: channel labels, display windows from the min / max of the
    coarsest level ``low`` (read one chunk at a time)."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import add_metadata

    c_axis = axes.index("C") if "C" in axes else None
    n_c = low.shape[c_axis] if c_axis is not None else 1
    lo, hi = np.full(n_c, np.inf), np.full(n_c, -np.inf)
    for region in io.iter_blocks(low.shape, chunks):
        block = np.asarray(low[region])
        block = np.moveaxis(block, c_axis, 0) if c_axis is not None else block[None]
        for i, ch in enumerate(block):
            finite = ch[np.isfinite(ch)]
            if finite.size:
                lo[i], hi[i] = min(lo[i], finite.min()), max(hi[i], finite.max())
    windows = [(a, b) if a <= b else (0.0, 1.0) for a, b in zip(lo, hi)]
    fmt = FormatV05() if version == "0.5" else FormatV04()
    add_metadata(group, {"omero": ome.omero_block(channel_names, windows)}, fmt)


def write_ome_zarr(path: Any, data: Any, axes: str, *, document: Optional[dict] = None,
                   metadata: Optional[ome.ImageMetadata] = None,
                   version: str = ome.DEFAULT_VERSION, overwrite: bool = False,
                   chunk: int = 512) -> Path:
    """Write an image (numpy, dask or zarr; ``axes`` in any order) as an OME-Zarr image.

    Level 0 is written one chunk at a time (T / S / Z: 1, C: all, Y / X: ``chunk``) and
    the pyramid built as its chunks complete (:class:`Pyramid`), so memory stays at a few
    chunks. Written to a temporary sibling and renamed: a failure leaves nothing at
    ``path``. ``document`` (ours, :func:`io.make_document`) goes into the attributes.
    """
    from .outputs import OutputError

    ome.check_version(version)
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to "
                                  "replace it")
        if path.is_dir() and not any((path / n).exists()
                                     for n in ("zarr.json", ".zgroup", ".zarray")):
            raise OutputError(f"{path} is a folder that is not a zarr store; it is never "
                              "replaced: choose another output")
    out_axes = ome.ngff_axes(axes)
    perm = [axes.index(a) for a in out_axes]
    shape = tuple(int(data.shape[i]) for i in perm)
    chunks = tuple(min(chunk, n) if a in "YX" else (n if a == "C" else 1)
                   for a, n in zip(out_axes, shape))
    meta = metadata or ome.ImageMetadata()
    levels = ome.plan_levels(shape, out_axes, chunks, meta.scale)
    tmp = path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        name = path.name[: -len(ome.OME_SUFFIX)] if ome.is_ome_zarr_path(path) else path.stem
        group = create_store(tmp, version, out_axes, levels, chunks, meta, name)
        arrays = [group[str(i)] for i in range(len(levels))]
        pyramid = Pyramid(arrays, levels, chunks, [np.zeros(Pyramid.grid(lev.shape, chunks),
                                                            bool) for lev in levels[1:]])
        done = np.zeros(Pyramid.grid(shape, chunks), bool)
        for idx in np.ndindex(*done.shape):
            region = tuple(slice(k * c, min((k + 1) * c, n))
                           for k, c, n in zip(idx, chunks, shape))
            source = tuple(region[out_axes.index(a)] for a in axes)
            arrays[0][region] = np.transpose(np.asarray(data[source], np.float32), perm)
            done[idx] = True
        pyramid.update(done)  # chunk by chunk from the store: one pass, not one per chunk
        write_omero(group, version, out_axes, arrays[-1], chunks, meta.channel_names)
        if document is not None:
            group.attrs[io.DOC_KEY] = dict(document, axes=out_axes)
        io._replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
