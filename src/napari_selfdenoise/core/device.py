"""Device selection and mixed-precision settings shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterable, Iterator, Optional

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


#: CPU flags (Linux ``/proc/cpuinfo``) of native bf16 arithmetic: AMX tiles or the
#: AVX512-BF16 dot products. "AVX512" alone (Skylake / Cascade Lake servers) is not one:
#: there bf16 is emulated and slower than fp32.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: environment variable that fixes what ``precision="auto"`` means (``fp32``, ``bf16``
#: or ``fp16``), for reproducible runs; the test suite sets it to ``fp32``
AUTO_PRECISION_ENV = "NAPARI_SELFDENOISE_AUTO_PRECISION"
#: the measured bf16 / fp32 speed ratio above which bf16 counts as fast where the CPU
#: flags cannot be read (macOS, Windows)
BF16_MIN_SPEEDUP = 1.3


def cpu_flags(path: str = "/proc/cpuinfo") -> Optional[frozenset[str]]:
    """The CPU feature flags listed in ``path`` (Linux), or ``None`` where unreadable."""
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def bf16_from_flags(flags: Iterable[str]) -> bool:
    """Whether a CPU with these feature flags computes bf16 natively (AMX / AVX512-BF16).

    >>> bf16_from_flags({"avx2", "avx512f", "avx512bw"})  # AVX-512 without bf16
    False
    >>> bf16_from_flags({"avx512f", "avx512_bf16"})
    True
    """
    return any(f in BF16_CPU_FLAGS for f in flags)


def cpu_bf16_kind(flags: Optional[Iterable[str]] = None) -> str:
    """``"amx"``, ``"avx512_bf16"``, ``"none"`` or ``"unknown"`` (no flags readable)."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    if flags is None:
        return "unknown"
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


def measured_bf16_speedup(size: int = 48, repeats: int = 3) -> float:
    """fp32 time / bf16-autocast time of a small convolution on this CPU (best of ``repeats``).

    About 0.1 s; used where the CPU flags cannot be read.
    """
    import time

    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(4, 32, size, size)
    best = {}
    with torch.no_grad():
        for dtype in (None, torch.bfloat16):
            times = []
            for _ in range(repeats + 1):  # the first call warms up
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                    conv(x)
                times.append(time.perf_counter() - t)
            best[dtype] = min(times[1:])
    return best[None] / max(best[torch.bfloat16], 1e-12)


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_fast() -> bool:
    """Whether this CPU computes bf16 natively, so ``precision="auto"`` picks bf16 there.

    From the CPU flags (AMX-BF16 or AVX512-BF16, :func:`bf16_from_flags`) where they can be
    read, else from a short measurement (:func:`measured_bf16_speedup`, cached for the
    process). torch's "AVX512" capability alone says nothing about bf16.
    """
    flags = cpu_flags()
    if flags is not None:
        return bf16_from_flags(flags)
    try:
        return measured_bf16_speedup() >= BF16_MIN_SPEEDUP
    except Exception:  # pragma: no cover - a CPU build without bf16 kernels
        return False


def _auto_override() -> Optional[str]:
    value = os.environ.get(AUTO_PRECISION_ENV, "").strip().lower()
    if not value or value == "auto":
        return None
    if value not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"{AUTO_PRECISION_ENV}={value!r}: use fp32, bf16, fp16 or auto")
    return value


def resolve_precision(device: torch.device, precision: str = "auto") -> Optional[torch.dtype]:
    """The autocast dtype for ``precision`` on ``device`` (``None`` means plain fp32).

    ``"auto"``: bf16 on CUDA devices that support it (else fp16), bf16 on CPUs with native
    bf16 (:func:`cpu_bf16_is_fast`), fp32 otherwise (MPS included); the environment
    variable :data:`AUTO_PRECISION_ENV` replaces this choice when set.
    """
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
    override = _auto_override()
    if override is not None:
        if override == "fp16" and device.type == "cpu":
            return None  # fp16 autocast does not exist on the CPU: fp32 there
        return resolve_precision(device, override)
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


def precision_name(dtype: Optional[torch.dtype]) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for an autocast dtype from :func:`resolve_precision`."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def cpu_model_name(path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (``platform.processor()`` where ``path`` is unreadable)."""
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def device_description(device: torch.device) -> str:
    """A human-readable name of ``device``: the GPU's name or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return cpu_model_name()
    return device.type


def execution_record(device: torch.device, dtype: Optional[torch.dtype],
                     channels_last: bool) -> dict:
    """What ran a computation, for provenance: device, its name, precision, memory format."""
    return {"device": str(device), "device_name": device_description(device),
            "precision": precision_name(dtype), "channels_last": bool(channels_last),
            "torch": torch.__version__}
