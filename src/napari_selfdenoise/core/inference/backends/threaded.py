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
    pipe = _Pipeline(work, batch, plan, layout, data, bundle, runner, device, stitcher, sink)
    pipe.start()
    ok = False
    try:
        stopped, done_tiles = yield from pipe.compute(stop, total, skipped)
        ok = True
    finally:
        pipe.shut_down(ok)
    result = sink.finish(bool(sink.done.all()))
    if stopped:
        yield Message(f"stopped after {skipped + done_tiles} of {total} tiles"
                      + ("; run again with the same output to resume" if sink.resumable
                         else ""), "warning")
    return result


class _Pipeline:
    """The three stages of :func:`pipeline` and the bounded queues between them: read
    (:meth:`read`, a thread), compute (:meth:`compute`, the caller's thread), stitch and
    write (:meth:`write`, a thread); the first error of any stage halts the others."""

    def __init__(self, work, batch, plan, layout, data, bundle, runner, device, stitcher,
                 sink) -> None:
        self.work, self.batch, self.plan, self.layout = work, batch, plan, layout
        self.data, self.bundle, self.runner, self.device = data, bundle, runner, device
        self.stitcher, self.sink = stitcher, sink
        self.halt = threading.Event()
        self.to_compute: queue.Queue = queue.Queue(maxsize=2)
        self.to_write: queue.Queue = queue.Queue(maxsize=2)
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self.read, daemon=True, name="predict-reader"),
            threading.Thread(target=self.write, daemon=True, name="predict-writer")]

    def start(self) -> None:
        """Start the reader and writer threads."""
        for th in self.threads:
            th.start()

    def read(self) -> None:
        """Reader thread: each batch of tiles, prepared for the device, into the queue."""
        try:
            for start in range(0, len(self.work), self.batch):
                if self.halt.is_set():
                    break
                _put(self.to_compute, self.prepare(self.work[start : start + self.batch]),
                     self.halt)
        except BaseException as exc:  # surfaced in the main thread
            self.errors.append(exc)
        finally:
            _put(self.to_compute, None, None)

    def prepare(self, items: list) -> tuple:
        """``(items, tiles, phase ids or None, non-finite mask or None)`` of one batch:
        read, non-finite pixels filled, pinned on CUDA."""
        import torch

        plan, runner = self.plan, self.runner
        arr = np.stack([read_tile(self.data, self.layout, plan, self.bundle, s, t)
                        for s, t in items])
        bad = validation.fill_nonfinite(arr)  # NaN policy: see docs/reliability.md
        if bad is not None:
            self.sink.count_nan = True
        x = torch.from_numpy(arr)
        phase = None
        if runner.j_invariant:
            phase = torch.from_numpy(np.stack([phase_ids(plan, t, runner) for _, t in items]))
        if self.device.type == "cuda":
            x = x.pin_memory()
        return items, x, phase, bad

    def write(self) -> None:
        """Writer thread: stitch each computed batch and record the finished chunks."""
        try:
            while True:
                item = self.to_write.get()
                if item is None:
                    break
                items, y = item
                for (s, t), yi in zip(items, y):
                    self.stitcher.add(s, t, yi)
                self.sink.record()
        except BaseException as exc:
            self.errors.append(exc)
            self.halt.set()
            while self.to_write.get() is not None:  # drain so the producer never blocks
                pass

    def compute(self, stop: Optional[threading.Event], total: int, skipped: int
                ) -> Generator[TileDone, None, tuple[bool, int]]:
        """The device loop: a TileDone per batch; returns ``(stopped, tiles computed)``."""
        import torch

        t0 = time.perf_counter()
        done_tiles = 0
        voxels_per_tile = math.prod(self.plan.shape) * self.layout.n_samples / max(total, 1)
        with torch.inference_mode():
            while True:
                item = self.to_compute.get()
                if item is None or self.errors:
                    break
                items, x, phase, bad = item
                if phase is not None:
                    phase = phase.to(self.device, non_blocking=True)
                y = self.runner(x.to(self.device, non_blocking=True), phase).cpu().numpy()
                if bad is not None:
                    y[bad] = np.nan  # back at the input's non-finite pixels
                self.to_write.put((items, y))
                done_tiles += len(items)
                elapsed = time.perf_counter() - t0
                rate = done_tiles / elapsed if elapsed > 0 else 0.0
                left = len(self.work) - done_tiles
                yield TileDone(
                    tiles_done=skipped + done_tiles, tiles_total=total,
                    voxels_per_s=rate * voxels_per_tile, elapsed_s=elapsed,
                    eta_s=left / rate if rate > 0 else None, skipped=skipped,
                )
                if stop is not None and stop.is_set() and left > 0:
                    return True, done_tiles
        return False, done_tiles

    def shut_down(self, ok: bool) -> None:
        """Stop the threads; after an error, or when the caller closed the generator
        (``ok`` false), close the sink as incomplete and raise the first error."""
        self.halt.set()
        while self.threads[0].is_alive():  # unblock the reader
            try:
                self.to_compute.get(timeout=0.05)
            except queue.Empty:
                pass
        self.to_write.put(None)
        self.threads[1].join()
        if self.errors or not ok:
            try:
                self.sink.finish(complete=False)
            finally:
                if self.errors:
                    raise self.errors[0]


def _put(q: queue.Queue, item: Any, halt: Optional[threading.Event]) -> None:
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if halt is not None and halt.is_set():
                return
