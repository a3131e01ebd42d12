"""Execution backends, registered by name (see :mod:`.base` for the protocol).

``threaded``: one process, reader / compute / writer threads (the default).
"""

from __future__ import annotations

from typing import Callable

from ...config import PredictConfig
from .base import Backend, Job, Setup
from .threaded import ThreadedBackend

#: backend name -> factory
BACKENDS: dict[str, Callable[[PredictConfig], Backend]] = {
    "threaded": lambda config: ThreadedBackend(),
}


def backend_name(config: PredictConfig) -> str:
    """The backend ``config`` asks for."""
    return "threaded"


def backend_for(config: PredictConfig) -> Backend:
    """A fresh backend for one prediction with ``config``."""
    return BACKENDS[backend_name(config)](config)


__all__ = ["BACKENDS", "Backend", "Job", "Setup", "backend_for", "backend_name"]
