"""Versioned presets of widget settings, and batch runs driven by a preset.

A preset is a human-readable JSON document holding exactly one widget's settings::

    {"format": "napari-selfdenoise/preset", "version": 1, "kind": "train",
     "settings": {"train": {...TrainConfig...}, "budget_unit": "steps", ...}}

Loading validates every key (unknown or bad keys are errors naming the key and the allowed
ones). :func:`run_batch` applies a preset to several inputs (train+predict, predict with a
model file, or calibrate, as the preset's ``kind`` says), one output per input, continuing
past inputs that fail and reporting them at the end.

Modules: :mod:`.settings` (one settings model per widget), :mod:`.files` (the document,
save and load), :mod:`.batch` (batch runs and their output plan), :mod:`.per_input` (one
input by kind, and its output).
"""

from __future__ import annotations

from .batch import (
    INPUT_PATTERNS, BatchInput, BatchProgress, BatchReport, _preset_model, expand_inputs,
    plan_outputs, read_input, run_batch,
)
from .files import (
    MAX_PRESET_BYTES, PRESET_FORMAT, PRESET_VERSION, SUFFIX, PresetError, load_preset,
    preset_to_dict, save_preset,
)
from .per_input import KIND_RUNNERS, output_stem, process_input
from .settings import (
    SETTINGS_TYPES, CalibrateSettings, CompareSettings, PredictSettings, Settings,
    TrainSettings, kind_of,
)

__all__ = [
    "INPUT_PATTERNS", "KIND_RUNNERS", "MAX_PRESET_BYTES", "PRESET_FORMAT", "PRESET_VERSION",
    "SETTINGS_TYPES", "SUFFIX", "BatchInput", "BatchProgress", "BatchReport",
    "CalibrateSettings", "CompareSettings", "PredictSettings", "PresetError", "Settings",
    "TrainSettings", "_preset_model", "expand_inputs", "kind_of", "load_preset",
    "output_stem", "plan_outputs", "preset_to_dict", "process_input", "read_input",
    "run_batch", "save_preset",
]
