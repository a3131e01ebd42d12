"""The OME-Zarr output of a prediction: a multiscale image whose pyramid is built chunk by
chunk while the prediction is written (:mod:`napari_selfdenoise.core.ome_zarr_store`).

The resume record is the zarr output's (:mod:`..progress`: signature, done bitmap of
level-0 chunks, plan, input identity, complete) plus ``levels``: one done bitmap per lower
level, in the group's attributes. A resumed run first completes the levels its finished
chunks allow. A shared store: in a distributed run the workers write level 0 and, once
every chunk is written, one worker builds the pyramid (:func:`build_pyramid`), so the
client never reads image data; an interrupted distributed run leaves the levels to the run
that completes it (either backend).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ... import io, resume
from ... import ome_zarr as ome
from ...ome_zarr_store import Pyramid, create_store, write_omero
from ...tiling import AxisPlan, TilePlan
from ..layout import Layout
from ..progress import PROGRESS_KEY, plan_record, signature
from ..progress import pack_bits as _pack_bits
from ..progress import unpack_bits as _unpack_bits
from .base import Sink as _Sink
from .base import SinkRequest


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


class OmeZarrSink(_Sink):
    """An OME-Zarr multiscale output, resumable like a ``.zarr`` output (registered as
    ``"ome-zarr"`` in :data:`~napari_selfdenoise.core.inference.sinks.SINKS`)."""

    kind = "ome-zarr"
    resumable = True
    directory = True
    shared_store = True  # distributed: workers write level 0, one builds the pyramid

    @classmethod
    def matches(cls, path: Path) -> bool:
        return ome.is_ome_zarr_path(path)

    @classmethod
    def open(cls, req: SinkRequest) -> tuple["OmeZarrSink", TilePlan]:
        """The sink; a resumed output keeps the tile plan it started with (as ``.zarr``)."""
        from ...provenance import make_provenance

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
    def write(self, sample: int, spatial: tuple[slice, ...], block: np.ndarray) -> None:
        self.put(self.array, sample, spatial, block, self.axes)

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
        now = time.monotonic()
        if not final and now - self._last_record < 2.0:
            return
        self._last_record = now
        # the pyramid follows the record (every 2 s): its bookkeeping scans every level's
        # grid, which per chunk would cost the square of the chunk count
        if not self.remote_writes:  # workers' chunks are never read back by the client
            self.pyramid.update(self.level0_done())
        complete = bool(self.done.all()) and self.pyramid.complete
        self.group.attrs[PROGRESS_KEY] = self._progress(complete=complete)

    def finish(self, complete: bool) -> Any:
        if complete and not self.remote_writes:
            self.pyramid.update(self.level0_done())
            self._write_omero()
        self.record(final=True)
        return self.path

    # ------------------------------------------------------------ distributed runs
    def worker_target(self) -> tuple[str, str]:
        return str((self.path / "0").resolve()), self.axes

    def remote_finish(self) -> Optional[tuple[Any, tuple]]:
        if self.pyramid.complete:  # a rerun of a complete output: nothing to build
            return None
        return build_pyramid, (str(self.path.resolve()), self.pyramid.levels, self.chunks,
                               self.level0_done(), self.axes, self.version,
                               self.meta.channel_names)

    def remote_finished(self) -> None:
        import zarr

        for done in self.pyramid.done:
            done[...] = True
        # the worker added the omero block: reopen, so the record does not write stale attrs
        self.group = zarr.open_group(str(self.path), mode="r+")

    def _write_omero(self) -> None:
        write_omero(self.group, self.version, self.axes, self.pyramid.arrays[-1], self.chunks,
                    self.meta.channel_names)


def build_pyramid(path: str, levels: list, chunks: tuple[int, ...], level0: np.ndarray,
                  axes: str, version: str, channel_names: Optional[list]) -> int:
    """Every lower level of the OME-Zarr store ``path`` from its written level 0, chunk by
    chunk (at most ``2 ** d`` source chunks in memory), and the omero block; runs on a
    worker of a distributed prediction. Returns the number of chunks computed."""
    import zarr

    group = zarr.open_group(path, mode="r+")
    arrays = [group[str(i)] for i in range(len(levels))]
    done = [np.zeros(Pyramid.grid(level.shape, chunks), dtype=bool) for level in levels[1:]]
    pyramid = Pyramid(arrays, levels, chunks, done)
    pyramid.update(level0)
    write_omero(group, version, axes, arrays[-1], chunks, channel_names)
    return pyramid.computed
