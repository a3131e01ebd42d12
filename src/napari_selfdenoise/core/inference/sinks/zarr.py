"""Resumable zarr v3 output, chunked like the tiles, its completion record in its
attributes (:mod:`..progress`)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

from ... import io, outputs, resume
from ...provenance import make_provenance
from ...tiling import AxisPlan, TilePlan
from ..layout import Layout
from ..progress import PROGRESS_KEY, pack_bits, plan_record, read_progress, signature, unpack_bits
from .base import Sink, SinkRequest


def output_chunks(layout: Layout, plan: TilePlan) -> tuple[int, ...]:
    """The store's chunks: one tile's output along the spatial axes, all channels, one
    index along every other axis."""
    chunks = []
    for a, s in zip(layout.axes, layout.shape):
        if a in layout.spatial:
            chunks.append(plan.chunk_shape[layout.spatial.index(a)])
        elif a == "C":
            chunks.append(s)
        else:
            chunks.append(1)
    return tuple(chunks)


class ZarrSink(Sink):
    """A zarr v3 store chunked like the tiles; finished chunks recorded in its attributes."""

    kind = "zarr"
    resumable = True
    directory = True
    shared_store = True

    def __init__(self, layout, plan: TilePlan, path: Path, document: dict, signature: str,
                 overwrite: bool, input_id: Optional[dict] = None):
        import zarr

        n_chunks = layout.n_samples * plan.n_tiles
        super().__init__(layout, n_chunks)
        self.path = path
        self.signature = signature
        self.input_id = input_id
        self._last_record = 0.0
        self._plan_record = plan_record(plan)
        existing = read_progress(path)
        if existing is not None and existing.get("signature") == signature and not overwrite:
            if input_id is not None:
                resume.check_same_input(existing.get("input"), input_id, path)
            self.array = zarr.open_array(str(path), mode="r+")
            self.done[:] = unpack_bits(existing["done"], n_chunks)
            self.resumed = True
            return
        if path.exists():
            if not overwrite:
                why = ("it was written with other settings or another model"
                       if existing is not None else "it is not a resumable prediction")
                raise FileExistsError(
                    f"{path} exists and {why}; pass overwrite=True (--overwrite) to replace it"
                )
            if path.is_dir() and not io.is_zarr_path(path):
                raise outputs.OutputError(f"{path} is a folder that is not a zarr store; it "
                                          "is never replaced: choose another output")
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        attrs = {io.DOC_KEY: document, PROGRESS_KEY: self._progress()}
        path.parent.mkdir(parents=True, exist_ok=True)
        self.array = zarr.create_array(
            str(path), shape=layout.shape, dtype="float32", chunks=output_chunks(layout, plan),
            fill_value=float("nan"), attributes=attrs, dimension_names=tuple(layout.axes),
        )
        self.resumed = False

    @classmethod
    def matches(cls, path: Path) -> bool:
        return io.is_zarr_path(path)

    def worker_target(self) -> tuple[str, str]:
        return str(Path(self.path).resolve()), self.layout.axes

    @classmethod
    def record_path(cls, path: Path) -> Path:
        """The zarr store holding the completion record of output ``path``."""
        return path

    @classmethod
    def open(cls, req: SinkRequest):
        """The resumable sink; a resumed output keeps the tile plan it started with.

        File outputs carry the model and the provenance, with ``execution`` (device,
        precision)."""
        config, layout, plan = req.config, req.layout, req.plan
        model_meta = req.bundle.to_metadata()
        prov = req.provenance if req.provenance is not None else make_provenance(
            "predict", None, config, bundle=req.bundle)
        prov = {**prov, "execution": req.execution}
        doc = io.make_document(axes=layout.axes, model=model_meta, provenance=prov)
        # R3 changes the result: it joins the signature only when on, so older records match
        tta_r3 = [config.tta, config.r3_passes, config.r3_fraction] if config.r3 else config.tta
        sig = signature(model_meta, layout, req.j_invariant, tta_r3, plan)
        path = Path(req.out)
        existing = read_progress(cls.record_path(path))
        if existing is not None and existing.get("signature") == sig and not config.overwrite:
            plan = TilePlan(tuple(AxisPlan(*p) for p in existing["plan"]))  # resume as planned
        return cls(layout, plan, path, doc, sig, config.overwrite, req.input_id), plan

    def _progress(self, complete: bool = False) -> dict:
        return {"signature": self.signature, "done": pack_bits(self.done),
                "complete": complete, "plan": self._plan_record, "input": self.input_id}

    def write(self, sample, spatial, block):
        self.put(self.array, sample, spatial, block)

    def record(self, final=False):
        now = time.monotonic()
        if not final and now - self._last_record < 2.0:
            return
        self._last_record = now
        self.array.attrs[PROGRESS_KEY] = self._progress(complete=bool(self.done.all()))

    def finish(self, complete):
        self.record(final=True)
        return self.path
