"""What runs in a dask worker process: load the model once, compute one block.

The client ships the model as its safetensors bytes (scattered once to every worker) with
their hash; a worker process builds the network once per (model, settings) and keeps it
(:data:`_CACHE`). Never a pickled torch module: the bytes are weights only. A worker
process opens the input file once per run and keeps it open for its block tasks
(:data:`_INPUTS`, keyed by the path and the input's identity: a changed file is opened
afresh); a block task reads only the tiles of its block, and writes only its own chunks
straight into the output zarr store. It reads its input region once: the
bounding box of its tiles (its chunks plus the network's halo, reflected at the image's
ends).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import io, validation
from ...config import PredictConfig
from ...tiling import TilePlan
from ..blocks import Block
from ..layout import Layout
from ..sinks.base import Sink
from ..stitch import Stitcher
from ..tiles import phase_ids, read_tile

#: environment variable overriding the torch threads of every task on a worker
THREADS_ENV = "NAPARI_SELFDENOISE_TORCH_THREADS"
_CACHE: dict[tuple, tuple] = {}  # (model hash, settings) -> (bundle, runner, device)
_CACHE_SIZE = 2
_LOCK = threading.Lock()
_LOADS = [0]  # models built by this process
_INPUTS: dict[tuple, Any] = {}  # (path, identity) -> the opened (lazy) input
_INPUTS_SIZE = 2
_OPENS = [0]  # inputs opened by this process


@dataclass(frozen=True)
class BlockSpec:
    """What every block task of one prediction shares (small: no image data, no weights)."""

    source: str  # the input file (opened by each task)
    out: str  # the output zarr store
    layout: Layout
    plan: TilePlan
    config: PredictConfig
    predictor: str
    grid: int
    mode: str
    n_subsets: int
    batch: int
    model_hash: str
    slots_by_host: tuple[tuple[str, int], ...] = ()
    out_axes: str = ""  # axes of the output array ("" : the layout's), e.g. OME-Zarr's
    input_key: str = ""  # the input's identity (resume record: size, mtime, fingerprint)

    @property
    def model_key(self) -> tuple:
        c = self.config
        return (self.model_hash, c.device, c.precision, c.channels_last, c.tta, c.r3,
                c.r3_passes, c.r3_fraction, self.predictor, self.grid, self.mode,
                self.n_subsets)


def model_hash(data: bytes) -> str:
    """The identity of the shipped model bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


def torch_threads(slots_by_host: dict[str, int]) -> int:
    """Torch threads per task: :data:`THREADS_ENV`, else this host's usable cores shared
    by the worker threads the cluster runs on it."""
    if os.environ.get(THREADS_ENV):
        return max(1, int(os.environ[THREADS_ENV]))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    slots = 1
    try:
        from urllib.parse import urlparse

        from distributed import get_worker

        worker = get_worker()
        host = urlparse(worker.address).hostname or worker.address
        slots = slots_by_host.get(host) or worker.state.nthreads
    except (ImportError, ValueError):  # not in a worker (tests call it directly)
        pass
    return max(1, cores // max(1, int(slots)))


def _model(model_bytes: bytes, spec: BlockSpec) -> tuple:
    """``(bundle, runner, device)`` for ``spec``, built once per worker process."""
    with _LOCK:
        hit = _CACHE.get(spec.model_key)
        if hit is not None:
            return hit
        import torch

        from ...bundle import ModelBundle
        from ...device import resolve_precision, select_device, use_channels_last
        from ..memory import fold_batch_norm
        from .base import Job
        from .threaded import make_runner

        if model_hash(model_bytes) != spec.model_hash:
            raise ValueError("the model bytes this worker received do not match their hash")
        torch.set_num_threads(torch_threads(dict(spec.slots_by_host)))
        bundle = ModelBundle.from_bytes(model_bytes, source="the model sent to this worker")
        device = select_device(spec.config.device)
        cl = use_channels_last(device, spec.config.channels_last)
        dtype = resolve_precision(device, spec.config.precision)
        job = Job(bundle, None, spec.source, spec.layout, spec.config, "zarr", spec.out, None,
                  spec.predictor, spec.grid, spec.mode, spec.n_subsets,
                  fold_batch_norm(bundle.build_model()))
        hit = (bundle, make_runner(job, device, dtype, cl), device)
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[spec.model_key] = hit
        _LOADS[0] += 1
        return hit


def _input(spec: BlockSpec) -> Any:
    """The input of ``spec``, opened lazily once per worker process and kept (the readers
    are thread-safe: zarr, memory maps, tifffile's locked store)."""
    key = (spec.source, spec.input_key)
    with _LOCK:
        data = _INPUTS.get(key)
        if data is None:
            data, _ = io.open_image(spec.source)
            while len(_INPUTS) >= _INPUTS_SIZE:
                _INPUTS.pop(next(iter(_INPUTS)))
            _INPUTS[key] = data
            _OPENS[0] += 1
        return data


def worker_setup(config: PredictConfig) -> tuple[str, float, dict]:
    """On a worker: (device type, memory budget, execution record) the tiles are planned for."""
    from ...device import execution_record, resolve_precision, select_device, use_channels_last
    from ..memory import memory_budget

    device = select_device(config.device)
    dtype = resolve_precision(device, config.precision)
    cl = use_channels_last(device, config.channels_last)
    return device.type, memory_budget(device, config), execution_record(device, dtype, cl)


def read_block(data: Any, layout: Layout, plan: TilePlan, block: Block) -> "BlockView":
    """Read once the input region every tile of ``block`` needs (the bounding box of their
    reflected regions, all channels) and serve the tiles from it."""
    from ...tiling import reflect_index

    tiles = plan.tiles_for_chunks(block.chunks)
    lo = [min(int(reflect_index(np.arange(*plan.tile_region(t)[d]), n).min()) for t in tiles)
          for d, n in enumerate(plan.shape)]
    hi = [max(int(reflect_index(np.arange(*plan.tile_region(t)[d]), n).max()) + 1
              for t in tiles) for d, n in enumerate(plan.shape)]
    sample = layout.sample_index(block.sample)
    index, offsets = [], []
    for a, n in zip(layout.axes, layout.shape):
        if a in layout.spatial:
            d = layout.spatial.index(a)
            index.append(slice(lo[d], hi[d]))
            offsets.append(lo[d])
        elif a in sample:
            index.append(slice(sample[a], sample[a] + 1))
            offsets.append(sample[a])
        else:  # C
            index.append(slice(None))
            offsets.append(0)
    return BlockView(np.asarray(data[tuple(index)]), tuple(offsets), data.shape, data.dtype)


class BlockView:
    """A region of the input read into memory, indexed in the input's coordinates (only
    inside the region); ``elements`` is what was read from the input."""

    def __init__(self, region: np.ndarray, offsets: tuple[int, ...], shape: Any,
                 dtype: Any) -> None:
        self.region, self.offsets = region, offsets
        self.shape, self.dtype = tuple(shape), dtype
        self.elements = int(region.size)

    def __getitem__(self, index: tuple) -> np.ndarray:
        local = []
        for i, off in zip(index, self.offsets):
            if isinstance(i, slice):
                start = None if i.start is None else i.start - off
                stop = None if i.stop is None else i.stop - off
                local.append(slice(start, stop, i.step))
            else:
                local.append(int(i) - off)
        return self.region[tuple(local)]


class BlockSink(Sink):
    """Writes the block's own chunks into the shared zarr store; every other chunk counts
    as done, so the stitcher never writes a chunk another task owns."""

    kind = "block"

    def __init__(self, layout: Layout, plan: TilePlan, array: Any, block: Block,
                 out_axes: str = ""):
        super().__init__(layout, layout.n_samples * plan.n_tiles)
        self.array = array
        self.done[:] = True
        self.done[list(block.chunk_ids)] = False
        self.out_axes = out_axes or layout.axes

    @classmethod
    def open(cls, req):  # pragma: no cover - built by run_block, never from a request
        raise NotImplementedError("a BlockSink is made by run_block")

    def write(self, sample, spatial, block):
        self.put(self.array, sample, spatial, block, self.out_axes)

    def finish(self, complete):
        return None


def inspect_input(source: str) -> dict:
    """On a worker: the input file's pixel checks (``validation.check_array``: empty,
    dtype, integer range) and its identity for the resume record; the client reads none of
    its pixels."""
    from ... import resume

    data, _ = io.open_image(source)
    validation.check_array(data, "the input", purpose="predict")
    return resume.input_identity(data, source)


def run_block(model_bytes: bytes, spec: BlockSpec, block: Block) -> dict:
    """Compute ``block``'s tiles, write its chunks; a small report (no image data)."""
    import torch
    import zarr

    bundle, runner, device = _model(model_bytes, spec)
    data = _input(spec)
    reader = read_block(data, spec.layout, spec.plan, block)
    sink = BlockSink(spec.layout, spec.plan, zarr.open_array(spec.out, mode="r+"), block,
                     spec.out_axes)
    stitcher = Stitcher(spec.plan, sink, bundle)
    tiles = spec.plan.tiles_for_chunks(block.chunks)
    with torch.inference_mode():
        for start in range(0, len(tiles), spec.batch):
            items = tiles[start : start + spec.batch]
            arr = np.stack([read_tile(reader, spec.layout, spec.plan, bundle, block.sample, t)
                            for t in items])
            bad = validation.fill_nonfinite(arr)  # NaN policy: see docs/reliability.md
            if bad is not None:
                sink.count_nan = True
            phase = None
            if runner.j_invariant:
                phase = torch.from_numpy(np.stack([phase_ids(spec.plan, t, runner)
                                                   for t in items])).to(device)
            y = runner(torch.from_numpy(arr).to(device), phase).cpu().numpy()
            if bad is not None:
                y[bad] = np.nan
            for t, yi in zip(items, y):
                stitcher.add(block.sample, t, yi)
    left = [c for c in block.chunk_ids if not sink.done[c]]
    if left:  # cannot happen with a consistent plan; never report unwritten chunks done
        raise RuntimeError(f"block of sample {block.sample}: chunks {left} were not completed")
    return {"chunk_ids": list(block.chunk_ids), "nonfinite": sink.nonfinite,
            "elements_read": reader.elements, "tiles": len(tiles), "pid": os.getpid(),
            "model_loads": _LOADS[0], "input_opens": _OPENS[0]}
