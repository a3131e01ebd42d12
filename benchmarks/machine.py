"""The header every benchmark prints: which machine, bf16 support, threads, precision.

Figures from different machines (AVX2-only, AVX512-BF16 or AMX CPUs, GPUs) differ by
several times; the header lets them be told apart. Usage in a script::

    from machine import print_header
    print_header(precision="bf16 (auto)", device=device)
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

import torch

from napari_selfdenoise.core.device import (
    cpu_bf16_is_fast, cpu_bf16_kind, cpu_model_name, device_description,
)


def machine_info(precision: Optional[str] = None, device: Any = None) -> dict:
    """CPU model, its bf16 support, torch's CPU capability, threads, torch version,
    the precision and device the benchmark ran with, and the load average."""
    info = {
        "cpu": cpu_model_name(),
        "cpu_bf16": cpu_bf16_kind(),
        "cpu_bf16_native": cpu_bf16_is_fast(),
        "torch_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "precision": precision,
    }
    if device is not None:
        dev = torch.device(device)
        info["device"] = f"{dev} ({device_description(dev)})"
    try:
        info["load_average"] = [round(v, 1) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every system
        info["load_average"] = None
    return info


def header(precision: Optional[str] = None, device: Any = None) -> str:
    """:func:`machine_info` as comment lines (``# key: value``)."""
    info = machine_info(precision, device)
    return "\n".join(f"# {k}: {v}" for k, v in info.items() if v is not None)


def print_header(precision: Optional[str] = None, device: Any = None) -> None:
    """Print :func:`header` (flushed, before any figure)."""
    print(header(precision, device), flush=True)


def engine_precision(device: Any = "cpu", precision: str = "auto") -> str:
    """What ``precision`` resolves to on ``device`` (``"fp32"``, ``"bf16"``, ``"fp16"``)."""
    from napari_selfdenoise.core.device import precision_name, resolve_precision

    dtype = resolve_precision(torch.device(device), precision)
    name = precision_name(dtype)
    return f"{name} ({precision})" if precision == "auto" else name


def add_clock_options(ap: Any, what: str, threads: Optional[int] = None) -> None:
    """``--threads`` and ``--cpu-time`` (``what`` is measured in this process's CPU time)."""
    ap.add_argument("--threads", type=int, default=threads, help="torch threads")
    ap.add_argument("--cpu-time", action="store_true",
                    help=f"{what} in this process's CPU time with one torch thread: what an "
                         "idle core gives, robust to other load on a shared machine")


def apply_clock_options(args: Any) -> Callable[[], float]:
    """Set torch's threads (one under ``--cpu-time``), pay torch's one-time optimiser
    import (:func:`warm_up_optimiser`); return the clock to time with."""
    if args.cpu_time:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    warm_up_optimiser()
    return time.process_time if args.cpu_time else time.perf_counter


def warm_up_optimiser() -> float:
    """Create one Adam optimiser and return the CPU seconds it took: the first of a process
    imports ``torch._dynamo`` (3.5 CPU-s on an AVX2 EPYC with torch 2.13), which would
    otherwise be charged to the budget of the first run of a benchmark process only."""
    t = time.process_time()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    return time.process_time() - t
