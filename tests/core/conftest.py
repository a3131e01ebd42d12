"""Fixtures shared by the core tests: the small training settings and the 2D phantom the
training tests (test_training.py, test_training_ema.py) run on."""

from __future__ import annotations

import copy

import pytest

#: small, fast training settings: an 8-filter U-Net, 32 x 32 patches, batches of 8,
#: logged and validated every 25 steps (the :func:`small` fixture's)
SMALL_TRAINING = dict(batch_size=8, patch_size=(32, 32), log_every=25, val_every=25,
                      network={"base_filters": 8})


@pytest.fixture
def small() -> dict:
    """:data:`SMALL_TRAINING`, a fresh copy for each test (``default_config(**small)``)."""
    return copy.deepcopy(SMALL_TRAINING)


@pytest.fixture(scope="module")
def phantom():
    """The 96 x 96 2D phantom (seed 1, ``samples.phantom_2d``) with its clean image."""
    from napari_selfdenoise.core.samples import phantom_2d

    return phantom_2d((96, 96), seed=1)
