"""Helpers of the Predict widget: the pixel-shuffle factor box, and where a distributed
or OME-Zarr prediction reads and writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from qtpy.QtWidgets import QSpinBox

from ..core import ome_zarr
from ..core.presets import PredictSettings

#: the pixel-shuffle box's value meaning "the factor the model was trained with"
AS_TRAINED = 0


def pixel_shuffle_box() -> QSpinBox:
    """The pixel-shuffle factor at inference (``PredictConfig.pixel_shuffle_infer``):
    0 shows "as trained" (None), 1 to 8 a factor."""
    box = QSpinBox()
    box.setRange(AS_TRAINED, 8)
    box.setValue(AS_TRAINED)
    box.setSpecialValueText("as trained")
    box.setToolTip(
        "Models trained with pixel shuffle only (bsn, ams ... with --pixel-shuffle): "
        "predict on the K x K pixel-shuffled sub-images, the same weights (1: full "
        "resolution; 'as trained': the factor the model was trained with). Disabled for "
        "a model trained without pixel shuffle.")
    return box


def pixel_shuffle_value(box: QSpinBox) -> Optional[int]:
    """The box's ``pixel_shuffle_infer`` (None: as trained)."""
    return None if box.value() == AS_TRAINED else box.value()


def show_pixel_shuffle(box: QSpinBox, bundle: Any, running: bool) -> None:
    """Enable ``box`` for a model with pixel shuffle (or one not loaded yet, ``bundle``
    None); for a model without it: disabled, back to "as trained", and the model's
    factors in the special text otherwise."""
    params = getattr(getattr(bundle, "config", None), "params", None)
    shuffled = bool(getattr(params, "pixel_shuffle", False))
    known_plain = bundle is not None and not shuffled
    if known_plain:
        box.setValue(AS_TRAINED)
    box.setSpecialValueText(f"as trained ({params.pd_infer})" if shuffled else "as trained")
    box.setEnabled(not known_plain and not running)


def file_of(layer: Any, settings: PredictSettings) -> str:
    """The file a distributed prediction reads: the layer's own (workers open it)."""
    if settings.output not in ("zarr", "ome-zarr"):
        raise ValueError("workers write a zarr store: choose 'zarr store on disk' or "
                         "'OME-Zarr on disk' as the output")
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or not Path(path).exists():
        raise ValueError(f"the layer {layer.name!r} was not opened from a file, and workers "
                         "read the file: save it as .zarr or .tif and open that, or run in "
                         "this process")
    return str(path)


def ome_output(path: str, layer: Any, axes: str) -> ome_zarr.OmeZarrOutput:
    """An OME-Zarr output carrying ``layer``'s scale, translation, units and channel names."""
    if not ome_zarr.is_ome_zarr_path(path):
        raise ValueError(f"an OME-Zarr output's name ends in .ome.zarr, not {path!r} "
                         "(e.g. denoised.ome.zarr)")
    from .._reader import OME_KEY

    units = getattr(layer, "units", None)
    names = (layer.metadata.get(OME_KEY) or {}).get("channel_names")
    meta = ome_zarr.ImageMetadata.from_layer(
        axes, layer.scale, layer.translate, [str(u) for u in units] if units else None,
        name=layer.name, channel_names=names)
    return ome_zarr.OmeZarrOutput(path, meta)
