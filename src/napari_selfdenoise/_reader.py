"""napari reader: images saved with their denoising model (by our writer or ``predict``).

``get_reader`` claims a ``.zarr`` / ``.tif`` only when it carries our embedded document,
so plain files keep opening with napari's default reader, and any OME-Zarr image (NGFF
0.4 / 0.5 multiscales): every level lazily as a multiscale layer, with the scale,
translation, units and axis names of its metadata (:func:`read_ome_zarr`). The model is restored into the
layer metadata (``bundle.METADATA_KEY``) with the provenance; a corrupt embedded model
opens the image anyway, with a warning and no model. Large images stay lazy.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .core import io, ome_zarr
from .core.bundle import METADATA_KEY, ModelBundle, ModelFileError
from .core.provenance import PROVENANCE_KEY
from .core.validation import UserError

AXES_KEY = "napari_selfdenoise_axes"
#: layer metadata of an OME-Zarr image: its channel names (kept by predictions)
OME_KEY = "napari_selfdenoise_ome"
EAGER_BYTES = 256 * 1024**2  # smaller images are read into memory, larger stay lazy


def get_reader(path: Any) -> Optional[Callable[[Any], list]]:
    """Return :func:`read` if ``path`` is a zarr / TIFF file with our document, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    try:  # a hostile or broken file is declined, never raised on
        p = Path(path)
        if not (io.is_zarr_path(p) or io.is_tiff_path(p)) or not p.exists():
            return None
        if io.is_zarr_path(p) and ome_zarr.open_ome_group(p) is not None:
            return read_ome_zarr
        doc = io.read_document(p)
    except (Exception, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != io.DOC_FORMAT:
        return None
    return read


def read(path: Any) -> list[tuple[Any, dict, str]]:
    """Layer data tuples ``[(data, attributes, "image")]`` for one of our files."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(path)
    doc = io.read_document(p) or {}
    data, file_axes = io.open_image(p)
    data = _maybe_eager(data)
    metadata = _document_metadata(doc, p)
    axes = doc.get("axes") if isinstance(doc.get("axes"), str) else file_axes
    if axes and len(axes) == data.ndim:
        metadata[AXES_KEY] = axes
    layer = doc.get("layer") if isinstance(doc.get("layer"), dict) else {}
    rgb = layer.get("rgb") is True and data.ndim >= 3 and data.shape[-1] in (3, 4)
    ndim = data.ndim - 1 if rgb else data.ndim  # an RGB layer's dims exclude the colours
    attrs = _layer_attributes(layer, ndim, p)
    attrs["metadata"] = metadata
    attrs.setdefault("name", _stem(p))
    if rgb:
        attrs["rgb"] = True
        axes = axes[:-1] if axes and len(axes) == data.ndim else axes
    if "axis_labels" not in attrs and axes and len(axes) == ndim:
        attrs["axis_labels"] = list(axes)
    return [(data, attrs, "image")]


def read_ome_zarr(path: Any) -> list[tuple[Any, dict, str]]:
    """An OME-Zarr image as one lazy multiscale layer (every level, as dask arrays) with
    its scale, translation, units and axis names; our model and provenance when present."""
    import dask.array as da
    import zarr

    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(path)
    group = zarr.open_group(str(p), mode="r")  # the only open: everything below reads it
    paths = ome_zarr.level_paths(group, p)
    if paths is None:
        raise UserError(f"{p} is not an OME-Zarr image (no multiscales metadata)")
    levels = [da.from_zarr(group[name]) for name in paths]
    found = ome_zarr.metadata_of(group)
    doc = io.document_of(group) or {}
    metadata = _document_metadata(doc, p)
    attrs: dict = {"name": _stem(p)}
    if found is not None and len(found[0]) == levels[0].ndim:
        axes, meta = found
        metadata[AXES_KEY] = axes
        attrs.update(axis_labels=list(axes), name=meta.name or _stem(p),
                     scale=[meta.scale.get(a, 1.0) for a in axes],
                     translate=[meta.translation.get(a, 0.0) for a in axes])
        if meta.units:
            attrs["units"] = [meta.units.get(a, "pixel") for a in axes]
        if meta.channel_names:
            metadata[OME_KEY] = {"channel_names": list(meta.channel_names)}
    attrs["metadata"] = metadata
    if len(levels) > 1:
        attrs["multiscale"] = True
        return [(levels, attrs, "image")]
    return [(levels[0], attrs, "image")]


def _document_metadata(doc: dict, p: Path) -> dict:
    """Layer metadata from our document: the model (validated) and the provenance."""
    metadata: dict = {}
    if "error" in doc:
        warnings.warn(f"{p.name}: {doc['error']}; opened as a plain image without its model",
                      stacklevel=3)
    if isinstance(doc.get("model"), dict):
        try:
            ModelBundle.from_metadata(doc["model"])  # validates payload, header and weights
            metadata[METADATA_KEY] = doc["model"]
        except (ModelFileError, ValueError) as exc:
            warnings.warn(f"{p.name}: the embedded denoising model is corrupt ({exc}); "
                          "the image opens without it", stacklevel=3)
    elif "model_omitted" in doc:
        warnings.warn(f"{p.name}: {doc['model_omitted']}", stacklevel=3)
    if isinstance(doc.get("provenance"), dict):
        metadata[PROVENANCE_KEY] = doc["provenance"]
    return metadata


def _layer_attributes(layer: dict, ndim: int, p: Path) -> dict:
    """The stored layer attributes napari can use; others are dropped with a warning."""
    import math

    attrs: dict = {}
    bad = []
    name = layer.get("name")
    if isinstance(name, str) and name:
        attrs["name"] = name
    elif name is not None:
        bad.append("name")
    checks = {
        "scale": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) and v > 0,
        "translate": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v),
        "units": lambda v: isinstance(v, str) or v is None,
        "axis_labels": lambda v: isinstance(v, str),
    }
    for key, ok in checks.items():
        value = layer.get(key)
        if value is None:
            continue
        if isinstance(value, list) and len(value) == ndim and all(ok(v) for v in value):
            attrs[key] = value
        else:
            bad.append(key)
    if bad:
        warnings.warn(f"{p.name}: stored layer attribute(s) {', '.join(bad)} are invalid for a "
                      f"{ndim}D image and were ignored; the image opens without them",
                      stacklevel=3)
    return attrs


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".ome.zarr", ".zarr", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _maybe_eager(data: Any) -> Any:
    """Small images as numpy arrays; large ones as dask arrays (napari loads what it shows)."""
    nbytes = int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize
    if nbytes <= EAGER_BYTES:
        return np.asarray(data[...])
    if isinstance(data, np.ndarray):  # memory-mapped
        return data
    import dask.array as da

    return da.from_zarr(data) if hasattr(data, "chunks") else da.from_array(data)
