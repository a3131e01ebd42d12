"""Each engine in bf16, against itself in fp32, with a tolerance from bf16's mantissa.

bf16 keeps 8 significant bits: rounding a value costs at most ``U = 2**-8`` (0.39 %) of it.
The engines round inputs, weights and activations to bf16 and accumulate in fp32, so the
error of an output is a few ``U`` of the signal's scale, not of the output's own value.
Measured on this suite's networks (depth 1-2, 4-32 filters, 2D): at most 0.24 % of the
normalisation scale between bf16 and fp32 outputs, 1e-6 between tiled and untiled bf16,
0.2 % between training losses, 0.015 % between calibration losses. The bounds below are
``8 U`` (3.1 %) of the scale for outputs and ``4 U`` (1.6 %) relative for losses: about
10x the measured error, still far below any visible change in a denoised image.
docs/prediction.md states the prediction bound. Skipped where the CPU has no native bf16
(the ``bf16_cpu`` fixture); the precision rule itself is tested in ``test_device.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfdenoise.core import inference
from napari_selfdenoise.core.events import TrainStep, run_to_end
from napari_selfdenoise.core.samples import phantom_2d
from napari_selfdenoise.core.training import default_config, train

U = 2.0**-8  # bf16 unit roundoff
OUTPUT_TOL = 8 * U  # of the model's normalisation scale
LOSS_RTOL = 4 * U

pytestmark = pytest.mark.usefixtures("bf16_cpu", "one_torch_thread")


@pytest.fixture(scope="module")
def noisy():
    return phantom_2d((150, 170), seed=1).noisy.astype(np.float32)


def _bundle(noisy, depth=2, filters=16):
    from test_inference import make_bundle

    b = make_bundle(2, depth=depth, filters=filters)
    b.norm_offset, b.norm_scale = [float(noisy.mean())], [float(noisy.std())]
    return b


@pytest.mark.parametrize("j_invariant", [False, True])
def test_tiled_prediction_in_bf16_is_bounded(noisy, j_invariant):
    """bf16 tiled vs untiled and bf16 vs fp32, both within ``8 U`` of the scale."""
    b = _bundle(noisy)
    kw = dict(axes="YX", j_invariant=j_invariant)
    fp32 = inference.predict_array(b, noisy, precision="fp32", tile_shape=(256, 256), **kw)
    whole = inference.predict_array(b, noisy, precision="bf16", tile_shape=(256, 256), **kw)
    tiled = inference.predict_array(b, noisy, precision="bf16", tile_shape=(96, 100), **kw)
    scale = b.norm_scale[0]
    assert np.abs(tiled - whole).max() <= OUTPUT_TOL * scale
    assert np.abs(whole - fp32).max() <= OUTPUT_TOL * scale
    assert np.abs(whole - fp32).max() > 0  # it really ran in bf16


def test_training_step_in_bf16_matches_fp32(noisy):
    """Same seed: the same weights, batch and masks give the first step's loss (and the
    held-out loss) within ``4 U``; the model records that it was trained in bf16."""
    logs, bundles = {}, {}
    for precision in ("fp32", "bf16"):
        events = []
        cfg = default_config("n2v", steps=2, batch_size=8, patch_size=(32, 32), log_every=1,
                             val_every=1, seed=0, precision=precision,
                             network={"base_filters": 8})
        bundles[precision] = run_to_end(train(noisy, cfg), events.append)
        logs[precision] = [e for e in events if isinstance(e, TrainStep)]
    first32, first16 = logs["fp32"][0], logs["bf16"][0]
    assert first16.loss == pytest.approx(first32.loss, rel=LOSS_RTOL)
    assert first16.val_loss == pytest.approx(first32.val_loss, rel=LOSS_RTOL)
    assert first16.loss != first32.loss  # it really ran in bf16
    assert bundles["bf16"].info["precision"] == "bf16"
    assert bundles["bf16"].info["execution"]["precision"] == "bf16"
    assert bundles["fp32"].info["precision"] == "fp32"
    assert all(torch.isfinite(v).all() for v in bundles["bf16"].state_dict.values())


def test_network_calibration_in_bf16_matches_fp32(noisy):
    """J-invariant losses of a network per grid width: within ``4 U`` of fp32."""
    from napari_selfdenoise.core.calibration import calibrate_network

    b = _bundle(noisy, depth=1, filters=8)
    curves = {p: run_to_end(calibrate_network(b, noisy, grids=(2, 3), precision=p))
              for p in ("fp32", "bf16")}
    np.testing.assert_allclose(curves["bf16"].losses, curves["fp32"].losses, rtol=LOSS_RTOL)
    assert curves["bf16"].losses != curves["fp32"].losses
