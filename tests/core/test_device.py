"""The precision rule: bf16 only where the CPU computes it natively (issue #10).

The rule is tested for every CPU kind by feeding it flag sets, so it holds on machines this
suite never runs on; ``precision="auto"`` is fp32 inside the suite (``fp32_by_default``).
"""

from __future__ import annotations

import pytest
import torch

from napari_selfdenoise.core import device as dev

# flag sets as /proc/cpuinfo lists them (abridged)
AVX2_ONLY = {"sse4_2", "avx", "avx2", "fma", "f16c"}  # EPYC Rome/Milan, Haswell..Coffee Lake
AVX512_NO_BF16 = AVX2_ONLY | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
                              "avx512_vnni"}  # Skylake-SP / Cascade Lake
AVX512_BF16 = AVX512_NO_BF16 | {"avx512_bf16"}  # Cooper Lake, Zen 4 (EPYC Genoa)
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8", "avx512_fp16"}  # Sapphire Rapids


@pytest.mark.parametrize("flags, native, kind", [
    (AVX2_ONLY, False, "none"),
    (AVX512_NO_BF16, False, "none"),
    (AVX512_BF16, True, "avx512_bf16"),
    (AMX, True, "amx"),
    (AMX - {"avx512_bf16"}, True, "amx"),
    (set(), False, "none"),
])
def test_bf16_from_flags_for_each_cpu_kind(flags, native, kind):
    assert dev.bf16_from_flags(flags) is native
    assert dev.cpu_bf16_kind(flags) == kind


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    cpu = (f"processor\t: {{i}}\nmodel name\t: Test CPU\nflags\t\t: {' '.join(sorted(flags))}\n")
    path.write_text("\n".join(cpu.format(i=i) for i in range(2)))
    return str(path)


@pytest.mark.parametrize("flags, native", [
    (AVX2_ONLY, False), (AVX512_NO_BF16, False), (AVX512_BF16, True), (AMX, True)])
def test_auto_precision_follows_the_cpu_flags_not_torch_capability(
        monkeypatch, tmp_path, flags, native):
    """torch reports "AVX512" for all of the AVX-512 kinds: the flags decide."""
    path = _cpuinfo(tmp_path, flags)
    assert dev.cpu_flags(path) == frozenset(flags)
    assert dev.cpu_model_name(path) == "Test CPU"
    monkeypatch.setattr(dev, "cpu_flags", lambda path=path: frozenset(flags))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv(dev.AUTO_PRECISION_ENV)
    dev.cpu_bf16_is_fast.cache_clear()
    try:
        expected = torch.bfloat16 if native else None
        assert dev.resolve_precision(torch.device("cpu"), "auto") is expected
    finally:
        dev.cpu_bf16_is_fast.cache_clear()


@pytest.mark.parametrize("speedup, native", [(3.0, True), (1.0, False), (0.1, False)])
def test_without_readable_flags_a_measurement_decides(monkeypatch, speedup, native):
    calls = []
    monkeypatch.setattr(dev, "cpu_flags", lambda path="/proc/cpuinfo": None)
    monkeypatch.setattr(dev, "measured_bf16_speedup", lambda: calls.append(1) or speedup)
    dev.cpu_bf16_is_fast.cache_clear()
    try:
        assert dev.cpu_bf16_is_fast() is native
        assert dev.cpu_bf16_is_fast() is native
        assert len(calls) == 1  # cached for the process
    finally:
        dev.cpu_bf16_is_fast.cache_clear()


def test_the_measurement_runs_and_is_positive():
    assert dev.measured_bf16_speedup(size=16, repeats=1) > 0


def test_unreadable_cpuinfo_gives_none(tmp_path):
    assert dev.cpu_flags(str(tmp_path / "missing")) is None
    assert dev.cpu_bf16_kind(set()) == "none"


def test_explicit_precisions_and_the_environment_override(monkeypatch):
    cpu = torch.device("cpu")
    assert dev.resolve_precision(cpu, "auto") is None  # the suite's fp32 default
    assert dev.resolve_precision(cpu, "fp32") is None
    assert dev.resolve_precision(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="fp16 autocast is not supported on CPU"):
        dev.resolve_precision(cpu, "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        dev.resolve_precision(cpu, "fp8")
    monkeypatch.setenv(dev.AUTO_PRECISION_ENV, "bf16")
    assert dev.resolve_precision(cpu, "auto") is torch.bfloat16
    assert dev.resolve_precision(cpu, "fp32") is None  # explicit settings win
    monkeypatch.setenv(dev.AUTO_PRECISION_ENV, "fp16")
    assert dev.resolve_precision(cpu, "auto") is None  # no fp16 on the CPU: fp32
    monkeypatch.setenv(dev.AUTO_PRECISION_ENV, "int8")
    with pytest.raises(ValueError, match=dev.AUTO_PRECISION_ENV):
        dev.resolve_precision(cpu, "auto")


def test_precision_names_and_execution_record():
    assert [dev.precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == [
        "fp32", "bf16", "fp16"]
    rec = dev.execution_record(torch.device("cpu"), torch.bfloat16, True)
    assert rec["precision"] == "bf16" and rec["device"] == "cpu" and rec["channels_last"]
    assert rec["device_name"] and rec["torch"] == torch.__version__
