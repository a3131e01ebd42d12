"""Live estimated quality during training (issue #14): events, history, model info."""

from __future__ import annotations

import numpy as np

from napari_selfdenoise.core import sure
from napari_selfdenoise.core.events import NOISE_CORRELATION, Message, TrainStep, run_to_end
from napari_selfdenoise.core.samples import phantom_2d, phantom_correlated, psnr
from napari_selfdenoise.core.training import default_config, train


def test_training_reports_estimated_psnr_close_to_truth():
    ph = phantom_2d((128, 128), seed=6)
    cfg = default_config("n2s", steps=40, val_every=20, log_every=10, seed=0,
                         precision="fp32")
    seen = []
    bundle = run_to_end(train(ph.noisy, cfg), seen.append)
    steps = [e for e in seen if isinstance(e, TrainStep)]
    with_est = [e for e in steps if e.estimated_psnr is not None]
    assert [e.step for e in with_est] == [20, 40]  # at validation steps only
    assert all(e.estimated_psnr_range[0] <= e.estimated_psnr <= e.estimated_psnr_range[1]
               for e in with_est)
    assert [h["step"] for h in bundle.history if "estimated_psnr" in h] == [20, 40]
    info = bundle.info["estimated_quality"]
    assert info["psnr"] == with_est[[e.step for e in with_est].index(
        bundle.info["best_step"])].estimated_psnr
    # the estimate is of the delivered output (n2s: its plain pass, with Stein's
    # correction) on the held-out crop: compare with the truth
    assert info["form"].startswith("delivered")
    rows = info["region"]
    band = slice(128 - 64, 128 - 64 + rows[0])  # the validation band (one 64-row patch)
    y, x = ph.noisy[None, band, : rows[1]], ph.clean[None, band, : rows[1]]
    out, _ = sure.network_delivered(bundle, y, "YX")
    peak = info["peak"] * bundle.norm_scale[0]
    assert abs(info["psnr"] - psnr(x, out, data_range=peak)) < 1.0
    assert np.isfinite(info["mse"])


def test_a_j_invariant_delivery_is_estimated_without_divergence():
    """A model that delivers its J-invariant form is estimated as Noise2Self does."""
    ph = phantom_2d((128, 128), seed=6)
    cfg = default_config("n2s", steps=20, val_every=20, log_every=10, seed=0,
                         precision="fp32", j_invariant_inference=True)
    bundle = run_to_end(train(ph.noisy, cfg))
    assert bundle.info["estimated_quality"]["form"] == "J-invariant form"


def test_a_method_with_a_target_is_estimated_on_its_input_only():
    """Noise2Noise regions hold input and target stacked on the channels: the estimate
    scores the input half with the one-channel network (it crashed on both halves)."""
    a = phantom_2d((96, 96), seed=1)
    b = phantom_2d((96, 96), seed=2)  # the same scene, another noise draw
    cfg = default_config("n2n", steps=20, val_every=10, log_every=10, seed=0,
                         precision="fp32", patch_size=(32, 32), batch_size=4)
    seen = []
    bundle = run_to_end(train(a.noisy, cfg, target=b.noisy), seen.append)
    est = [e.estimated_psnr for e in seen
           if isinstance(e, TrainStep) and e.estimated_psnr is not None]
    assert len(est) == 2 and all(np.isfinite(est))
    assert bundle.info["estimated_quality"]["region"][0] > 0


def test_correlated_noise_is_warned_about_when_training_starts():
    """The held-out crop's correlation check is one warning Message, with its topic,
    before the first step (when the user can still choose structN2V or pixel shuffle),
    and it is the warning stored with the estimate; white noise gives none."""
    for image, correlated in ((phantom_2d((128, 128), seed=3).noisy, False),
                              (phantom_correlated((128, 128), seed=3).noisy, True)):
        cfg = default_config("n2s", steps=10, val_every=10, log_every=5, seed=0,
                             precision="fp32", patch_size=(32, 32), batch_size=4)
        seen = []
        bundle = run_to_end(train(image, cfg), seen.append)
        warned = [i for i, e in enumerate(seen)
                  if isinstance(e, Message) and e.topic == NOISE_CORRELATION]
        stored = bundle.info["estimated_quality"]["warning"]
        if not correlated:
            assert warned == [] and stored is None
            continue
        assert len(warned) == 1
        first_step = next(i for i, e in enumerate(seen) if isinstance(e, TrainStep))
        assert warned[0] < first_step
        message = seen[warned[0]]
        assert message.level == "warning" and "correlated along" in message.text
        assert message.text == stored
