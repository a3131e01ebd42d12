"""The OME-Zarr output of :func:`~napari_selfdenoise.core.inference.predict`: a multiscale
image whose pyramid is built chunk by chunk while the prediction is written.

Store layout (NGFF 0.5 = zarr v3, or 0.4 = zarr v2)::

    out.ome.zarr/         group: NGFF "multiscales" (+ "omero" when complete), our
                          document (io.DOC_KEY) and the resume record (PROGRESS_KEY)
    out.ome.zarr/0        full resolution, chunked like the tiles (as a .zarr output)
    out.ome.zarr/1 ...    each level a 2x mean of the one above (core.ome_zarr)

The resume record is the zarr output's (signature, done bitmap of level-0 chunks, plan,
input identity, complete) plus ``levels``: one done bitmap per lower level. When every
level-``L-1`` chunk under a level-``L`` chunk is done, that chunk is computed from them
(:class:`Pyramid`): at most ``2 ** halved axes`` chunks are read at a time, whatever the
image size. A resumed run first completes the levels its finished chunks allow.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import io, resume
from . import ome_zarr as ome
from .inference.layout import Layout
from .inference.progress import PROGRESS_KEY, plan_record, signature
from .inference.progress import pack_bits as _pack_bits
from .inference.progress import unpack_bits as _unpack_bits
from .inference.sinks.base import Sink as _Sink
from .inference.sinks.base import SinkRequest
from .tiling import AxisPlan, TilePlan

#: the pyramid's downsampling, recorded in the multiscales metadata
METHOD = "napari_selfdenoise.core.ome_zarr.downsample_mean"


def read_progress(path: Path) -> Optional[dict]:
    """The resume record of an OME-Zarr output (group attributes), or None."""
    if not ome.is_ome_zarr_store(path):
        return None
    import zarr

    try:
        rec = dict(zarr.open_group(str(path), mode="r").attrs).get(PROGRESS_KEY)
    except Exception:
        return None
    return rec if isinstance(rec, dict) else None


def _store_version(path: Path) -> Optional[str]:
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:
        return None
    return "0.5" if group.info._zarr_format == 3 else "0.4"


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


class OmeZarrSink(_Sink):
    """An OME-Zarr multiscale output, resumable like a ``.zarr`` output (registered as
    ``"ome-zarr"`` in :data:`~napari_selfdenoise.core.inference.sinks.SINKS`)."""

    kind = "ome-zarr"
    resumable = True
    directory = True
    shared_store = False  # the pyramid is built by the process that records the chunks

    @classmethod
    def matches(cls, path: Path) -> bool:
        return ome.is_ome_zarr_path(path)

    @classmethod
    def open(cls, req: SinkRequest) -> tuple["OmeZarrSink", TilePlan]:
        """The sink; a resumed output keeps the tile plan it started with (as ``.zarr``)."""
        from .provenance import make_provenance

        config, layout, plan = req.config, req.layout, req.plan
        model_meta = req.bundle.to_metadata()
        prov = req.provenance if req.provenance is not None else make_provenance(
            "predict", None, config, bundle=req.bundle)
        doc = io.make_document(axes=layout.axes, model=model_meta,
                               provenance={**prov, "execution": req.execution})
        tta_r3 = [config.tta, config.r3_passes, config.r3_fraction] if config.r3 else config.tta
        sig = signature(model_meta, layout, req.j_invariant, tta_r3, plan)
        existing = read_progress(Path(req.out))
        if existing is not None and existing.get("signature") == sig and not config.overwrite:
            plan = TilePlan(tuple(AxisPlan(*p) for p in existing["plan"]))  # resume as planned
        return cls(layout, plan, req.out, doc, sig, config.overwrite, req.input_id,
                   config.ome_zarr_version), plan

    def __init__(self, layout: Layout, plan: TilePlan, out: Any, document: dict,
                 signature: str, overwrite: bool, input_id: Optional[dict] = None,
                 version: str = ome.DEFAULT_VERSION) -> None:
        import zarr

        n_chunks = layout.n_samples * plan.n_tiles
        super().__init__(layout, n_chunks)
        self.version = ome.check_version(version)
        self.path = path = Path(out)
        self.signature, self.input_id = signature, input_id
        self.axes = ome.ngff_axes(layout.axes)
        self.shape = tuple(layout.shape[layout.axes.index(a)] for a in self.axes)
        self._plan_record = plan_record(plan)
        self._grid0 = plan.grid
        self._last_record = 0.0
        block = layout.block_letters
        self._out_block = [a for a in self.axes if a in block]
        self._perm_out = [block.index(a) for a in self._out_block]
        chunks = []
        for a, s in zip(self.axes, self.shape):
            chunks.append(plan.chunk_shape[layout.spatial.index(a)] if a in layout.spatial
                          else (s if a == "C" else 1))
        self.chunks = tuple(chunks)
        meta = self._metadata(out, layout)
        self.meta = meta
        levels = ome.plan_levels(self.shape, self.axes, self.chunks, meta.scale)
        existing = read_progress(path)
        if existing is not None and existing.get("signature") == signature and not overwrite:
            if _store_version(path) != self.version:
                raise FileExistsError(
                    f"{path} is an OME-Zarr {_store_version(path)} prediction, not "
                    f"{self.version}; rerun with that version, or pass overwrite=True "
                    "(--overwrite) to replace it")
            if input_id is not None:
                resume.check_same_input(existing.get("input"), input_id, path)
            self.group = zarr.open_group(str(path), mode="r+")
            self.done[:] = _unpack_bits(existing["done"], n_chunks)
            self._open(levels, existing.get("levels"))
            self.resumed = True
            return
        self._clear(path, existing, overwrite)
        self._create(path, levels, document)
        self.resumed = False

    # ------------------------------------------------------------------ creation
    def _metadata(self, out: Any, layout: Layout) -> ome.ImageMetadata:
        """The layer's metadata (an :class:`~.ome_zarr.OmeZarrOutput`), else an OME-Zarr
        input's (found through the input's recorded path), else none."""
        meta = getattr(out, "metadata", None)
        if meta is None and self.input_id and self.input_id.get("path"):
            found = ome.read_metadata(self.input_id["path"])
            if found is not None and set(found[0]) == set(layout.axes):
                meta = found[1]
        meta = meta or ome.ImageMetadata()
        names = meta.channel_names
        n_c = layout.shape[layout.axes.index("C")] if "C" in layout.axes else 1
        if names is not None and len(names) != n_c:
            names = None
        return ome.ImageMetadata(
            scale={a: v for a, v in meta.scale.items() if a in self.axes and v > 0},
            translation={a: v for a, v in meta.translation.items() if a in self.axes},
            units={a: u for a, u in meta.units.items() if a in self.axes},
            channel_names=names, name=meta.name)

    def _clear(self, path: Path, existing: Optional[dict], overwrite: bool) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        is_store = path.is_dir() and any((path / n).exists()
                                         for n in ("zarr.json", ".zgroup", ".zarray"))
        if path.is_dir() and not is_store:
            raise ome.OmeZarrError(f"{path} is a folder that is not a zarr store; it is never "
                                   "replaced: choose another output")
        if not overwrite:
            why = ("it was written with other settings or another model" if existing
                   else "it is a zarr store but not a resumable OME-Zarr prediction"
                   if is_store else "it is a file")
            raise FileExistsError(f"{path} exists and {why}; pass overwrite=True "
                                  "(--overwrite) to replace it")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def _create(self, path: Path, levels: list[ome.Level], document: dict) -> None:
        self.group = create_store(path, self.version, self.axes, levels, self.chunks,
                                  self.meta, path.name[: -len(ome.OME_SUFFIX)])
        self._open(levels, None)
        doc = dict(document, axes=self.axes)
        self.group.attrs.update({io.DOC_KEY: doc, PROGRESS_KEY: self._progress()})

    def _open(self, levels: list[ome.Level], bits: Any) -> None:
        arrays = [self.group[str(i)] for i in range(len(levels))]
        done = []
        for i, level in enumerate(levels[1:]):
            grid = Pyramid.grid(level.shape, self.chunks)
            d = np.zeros(grid, dtype=bool)
            if isinstance(bits, list) and i < len(bits) and isinstance(bits[i], str):
                d[...] = _unpack_bits(bits[i], d.size).reshape(grid)
            done.append(d)
        self.pyramid = Pyramid(arrays, levels, self.chunks, done)
        self.array = arrays[0]

    # ------------------------------------------------------------------- writing
    def _index(self, sample: int, spatial: tuple[slice, ...]) -> tuple:
        values: dict = dict(self.layout.sample_index(sample))
        values.update(zip(self.layout.spatial, spatial))
        values["C"] = slice(None)
        return tuple(values[a] for a in self.axes)

    def write(self, sample: int, spatial: tuple[slice, ...], block: np.ndarray) -> None:
        arr = np.transpose(self._out(block), self._perm_out)
        self.array[self._index(sample, spatial)] = arr

    def level0_done(self) -> np.ndarray:
        """The level-0 done bitmap as a grid of chunks in array axis order."""
        lay = self.layout
        letters = lay.sample_letters + lay.spatial
        grid = self.done.reshape(lay.sample_shape + self._grid0)
        if "C" in self.axes:
            grid = grid[..., None]
            letters += "C"
        return np.transpose(grid, [letters.index(a) for a in self.axes])

    def _progress(self, complete: bool = False) -> dict:
        return {"signature": self.signature, "done": _pack_bits(self.done),
                "complete": complete, "plan": self._plan_record, "input": self.input_id,
                "levels": [_pack_bits(d.ravel()) for d in self.pyramid.done]}

    def record(self, final: bool = False) -> None:
        self.pyramid.update(self.level0_done())
        now = time.monotonic()
        if not final and now - self._last_record < 2.0:
            return
        self._last_record = now
        complete = bool(self.done.all()) and self.pyramid.complete
        self.group.attrs[PROGRESS_KEY] = self._progress(complete=complete)

    def finish(self, complete: bool) -> Any:
        if complete:
            self.pyramid.update(self.level0_done())
            self._write_omero()
        self.record(final=True)
        return self.path

    def _write_omero(self) -> None:
        write_omero(self.group, self.version, self.axes, self.pyramid.arrays[-1], self.chunks,
                    self.meta.channel_names)


def create_store(path: Path, version: str, axes: str, levels: list[ome.Level],
                 chunks: tuple[int, ...], meta: ome.ImageMetadata, name: str) -> Any:
    """A new OME-Zarr group at ``path``: one NaN-filled float32 array per level (chunked
    ``chunks``) and the multiscales metadata."""
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
            pyramid.update(done)
        write_omero(group, version, out_axes, arrays[-1], chunks, meta.channel_names)
        if document is not None:
            group.attrs[io.DOC_KEY] = dict(document, axes=out_axes)
        io._replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
