"""Connecting to a dask.distributed cluster, or starting a local one for one run.

``distributed`` is an optional dependency (``pip install "napari-selfdenoise[distributed]"``);
nothing here imports it before a distributed prediction is asked for.

Local GPU workers: one worker process per GPU, each seeing only its GPU through
``CUDA_VISIBLE_DEVICES`` (what dask-cuda's ``LocalCUDACluster`` does), one task at a time.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from ...validation import UserError

INSTALL_HINT = 'pip install "napari-selfdenoise[distributed]"'
#: how long to wait for a scheduler (and for workers to join it)
CONNECT_TIMEOUT_S = 10.0


class ClusterError(UserError):
    """No cluster to run on: distributed missing, scheduler unreachable, no workers."""


def require_distributed() -> Any:
    """The ``distributed`` module, or a one-line :class:`ClusterError` saying what to install."""
    try:
        import distributed
    except ImportError:
        raise ClusterError("distributed prediction (--scheduler / --workers) needs "
                           f"dask.distributed, which is not installed: {INSTALL_HINT}") from None
    return distributed


def connect(scheduler: Optional[str], workers: Optional[int], gpus: int = 0
            ) -> tuple[Any, Optional[Any]]:
    """A ``(client, cluster)``: ``cluster`` is the local one started here (None when
    connected to ``scheduler``); close both with :func:`close`."""
    distributed = require_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S,
                                        set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterError(
                f"cannot reach the dask scheduler at {scheduler!r} ({why[:200]}); start one "
                "(`dask scheduler`, then `dask worker ADDRESS` on each machine) or use "
                "--workers N for local worker processes") from None
        return client, None
    cluster = local_cluster(int(workers or 1), gpus)
    try:
        client = distributed.Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def local_cluster(n_workers: int, gpus: int = 0) -> Any:
    """``n_workers`` worker processes with one thread each; with ``gpus`` > 0, worker ``i``
    sees only GPU ``i % gpus``."""
    distributed = require_distributed()
    quiet = {"silence_logs": logging.ERROR, "dashboard_address": None}
    if gpus <= 0:
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                        processes=True, **quiet)
    # one process per GPU, as dask-cuda's LocalCUDACluster: untested here (no GPU)
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": None}}
    specs = {
        f"gpu-{i}": {"cls": distributed.Nanny, "options": {
            "nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i % gpus)},
            "silence_logs": logging.ERROR}}
        for i in range(n_workers)
    }
    return distributed.SpecCluster(workers=specs, scheduler=scheduler,
                                   silence_logs=logging.ERROR)


def wait_for_workers(client: Any, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Wait until the cluster has a worker (a one-line error when it has none)."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (TimeoutError, OSError):
        raise ClusterError(f"the dask cluster at {client.scheduler.address} has no workers "
                           f"(waited {timeout_s:.0f} s); start some with `dask worker "
                           f"{client.scheduler.address}`") from None


def slots_by_host(client: Any) -> dict[str, int]:
    """Worker threads per host: each task's torch gets that host's cores / this."""
    from urllib.parse import urlparse

    slots: dict[str, int] = {}
    for addr, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = urlparse(addr).hostname or addr
        slots[host] = slots.get(host, 0) + int(info.get("nthreads", 1))
    return slots


def close(client: Any, cluster: Optional[Any]) -> None:
    """Close the client and the cluster started for the run (never an external one)."""
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


def local_gpu_count(device: str) -> int:
    """GPUs a local cluster gives one worker each: those torch sees, when ``device`` allows
    CUDA (``auto`` / ``cuda``); 0 on CPU-only machines."""
    if not (device or "auto").lower().startswith(("auto", "cuda")):
        return 0
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
