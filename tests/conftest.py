"""Shared fixtures and markers for the whole test suite.

- ``shared_data``: the folder of real test data (``../shared/data`` beside the repository,
  or ``$NAPARI_SELFDENOISE_DATA``); tests that use it skip cleanly when it is absent.
- ``phantom2d`` / ``phantom3d``: small seeded noisy phantoms with ground truth.
- ``@pytest.mark.gpu`` tests skip without CUDA; ``@pytest.mark.gui`` tests skip without a
  display (run them with ``make test``, which provides a virtual X server).
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
    """Skip GPU tests without CUDA and GUI tests without a display."""
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
