"""The threaded backend: one process, a reader thread prefetching tiles (pinned memory,
non-blocking copies on CUDA), the device computing in the calling thread, a writer thread
stitching and writing finished chunks, so memory does not grow with the stack."""

from __future__ import annotations

import math
import queue
import threading
import time
from typing import Any, Generator, Optional

import numpy as np

from ... import resume, validation
from ...events import Message, PredictStarted, TileDone
from ...tiling import TilePlan
from ..plan import work_list
from ..runner import Runner
from ..sinks.base import Sink
from ..stitch import Stitcher
from ..tiles import phase_ids, read_tile
from .base import Job, Setup


class ThreadedBackend:
    """Today's engine: tiles in batches on one device of this process."""

    name = "threaded"

    def __init__(self) -> None:
        self.device: Any = None
        self.dtype: Any = None
        self.channels_last = False
        self.execution: dict = {}

    def setup(self, job: Job) -> Setup:
        from ...device import execution_record, resolve_precision, select_device, use_channels_last
        from ..memory import memory_budget

        self.device = device = select_device(job.config.device)
        self.channels_last = use_channels_last(device, job.config.channels_last)
        self.dtype = resolve_precision(device, job.config.precision)
        self.execution = execution_record(device, self.dtype, self.channels_last)
        return Setup(device.type, memory_budget(device, job.config), self.execution)

    def input_identity(self, job: Job) -> dict:
        return resume.input_identity(job.data, job.source)

    def runner(self, job: Job) -> Runner:
        """The network on the device, wrapped with the job's predictor, TTA and R3."""
        return make_runner(job, self.device, self.dtype, self.channels_last)

    def run(self, job: Job, sink: Sink, plan: TilePlan, batch: int
            ) -> Generator[Any, None, Any]:
        runner = self.runner(job)
        stitcher = Stitcher(plan, sink, job.bundle)
        work = work_list(plan, job.layout, sink.done)
        total = job.layout.n_samples * plan.n_tiles
        yield PredictStarted(self.execution, tuple(plan.tile_shape), int(batch), total)
        skipped = total - len(work)
        if skipped:
            yield Message(f"resuming: {skipped} of {total} tiles already done")
        return (yield from pipeline(
            work, batch, plan, job.layout, job.data, job.bundle, runner, self.device, stitcher,
            sink, job.stop, total, skipped))

    def close(self) -> None:
        pass


def make_runner(job: Job, device: Any, dtype: Any, channels_last: bool) -> Runner:
    """``job.net`` moved to ``device`` (channels-last if asked) in a :class:`Runner`."""
    import torch

    config = job.config
    net = job.net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last if job.bundle.spatial_dims == 2
                     else torch.channels_last_3d)
    return Runner(net, device, dtype, channels_last, config.tta, job.predictor, job.grid,
                  job.mode, job.n_subsets,
                  (config.r3_passes, config.r3_fraction) if config.r3 else None)


def pipeline(work, batch, plan, layout, data, bundle, runner, device, stitcher, sink, stop,
              total, skipped) -> Generator[Any, None, Any]:
    """Reader thread -> device (this generator) -> writer thread; yields a TileDone per
    batch, returns ``sink.finish(...)``."""
    import torch

    halt = threading.Event()
    to_compute: queue.Queue = queue.Queue(maxsize=2)
    to_write: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    pin = device.type == "cuda"

    def reader() -> None:
        try:
            for start in range(0, len(work), batch):
                if halt.is_set():
                    break
                items = work[start : start + batch]
                arr = np.stack([read_tile(data, layout, plan, bundle, s, t) for s, t in items])
                bad = validation.fill_nonfinite(arr)  # NaN policy: see docs/reliability.md
                if bad is not None:
                    sink.count_nan = True
                x = torch.from_numpy(arr)
                phase = None
                if runner.j_invariant:
                    phase = torch.from_numpy(np.stack(
                        [phase_ids(plan, t, runner) for _, t in items]))
                if pin:
                    x = x.pin_memory()
                _put(to_compute, (items, x, phase, bad), halt)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            _put(to_compute, None, None)

    def writer() -> None:
        try:
            while True:
                item = to_write.get()
                if item is None:
                    break
                items, y = item
                for (s, t), yi in zip(items, y):
                    stitcher.add(s, t, yi)
                sink.record()
        except BaseException as exc:
            errors.append(exc)
            halt.set()
            while to_write.get() is not None:  # drain so the producer never blocks
                pass

    threads = [threading.Thread(target=reader, daemon=True, name="predict-reader"),
               threading.Thread(target=writer, daemon=True, name="predict-writer")]
    for th in threads:
        th.start()
    t0 = time.perf_counter()
    done_tiles = 0
    voxels_per_tile = math.prod(plan.shape) * layout.n_samples / max(total, 1)
    stopped = ok = False
    try:
        with torch.inference_mode():
            while True:
                item = to_compute.get()
                if item is None:
                    break
                if errors:
                    break
                items, x, phase, bad = item
                if phase is not None:
                    phase = phase.to(device, non_blocking=True)
                y = runner(x.to(device, non_blocking=True), phase).cpu().numpy()
                if bad is not None:
                    y[bad] = np.nan  # back at the input's non-finite pixels
                to_write.put((items, y))
                done_tiles += len(items)
                elapsed = time.perf_counter() - t0
                rate = done_tiles / elapsed if elapsed > 0 else 0.0
                left = len(work) - done_tiles
                yield TileDone(
                    tiles_done=skipped + done_tiles, tiles_total=total,
                    voxels_per_s=rate * voxels_per_tile, elapsed_s=elapsed,
                    eta_s=left / rate if rate > 0 else None, skipped=skipped,
                )
                if stop is not None and stop.is_set() and left > 0:
                    stopped = True
                    break
        ok = True
    finally:
        halt.set()
        while threads[0].is_alive():  # unblock the reader
            try:
                to_compute.get(timeout=0.05)
            except queue.Empty:
                pass
        to_write.put(None)
        threads[1].join()
        if errors or not ok:  # an error, or the caller closed the generator
            try:
                sink.finish(complete=False)
            finally:
                if errors:
                    raise errors[0]
    complete = bool(sink.done.all())
    result = sink.finish(complete)
    if stopped:
        yield Message(f"stopped after {skipped + done_tiles} of {total} tiles"
                      + ("; run again with the same output to resume" if sink.resumable
                         else ""), "warning")
    return result


def _put(q: queue.Queue, item: Any, halt: Optional[threading.Event]) -> None:
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if halt is not None and halt.is_set():
                return
