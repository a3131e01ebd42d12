"""Every new method in the engine: tiled prediction equals untiled (fp32, 2D and 3D),
stop / continue / model-file round trip, complementary masks never see a pixel's own
value, and DnCNN as a backbone."""

import threading

import numpy as np
import pytest

from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.events import TrainStep, run_to_end
from napari_selfdenoise.core.inference import predict_array
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d
from napari_selfdenoise.core.training import default_config, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NEW = ["n2n", "ne2ne", "ams"]
TINY = dict(precision="fp32", network={"base_filters": 4, "depth": 1}, val_every=2)


def tiny_train(method, data, axes, steps=2, **kw):
    patch = (16, 16) if len(axes.replace("T", "")) == 2 else (8, 16, 16)
    params = {"method": "n2n", "pairs_along": "T"} if method == "n2n" else {"method": method}
    cfg = default_config(method, steps=steps, batch_size=2, patch_size=patch, params=params,
                         **{**TINY, **kw})
    if method == "n2n" and "T" not in axes:
        data, axes = np.stack([data, data[..., ::-1]]), "T" + axes
    return run_to_end(train(data, cfg, axes=axes))


@pytest.fixture(scope="module")
def image2d():
    return phantom_2d((70, 90), seed=4).noisy


@pytest.fixture(scope="module")
def volume():
    return phantom_3d((18, 40, 44), seed=5).noisy


@pytest.mark.parametrize("method", NEW)
def test_tiled_equals_untiled_2d(method, image2d):
    bundle = tiny_train(method, image2d, "YX")
    tiled = predict_array(bundle, image2d, axes="YX", tile_shape=(40, 40), precision="fp32")
    whole = predict_array(bundle, image2d, axes="YX", tile_shape=(128, 128), precision="fp32")
    assert np.abs(tiled - whole).max() < 1e-4


@pytest.mark.parametrize("method", ["ne2ne", "ams"])
def test_tiled_equals_untiled_3d(method, volume):
    bundle = tiny_train(method, volume, "ZYX")
    tiled = predict_array(bundle, volume, axes="ZYX", tile_shape=(40, 32, 32), precision="fp32")
    whole = predict_array(bundle, volume, axes="ZYX", tile_shape=(32, 64, 64), precision="fp32")
    assert np.abs(tiled - whole).max() < 1e-4


@pytest.mark.parametrize("tta", [False, True])
def test_complementary_output_does_not_depend_on_its_own_pixel(image2d, tta):
    bundle = tiny_train("ams", image2d, "YX")
    cfg = PredictConfig(precision="fp32", tta=tta, tile_shape=(40, 40))
    base = predict_array(bundle, image2d, axes="YX", config=cfg)
    plain = predict_array(bundle, image2d, axes="YX", config=cfg.model_copy(
        update={"j_invariant": False}))
    assert not np.allclose(base, plain)  # the complementary predictor is not a plain pass
    for p in [(0, 0), (33, 47), (69, 89), (12, 1)]:
        changed = image2d.copy()
        changed[p] += 50.0
        out = predict_array(bundle, changed, axes="YX", config=cfg)
        assert out[p] == base[p], p
        assert not np.allclose(out, base)  # its neighbours do see it


@pytest.mark.parametrize("method", NEW)
def test_stop_continue_and_model_file_round_trip(method, image2d, tmp_path):
    stop = threading.Event()

    def on_event(e):
        if isinstance(e, TrainStep) and e.step >= 4:
            stop.set()

    params = {"method": "n2n", "pairs_along": "T"} if method == "n2n" else {"method": method}
    data, axes = (np.stack([image2d, image2d[::-1]]), "TYX") if method == "n2n" else (
        image2d, "YX")
    cfg = default_config(method, steps=1000, batch_size=2, patch_size=(16, 16), log_every=2,
                         params=params, **TINY)
    first = run_to_end(train(data, cfg, axes=axes, stop=stop), on_event)
    assert first.info["stop_reason"] == "stopped" and first.info["steps"] == 4
    path = first.save(tmp_path / f"{method}.sdmodel")
    loaded = ModelBundle.load(path)
    assert loaded.config == first.config and loaded.method == method
    again = run_to_end(train(data, cfg.model_copy(update={"steps": 3}), axes=axes, init=loaded))
    assert again.info["steps"] == 3 and again.config.params == first.config.params
    a = predict_array(loaded, image2d, axes="YX", precision="fp32")
    b = predict_array(first, image2d, axes="YX", precision="fp32")
    assert np.array_equal(a, b)


@pytest.mark.parametrize("method", ["n2s", "ne2ne"])
def test_dncnn_is_a_backbone(method, image2d):
    bundle = tiny_train(method, image2d, "YX",
                        network={"arch": "dncnn", "dncnn_layers": 4, "base_filters": 4})
    assert bundle.config.network.arch == "dncnn"
    tiled = predict_array(bundle, image2d, axes="YX", tile_shape=(40, 40), precision="fp32")
    whole = predict_array(bundle, image2d, axes="YX", tile_shape=(128, 128), precision="fp32")
    assert np.abs(tiled - whole).max() < 1e-4
