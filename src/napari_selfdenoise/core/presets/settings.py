"""The settings each preset kind holds: one pydantic model per widget."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from ..config import (
    CalibrateConfig, CompareConfig, PredictConfig, StrictModel, TrainConfig, default_config,
)


class TrainSettings(StrictModel):
    """Settings of the Train widget."""

    train: TrainConfig = Field(
        default_factory=default_config,
        description="Training settings (default: the default method with its defaults).",
    )
    budget_unit: Literal["steps", "minutes"] = Field(
        "steps", description="How the budget is shown: steps, or minutes (time_budget_s)."
    )
    preview: bool = Field(True, description="Live preview of the current view while training.")
    preview_every_s: float = Field(3.0, gt=0, le=600, description="Seconds between previews.")
    save_model_to: Optional[str] = Field(
        None, description="Model file written when training ends (None: not saved)."
    )


class PredictSettings(StrictModel):
    """Settings of the Predict widget."""

    model_source: Literal["session", "file", "layer"] = Field(
        "session", description="The model just trained, a model file, or a layer's model."
    )
    model_file: Optional[str] = Field(None, description="Model file (model_source 'file').")
    model_name: Optional[str] = Field(
        None, description="Layer (model_source 'layer') or session model name (None: latest)."
    )
    axes: Optional[str] = Field(None, description="Axes of the input; None infers them.")
    predict: PredictConfig = Field(default_factory=PredictConfig)
    output: Literal["layer", "zarr", "ome-zarr"] = Field(
        "layer", description="A new layer in memory, or a zarr store / an OME-Zarr "
        "multiscale image (path ending in .ome.zarr) opened back lazily."
    )
    zarr_path: Optional[str] = Field(None, description="Store for output 'zarr' / 'ome-zarr'.")


class CalibrateSettings(StrictModel):
    """Settings of the Calibrate widget."""

    calibrate: CalibrateConfig = Field(default_factory=CalibrateConfig)


class CompareSettings(StrictModel):
    """Settings of the Compare widget (core.compare): a batch run writes each input's pick."""

    compare: CompareConfig = Field(default_factory=CompareConfig)


Settings = Union[TrainSettings, PredictSettings, CalibrateSettings, CompareSettings]
SETTINGS_TYPES: dict[str, type] = {
    "train": TrainSettings,
    "predict": PredictSettings,
    "calibrate": CalibrateSettings,
    "compare": CompareSettings,
}


def kind_of(settings: Settings) -> str:
    """The preset kind (``"train"``, ``"predict"`` or ``"calibrate"``) of ``settings``."""
    for kind, cls in SETTINGS_TYPES.items():
        if isinstance(settings, cls):
            return kind
    raise TypeError(f"not a settings object: {type(settings).__name__}")

