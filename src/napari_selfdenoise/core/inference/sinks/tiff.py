"""BigTIFF output: chunks go to a resumable sibling zarr store, converted page by page
into the TIFF when complete."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ... import io
from ..progress import partial_path
from .zarr import ZarrSink


class TiffSink(ZarrSink):
    """BigTIFF output: chunks go to a resumable sibling zarr, converted page by page at the end."""

    kind = "tiff"
    directory = False
    shared_store = False  # one file: converted at the end by one process

    def __init__(self, layout, plan, path: Path, document, signature, overwrite, input_id=None):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        self.final_path = path
        self.document = document
        super().__init__(layout, plan, partial_path(path), document, signature, overwrite,
                         input_id)

    @classmethod
    def matches(cls, path: Path) -> bool:
        return io.is_tiff_path(path)

    @classmethod
    def record_path(cls, path: Path) -> Path:
        return partial_path(path)

    def finish(self, complete):
        super().finish(complete)
        if not complete:
            return self.path
        axes = self.layout.axes
        tiff_axes = "".join(a for a in axes if a not in "YX") + "YX"
        data: Any = self.array
        if tiff_axes != axes:
            import dask.array as da

            data = da.from_zarr(self.array).transpose([axes.index(a) for a in tiff_axes])
        doc = dict(self.document, axes=tiff_axes)
        io.write_tiff_atomic(self.final_path, data, axes=tiff_axes, document=doc, overwrite=True)
        shutil.rmtree(self.path, ignore_errors=True)
        return self.final_path
