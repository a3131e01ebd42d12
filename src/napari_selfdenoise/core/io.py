"""Lazy image input and atomic zarr / BigTIFF output, with our metadata document.

:func:`open_image` never reads pixel data: TIFF files come back memory-mapped (when
uncompressed and contiguous) or as a zarr view of tifffile's page store, zarr stores as
``zarr.Array`` (OME-zarr multiscales: level 0), ``.npy`` files memory-mapped. Slicing the
result reads only what is sliced.

Files we write carry one JSON document (:data:`DOC_KEY`) with the model (the layer-metadata
form of :class:`~napari_selfdenoise.core.bundle.ModelBundle`), provenance and layer
attributes: in the zarr attributes, or in a private TIFF tag (:data:`TIFF_TAG`) so other
TIFF readers simply ignore it.

This module holds the readers and the document; the atomic writers
(:func:`write_zarr_atomic`, :func:`write_tiff_atomic`, :func:`temporary_sibling`...) are in
:mod:`.io_writers` and re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

# the writers live in io_writers.py; io stays the one import path for both halves
from .io_writers import (  # noqa: F401
    _replace, check_output_path, iter_blocks, temporary_sibling, write_tiff_atomic,
    write_zarr_atomic,
)

DOC_KEY = "napari_selfdenoise"
DOC_FORMAT = "napari-selfdenoise/image"
TIFF_TAG = 65421  # private tag (>= 32768): UTF-8 JSON of the document
MAX_DOC_BYTES = 128 * 1024**2  # documents larger than this are not parsed
MAX_EMBEDDED_MODEL_BYTES = 64 * 1024**2  # larger models are not embedded (see writers)
TIFF_SUFFIXES = (".tif", ".tiff")

# tifffile series axes -> ours (tifffile 'S' are RGB samples, i.e. channels)
_TIFF_AXES = {"T": "T", "Z": "Z", "C": "C", "Y": "Y", "X": "X", "S": "C", "I": "T", "Q": "T"}


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is (or names) a zarr v2/v3 store directory."""
    p = Path(path)
    if p.suffix.lower() == ".zarr":
        return True
    return p.is_dir() and any((p / n).exists() for n in ("zarr.json", ".zarray", ".zgroup"))


def is_tiff_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a TIFF suffix."""
    return Path(path).suffix.lower() in TIFF_SUFFIXES


def open_image(path: str | os.PathLike) -> tuple[Any, Optional[str]]:
    """Open an image lazily.

    Parameters
    ----------
    path : str or path-like
        ``.tif``/``.tiff``, a zarr store (v2 or v3, array, group with one array or
        OME-zarr multiscales) or ``.npy``.

    Returns
    -------
    array : array-like
        A read-only ``numpy.memmap`` or ``zarr.Array`` (nothing read yet).
    axes : str or None
        Axes from OME / ImageJ / shaped-TIFF metadata or zarr attributes, when present
        and expressible in ``STCZYX``.
    """
    from .validation import UserError

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    suffix = p.suffix.lower()
    if not (is_zarr_path(p) or suffix == ".npy" or suffix in TIFF_SUFFIXES):
        raise UserError(f"cannot open {p}: expected .tif, .tiff, .zarr or .npy")
    if p.is_dir() and not is_zarr_path(p) or p.is_file() and suffix == ".zarr":
        raise UserError(f"cannot open {p}: not a zarr store")
    try:
        if is_zarr_path(p):
            return _open_zarr(p)
        if suffix == ".npy":
            if p.stat().st_size == 0:
                raise UserError(f"{p} is empty (0 bytes); it holds no image")
            return np.load(p, mmap_mode="r", allow_pickle=False), None
        return _open_tiff(p)
    except UserError:
        raise
    except RecursionError:
        raise UserError(f"cannot open {p}: its metadata is nested too deeply") from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, IndexError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise UserError(f"cannot open {p}: not a readable {suffix or 'zarr'} image "
                        f"({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # tifffile / zarr raise their own error types for corrupt files
        raise UserError(f"cannot open {p}: corrupt or unsupported file "
                        f"({type(exc).__name__}: {exc})") from None


def _clean_axes(letters: Optional[str], ndim: int) -> Optional[str]:
    if not letters or len(letters) != ndim:
        return None
    letters = letters.upper()
    if len(set(letters)) != len(letters) or not set(letters) <= set("STCZYX"):
        return None
    if "Y" not in letters or "X" not in letters:
        return None
    return letters


def _open_tiff(path: Path) -> tuple[Any, Optional[str]]:
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = _tiff_axes(series.axes)
        mappable = series.dataoffset is not None
    if mappable:  # uncompressed and contiguous
        try:
            arr = tifffile.memmap(path, series=0, mode="r")
            return arr, _clean_axes(axes, arr.ndim)
        except (ValueError, OSError):
            pass
    tif = tifffile.TiffFile(path)  # kept open by the store for the array's lifetime
    store = tif.series[0].aszarr()
    arr = zarr.open_array(store, mode="r")
    return arr, _clean_axes(axes, arr.ndim)


def _tiff_axes(raw: str) -> Optional[str]:
    # I and Q are tifffile's "unknown" axes: the same inference as for .npy decides them
    if set(raw.upper()) & {"I", "Q"}:
        return None
    mapped = "".join(_TIFF_AXES.get(a, "?") for a in raw.upper())
    if "?" in mapped:
        return None
    # several generic sequence axes (I, Q) collapse onto T: keep only a unique mapping
    if len(set(mapped)) != len(mapped):
        return None
    return mapped


def _open_zarr(path: Path) -> tuple[Any, Optional[str]]:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node, _zarr_array_axes(node)
    from .ome_zarr import axis_names, level_paths, multiscales_of

    paths = level_paths(node, path, levels=1)  # the one multiscales parse (core.ome_zarr)
    if paths is not None:
        arr = node[paths[0]]
        names = axis_names(multiscales_of(node) or {})
        axes = "".join(n[:1] for n in names) if all(len(n) == 1 for n in names) else None
        return arr, _clean_axes(axes, arr.ndim) or _zarr_array_axes(arr)
    arrays = sorted(node.arrays(), key=lambda kv: kv[0])
    if len(arrays) != 1:
        raise ValueError(
            f"{path} is a zarr group with {len(arrays)} arrays and no multiscales metadata; "
            "open one of its arrays (path/to/store.zarr/NAME) instead"
        )
    arr = arrays[0][1]
    return arr, _zarr_array_axes(arr) or _clean_axes(dict(node.attrs).get("axes"), arr.ndim)


def _zarr_array_axes(arr: Any) -> Optional[str]:
    attrs = dict(arr.attrs)
    doc = attrs.get(DOC_KEY)
    if isinstance(doc, dict) and isinstance(doc.get("axes"), str):
        return _clean_axes(doc["axes"], arr.ndim)
    if isinstance(attrs.get("axes"), str):
        return _clean_axes(attrs["axes"], arr.ndim)
    names = attrs.get("_ARRAY_DIMENSIONS") or getattr(arr.metadata, "dimension_names", None)
    if names and all(isinstance(n, str) and len(n) == 1 for n in names):
        return _clean_axes("".join(names), arr.ndim)
    return None


# ----------------------------------------------------------------- documents
def make_document(
    *,
    axes: Optional[str],
    model: Optional[dict] = None,
    provenance: Optional[dict] = None,
    layer: Optional[dict] = None,
) -> dict:
    """The JSON document embedded in files we write.

    ``model`` is ``ModelBundle.to_metadata()``; a model whose payload exceeds
    :data:`MAX_EMBEDDED_MODEL_BYTES` is left out (``model_omitted`` says why).
    """
    from .. import __version__

    doc: dict = {"format": DOC_FORMAT, "format_version": 1, "package_version": __version__}
    if axes:
        doc["axes"] = axes
    if model is not None:
        size = len(model.get("safetensors_b64", "")) * 3 // 4
        if size > MAX_EMBEDDED_MODEL_BYTES:
            doc["model_omitted"] = (
                f"model of {size / 1e6:.0f} MB exceeds the {MAX_EMBEDDED_MODEL_BYTES >> 20} MiB "
                "limit for embedding; share its .sdmodel file instead"
            )
        else:
            doc["model"] = model
    if provenance is not None:
        doc["provenance"] = provenance
    if layer:
        doc["layer"] = layer
    return doc


def read_document(path: str | os.PathLike) -> Optional[dict]:
    """Our embedded document of a zarr store or TIFF file, or None when it has none.

    Only metadata is read. A document that is not valid JSON returns
    ``{"format": DOC_FORMAT, "error": "..."}`` so callers can still open the image.
    """
    p = Path(path)
    if not p.exists():
        return None
    if is_zarr_path(p):
        import zarr

        try:
            node = zarr.open(str(p), mode="r")
        except (Exception, RecursionError):
            return None
        return document_of(node)
    if is_tiff_path(p):
        return _read_tiff_document(p)
    return None


def document_of(node: Any) -> Optional[dict]:
    """:func:`read_document` of an already opened zarr group or array (its attributes)."""
    try:
        doc = dict(node.attrs).get(DOC_KEY)
    except (Exception, RecursionError):
        return None
    from .validation import MAX_JSON_DEPTH, json_depth

    if isinstance(doc, dict) and json_depth(doc) > MAX_JSON_DEPTH:
        return {"format": DOC_FORMAT, "error": "embedded document is nested too deeply"}
    return doc if isinstance(doc, dict) else None


def _read_tiff_document(path: Path) -> Optional[dict]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages.first.tags.get(TIFF_TAG)
            if tag is None:
                return None
            if tag.valuebytecount > MAX_DOC_BYTES:
                return {"format": DOC_FORMAT, "error": "embedded document is too large"}
            raw = tag.value
    except (OSError, ValueError, tifffile.TiffFileError):
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    from .validation import UserError, load_json

    try:
        doc = load_json(bytes(raw).rstrip(b"\0"), "embedded document")
    except UserError as exc:
        return {"format": DOC_FORMAT, "error": str(exc)}
    if not isinstance(doc, dict) or doc.get("format") != DOC_FORMAT:
        return {"format": DOC_FORMAT, "error": "embedded document has the wrong format tag"}
    return doc
