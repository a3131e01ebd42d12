"""Execution backends, registered by name (see :mod:`.base` for the protocol).

``threaded``: one process, reader / compute / writer threads (the default).
``dask``: blocks of output chunks on a dask.distributed cluster (``PredictConfig.scheduler``
or ``PredictConfig.workers``; needs the optional ``distributed`` package).
"""

from __future__ import annotations

from typing import Callable

from ...config import PredictConfig
from .base import Backend, Job, Setup
from .dask_backend import DaskBackend
from .threaded import ThreadedBackend

#: backend name -> factory
BACKENDS: dict[str, Callable[[PredictConfig], Backend]] = {
    "threaded": lambda config: ThreadedBackend(),
    "dask": DaskBackend,
}


def backend_name(config: PredictConfig) -> str:
    """The backend ``config`` asks for: ``dask`` with a scheduler or local workers."""
    return "dask" if config.distributed else "threaded"


def backend_for(config: PredictConfig) -> Backend:
    """A fresh backend for one prediction with ``config``."""
    return BACKENDS[backend_name(config)](config)


__all__ = ["BACKENDS", "Backend", "Job", "Setup", "backend_for", "backend_name"]
