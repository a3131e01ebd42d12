"""Shared fixtures and markers for the whole test suite.

- ``shared_data``: the folder of real test data (``../shared/data`` beside the repository,
  or ``$NAPARI_SELFDENOISE_DATA``); tests that use it skip cleanly when it is absent.
- ``phantom2d`` / ``phantom3d``: small seeded noisy phantoms with ground truth.
- ``@pytest.mark.gpu`` tests skip without CUDA; ``@pytest.mark.gui`` tests skip without a
  display (run them with ``make test``, which provides a virtual X server).
- ``@pytest.mark.perf`` tests assert wall-clock times; they run only with ``--perf``
  (``make perf``): on a loaded 2-core machine they fail for reasons unrelated to the code.
- The whole suite runs in fp32: ``precision="auto"`` means fp32 here (the autouse
  ``fp32_by_default`` fixture, inherited by CLI subprocesses). bf16 is tested explicitly,
  with its own tolerance, by tests that ask for it (``bf16_cpu`` skips them where the CPU
  has no native bf16).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The shared test-data folder, or None when it is absent."""
    env = os.environ.get("NAPARI_SELFDENOISE_DATA")
    candidate = Path(env) if env else (REPO / ".." / "shared" / "data").resolve()
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared test data not found (../shared/data or $NAPARI_SELFDENOISE_DATA)")
    return path


def pytest_addoption(parser) -> None:
    parser.addoption("--perf", action="store_true", default=False,
                     help="also run the wall-clock (perf-marked) tests")


@pytest.fixture(autouse=True, scope="session")
def fp32_by_default():
    """``precision="auto"`` resolves to fp32 in every test (and CLI subprocess): exact
    comparisons hold on any CPU; bf16 tests ask for bf16 explicitly."""
    from napari_selfdenoise.core.device import AUTO_PRECISION_ENV

    before = os.environ.get(AUTO_PRECISION_ENV)
    os.environ[AUTO_PRECISION_ENV] = "fp32"
    yield
    if before is None:
        os.environ.pop(AUTO_PRECISION_ENV, None)
    else:
        os.environ[AUTO_PRECISION_ENV] = before


@pytest.fixture
def bf16_cpu() -> None:
    """Skip unless this CPU computes bf16 natively (AMX / AVX512-BF16)."""
    from napari_selfdenoise.core.device import cpu_bf16_is_fast

    if not cpu_bf16_is_fast():
        pytest.skip("this CPU has no native bf16 (AMX-BF16 / AVX512-BF16)")


@pytest.fixture
def no_tf32():
    """CUDA fp32 without TF32 (PyTorch lets cuDNN convolutions round to a 10-bit mantissa
    by default): CUDA-vs-CPU tests compare fp32 with fp32."""
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.fixture
def one_torch_thread():
    """Small tensors: one intra-op thread avoids stalls when the 2-core machine is busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def phantom2d():
    """A 96 x 96 noisy 2D phantom with ground truth (seed 0)."""
    from napari_selfdenoise.core.samples import phantom_2d

    return phantom_2d((96, 96), seed=0)


@pytest.fixture
def phantom3d():
    """A 16 x 64 x 64 noisy 3D phantom with ground truth (seed 0)."""
    from napari_selfdenoise.core.samples import phantom_3d

    return phantom_3d((16, 64, 64), seed=0)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items) -> None:
    """Skip GPU tests without CUDA, GUI tests without a display, perf tests without --perf."""
    if not config.getoption("--perf"):
        skip = pytest.mark.skip(reason="wall-clock test: run with --perf (make perf)")
        for item in items:
            if item.get_closest_marker("perf"):
                item.add_marker(skip)
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        skip = pytest.mark.skip(reason="needs a display: run under xvfb-run (make test)")
        for item in items:
            if item.get_closest_marker("gui"):
                item.add_marker(skip)
