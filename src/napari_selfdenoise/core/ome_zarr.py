"""OME-Zarr (OME-NGFF 0.4 / 0.5) helpers: metadata in and out, pyramid geometry, 2x mean.

Written stores are multiscale images: level ``"0"`` is the full-resolution result, each
further level halves Y and X (and Z when its voxels are not coarser than Y / X, see
:func:`plan_levels`) by a separable mean of voxel pairs (:func:`downsample_mean`). The NGFF
metadata (axes with types and units, per-level ``scale`` / ``translation``, the ``omero``
channel block) is written with ome-zarr-py (:mod:`ome_zarr.writer`, the OME reference
implementation), not by hand.

Reading keeps an OME-Zarr input's axes, units, scale, translation and channel names
(:func:`read_metadata`) so they reach the output; pixel data stays lazy (level 0 only).

This module holds the metadata (in and out); the pyramid geometry and the 2x mean are in
:mod:`.ome_zarr_pyramid` and re-exported here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .ome_zarr_pyramid import (  # noqa: F401  (re-exported: ome_zarr.X stays the import path)
    MAX_LEVELS, OVERVIEW, Level, all_children_done, downsample_mean, level_transforms,
    plan_levels,
)
from .validation import UserError

OME_SUFFIX = ".ome.zarr"
VERSIONS = ("0.4", "0.5")
DEFAULT_VERSION = "0.5"
#: NGFF axis types of our letters; S (independent samples) is a custom axis without type
AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
#: NGFF axis order: time, then custom / channel, then space
NGFF_ORDER = "TSCZYX"
_SPATIAL_UNITS: Optional[frozenset] = None


class OmeZarrError(UserError):
    """An OME-Zarr output cannot be written as asked, or an input's metadata is invalid."""


def require_ome_zarr() -> None:
    """Writing OME-Zarr needs the optional ome-zarr package: one line saying so."""
    try:
        import ome_zarr.format  # noqa: F401
    except ImportError:
        raise OmeZarrError('writing OME-Zarr needs the ome-zarr package: pip install '
                           '"napari-selfdenoise[ome-zarr]"') from None


def is_ome_zarr_path(path: Any) -> bool:
    """Whether ``path`` names an OME-Zarr store by its suffix (``.ome.zarr``)."""
    return str(os.fspath(path)).lower().rstrip("/").endswith(OME_SUFFIX)


def check_version(version: str) -> str:
    """``version`` if it is one we write, else a one-line :class:`OmeZarrError`."""
    if version not in VERSIONS:
        raise OmeZarrError(f"OME-Zarr version {version!r} is not supported: use "
                           f"{' or '.join(VERSIONS)} (0.5 = zarr v3, 0.4 = zarr v2)")
    return version


@dataclass(frozen=True)
class ImageMetadata:
    """Physical geometry and channel names of an image, per axis letter.

    Attributes
    ----------
    scale, translation : dict
        Voxel size and position of voxel 0 per axis letter (default 1 and 0).
    units : dict
        NGFF unit names per axis letter (``"micrometer"``, ``"second"``...).
    channel_names : list of str, optional
        One per channel.
    name : str, optional
        Image name.
    """

    scale: dict = field(default_factory=dict)
    translation: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    channel_names: Optional[tuple] = None
    name: Optional[str] = None

    @classmethod
    def from_layer(cls, axes: str, scale: Sequence[float], translate: Sequence[float],
                   units: Optional[Sequence[Any]] = None, name: Optional[str] = None,
                   channel_names: Optional[Sequence[str]] = None) -> "ImageMetadata":
        """From a napari layer's ``scale`` / ``translate`` / ``units`` (one per axis)."""
        units = list(units) if units is not None else [None] * len(axes)
        return cls(
            scale={a: float(s) for a, s in zip(axes, scale)},
            translation={a: float(t) for a, t in zip(axes, translate)},
            units={a: str(u) for a, u in zip(axes, units) if _valid_unit(a, str(u))},
            channel_names=tuple(channel_names) if channel_names else None, name=name)


class OmeZarrOutput(os.PathLike):
    """An output path for :func:`~napari_selfdenoise.core.inference.predict` carrying the
    metadata of the image (its napari layer's scale, translation, units, channel names).

    Behaves as the path everywhere a path is expected (``os.fspath``, ``Path(out)``).
    """

    def __init__(self, path: Any, metadata: Optional[ImageMetadata] = None) -> None:
        self.path = Path(path)
        self.metadata = metadata

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"OmeZarrOutput({str(self.path)!r})"


def _valid_unit(letter: str, unit: Optional[str]) -> bool:
    if not unit or letter not in AXIS_TYPES or AXIS_TYPES[letter] == "channel":
        return False
    try:
        from ome_zarr.axes import KNOWN_SPATIAL_UNITS, KNOWN_TEMPORAL_UNITS
    except ImportError:  # the optional extra is absent: reading never needs it
        return True
    known = KNOWN_TEMPORAL_UNITS if AXIS_TYPES[letter] == "time" else KNOWN_SPATIAL_UNITS
    return unit in known


def _multiscales_list(node: Any) -> Optional[list]:
    """The raw ``multiscales`` list of a group's attributes (NGFF 0.4 or 0.5), or None."""
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs)
    ms = ome.get("multiscales") if isinstance(ome, dict) else None
    return ms if isinstance(ms, list) and ms else None


def multiscales_of(node: Any) -> Optional[dict]:
    """The first ``multiscales`` entry of a zarr group (NGFF 0.4 or 0.5), or None.

    The one parse of the multiscales metadata: the reader, :func:`read_metadata` and
    :func:`~napari_selfdenoise.core.io.open_image` all go through it.
    """
    ms = _multiscales_list(node)
    return ms[0] if ms is not None and isinstance(ms[0], dict) else None


def level_paths(node: Any, where: Any, levels: Optional[int] = None) -> Optional[list[str]]:
    """The level arrays' paths of a multiscale group (level 0 first; the first ``levels``
    only when given); None without multiscales metadata; a one-line
    :class:`~.validation.UserError` naming ``where`` when the metadata is there but one of
    those datasets has no path."""
    if _multiscales_list(node) is None:
        return None
    ms = multiscales_of(node) or {}
    datasets = ms.get("datasets")
    datasets = datasets if isinstance(datasets, list) else []
    paths = [d.get("path") if isinstance(d, dict) else None for d in datasets[:levels]]
    if not paths or not all(isinstance(p, str) for p in paths):
        i = next((k for k, p in enumerate(paths) if not isinstance(p, str)), 0)
        raise UserError(f"{where}: OME-zarr field multiscales[0].datasets[{i}].path is "
                        "missing or not a string; fix the metadata or open the array "
                        "(path/to/store.zarr/0) directly")
    return paths


def axis_names(ms: dict) -> list[str]:
    """The axis names of a multiscales entry (NGFF 0.4+: dicts with ``name``; 0.3: str)."""
    axes = ms.get("axes")
    return [str(a.get("name", "")) if isinstance(a, dict) else str(a)
            for a in (axes if isinstance(axes, list) else [])]


def _ome_attrs(node: Any) -> dict:
    attrs = dict(node.attrs)
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def open_ome_group(path: Any) -> Any:
    """The zarr group at ``path`` (opened once) if it has NGFF multiscales metadata, else
    None (not a group, no metadata, unreadable)."""
    p = Path(path)
    if not p.is_dir() or not any((p / n).exists() for n in ("zarr.json", ".zgroup")):
        return None
    import zarr

    try:
        node = zarr.open(str(p), mode="r")
        if isinstance(node, zarr.Array) or multiscales_of(node) is None:
            return None
        return node
    except Exception:
        return None


def is_ome_zarr_store(path: Any) -> bool:
    """Whether ``path`` is a zarr group with NGFF multiscales metadata."""
    return open_ome_group(path) is not None


def _transforms(items: Any) -> tuple[Optional[list], Optional[list]]:
    scale = translation = None
    for t in items if isinstance(items, list) else []:
        if isinstance(t, dict) and t.get("type") == "scale":
            scale = t.get("scale")
        elif isinstance(t, dict) and t.get("type") == "translation":
            translation = t.get("translation")
    return scale, translation


def read_metadata(path: Any) -> Optional[tuple[str, ImageMetadata]]:
    """``(axes, metadata)`` of an OME-Zarr image (a group, or one of its level arrays).

    The scale and translation are level 0's combined with the multiscale's own
    transformations; None when ``path`` is not an OME-Zarr image or its metadata cannot
    be used (unknown axis names).
    """
    p = Path(path)
    for candidate in (p, p.parent):
        group = open_ome_group(candidate)
        if group is not None:
            return metadata_of(group)
    return None


def metadata_of(group: Any) -> Optional[tuple[str, ImageMetadata]]:
    """:func:`read_metadata` of an already opened OME-Zarr group."""
    ms = multiscales_of(group)
    if ms is None:
        return None
    names = axis_names(ms)
    letters = "".join(n.upper() for n in names)
    if len(letters) != len(names) or len(set(letters)) != len(letters) or \
            not set(letters) <= set(NGFF_ORDER):
        return None
    nd = len(letters)
    datasets = ms.get("datasets") or [{}]
    s0, t0 = _transforms(datasets[0].get("coordinateTransformations"))
    sg, tg = _transforms(ms.get("coordinateTransformations"))
    s0 = _vector(s0, nd, 1.0)
    t0 = _vector(t0, nd, 0.0)
    sg = _vector(sg, nd, 1.0)
    tg = _vector(tg, nd, 0.0)
    units = {}
    for a, ax in zip(letters, ms.get("axes", [])):
        if isinstance(ax, dict) and _valid_unit(a, ax.get("unit")):
            units[a] = ax["unit"]
    channels = None
    omero = _ome_attrs(group).get("omero")
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        labels = [c.get("label") if isinstance(c, dict) else None for c in omero["channels"]]
        if labels and all(isinstance(lab, str) for lab in labels):
            channels = tuple(labels)
    meta = ImageMetadata(
        scale={a: s * g for a, s, g in zip(letters, s0, sg)},
        translation={a: t * g + u for a, t, g, u in zip(letters, t0, sg, tg)},
        units=units, channel_names=channels,
        name=ms.get("name") if isinstance(ms.get("name"), str) else None)
    return letters, meta


def _vector(v: Any, n: int, default: float) -> list[float]:
    if isinstance(v, list) and len(v) == n and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in v):
        return [float(x) for x in v]
    return [default] * n


def ngff_axes(axes: str) -> str:
    """``axes`` in NGFF order (time, custom, channel, then Z, Y, X)."""
    return "".join(a for a in NGFF_ORDER if a in axes)


def axes_list(axes: str, units: dict) -> list[dict]:
    """NGFF ``axes`` entries (name, type, unit) for axis letters in NGFF order."""
    out = []
    for a in axes:
        entry: dict = {"name": a.lower()}
        if a in AXIS_TYPES:
            entry["type"] = AXIS_TYPES[a]
        if a in units:
            entry["unit"] = units[a]
        out.append(entry)
    return out


def omero_block(channel_names: Optional[Sequence[str]], windows: Sequence[tuple]) -> dict:
    """The NGFF ``omero`` block: one channel per window ``(min, max)``, labelled."""
    colors = ["FFFFFF"] if len(windows) == 1 else ["00FF00", "FF00FF", "00FFFF", "FFFF00",
                                                   "FF0000", "0000FF", "FFFFFF"]
    channels = []
    for i, (lo, hi) in enumerate(windows):
        lo = float(lo) if math.isfinite(lo) else 0.0
        hi = float(hi) if math.isfinite(hi) else 1.0
        label = channel_names[i] if channel_names and i < len(channel_names) else f"channel {i}"
        channels.append({"label": str(label), "color": colors[i % len(colors)], "active": True,
                         "coefficient": 1.0, "family": "linear", "inverted": False,
                         "window": {"min": lo, "max": hi, "start": lo, "end": hi}})
    return {"channels": channels, "rdefs": {"model": "greyscale" if len(windows) == 1
                                            else "color"}}


def write_multiscales(group: Any, version: str, axes: str, levels: list[Level],
                      meta: ImageMetadata, name: str, method: str) -> None:
    """Write the ``multiscales`` metadata of ``group`` with ome-zarr-py."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    fmt = FormatV05() if version == "0.5" else FormatV04()
    datasets = [{"path": str(i), "coordinateTransformations": ct}
                for i, ct in enumerate(level_transforms(levels, axes, meta))]
    try:
        write_multiscales_metadata(
            group, datasets, fmt=fmt, axes=axes_list(axes, meta.units), name=name,
            metadata={"description": "2x mean of voxel pairs per level (Y, X; Z when not "
                                     "coarser than Y and X)", "method": method})
    except ValueError as exc:
        raise OmeZarrError(f"cannot write OME-Zarr for axes {axes!r}: {exc}") from None
