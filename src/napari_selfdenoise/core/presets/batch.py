"""Batch runs: a preset applied to several inputs, one output per input, continuing past
inputs that fail and reporting them at the end."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Optional, Sequence, Union

from .files import PresetError
from .per_input import is_distributed, output_stem, process_input
from .settings import PredictSettings, Settings, kind_of


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
    from ..io import open_image

    return open_image(path)


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
            data, axes = _open_input(settings, source, axes)
            work = process_input(kind, settings, data, axes, name, out, stop, model,
                                 overwrite, ome_zarr)
            while True:
                try:
                    event = next(work)
                except StopIteration as fin:
                    result = fin.value
                    break
                yield BatchProgress(index, total, name, "running", event=event)
        except Exception as exc:  # one bad input must not end the batch
            from ..validation import is_user_error, user_message

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


def _open_input(settings: Settings, source: Any, axes: Optional[str]
                ) -> tuple[Any, Optional[str]]:
    """The data one input is processed from, and its axes (the file's when not given)."""
    if isinstance(source, (str, os.PathLike)) and is_distributed(settings):
        return source, axes  # the workers open the file; predict reads its axes
    if isinstance(source, (str, os.PathLike)):
        data, file_axes = read_input(source)
        return data, axes or file_axes
    return source, axes


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
    from ..outputs import OutputError, check_output

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
        stem = output_stem(name, tag)
        if stem in stems:
            raise OutputError(f"inputs {stems[stem]} and {name} would both be written to "
                              f"{out / stem}.tif; rename one of them or run them separately")
        stems[stem] = name
        if is_distributed(settings):  # workers write a resumable (OME-)zarr store
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


def _preset_model(settings: PredictSettings) -> Any:
    from ..bundle import ModelBundle

    if not settings.model_file:
        raise PresetError(
            "this predict preset names no model file: choose 'model file' as the model "
            "source before saving the preset, or pass a model"
        )
    return ModelBundle.load(settings.model_file)
