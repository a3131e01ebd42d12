"""The public API: :func:`predict` (a generator of events) and :func:`predict_array`."""

from __future__ import annotations

import math
import threading
from typing import Any, Generator, Optional

from .. import outputs, resume
from ..bundle import ModelBundle
from ..config import PredictConfig
from ..events import Message, run_to_end
from ..methods import get_method
from ..methods.pd_option import with_inference_factor
from ..provenance import pixel_shuffle_record
from .backends import Job, backend_for
from .layout import map_axes, resolve_input
from .memory import bytes_per_voxel, fold_batch_norm
from .plan import plan_tiles
from .sinks import SinkRequest, make_sink, output_kind, sink_class


def predict(
    bundle: ModelBundle,
    data: Any,
    *,
    axes: Optional[str] = None,
    config: PredictConfig = PredictConfig(),
    out: Any = None,
    stop: Optional[threading.Event] = None,
    provenance: Optional[dict] = None,
) -> Generator[Any, None, Any]:
    """Denoise ``data`` with ``bundle``, tile by tile.

    Parameters
    ----------
    bundle : ModelBundle
        The trained model.
    data : array-like or path
        numpy, dask, zarr, memmap, or a path opened lazily with :func:`io.open_image`.
        Never modified; only the tiles being processed are read.
    axes : str, optional
        Data axes; default from file metadata, the model's axes (same rank) or a guess.
    config : PredictConfig
        Tiling, batching, TTA, J-invariance, precision, device, overwrite.
    out : path, optional
        ``.zarr`` (resumable), ``.tif`` (BigTIFF) or ``.npy``; None returns numpy.
    stop : threading.Event, optional
        Set it to stop after the current batch; a zarr / TIFF output is left resumable.
    provenance : dict, optional
        Stored with the model in file outputs (see :func:`~napari_selfdenoise.core.provenance.make_provenance`).

    Yields
    ------
    TileDone, Message

    Returns
    -------
    numpy.ndarray (float32, shaped like ``data``) or the output path.
    """
    job = _job(bundle, data, axes, config, out, stop)
    if provenance is not None:  # the factors this run predicts with
        provenance = {**provenance, **pixel_shuffle_record(job.bundle)}
    backend = backend_for(config)
    try:
        result = yield from _run(job, backend, provenance)
    finally:
        backend.close()
    return result


def inference_bundle(bundle: ModelBundle, config: PredictConfig,
                     source: str = "the model") -> ModelBundle:
    """The bundle :func:`predict` runs for ``config``: ``bundle`` itself, or with
    ``config.pixel_shuffle_infer`` its pixel-shuffle factor at inference
    (:func:`~napari_selfdenoise.core.methods.pd_option.with_inference_factor`; a
    ``UserError`` naming ``source`` for a model trained without pixel shuffle)."""
    return with_inference_factor(bundle, config.pixel_shuffle_infer, source)


def _job(bundle: ModelBundle, data: Any, axes: Optional[str], config: PredictConfig, out: Any,
         stop: Optional[threading.Event]) -> Job:
    """The input opened, the axes mapped, the output checked, the predictor chosen."""
    bundle = inference_bundle(bundle, config)
    src = resume.source_path(data)
    # a distributed run checks the pixels on a worker (DaskBackend.setup)
    data, axes = resolve_input(data, axes, bundle, check=not config.distributed)
    layout = map_axes(bundle, axes, tuple(int(s) for s in data.shape))
    kind = output_kind(out)
    if kind is not None:  # before any work: not an input, writable, room for it
        cls = sink_class(kind)
        outputs.check_output(out, overwrite=config.overwrite or cls.resumable,
                             inputs=[src], label="output", directory_ok=cls.directory,
                             expected_bytes=4 * math.prod(layout.shape))
    method = get_method(bundle.method)
    predictor = method.predictor(bundle.config, config.j_invariant)
    # the tile plan aligns tiles to the grid of a J-invariant predictor
    grid = bundle.config.masking.grid if predictor == "j_invariant" else 1
    mode = method.fill(bundle.config) if predictor == "j_invariant" else "zero"
    n_subsets = method.n_subsets(bundle.config, bundle.spatial_dims)
    return Job(bundle, data, src, layout, config, kind, out, stop, predictor, grid, mode,
               n_subsets, fold_batch_norm(bundle.build_model()))


def _run(job: Job, backend: Any, provenance: Optional[dict]) -> Generator[Any, None, Any]:
    """Plan the tiles for the backend's device, open the output (locked) and run."""
    bundle, config, layout = job.bundle, job.config, job.layout
    setup = backend.setup(job)
    cost = bytes_per_voxel(job.net, bundle.spatial_dims, bundle.n_channels, job.j_invariant)
    plan, batch, notes = plan_tiles(layout, job.net, bundle, config, cost, setup.budget,
                                    setup.device_type, job.predictor == "j_invariant", job.grid)
    for note in notes:
        yield Message(note, "warning")

    out = job.out
    resumable = job.kind is not None and sink_class(job.kind).resumable
    lock = outputs.OutputLock(out).acquire() if job.kind is not None else None
    try:
        if lock is not None:
            outputs.remove_stale_temporaries(out)
        req = SinkRequest(out, layout, plan, bundle, config, provenance, job.j_invariant,
                          backend.input_identity(job) if resumable else None,
                          setup.execution)
        sink, plan = make_sink(job.kind, req)
        result = yield from backend.run(job, sink, plan, batch)
    finally:
        if lock is not None:
            lock.release()
    if sink.nonfinite:
        yield Message(f"the input has {sink.nonfinite} NaN or infinite pixel(s): the network "
                      "saw them filled with the image mean, and they are NaN in the output",
                      "warning")
    return result


def predict_array(bundle: ModelBundle, array: Any, axes: Optional[str] = None, **kw: Any) -> Any:
    """Run :func:`predict` to the end and return its result.

    Keyword arguments are :func:`predict`'s (``config``, ``out``, ``stop``, ``provenance``,
    ``on_event``) or :class:`~napari_selfdenoise.core.config.PredictConfig` fields.
    """
    fields = {k: kw.pop(k) for k in list(kw) if k in PredictConfig.model_fields}
    config = kw.pop("config", None) or PredictConfig()
    if fields:
        config = config.model_copy(update=fields)
        PredictConfig.model_validate(config.model_dump())
    on_event = kw.pop("on_event", None)
    return run_to_end(predict(bundle, array, axes=axes, config=config, **kw), on_event)
