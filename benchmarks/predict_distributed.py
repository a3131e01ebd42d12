"""Distributed prediction (dask.distributed, issue #15) against the threaded engine.

The default N2V network (as in ``predict_throughput.py``) denoises a synthetic noisy
``T x size x size`` uint16 stack stored in a zarr store (chunks ``1 x 512 x 512``) into a
zarr output, by

- ``threaded``: ``predict`` in this process (reader / compute / writer threads);
- ``dask-1``, ``dask-2``: ``predict`` with ``scheduler=`` a ``LocalCluster`` of 1 or 2
  worker processes (one dask thread each; started before timing, kept across repeats, so
  the second repeat runs with the model already loaded in every worker).

All on the same data and settings, in one run, ``--repeats`` times each; the best is
reported, with the ratio to ``threaded``. Clocks: wall time, and CPU time summed over the
processes that computed (this one for ``threaded``; the workers and this client for
``dask``): the wall ratio is the speed-up, the CPU ratio the cost of distributing. Under
``--cpu-time`` every process uses one torch thread. Memory: each worker's peak RSS
(``VmHWM``) after the runs, and this process's.

Usage::

    python benchmarks/predict_distributed.py --planes 8 --size 1024 --repeats 2 --cpu-time
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import (  # noqa: E402  (benchmarks/ is on sys.path)
    add_clock_options, apply_clock_options, engine_precision, print_header,
)
from predict_throughput import default_bundle, noisy_stack  # noqa: E402


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``: reset at exec, unlike ``ru_maxrss``
    which a spawned worker inherits from the process that forked it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_once(bundle, source: Path, out: Path, config, client=None
             ) -> tuple[float, float, float]:
    """(wall s, CPU s of the computing processes, CPU s of this process) of one prediction
    into ``out`` (this process: the client, and the scheduler of a LocalCluster)."""
    from napari_selfdenoise.core.inference import predict_array

    workers_cpu = (lambda: sum(client.run(_cpu_s).values())) if client is not None else None
    c0, w0, t0 = _cpu_s(), workers_cpu() if workers_cpu else 0.0, time.perf_counter()
    predict_array(bundle, source, axes="TYX", out=out, config=config)
    wall = time.perf_counter() - t0
    here = _cpu_s() - c0
    return wall, here + ((workers_cpu() - w0) if workers_cpu else 0.0), here


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--planes", type=int, default=8)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    add_clock_options(ap, "the threaded run")
    args = ap.parse_args()
    apply_clock_options(args)
    print_header(engine_precision(precision="fp32"))

    import logging

    import torch
    import zarr
    from distributed import Client, LocalCluster

    from napari_selfdenoise.core.config import PredictConfig

    if args.threads:  # every worker process gets the same torch threads
        os.environ["NAPARI_SELFDENOISE_TORCH_THREADS"] = str(args.threads)
    bundle = default_bundle()
    stack = noisy_stack((args.planes, args.size, args.size))
    tmp = Path(tempfile.mkdtemp(prefix="predict_distributed_"))
    source = tmp / "in.zarr"
    arr = zarr.create_array(str(source), shape=stack.shape, dtype="uint16",
                            chunks=(1, 512, 512))
    arr[:] = stack
    config = PredictConfig(precision="fp32", device="cpu", overwrite=True)
    rows: dict[str, dict] = {}
    outs: dict[str, Path] = {}
    best: dict[str, tuple[float, float]] = {}
    times = {"threaded": [run_once(bundle, source, tmp / "threaded.zarr", config)
                          for _ in range(args.repeats)]}
    outs["threaded"] = tmp / "threaded.zarr"
    for n in args.workers:
        name = f"dask-{n}"
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                Client(cluster, set_as_default=False) as client:
            cfg = config.model_copy(update={"scheduler": cluster.scheduler_address})
            outs[name] = tmp / f"{name}.zarr"
            times[name] = [run_once(bundle, source, outs[name], cfg, client)
                           for _ in range(args.repeats)]
            rss = client.run(_peak_rss_mb)
        rows[name] = {"worker_peak_rss_mb": sorted(rss.values())}
    voxels = stack.size
    ref = zarr.open_array(str(outs["threaded"]), mode="r")[:]
    for name, ts in times.items():
        best[name] = (min(t[0] for t in ts), min(t[1] for t in ts))
        row = rows.setdefault(name, {})
        client_cpu = min(ts, key=lambda t: t[1])[2]
        row.update(wall_s=best[name][0], cpu_s=best[name][1], client_cpu_s=client_cpu,
                   wall_vox_s=voxels / best[name][0], cpu_vox_s=voxels / best[name][1],
                   speedup_wall=best["threaded"][0] / best[name][0],
                   cpu_ratio=best[name][1] / best["threaded"][1], all_times=ts,
                   max_abs_diff=float(np.abs(zarr.open_array(str(outs[name]), mode="r")[:]
                                             - ref).max()))
    result = {"planes": args.planes, "size": args.size, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "client_peak_rss_mb": _peak_rss_mb(), "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.planes} x {args.size} x {args.size} uint16 zarr -> zarr (TYX, 2D model), "
          f"{torch.get_num_threads()} torch thread(s) per process, {os.cpu_count()} CPUs")
    print(f"  {'':9s} {'wall s':>8s} {'Mvox/s':>7s} {'x thr.':>6s}   {'CPU s':>7s} "
          f"{'(client)':>8s} {'CPU/thr.':>8s}  worker peak RSS (MiB)   max |diff|")
    for name in ["threaded"] + [f"dask-{n}" for n in args.workers]:
        row = rows[name]
        rss = ", ".join(f"{r:.0f}" for r in row.get("worker_peak_rss_mb", [])) or "-"
        print(f"  {name:9s} {row['wall_s']:8.2f} {row['wall_vox_s'] / 1e6:7.2f} "
              f"{row['speedup_wall']:6.2f}   {row['cpu_s']:7.2f} {row['client_cpu_s']:8.2f} "
              f"{row['cpu_ratio']:8.2f}  {rss:22s}  {row['max_abs_diff']:.2g}")
    print(f"  this process (client; threaded ran in it) peak RSS: "
          f"{result['client_peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
