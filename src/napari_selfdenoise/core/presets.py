"""Versioned presets of widget settings, and batch runs driven by a preset.

A preset is a human-readable JSON document holding exactly one widget's settings::

    {"format": "napari-selfdenoise/preset", "version": 1, "kind": "train",
     "settings": {"train": {...TrainConfig...}, "budget_unit": "steps", ...}}

Loading validates every key (unknown or bad keys are errors naming the key and the allowed
ones). :func:`run_batch` applies a preset to several inputs (train+predict, predict with a
model file, or calibrate, as the preset's ``kind`` says), one output per input, continuing
past inputs that fail and reporting them at the end.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Literal, Optional, Sequence, Union

import numpy as np
from pydantic import Field, ValidationError

from .config import (
    CalibrateConfig, CompareConfig, PredictConfig, StrictModel, TrainConfig, default_config,
)

PRESET_FORMAT = "napari-selfdenoise/preset"
PRESET_VERSION = 1
SUFFIX = ".json"
MAX_PRESET_BYTES = 1024**2


class PresetError(ValueError):
    """A preset file is unreadable, of another kind, from a newer version, or invalid."""


# ----------------------------------------------------------------------------- settings
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


# ------------------------------------------------------------------------ save / load
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
    where = "preset"
    if isinstance(source, dict):
        doc = source
    else:
        where = str(source)
        path = Path(source)
        if not path.is_file():
            raise PresetError(f"preset file {path} does not exist")
        from .validation import UserError, load_json

        if path.stat().st_size > MAX_PRESET_BYTES:
            raise PresetError(f"{where} is larger than {MAX_PRESET_BYTES} bytes; not a preset")
        try:
            doc = load_json(path.read_bytes(), where)
        except UserError as exc:
            raise PresetError(str(exc)) from None
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
    raw = doc.get("settings", {})
    if not isinstance(raw, dict):
        raise PresetError(f"{where}: 'settings' must be an object")
    cls = SETTINGS_TYPES[doc_kind]
    try:  # strict: JSON true is not 1, "3" is not 3 (lists are fine for tuples)
        return cls.model_validate_json(json.dumps(raw, allow_nan=True), strict=True)
    except ValidationError as exc:
        raise PresetError(f"{where} has invalid settings:\n" + _explain(exc, cls)) from None


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


# --------------------------------------------------------------------------- batch runs
@dataclass(frozen=True)
class BatchProgress:
    """Progress of a batch run: input ``index`` of ``total`` (``event`` is the inner one)."""

    index: int
    total: int
    name: str
    status: str  # "started", "running", "done", "failed"
    event: Any = None
    message: str = ""
    output: Any = None


@dataclass
class BatchReport:
    """The outcome of :func:`run_batch`: one output per successful input."""

    outputs: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """A human-readable summary naming every failed input."""
        n = len(self.outputs) + len(self.failures)
        text = f"{len(self.outputs)} of {n} inputs done in {self.elapsed_s:.1f} s"
        if self.failures:
            text += "; failed:\n" + "\n".join(f"  {k}: {v}" for k, v in self.failures.items())
        return text


BatchInput = Union[str, os.PathLike, tuple]  # a file path, or (name, array[, axes])
INPUT_PATTERNS = ("*.tif", "*.tiff", "*.zarr", "*.npy")


def expand_inputs(paths: Sequence[Union[str, os.PathLike]]) -> list[Path]:
    """Files given directly, plus the images inside given folders (sorted).

    A ``.zarr`` folder counts as one input, not as a folder to search.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and p.suffix != ".zarr":
            found = sorted({f for pat in INPUT_PATTERNS for f in p.glob(pat)})
            out.extend(found)
        else:
            out.append(p)
    return out


def read_input(path: Union[str, os.PathLike]) -> tuple[Any, Optional[str]]:
    """Open an image file lazily for a batch run: ``(array, axes or None)``."""
    from .io import open_image

    return open_image(path)


def _output_stem(name: str, tag: str) -> str:
    stem = Path(name).name
    for suffix in (".tiff", ".tif", ".ome.zarr", ".zarr", ".npy"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{stem}_{tag}"


def run_batch(
    settings: Settings,
    inputs: Sequence[BatchInput],
    out_dir: Optional[Union[str, os.PathLike]] = None,
    *,
    stop: Optional[threading.Event] = None,
    model: Any = None,
    overwrite: bool = False,
    ome_zarr: Optional[str] = None,
) -> Generator[BatchProgress, None, BatchReport]:
    """Apply a preset to each input in turn.

    Parameters
    ----------
    settings : TrainSettings, PredictSettings or CalibrateSettings
        Train settings train a model per input then denoise it with that model;
        predict settings denoise with ``model`` (or the preset's model file);
        calibrate settings calibrate and denoise each input.
    inputs : sequence
        File paths, or ``(name, array)`` / ``(name, array, axes)`` tuples.
    out_dir : path-like, optional
        Where ``<stem>_<method>.tif`` (and, for training, ``<stem>_<method>.sdmodel``) go;
        ``None`` keeps the outputs in memory (``BatchReport.outputs`` values are arrays).
        A distributed Predict preset (``predict.scheduler`` / ``predict.workers``) writes
        ``<stem>_<method>.zarr`` stores instead, resumable like ``predict``'s.
    stop : threading.Event, optional
        Stops the current input (keeping what it produced) and skips the rest.
    model : ModelBundle, optional
        The model for predict settings (overrides the preset's ``model_file``).
    overwrite : bool
        Replace existing outputs; without it they are refused before any work. Inputs
        whose outputs would share a name are always refused (see :func:`plan_outputs`).
    ome_zarr : {"0.4", "0.5"}, optional
        Write ``<stem>_<tag>.ome.zarr`` (OME-Zarr of that NGFF version, with the pyramid
        and an OME-Zarr input's axes, units, scale, translation and channel names)
        instead of ``.tif``.

    Yields
    ------
    BatchProgress
        ``started`` / ``running`` (with the inner event) / ``done`` / ``failed`` per input.
    """
    kind = kind_of(settings)
    stop = stop or threading.Event()
    out = Path(out_dir) if out_dir is not None else None
    report = BatchReport()
    t0 = time.perf_counter()
    if kind == "predict" and model is None:
        model = _preset_model(settings)
    if out is not None:
        plan_outputs(settings, inputs, out, model=model, overwrite=overwrite, ome_zarr=ome_zarr)
    total = len(inputs)
    for index, item in enumerate(inputs):
        if stop.is_set():
            break
        name, source, axes = _unpack(item)
        yield BatchProgress(index, total, name, "started")
        try:
            if isinstance(source, (str, os.PathLike)) and _distributed(settings):
                data = source  # the workers open the file; predict reads its axes
            elif isinstance(source, (str, os.PathLike)):
                data, file_axes = read_input(source)
                axes = axes or file_axes
            else:
                data = source
            work = _one(kind, settings, data, axes, name, out, stop, model, overwrite,
                        ome_zarr)
            while True:
                try:
                    event = next(work)
                except StopIteration as fin:
                    result = fin.value
                    break
                yield BatchProgress(index, total, name, "running", event=event)
        except Exception as exc:  # one bad input must not end the batch
            from .validation import is_user_error, user_message

            report.failures[name] = (user_message(exc) if is_user_error(exc)
                                     else f"{type(exc).__name__}: {exc}")
            yield BatchProgress(index, total, name, "failed", message=report.failures[name])
            continue
        report.outputs[name] = result
        yield BatchProgress(index, total, name, "done", output=result)
    for item in inputs[len(report.outputs) + len(report.failures):]:
        report.failures.setdefault(_unpack(item)[0], "not run: stopped")
    report.elapsed_s = time.perf_counter() - t0
    return report


def _unpack(item: BatchInput) -> tuple[str, Any, Optional[str]]:
    if isinstance(item, tuple):
        name, data = item[0], item[1]
        return str(name), data, (item[2] if len(item) > 2 else None)
    return Path(item).name, Path(item), None


def plan_outputs(settings: Settings, inputs: Sequence[BatchInput],
                 out_dir: Union[str, os.PathLike], *, model: Any = None,
                 overwrite: bool = False, ome_zarr: Optional[str] = None
                 ) -> dict[str, list[Path]]:
    """The files a batch run will write per input, checked before any work.

    Raises
    ------
    OutputError
        Two inputs whose outputs share a name (``a.tif`` and ``a.zarr``, or ``x/a.tif``
        and ``y/a.tif``), an output that is one of the inputs, or an existing output
        without ``overwrite``.
    """
    from .outputs import OutputError, check_output

    kind = kind_of(settings)
    out = Path(out_dir)
    tag = {"train": lambda: settings.train.method, "predict": lambda: model.method,
           "calibrate": lambda: settings.calibrate.denoiser,
           "compare": lambda: "compare"}[kind]()
    sources = [_unpack(item) for item in inputs]
    paths = [src for _, src, _ in sources if isinstance(src, (str, os.PathLike))]
    planned: dict[str, list[Path]] = {}
    stems: dict[str, str] = {}
    for name, _, _ in sources:
        stem = _output_stem(name, tag)
        if stem in stems:
            raise OutputError(f"inputs {stems[stem]} and {name} would both be written to "
                              f"{out / stem}.tif; rename one of them or run them separately")
        stems[stem] = name
        if _distributed(settings):  # workers write a resumable (OME-)zarr store
            store = out / f"{stem}{'.ome.zarr' if ome_zarr else '.zarr'}"
            check_output(store, overwrite=True, inputs=paths, label="output",
                         directory_ok=True)
            planned[name] = [store]
            continue
        suffix = ".ome.zarr" if ome_zarr else ".tif"
        files = [out / f"{stem}{suffix}"] if tag != "auto" else []
        if kind == "train":
            files.append(out / f"{stem}.sdmodel")
        for f in files:
            check_output(f, overwrite=overwrite, inputs=paths, label="output",
                         directory_ok=f.name.endswith(".ome.zarr"))
        planned[name] = files
    return planned


def _distributed(settings: Settings) -> bool:
    """A Predict preset that runs on a dask cluster (its outputs are zarr stores)."""
    return isinstance(settings, PredictSettings) and settings.predict.distributed


def _preset_model(settings: PredictSettings) -> Any:
    from .bundle import ModelBundle

    if not settings.model_file:
        raise PresetError(
            "this predict preset names no model file: choose 'model file' as the model "
            "source before saving the preset, or pass a model"
        )
    return ModelBundle.load(settings.model_file)


def _one(kind, settings, data, axes, name, out, stop, model,
         overwrite=False, ome_zarr=None) -> Generator[Any, None, Any]:
    """Process one input; returns the output path (``out`` given) or array.

    Written TIFFs carry the axes, the model (train / predict) and the provenance in the
    package's metadata document, so our napari reader opens them with their model.
    """
    from .events import PredictStarted, tap

    extra: dict = {}

    def note(event: Any) -> None:  # the prediction's device and precision, for provenance
        if isinstance(event, PredictStarted):
            extra["execution"] = event.execution

    if kind == "train":
        from .inference import predict
        from .training import train

        cfg = settings.train
        model = yield from train(data, cfg, axes=axes or cfg.axes, stop=stop)
        model.info.setdefault("source", name)
        pcfg = PredictConfig(device=cfg.device, precision=cfg.precision)
        axes = axes or model.axes
        denoised = yield from tap(predict(model, data, axes=axes, config=pcfg), note)
        tag = cfg.method
        if out is not None:
            model.save(out / f"{_output_stem(name, tag)}.sdmodel", overwrite=overwrite)
    elif kind == "predict" and _distributed(settings) and out is not None:
        from .inference import predict
        from .provenance import make_provenance

        # the workers write the store; nothing comes back to this process
        update: dict = {"overwrite": overwrite or settings.predict.overwrite}
        if ome_zarr:
            update["ome_zarr_version"] = ome_zarr
        config = settings.predict.model_copy(update=update)
        suffix = ".ome.zarr" if ome_zarr else ".zarr"
        store = out / f"{_output_stem(name, model.method)}{suffix}"
        record = make_provenance("batch predict", name, settings, bundle=model)
        return (yield from predict(model, data, axes=axes or settings.axes, config=config,
                                   stop=stop, out=store, provenance=record))
    elif kind == "predict":
        from .inference import predict

        axes = axes or settings.axes
        denoised = yield from tap(
            predict(model, data, axes=axes, config=settings.predict, stop=stop), note)
        tag = model.method
    elif kind == "compare":
        from .compare import compare
        from .validation import resolve_axes

        axes = resolve_axes(np.shape(data), axes)
        result = yield from compare(data, settings.compare, axes=axes, stop=stop)
        denoised, tag, model = result.image, "compare", result.bundle
        extra["ranking"] = result.report()
    else:
        from .calibration import calibrate

        cfg = settings.calibrate
        result = yield from calibrate(data, cfg, axes=axes or cfg.axes, stop=stop)
        if result.image is None:
            raise RuntimeError("calibration was stopped before the image was denoised")
        denoised, tag, axes, model = result.image, result.denoiser, result.axes, None
        extra["calibration"] = result.to_report()
    if out is None:
        return denoised
    from . import io
    from .provenance import make_provenance

    record = make_provenance(f"batch {kind}", name, settings, bundle=model, **extra)
    doc = io.make_document(axes=axes, model=model.to_metadata() if model else None,
                           provenance=record)
    if ome_zarr:
        return _write_ome_zarr(out / f"{_output_stem(name, tag)}.ome.zarr", denoised, data,
                               axes, doc, ome_zarr, overwrite)
    return io.write_tiff_atomic(out / f"{_output_stem(name, tag)}.tif",
                                np.asarray(denoised, dtype=np.float32), axes=axes,
                                document=doc, overwrite=overwrite)


def _write_ome_zarr(path: Path, denoised: Any, source: Any, axes: Optional[str], doc: dict,
                    version: str, overwrite: bool) -> Path:
    """A batch output as OME-Zarr, with an OME-Zarr input's metadata when it has some."""
    from . import ome_zarr, resume
    from .axes import infer_axes
    from .ome_zarr_store import write_ome_zarr

    axes = axes or infer_axes(tuple(denoised.shape))
    src = resume.source_path(source)
    found = ome_zarr.read_metadata(src) if src is not None else None
    meta = found[1] if found is not None and set(found[0]) == set(axes) else None
    return write_ome_zarr(path, np.asarray(denoised, dtype=np.float32), axes, document=doc,
                          metadata=meta, version=version, overwrite=overwrite)
