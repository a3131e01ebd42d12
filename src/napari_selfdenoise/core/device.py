"""Device selection and mixed-precision settings shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Optional

import torch


def select_device(preference: str = "auto") -> torch.device:
    """Pick the compute device: CUDA, then Apple MPS, then CPU, unless overridden.

    Parameters
    ----------
    preference : str
        ``"auto"`` or an explicit torch device string (``"cpu"``, ``"cuda:1"``, ``"mps"``).
    """
    pref = (preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {preference!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but CUDA is not available")
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device {preference!r} requested but Apple MPS is not available")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_fast() -> bool:
    """Whether this CPU computes bf16 convolutions natively (AMX / AVX512-BF16)."""
    try:
        caps = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        return False
    if str(caps).upper() in {"AVX512", "AMX", "AVX512_BF16"}:
        return True
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(device: torch.device, precision: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype for ``precision`` on ``device`` (``None`` means plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise ValueError("fp16 autocast is not supported on CPU; use bf16 or fp32")
        return torch.float16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_is_fast() else None
    return None


def use_channels_last(device: torch.device, setting: Optional[bool] = None) -> bool:
    """Whether to use channels_last memory format (``None``: on CPU and CUDA)."""
    if setting is not None:
        return bool(setting)
    return device.type in ("cpu", "cuda")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Autocast context for ``dtype`` on ``device``; a no-op for ``dtype=None``."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
