"""Fixtures of the reliability catalogue: tiny images and models (helpers live in
``_reliability.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every catalogue case on one torch thread (the suite's ``one_torch_thread``)."""
    yield


@pytest.fixture
def img() -> np.ndarray:
    """A 32 x 32 noisy float32 image."""
    rng = np.random.default_rng(0)
    return (rng.random((32, 32)) * 100 + 50).astype(np.float32)


@pytest.fixture
def img_tif(tmp_path, img) -> Path:
    import tifffile

    path = tmp_path / "img.tif"
    tifffile.imwrite(path, img, metadata={"axes": "YX"})
    return path


@pytest.fixture
def img_npy(tmp_path, img) -> Path:
    path = tmp_path / "img.npy"
    np.save(path, img)
    return path


@pytest.fixture(scope="session")
def tiny_bundle():
    """A 2D n2v model with a 4-filter, depth-1 U-Net, trained for 2 steps."""
    import torch

    from napari_selfdenoise.core.config import TrainConfig
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.training import train

    torch.set_num_threads(1)
    data = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    cfg = TrainConfig(method="n2v", steps=2, batch_size=2, patch_size=(16, 16),
                      val_fraction=0.0, device="cpu", precision="fp32",
                      network={"depth": 1, "base_filters": 4})
    return run_to_end(train(data, cfg, axes="YX"))


@pytest.fixture
def model_file(tmp_path, tiny_bundle) -> Path:
    return tiny_bundle.save(tmp_path / "m.sdmodel")
