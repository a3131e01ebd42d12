"""The completion record of a resumable output: which chunks are done, for which model,
settings, tile plan and input, stored in the zarr store's attributes under
:data:`PROGRESS_KEY`. The threaded and the distributed backends write the same record, so
an interrupted run resumes in either."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np

from .. import io
from ..tiling import TilePlan
from .layout import Layout

PROGRESS_KEY = "napari_selfdenoise_progress"


def partial_path(path: Path) -> Path:
    """The resumable zarr store beside a TIFF output."""
    return path.with_name(f".{path.name}.partial.zarr")


def pack_bits(done: np.ndarray) -> str:
    """A boolean vector as base64 of its packed bits."""
    return base64.b64encode(np.packbits(done).tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits` (``n`` entries)."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    return bits[:n].astype(bool)


def read_progress(path: Path) -> Optional[dict]:
    """The progress record of the zarr store at ``path``, or None."""
    if not io.is_zarr_path(path) or not path.exists():
        return None
    import zarr

    try:
        rec = dict(zarr.open_array(str(path), mode="r").attrs).get(PROGRESS_KEY)
    except Exception:
        return None
    return rec if isinstance(rec, dict) else None


def plan_record(plan: TilePlan) -> list[list[int]]:
    """The tile plan as stored in the record (a resumed run keeps it)."""
    return [[a.length, a.stride, a.context, a.blend, a.border, a.multiple] for a in plan.axes]


def signature(bundle_meta: dict, layout: Layout, j_invariant: bool, tta: object,
              plan: TilePlan) -> str:
    """What makes two runs' chunks interchangeable: model weights, axes, shape, predictor,
    TTA (and R3) and the reflected borders."""
    h = hashlib.sha256()
    h.update(bundle_meta["safetensors_b64"].encode("ascii"))
    borders = [a.border for a in plan.axes]  # what the network sees at the image's ends
    h.update(json.dumps([layout.axes, layout.shape, j_invariant, tta, borders]).encode())
    return h.hexdigest()[:32]
