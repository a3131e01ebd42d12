"""Preset files: the versioned JSON document, atomic saving, strict validated loading."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from pydantic import ValidationError

from ..config import StrictModel
from .settings import SETTINGS_TYPES, Settings, kind_of

PRESET_FORMAT = "napari-selfdenoise/preset"
PRESET_VERSION = 1
SUFFIX = ".json"
MAX_PRESET_BYTES = 1024**2


class PresetError(ValueError):
    """A preset file is unreadable, of another kind, from a newer version, or invalid."""


def preset_to_dict(settings: Settings) -> dict:
    """The JSON-serialisable preset document for ``settings``."""
    return {
        "format": PRESET_FORMAT,
        "version": PRESET_VERSION,
        "kind": kind_of(settings),
        "settings": settings.model_dump(mode="json"),
    }


def save_preset(path: Union[str, os.PathLike], settings: Settings) -> Path:
    """Write ``settings`` as a preset file (atomically; parent folders are created).

    Parameters
    ----------
    path : path-like
        Destination; ``.json`` is appended when the name has no suffix.
    settings : TrainSettings, PredictSettings or CalibrateSettings
        What to save.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(preset_to_dict(settings), indent=2) + "\n"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash never leaves half a preset
    return path


def load_preset(
    source: Union[str, os.PathLike, dict], kind: Optional[str] = None
) -> Settings:
    """Read and validate a preset.

    Parameters
    ----------
    source : path-like or dict
        A preset file, or an already parsed preset document.
    kind : str, optional
        Require this kind (a widget loading a preset of another widget gets a clear error).

    Returns
    -------
    TrainSettings, PredictSettings or CalibrateSettings

    Raises
    ------
    PresetError
        Naming every unknown or invalid key.
    """
    doc, where = _read_document(source)
    cls = _settings_type(doc, where, kind)
    raw = doc.get("settings", {})
    if not isinstance(raw, dict):
        raise PresetError(f"{where}: 'settings' must be an object")
    try:  # strict: JSON true is not 1, "3" is not 3 (lists are fine for tuples)
        return cls.model_validate_json(json.dumps(raw, allow_nan=True), strict=True)
    except ValidationError as exc:
        raise PresetError(f"{where} has invalid settings:\n" + _explain(exc, cls)) from None


def _read_document(source: Union[str, os.PathLike, dict]) -> tuple[Any, str]:
    """The parsed document (bounded in size) and how errors name it."""
    if isinstance(source, dict):
        return source, "preset"
    where = str(source)
    path = Path(source)
    if not path.is_file():
        raise PresetError(f"preset file {path} does not exist")
    from ..validation import UserError, load_json

    if path.stat().st_size > MAX_PRESET_BYTES:
        raise PresetError(f"{where} is larger than {MAX_PRESET_BYTES} bytes; not a preset")
    try:
        return load_json(path.read_bytes(), where), where
    except UserError as exc:
        raise PresetError(str(exc)) from None


def _settings_type(doc: Any, where: str, kind: Optional[str]) -> type:
    """The settings class of a preset document, after checking its format, version, kind."""
    if not isinstance(doc, dict):
        raise PresetError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != PRESET_FORMAT:
        raise PresetError(
            f"{where} is not a napari-selfdenoise preset (format should be {PRESET_FORMAT!r})"
        )
    extra = sorted(set(doc) - {"format", "version", "kind", "settings"})
    if extra:
        raise PresetError(f"{where}: unknown top-level keys {extra}")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise PresetError(f"{where}: 'version' must be a positive integer, got {version!r}")
    if version > PRESET_VERSION:
        raise PresetError(
            f"{where} was written by a newer napari-selfdenoise (preset version {version}, "
            f"this one reads up to {PRESET_VERSION}); upgrade the plugin"
        )
    doc_kind = doc.get("kind")
    if doc_kind not in SETTINGS_TYPES:
        raise PresetError(
            f"{where}: 'kind' must be one of {sorted(SETTINGS_TYPES)}, got {doc_kind!r}"
        )
    if kind is not None and doc_kind != kind:
        raise PresetError(f"{where} is a {doc_kind} preset, not a {kind} preset")
    return SETTINGS_TYPES[doc_kind]


def _explain(exc: ValidationError, cls: type) -> str:
    """One line per error: the dotted key, what is wrong, and close allowed keys."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(settings)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(cls, loc[:-1])
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"  {key}: unknown key{hint} (allowed: {', '.join(allowed)})")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _allowed_keys(cls: type, loc: Sequence[str]) -> list[str]:
    model = cls
    for part in loc:
        info = getattr(model, "model_fields", {}).get(part)
        ann = getattr(info, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, StrictModel)):
            return []
        model = ann
    return sorted(getattr(model, "model_fields", {}))
