"""One input of a batch run, by preset kind: train+predict, predict, compare or calibrate,
then the output written (TIFF or OME-Zarr) with its model and provenance."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator, Optional

import numpy as np

from ..config import PredictConfig
from .settings import PredictSettings, Settings


@dataclass
class Denoised:
    """What one kind made of an input, before it is written."""

    image: Any
    tag: str  # the output name's suffix: the method, denoiser or "compare"
    axes: Optional[str]
    model: Any = None  # the model that made it (written into the output's metadata)
    extra: dict = field(default_factory=dict)  # more provenance (execution, ranking ...)
    save_model: bool = False  # also write the model next to the output (training)


def output_stem(name: str, tag: str) -> str:
    """``<input name without its image suffix>_<tag>``."""
    stem = Path(name).name
    for suffix in (".tiff", ".tif", ".ome.zarr", ".zarr", ".npy"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return f"{stem}_{tag}"


def is_distributed(settings: Settings) -> bool:
    """A Predict preset that runs on a dask cluster (its outputs are zarr stores)."""
    return isinstance(settings, PredictSettings) and settings.predict.distributed


def _noting_execution(gen: Generator, extra: dict) -> Generator:
    """``gen`` with the prediction's device and precision noted in ``extra`` (provenance)."""
    from ..events import PredictStarted, tap

    def note(event: Any) -> None:
        if isinstance(event, PredictStarted):
            extra["execution"] = event.execution

    return tap(gen, note)


def _train(settings, data, axes, name, stop, model) -> Generator[Any, None, Denoised]:
    from ..inference import predict
    from ..training import train

    cfg = settings.train
    model = yield from train(data, cfg, axes=axes or cfg.axes, stop=stop)
    model.info.setdefault("source", name)
    pcfg = PredictConfig(device=cfg.device, precision=cfg.precision)
    axes = axes or model.axes
    extra: dict = {}
    denoised = yield from _noting_execution(predict(model, data, axes=axes, config=pcfg), extra)
    return Denoised(denoised, cfg.method, axes, model, extra, save_model=True)


def _predict(settings, data, axes, name, stop, model) -> Generator[Any, None, Denoised]:
    from ..inference import inference_bundle, predict

    model = inference_bundle(model, settings.predict)  # the output carries what ran
    axes = axes or settings.axes
    extra: dict = {}
    denoised = yield from _noting_execution(
        predict(model, data, axes=axes, config=settings.predict, stop=stop), extra)
    return Denoised(denoised, model.method, axes, model, extra)


def _compare(settings, data, axes, name, stop, model) -> Generator[Any, None, Denoised]:
    from ..compare import compare
    from ..validation import resolve_axes

    axes = resolve_axes(np.shape(data), axes)
    result = yield from compare(data, settings.compare, axes=axes, stop=stop)
    return Denoised(result.image, "compare", axes, result.bundle,
                    {"ranking": result.report()})


def _calibrate(settings, data, axes, name, stop, model) -> Generator[Any, None, Denoised]:
    from ..calibration import calibrate

    cfg = settings.calibrate
    result = yield from calibrate(data, cfg, axes=axes or cfg.axes, stop=stop)
    if result.image is None:
        raise RuntimeError("calibration was stopped before the image was denoised")
    return Denoised(result.image, result.denoiser, result.axes, None,
                    {"calibration": result.to_report()})


#: preset kind -> ``(settings, data, axes, name, stop, model)`` generator returning Denoised
KIND_RUNNERS: dict[str, Callable[..., Generator[Any, None, Denoised]]] = {
    "train": _train,
    "predict": _predict,
    "compare": _compare,
    "calibrate": _calibrate,
}


def process_input(kind: str, settings: Settings, data: Any, axes: Optional[str], name: str,
                  out: Optional[Path], stop: threading.Event, model: Any,
                  overwrite: bool = False, ome_zarr: Optional[str] = None
                  ) -> Generator[Any, None, Any]:
    """Process one input; returns the output path (``out`` given) or array.

    Written TIFFs carry the axes, the model (train / predict) and the provenance in the
    package's metadata document, so our napari reader opens them with their model.
    """
    if kind == "predict" and is_distributed(settings) and out is not None:
        return (yield from _predict_on_cluster(settings, data, axes, name, out, stop, model,
                                               overwrite, ome_zarr))
    done = yield from KIND_RUNNERS[kind](settings, data, axes, name, stop, model)
    if out is None:
        return done.image
    return _write(kind, settings, done, data, name, out, overwrite, ome_zarr)


def _predict_on_cluster(settings, data, axes, name, out, stop, model, overwrite,
                        ome_zarr) -> Generator[Any, None, Any]:
    """The workers write the store; nothing comes back to this process."""
    from ..inference import predict
    from ..provenance import make_provenance

    update: dict = {"overwrite": overwrite or settings.predict.overwrite}
    if ome_zarr:
        update["ome_zarr_version"] = ome_zarr
    config = settings.predict.model_copy(update=update)
    suffix = ".ome.zarr" if ome_zarr else ".zarr"
    store = out / f"{output_stem(name, model.method)}{suffix}"
    record = make_provenance("batch predict", name, settings, bundle=model)
    return (yield from predict(model, data, axes=axes or settings.axes, config=config,
                               stop=stop, out=store, provenance=record))


def _write(kind: str, settings: Settings, done: Denoised, source: Any, name: str, out: Path,
           overwrite: bool, ome_zarr: Optional[str]) -> Path:
    """Write ``done`` (and a trained model) into ``out``; returns the image's path."""
    from .. import io
    from ..provenance import make_provenance

    stem = output_stem(name, done.tag)
    if done.save_model:
        done.model.save(out / f"{stem}.sdmodel", overwrite=overwrite)
    record = make_provenance(f"batch {kind}", name, settings, bundle=done.model, **done.extra)
    doc = io.make_document(axes=done.axes,
                           model=done.model.to_metadata() if done.model else None,
                           provenance=record)
    if ome_zarr:
        return _write_ome_zarr(out / f"{stem}.ome.zarr", done.image, source, done.axes, doc,
                               ome_zarr, overwrite)
    return io.write_tiff_atomic(out / f"{stem}.tif", np.asarray(done.image, dtype=np.float32),
                                axes=done.axes, document=doc, overwrite=overwrite)


def _write_ome_zarr(path: Path, denoised: Any, source: Any, axes: Optional[str], doc: dict,
                    version: str, overwrite: bool) -> Path:
    """A batch output as OME-Zarr, with an OME-Zarr input's metadata when it has some."""
    from .. import ome_zarr, resume
    from ..axes import infer_axes
    from ..ome_zarr_store import write_ome_zarr

    axes = axes or infer_axes(tuple(denoised.shape))
    src = resume.source_path(source)
    found = ome_zarr.read_metadata(src) if src is not None else None
    meta = found[1] if found is not None and set(found[0]) == set(axes) else None
    return write_ome_zarr(path, np.asarray(denoised, dtype=np.float32), axes, document=doc,
                          metadata=meta, version=version, overwrite=overwrite)
