"""napari writers: an image layer saved as zarr, OME-Zarr or BigTIFF with its model.

The layer's model (``metadata[bundle.METADATA_KEY]``), provenance and spatial attributes
(name, scale, translate, axis labels, units) go into one JSON document
(:func:`napari_selfdenoise.core.io.make_document`): the zarr attributes, or a private
TIFF tag. Files are written to a temporary sibling and renamed, block by block / page by
page, so lazy (dask / zarr) layers are never loaded whole. Models larger than
``io.MAX_EMBEDDED_MODEL_BYTES`` (64 MiB) are not embedded (a warning says so). An
OME-Zarr (``.ome.zarr``, NGFF 0.5) also gets the layer's scale, translation and units as
NGFF metadata and a 2x-mean pyramid built chunk by chunk
(:func:`~napari_selfdenoise.core.ome_zarr_store.write_ome_zarr`).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from .core import io
from .core.bundle import METADATA_KEY, find_model_in_metadata
from .core.provenance import PROVENANCE_KEY
_LAYER_KEYS = ("name", "scale", "translate", "axis_labels", "units")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _axes(meta: dict, ndim: int, model: Optional[dict]) -> Optional[str]:
    labels = meta.get("axis_labels")
    if labels and len(labels) == ndim and all(isinstance(a, str) and len(a) == 1 for a in labels):
        letters = "".join(labels).upper()
        if len(set(letters)) == ndim and set(letters) <= set("STCZYX"):
            return letters
    if model and isinstance(model.get("axes"), str) and len(model["axes"]) == ndim:
        return model["axes"]
    return "YX" if ndim == 2 else None


def _is_rgb(data: Any, meta: dict) -> bool:
    return bool(meta.get("rgb")) and len(data.shape) >= 3 and data.shape[-1] in (3, 4)


def layer_document(data: Any, meta: dict) -> tuple[Any, dict]:
    """Level-0 data and the document to embed for a layer's ``data`` and ``meta``."""
    if isinstance(data, (list, tuple)):  # multiscale: save the full-resolution level
        data = data[0]
    layer_meta = meta.get("metadata") or {}
    model = find_model_in_metadata(layer_meta)
    if model is not None:
        model = dict(model)
    rgb = _is_rgb(data, meta)
    if rgb:  # napari's dims of an RGB layer exclude the colour samples: C goes last
        base = _axes(meta, len(data.shape) - 1, None)
        axes = base + "C" if base and "C" not in base else None
    else:
        axes = _axes(meta, len(data.shape), model)
    layer = {k: _json_safe(meta[k]) for k in _LAYER_KEYS if meta.get(k) is not None}
    if rgb:
        layer["rgb"] = True
    doc = io.make_document(
        axes=axes,
        model=model,
        provenance=_json_safe(layer_meta[PROVENANCE_KEY]) if isinstance(
            layer_meta.get(PROVENANCE_KEY), dict) else None,
        layer=layer,
    )
    if "model_omitted" in doc:
        warnings.warn(f"{doc['model_omitted']}; the image is saved without it", stacklevel=3)
    return data, doc


def _check_target(path: str) -> None:
    """Replace only what this plugin wrote: an existing foreign file or folder is refused."""
    from pathlib import Path

    from .core.outputs import OutputError

    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    doc = io.read_document(p) if (io.is_zarr_path(p) or io.is_tiff_path(p)) else None
    if not (isinstance(doc, dict) and doc.get("format") == io.DOC_FORMAT):
        raise OutputError(f"{p} exists and was not written by napari-selfdenoise; it is never "
                          "replaced: choose another name or delete it first")


def write_zarr(path: str, data: Any, meta: dict) -> list[str]:
    """Save one image layer as a zarr v3 store with its model and provenance."""
    _check_target(path)
    data, doc = layer_document(data, meta)
    out = io.write_zarr_atomic(path, data, attrs={io.DOC_KEY: doc},
                               dimension_names=doc.get("axes"), overwrite=True)
    return [str(out)]


def write_ome_zarr(path: str, data: Any, meta: dict) -> list[str]:
    """Save one image layer as an OME-Zarr multiscale image (NGFF 0.5) with its model."""
    from .core import ome_zarr
    from .core.axes import infer_axes
    from .core.ome_zarr_store import write_ome_zarr as write

    _check_target(path)
    data, doc = layer_document(data, meta)
    if _is_rgb(data, meta):
        from .core.outputs import OutputError

        raise OutputError(f"{path}: RGB layers are not written as OME-Zarr; save as TIFF")
    axes = doc.get("axes") or infer_axes(tuple(data.shape))
    ndim = len(axes)
    units = meta.get("units")
    layer_meta = meta.get("metadata") or {}
    names = (layer_meta.get("napari_selfdenoise_ome") or {}).get("channel_names")
    info = ome_zarr.ImageMetadata.from_layer(
        axes, meta.get("scale") or [1.0] * ndim, meta.get("translate") or [0.0] * ndim,
        [str(u) for u in units] if units is not None and len(units) == ndim else None,
        name=meta.get("name"), channel_names=names)
    out = write(path, data, axes, document=dict(doc, axes=axes), metadata=info,
                overwrite=True)
    return [str(out)]


def write_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """Save one image layer as a BigTIFF with its model and provenance (private tag)."""
    _check_target(path)
    data, doc = layer_document(data, meta)
    axes = doc.get("axes")
    tiff_axes = None
    if _is_rgb(data, meta):
        tiff_axes = "YXS" if len(data.shape) == 3 else None
    elif axes and axes.endswith("YX"):
        tiff_axes = axes.replace("S", "Q")  # tifffile's S means RGB samples
    scale = meta.get("scale")
    resolution = None
    if scale is not None and len(scale) >= 2 and all(float(s) > 0 for s in scale[-2:]):
        resolution = (1.0 / float(scale[-1]), 1.0 / float(scale[-2]))
    out = io.write_tiff_atomic(path, data, axes=tiff_axes, document=doc, resolution=resolution,
                               overwrite=True, rgb=_is_rgb(data, meta))
    return [str(out)]


__all__ = ["write_zarr", "write_ome_zarr", "write_tiff", "layer_document", "METADATA_KEY", "PROVENANCE_KEY"]
