"""Provenance of a result: what made it, from what, with which settings.

One record format for every output (napari layers, files written by ``predict``, the
writers and batch runs), stored in metadata under :data:`PROVENANCE_KEY`.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Optional

from .config import METHOD_NAMES

PROVENANCE_KEY = "napari_selfdenoise_provenance"


def make_provenance(operation: str, source: Optional[str], settings: Any, *,
                    bundle: Any = None, **extra: Any) -> dict:
    """A JSON-safe provenance record.

    Parameters
    ----------
    operation : str
        What produced the result (``"train"``, ``"predict"``, ``"calibrate"``,
        ``"batch predict"``, ...).
    source : str or None
        Name of the input layer or file.
    settings : pydantic model or dict
        The settings used (a model is dumped to JSON form).
    bundle : ModelBundle, optional
        The model used, if any: its method, creation time and training info are recorded.
    **extra
        Further JSON-serialisable fields (stop reason, chosen parameter, output path...).

    A model with pixel shuffle adds :func:`pixel_shuffle_record` (the factors it
    predicted with: pass the bundle the prediction ran,
    :func:`~napari_selfdenoise.core.inference.inference_bundle`).
    """
    from .. import __version__

    if hasattr(settings, "model_dump"):
        settings = settings.model_dump(mode="json")
    record: dict[str, Any] = {
        "tool": "napari-selfdenoise",
        "package_version": __version__,
        "operation": operation,
        "source": source,
        "settings": settings,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    if bundle is not None:
        record.update(method=bundle.method,
                      method_name=METHOD_NAMES.get(bundle.method, bundle.method),
                      model_created=bundle.created, model_info=bundle.info)
        record.update(pixel_shuffle_record(bundle))
    record.update(extra)
    return json.loads(json.dumps(record, default=str))


def pixel_shuffle_record(bundle: Any) -> dict:
    """``{"pixel_shuffle": {"train": T, "inference": K}}`` for a model with pixel shuffle
    (``K``: the factor ``bundle`` predicts with), else ``{}``."""
    params = getattr(getattr(bundle, "config", None), "params", None)
    if not getattr(params, "pixel_shuffle", False):
        return {}
    train, infer = params.factors()
    return {"pixel_shuffle": {"train": int(train), "inference": int(infer)}}
