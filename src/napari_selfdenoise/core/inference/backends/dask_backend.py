"""The dask backend: blocks of output chunks computed by the workers of a dask.distributed
cluster, written by them straight into the shared zarr store.

The client (this process) opens the input lazily only to check it and fingerprint it for
resuming, plans the tiles, creates (or resumes) the output store with its completion
record, and submits one task per block (:mod:`..blocks`); it receives small reports, never
image data, marks each finished block's chunks done in the record (the same record as the
threaded backend, so an interrupted run resumes in either backend) and yields progress.
A worker that dies loses only its running blocks: dask runs them again elsewhere.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Generator

from ...config import PredictConfig
from ...events import Message, PredictStarted, TileDone
from ...tiling import TilePlan
from ...validation import UserError
from ..blocks import block_voxels, make_blocks
from ..sinks import sink_class
from ..sinks.base import Sink
from . import cluster
from .base import Job, Setup
from .dask_worker import BlockSpec, inspect_input, model_hash, run_block, worker_setup

#: blocks in flight per worker thread (enough to keep every worker busy)
IN_FLIGHT_PER_THREAD = 3


class DaskBackend:
    """Runs a prediction's blocks on a dask.distributed cluster (``--scheduler`` /
    ``--workers``)."""

    name = "dask"

    def __init__(self, config: PredictConfig) -> None:
        self.config = config
        self.client: Any = None
        self.cluster: Any = None
        self.execution: dict = {}
        self.identity: dict = {}

    def setup(self, job: Job) -> Setup:
        check_job(job)
        config = job.config
        gpus = cluster.local_gpu_count(config.device) if config.workers else 0
        self.client, self.cluster = cluster.connect(config.scheduler, config.workers, gpus)
        cluster.wait_for_workers(self.client)
        device_type, budget, self.execution = self.client.submit(
            worker_setup, config, pure=False).result()
        # the pixels are checked and fingerprinted where they are read: on a worker
        self.identity = self.client.submit(inspect_input, str(Path(job.source).resolve()),
                                           pure=False).result()
        self.execution = {**self.execution, "backend": "dask",
                          "workers": len(self.client.scheduler_info(n_workers=-1)["workers"])}
        return Setup(device_type, budget, self.execution)

    def input_identity(self, job: Job) -> dict:
        return self.identity

    def run(self, job: Job, sink: Sink, plan: TilePlan, batch: int
            ) -> Generator[Any, None, Any]:
        from distributed import as_completed

        layout = job.layout
        total = layout.n_samples * plan.n_tiles
        yield PredictStarted(self.execution, tuple(plan.tile_shape), int(batch), total)
        skipped = int(sink.done.sum())
        if skipped:
            yield Message(f"resuming: {skipped} of {total} tiles already done")
        blocks = make_blocks(layout, plan, sink.done)
        client = self.client
        weights = job.bundle.to_bytes()
        out_array, out_axes = sink.worker_target()
        sink.remote_writes = True  # the client never reads the chunks back
        spec = BlockSpec(str(Path(job.source).resolve()), out_array, layout,
                         plan, job.config, job.predictor, job.grid, job.mode, job.n_subsets,
                         int(batch), model_hash(weights),
                         tuple(sorted(cluster.slots_by_host(client).items())), out_axes,
                         json.dumps(self.identity, sort_keys=True))
        # the weights travel once to every worker; each task gets a reference
        [weights_ref] = client.scatter([weights], broadcast=True, hash=False)
        threads = sum(client.nthreads().values()) or 1
        window = max(2, IN_FLIGHT_PER_THREAD * threads)
        pending = iter(blocks)
        futures = as_completed(loop=client.loop)
        in_flight: dict[Any, Any] = {}

        def submit(n: int) -> None:
            for block in pending:
                fut = client.submit(run_block, weights_ref, spec, block, pure=False)
                in_flight[fut] = block
                futures.add(fut)
                n -= 1
                if n <= 0:
                    return

        t0 = time.perf_counter()
        done_chunks = voxels = 0
        stopped = ok = False
        try:
            submit(window)
            for fut in futures:
                block = in_flight.pop(fut)
                report = fut.result()  # a task's error is raised here, as in the thread
                sink.done[report["chunk_ids"]] = True
                sink.nonfinite += int(report["nonfinite"])
                sink.record()
                done_chunks += len(block.chunk_ids)
                voxels += block_voxels(plan, block)
                elapsed = time.perf_counter() - t0
                rate = done_chunks / elapsed if elapsed > 0 else 0.0
                left = total - skipped - done_chunks
                yield TileDone(
                    tiles_done=skipped + done_chunks, tiles_total=total,
                    voxels_per_s=voxels / elapsed if elapsed > 0 else 0.0, elapsed_s=elapsed,
                    eta_s=left / rate if rate > 0 else None, skipped=skipped, block=report)
                if job.stop is not None and job.stop.is_set() and left > 0:
                    stopped = True
                    break
                submit(1)
            ok = True
        finally:
            for fut in list(in_flight):
                fut.cancel()
            if not ok:  # an error, or the caller closed the generator
                sink.finish(complete=False)
        complete = bool(sink.done.all())
        if complete:
            yield from _remote_finish(client, sink)
        result = sink.finish(complete)
        if stopped:
            yield Message(f"stopped after {skipped + done_chunks} of {total} tiles; run again "
                          "with the same output to resume", "warning")
        return result

    def close(self) -> None:
        if self.client is not None:
            cluster.close(self.client, self.cluster)
            self.client = self.cluster = None


def _remote_finish(client: Any, sink: Sink) -> Generator[Any, None, None]:
    """Run the sink's closing work (an OME-Zarr pyramid) on one worker."""
    task = sink.remote_finish()
    if task is None:
        return
    yield Message("building the output's lower resolution levels on a worker")
    function, args = task
    client.submit(function, *args, pure=False).result()
    sink.remote_finished()


def check_job(job: Job) -> None:
    """Refuse, in one line, what the workers cannot do: an input that is not a file, an
    output that is not a shared store."""
    if job.source is None or not Path(job.source).exists():
        raise UserError(
            "distributed prediction reads the input from its file on every worker: give the "
            "path of a .zarr, .tif or .npy file, not an in-memory array (or run without "
            "--scheduler / --workers)")
    if job.kind is None or not sink_class(job.kind).shared_store:
        what = "an in-memory result" if job.kind is None else f"{job.out}"
        raise UserError(
            f"distributed prediction writes a .zarr store that every worker can reach; "
            f"{what} cannot be written by several processes: give an output ending in .zarr "
            "or .ome.zarr")
