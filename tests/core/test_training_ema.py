"""EMA of the weights (``TrainConfig.ema``, core.ema): the averaging rule exactly, the
model file carries the averaged weights when on and the trained ones when off, and a run
with it validates, previews, continues and round-trips through a model file."""

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.ema import WeightAverage, ema_decay
from napari_selfdenoise.core.events import TrainPreview, TrainStep, run_to_end
from napari_selfdenoise.core.samples import psnr
from napari_selfdenoise.core.training import PreviewRequest, default_config, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))


def _set(net: torch.nn.Module, value: float, count: int) -> None:
    """Every float entry of ``net``'s state = ``value``; the BatchNorm counter = ``count``."""
    with torch.no_grad():
        for name, v in net.state_dict().items():
            v.fill_(count if name.endswith("num_batches_tracked") else value)


def _values(avg: WeightAverage) -> dict:
    return {k: v.clone() for k, v in avg.state_dict().items()}


def test_decay_starts_as_the_plain_mean_then_is_exponential():
    assert ema_decay(0.99, 1) == 0.0  # the first update copies: no weight on the start
    assert ema_decay(0.99, 2) == 0.5
    assert ema_decay(0.99, 4) == 0.75
    assert ema_decay(0.99, 100) == 0.99
    assert ema_decay(0.99, 5000) == 0.99
    assert ema_decay(0.0, 7) == 0.0


def test_average_equals_the_formula_exactly():
    """decay 0.5, weights 1, 3, -2, 6 (every value exact in fp32): by hand,
    a1 = 1; a2 = 0.5 * 1 + 0.5 * 3 = 2; a3 = 0.5 * 2 + 0.5 * (-2) = 0; a4 = 3.
    Parameters and BatchNorm's running mean / variance follow it; the batch counter is
    copied; the trained network is left as it is."""
    net = _tiny()
    avg = WeightAverage(net, 0.5)
    assert not any(p.requires_grad for p in avg.net.parameters())
    for value, count, expected in [(1.0, 1, 1.0), (3.0, 2, 2.0), (-2.0, 3, 0.0),
                                   (6.0, 4, 3.0)]:
        _set(net, value, count)
        avg.update(net)
        for name, v in _values(avg).items():
            if name.endswith("num_batches_tracked"):
                assert v.item() == count
            else:
                assert v.dtype == torch.float32
                assert torch.equal(v, torch.full_like(v, expected)), (name, value)
        assert all(torch.equal(v, torch.full_like(v, count if k.endswith("tracked") else value))
                   for k, v in net.state_dict().items())
    assert avg.updates == 4


def test_average_follows_the_rule_over_many_steps():
    """decay 0.9 over 40 random updates, against the rule in float64 (fp32 rounding)."""
    rng = np.random.default_rng(0)
    net = torch.nn.Conv2d(2, 3, 3)
    avg = WeightAverage(net, 0.9)
    ref = None
    for t in range(1, 41):
        w = rng.normal(size=net.weight.shape)
        with torch.no_grad():
            net.weight.copy_(torch.from_numpy(w))
        avg.update(net)
        d = min(0.9, 1 - 1 / t)
        ref = w if ref is None else d * ref + (1 - d) * w
    got = avg.state_dict()["weight"].double().numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        WeightAverage(_tiny(), 1.0)
    with pytest.raises(ValueError):
        default_config("n2s", ema=1.0)


def _run(data, small, **settings) -> ModelBundle:
    return run_to_end(train(data, default_config("n2s", **{**small, **settings})))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_model_file_carries_the_averaged_weights_when_on_the_trained_ones_when_off(
        small, phantom, precision, request):
    """Same seed, so the trained weights follow the same path with and without EMA (two
    steps: after step 1 the run of 1 step and the run of 2 steps agree, the learning rate
    of step 0 being the same). With EMA the model holds the average of the two steps'
    weights and buffers, computed here by the same rule; without, the second step's."""
    if precision == "bf16":
        request.getfixturevalue("bf16_cpu")
    kw = dict(precision=precision, val_every=50)  # validated once, after the last step
    w1 = _run(phantom.noisy, small, steps=1, **kw).state_dict
    w2 = _run(phantom.noisy, small, steps=2, **kw).state_dict
    on = _run(phantom.noisy, small, steps=2, ema=0.9, **kw)
    assert on.config.ema == 0.9 and on.info["best_step"] == 2
    net = on.build_model()
    avg = WeightAverage(net, 0.9)
    for state in (w1, w2):
        net.load_state_dict(state)
        avg.update(net)
    assert on.state_dict.keys() == w2.keys()
    for k, v in avg.state_dict().items():
        assert on.state_dict[k].dtype == w2[k].dtype
        assert torch.equal(on.state_dict[k], v), k
    changed = [k for k in w2 if w2[k].is_floating_point() and not torch.equal(w1[k], w2[k])]
    assert changed and all(not torch.equal(on.state_dict[k], w2[k]) for k in changed)
    off = _run(phantom.noisy, small, steps=2, ema=0.0, **kw)
    assert all(torch.equal(off.state_dict[k], w2[k]) for k in w2)


def test_a_run_with_ema_validates_previews_denoises_and_round_trips(small, phantom, tmp_path):
    region = phantom.noisy[:40, :48]
    events = []
    bundle = run_to_end(
        train(phantom.noisy, default_config("n2s", steps=100, ema=0.95, **small),
              preview=PreviewRequest(region, "YX", every_s=0.0)), events.append)
    steps = [e for e in events if isinstance(e, TrainStep)]
    assert [e.step for e in steps] == [25, 50, 75, 100]
    assert all(e.val_loss is not None and np.isfinite(e.val_loss) for e in steps)
    assert bundle.info["selected_by"] == "validation loss"
    assert bundle.info["best_loss"] == min(e.val_loss for e in steps)
    from test_training import denoise

    out = denoise(bundle, phantom.noisy)
    assert psnr(phantom.clean, out) > psnr(phantom.clean, phantom.noisy) + 3.0
    # the last preview shows the kept (averaged) weights, as the model file does
    last = [e for e in events if isinstance(e, TrainPreview)][-1]
    np.testing.assert_allclose(last.image, denoise(bundle, region), rtol=0,
                               atol=1e-5 * np.ptp(out))
    again = ModelBundle.load(bundle.save(tmp_path / "ema.sdmodel"))
    assert again.config.ema == 0.95
    assert np.array_equal(denoise(again, phantom.noisy), out)
    # continue training it, with and without EMA
    for ema in (0.95, 0.0):
        more = run_to_end(train(phantom.noisy, default_config("n2s", steps=10, ema=ema,
                                                              **small), init=again))
        assert more.state_dict.keys() == again.state_dict.keys()
        assert all(torch.isfinite(v).all() for v in more.state_dict.values())
        assert not all(torch.equal(more.state_dict[k], again.state_dict[k])
                       for k in again.state_dict)


def test_without_validation_the_final_average_is_kept(small, phantom):
    bundle = _run(phantom.noisy, small, steps=30, ema=0.9, val_fraction=0.0,
                  **{"log_every": 10})
    assert bundle.info["selected_by"] == "final weights"
    assert bundle.info["best_step"] == 30
    raw = _run(phantom.noisy, small, steps=30, ema=0.0, val_fraction=0.0, **{"log_every": 10})
    assert any(not torch.equal(v, raw.state_dict[k]) for k, v in bundle.state_dict.items())
    assert all(torch.isfinite(v).all() for v in bundle.state_dict.values())


def test_ema_is_off_by_default():
    from napari_selfdenoise.core.methods import METHODS

    assert default_config("n2s").ema == 0.0
    assert all(default_config(name).ema == 0.0 for name in METHODS)


def test_the_average_does_not_change_the_training_path(small, phantom):
    """Same seed: the trained network takes the same steps with and without EMA (the same
    training losses, bit for bit); only what is validated and kept differs."""
    off = _run(phantom.noisy, small, steps=50, log_every=10)
    on = _run(phantom.noisy, small, steps=50, log_every=10, ema=0.9)
    assert [h["loss"] for h in on.history] == [h["loss"] for h in off.history]
    assert [h["val_loss"] for h in on.history] != [h["val_loss"] for h in off.history]
