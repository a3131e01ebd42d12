"""Training engine: every method denoises, budgets and stop requests are honoured,
runs are reproducible, bad inputs get clear errors."""

import threading
import time

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.axes import AxesError
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import TrainConfig
from napari_selfdenoise.core.events import (
    Message, TrainFinished, TrainPreview, TrainStep, run_to_end,
)
from napari_selfdenoise.core.models import apply_padded
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d, psnr
from napari_selfdenoise.core.training import (
    LivePreview, PreviewRequest, TrainingDataError, default_config, resolve_config, train,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def denoise(bundle: ModelBundle, image: np.ndarray) -> np.ndarray:
    net = bundle.build_model()
    x = torch.from_numpy(bundle.normalize(image[None, None]))
    with torch.no_grad():
        return bundle.denormalize(apply_padded(net, x).numpy())[0, 0]


def run(data, **settings):
    events = []
    bundle = run_to_end(train(data, default_config(**settings)), events.append)
    return bundle, events


@pytest.mark.parametrize(
    "method, steps, gain",
    [("n2v", 100, 3.0), ("n2v2", 150, 0.7), ("n2s", 100, 3.0), ("n2same", 100, 3.0)],
)
def test_every_method_improves_psnr(small, phantom, method, steps, gain):
    bundle, events = run(phantom.noisy, method=method, steps=steps, **small)
    before = psnr(phantom.clean, phantom.noisy)
    after = psnr(phantom.clean, denoise(bundle, phantom.noisy))
    assert after > before + gain, (method, before, after)
    assert bundle.method == method and bundle.info["stop_reason"] == "steps"
    finished = [e for e in events if isinstance(e, TrainFinished)]
    assert len(finished) == 1 and finished[0].step == steps


def test_struct_n2v_trains(small, phantom):
    bundle, _ = run(phantom.noisy, method="n2v", steps=60,
                    masking={"struct_axis": "x", "struct_span": 3}, **small)
    assert bundle.config.masking.struct_axis == "x"
    assert np.isfinite(denoise(bundle, phantom.noisy)).all()


def test_events_history_and_round_trip(small, phantom, tmp_path):
    bundle, events = run(phantom.noisy, method="n2s", steps=50, **small)
    steps = [e for e in events if isinstance(e, TrainStep)]
    assert [e.step for e in steps] == [25, 50]
    assert all(e.val_loss is not None and e.patches_per_s > 0 and e.eta_s >= 0 for e in steps)
    assert [h["step"] for h in bundle.history] == [25, 50]
    assert bundle.history[-1]["val_loss"] == pytest.approx(steps[-1].val_loss)
    assert bundle.info["selected_by"] == "validation loss"
    assert bundle.info["data_shapes"] == [[1, 1, 96, 96]]
    path = bundle.save(tmp_path / "m.sdmodel")
    again = ModelBundle.load(path)
    assert np.array_equal(denoise(again, phantom.noisy), denoise(bundle, phantom.noisy))


def test_seeded_runs_are_reproducible(small, phantom):
    a, _ = run(phantom.noisy, method="n2v", steps=20, seed=7, **small)
    b, _ = run(phantom.noisy, method="n2v", steps=20, seed=7, **small)
    c, _ = run(phantom.noisy, method="n2v", steps=20, seed=8, **small)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_stop_request_returns_a_usable_model(small, phantom):
    stop = threading.Event()
    gen = train(phantom.noisy, default_config("n2v", steps=10_000, **{**small, "log_every": 5}),
                stop=stop)

    def on_event(e):
        if isinstance(e, TrainStep) and e.step >= 10:
            stop.set()

    bundle = run_to_end(gen, on_event)
    assert bundle.info["stop_reason"] == "stopped" and bundle.info["steps"] == 10
    out = denoise(bundle, phantom.noisy)
    assert out.shape == phantom.noisy.shape and np.isfinite(out).all()


def test_continue_training_keeps_network_and_normalisation(small, phantom):
    first, _ = run(phantom.noisy, method="n2s", steps=10, **small)
    events = []
    again = run_to_end(train(phantom.noisy * 2, default_config("n2s", steps=10, **small),
                             init=first), events.append)
    assert again.norm_offset == first.norm_offset and again.norm_scale == first.norm_scale
    assert again.state_dict.keys() == first.state_dict.keys()
    assert not all(torch.equal(again.state_dict[k], first.state_dict[k]) for k in first.state_dict)
    with pytest.raises(TrainingDataError, match="cannot continue"):
        run_to_end(train(phantom.noisy, default_config("n2v2", steps=2, **small), init=first))


def test_time_budget_is_honoured(small, phantom):
    bundle, events = run(phantom.noisy, method="n2v", steps=10**6, time_budget_s=1.5, **small)
    assert bundle.info["stop_reason"] == "time"
    assert isinstance(events[-1], TrainFinished) and events[-1].reason == "time"
    assert events[-1].elapsed_s >= 1.5


def test_cpu_clock_budget_ends_the_run_and_decays_the_learning_rate(small, phantom):
    """``clock="cpu"``: the budget is this process's CPU time, and the cosine decay of the
    learning rate follows it (a stop event alone would leave the rate at its peak)."""
    # the first optimiser of a process imports torch._dynamo (3.5 CPU-s on an AVX2 EPYC):
    # paid here, so that the budget holds steps on any CPU
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    t = time.process_time()
    bundle, events = run(phantom.noisy, method="n2s", steps=10**9, time_budget_s=2.0,
                         clock="cpu", learning_rate=1e-3, **{**small, "log_every": 1})
    assert bundle.info["stop_reason"] == "time"
    assert time.process_time() - t >= 2.0
    # the rate is warm-up (by step) times the cosine decay (by the budget's clock): the
    # decay part, whatever the number of steps this CPU makes in the budget, starts near
    # the full rate, only falls, and ends near FINAL_LR_FRACTION (the budget spent)
    from napari_selfdenoise.core.training_loop import FINAL_LR_FRACTION, WARMUP_STEPS

    steps = [e for e in events if isinstance(e, TrainStep)]
    decay = [e.learning_rate / (1e-3 * min(1.0, e.step / WARMUP_STEPS)) for e in steps]
    assert len(decay) >= 2 and decay[0] > 0.9
    assert all(b <= a + 1e-12 for a, b in zip(decay, decay[1:]))
    assert decay[-1] < FINAL_LR_FRACTION + 0.25


@pytest.mark.perf
def test_time_budget_stops_promptly(small, phantom):
    t = time.perf_counter()
    run(phantom.noisy, method="n2v", steps=10**6, time_budget_s=1.5, **small)
    assert time.perf_counter() - t < 4.0


def test_preview_is_in_original_units(small, phantom):
    region = phantom.noisy[:40, :48]
    events = []
    run_to_end(train(phantom.noisy, default_config("n2s", steps=30, **small),
                     preview=PreviewRequest(region, "YX", every_s=0.0, region=(0, 0))),
               events.append)
    previews = [e for e in events if isinstance(e, TrainPreview)]
    assert len(previews) >= 2 and previews[-1].region == (0, 0)
    assert previews[-1].image.shape == region.shape
    assert abs(previews[-1].image.mean() - region.mean()) < 0.5 * region.std()


def test_live_preview_follows_the_region_its_owner_updates(small, phantom):
    """The viewer replaces the region while training runs; the next preview follows it, and
    a region that does not fit the model is reported and ignored."""
    first, second = phantom.noisy[:40, :48], phantom.noisy[50:82, 10:90]
    live = LivePreview(PreviewRequest(first, "YX", every_s=0.0, region=("first",)))
    gen = train(phantom.noisy, default_config("n2s", steps=12, **small), preview=live)
    seen = []
    while True:
        try:
            event = next(gen)
        except StopIteration:
            break
        seen.append(event)
        if isinstance(event, TrainPreview) and event.region == ("first",):
            assert event.image.shape == first.shape
            live.update(PreviewRequest(phantom.noisy[None, :8, :8], "CZX", region=("bad",)))
            live.update(PreviewRequest(second, "YX", every_s=0.0, region=("second",)))
    regions = [e.region for e in seen if isinstance(e, TrainPreview)]
    assert regions[0] == ("first",) and regions[-1] == ("second",) and ("bad",) not in regions
    last = [e for e in seen if isinstance(e, TrainPreview)][-1]
    assert last.image.shape == second.shape
    # an update that does not fit is a warning, never an exception in the training thread
    live2 = LivePreview(PreviewRequest(first, "YX", every_s=0.0))
    gen2 = train(phantom.noisy, default_config("n2s", steps=6, **small), preview=live2)
    events2 = []
    for event in gen2:
        events2.append(event)
        if isinstance(event, TrainPreview):
            live2.update(PreviewRequest(np.zeros((2, 8, 8, 8), np.float32), "CZYX"))
    warnings = [e for e in events2 if isinstance(e, Message) and "preview region" in e.text]
    assert warnings


def test_several_images_of_different_sizes_and_lazy_arrays(small, phantom):
    import dask.array as da
    import zarr

    z = zarr.create_array(store={}, shape=(2, 64, 80), dtype="float32")
    z[:] = np.stack([phantom.noisy[:64, :80], phantom.noisy[32:, 16:]])
    lazy = da.from_array(phantom.noisy[None, :, :72], chunks=32)
    bundle, events = run([z, lazy], method="n2v", axes="TYX", steps=10, **small)
    assert bundle.axes == "TYX" and bundle.n_channels == 1
    assert bundle.info["data_shapes"] == [[2, 1, 64, 80], [1, 1, 96, 72]]


def test_3d_multichannel_training_runs():
    ph = phantom_3d((16, 32, 32), seed=2)
    data = np.stack([ph.noisy, ph.noisy * 2 + 5])  # CZYX
    bundle, _ = run(data, method="n2s", steps=6, batch_size=2, patch_size=(8, 16, 16),
                    log_every=3, val_every=3, network={"base_filters": 4})
    assert bundle.spatial_dims == 3 and bundle.n_channels == 2 and bundle.axes == "CZYX"
    assert bundle.norm_scale[1] == pytest.approx(2 * bundle.norm_scale[0], rel=1e-4)


def test_patch_larger_than_image_shrinks_with_a_message(phantom):
    small = phantom.noisy[:40, :44]
    bundle, events = run(small, method="n2v", steps=4, batch_size=4, patch_size=(64, 64),
                         network={"base_filters": 4})
    notes = [e.text for e in events if isinstance(e, Message) and e.level == "warning"]
    assert any("patch size (64, 64) changed to (40, 44)" in n for n in notes)
    assert tuple(bundle.config.patch_size) == (40, 44)
    assert bundle.info["validation_patches"] == 0  # too small to hold out a band


def test_few_held_out_tiles_are_validated_under_several_fixed_masks():
    """A small band gives few tiles: each is repeated with its own mask, up to the cap."""
    from napari_selfdenoise.core.training import MAX_VAL_PATCHES

    img = phantom_2d((128, 128), seed=1).noisy  # band of 32 rows -> 4 tiles of 32 x 32
    bundle, events = run(img, method="n2v", steps=2, batch_size=4, patch_size=(32, 32),
                         val_fraction=0.1, network={"base_filters": 4, "depth": 1})
    assert bundle.info["validation_patches"] == MAX_VAL_PATCHES
    notes = [e.text for e in events if isinstance(e, Message)]
    assert any("4 tiles of a held-out band" in n and "12 fixed mask(s)" in n for n in notes)


def test_method_defaults_respect_explicit_settings():
    cfg = resolve_config(TrainConfig(method="n2v"))
    assert cfg.learning_rate == 2e-3 and cfg.network.residual is False
    assert cfg.masking.masked_fraction == 0.02
    assert cfg.network.base_filters == 16 and cfg.normalization.kind == "meanstd"
    assert cfg.batch_size == 16 and default_config("n2same").batch_size == 8
    explicit = resolve_config(TrainConfig(method="n2same", learning_rate=1e-4, batch_size=16,
                                          network={"residual": True, "base_filters": 32}))
    assert explicit.learning_rate == 1e-4 and explicit.network.residual is True
    assert explicit.batch_size == 16 and explicit.network.base_filters == 32
    assert resolve_config(cfg) == cfg


@pytest.mark.parametrize(
    "data, axes, error, words",
    [
        (np.zeros((0, 64)), None, TrainingDataError, "empty"),
        (np.ones((1, 1)), None, ValueError, "only 1 pixel"),
        (np.full((64, 64), np.nan, np.float32), None, TrainingDataError, "NaN"),
        (np.pad(np.ones((60, 64)), ((0, 4), (0, 0)), constant_values=np.inf), None,
         TrainingDataError, "infinite"),
        (np.random.rand(64, 64), "ZYX", AxesError, "axes"),
        (np.zeros((64, 64, 3), np.uint8), None, AxesError, "RGB"),
        (np.full((64, 64), 2**30, np.uint32), None, TrainingDataError, r"2\^24"),
        (np.full((64, 64), 3.0), None, ValueError, "constant"),
        ([np.random.rand(64, 64), np.random.rand(2, 64, 64)], "YX", ValueError, "dimensions"),
    ],
)
def test_bad_inputs_give_clear_errors(data, axes, error, words):
    with pytest.raises(error, match=words):
        run_to_end(train(data, default_config("n2v", steps=2, batch_size=2), axes=axes))


def test_without_validation_the_final_weights_are_kept(small, phantom):
    """No validation region: the model handed back is the final one, not the one with the
    lowest (noisy) training-loss window, and the run says so."""
    from napari_selfdenoise.core.training_loop import Checkpoint

    net = torch.nn.Conv2d(1, 1, 3)
    ck = Checkpoint()
    ck.follow(0.5, 3)
    with torch.no_grad():
        net.weight.add_(1.0)  # training goes on after the last log window
    state = ck.final(net)
    assert torch.equal(state["weight"], net.weight.detach())
    cfg = default_config("n2s", steps=12, seed=0, val_fraction=0.0, **{**small, "log_every": 4})
    seen = []
    bundle = run_to_end(train(phantom.noisy, cfg), seen.append)
    assert bundle.info["selected_by"] == "final weights"
    assert bundle.info["best_step"] == bundle.info["steps"] == 12
    assert any(isinstance(e, Message) and "final weights are kept" in e.text for e in seen)
    # and the same run again gives the same model (no state from an earlier window)
    again = run_to_end(train(phantom.noisy, cfg))
    for k, v in bundle.state_dict.items():
        assert torch.equal(v, again.state_dict[k])
