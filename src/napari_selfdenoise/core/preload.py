"""Torch's one-time optimiser import, paid in the background before training needs it.

The first ``torch.optim`` optimiser of a process imports ``torch._dynamo`` (its methods
are wrapped by ``torch._disable_dynamo``, which imports it on first call): with torch
2.13 that is 1.7-3.5 CPU-seconds on an AVX2 EPYC, charged to the first training run's
time budget and to the wait for its first preview. The Train and Compare widgets start
the import when they open and the ``train`` / ``compare`` commands before they read their
input, so it overlaps with the user choosing settings or with loading data. ``train()``
and ``compare()`` call :func:`preload_optimiser` and wait for it before their budget's
clock starts (starting it themselves when nobody did), so a one-time library import is
never training time and never competes with the training threads for the cores. Python's
import lock makes any other thread that needs the module meanwhile wait for it, never
import it twice.
"""

from __future__ import annotations

import threading
from typing import Optional

#: the module the first optimiser imports
MODULE = "torch._dynamo"

_thread: Optional[threading.Thread] = None
_lock = threading.Lock()


def _import() -> None:
    try:
        __import__(MODULE)
    except Exception:  # noqa: BLE001 - the optimiser's own import will raise it, in place
        pass


def preload_optimiser() -> threading.Thread:
    """Start importing :data:`MODULE` in a daemon thread, once per process.

    Returns
    -------
    threading.Thread
        The importing thread (the same one on every call); ``join()`` it to wait.
    """
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import, name="preload-optimiser", daemon=True)
            _thread.start()
        return _thread


__all__ = ["MODULE", "preload_optimiser"]
