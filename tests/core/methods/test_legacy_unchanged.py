"""The method refactor changed nothing: models, presets and results of the code before it.

The files in ``legacy/`` were written by the code before ``core/methods`` existed (commit
487bee2): model files and presets must keep loading, and the same seed and configuration
must give the same weights (fp32, one thread) and predictions.

Bit-identical on the CPU kinds the references were recorded on: the digests on an
AVX-512 CPU, ``reference_weights.npz`` on an AVX2-only one
(``legacy/make_reference_weights.py``). Elsewhere fp32 convolutions may sum in another
order (other oneDNN kernels: AVX2 against AVX-512 moves these weights by up to 6e-8 and
the losses by 1e-8), so the weights are compared within :data:`WEIGHT_ATOL` and the
predictions within a relative :data:`PREDICTION_RTOL`: four orders of magnitude above
that drift, and as far below what a change of the algorithm does (another mask or seed
moves the weights by 1e-2 and more).
"""

import hashlib
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import PredictConfig
from napari_selfdenoise.core.events import run_to_end
from napari_selfdenoise.core.inference import predict
from napari_selfdenoise.core.presets import load_preset
from napari_selfdenoise.core.samples import phantom_2d, phantom_3d
from napari_selfdenoise.core.training import default_config, train

LEGACY = Path(__file__).parent / "legacy"
REFERENCE = json.loads((LEGACY / "reference_digests.json").read_text())
REFERENCE_WEIGHTS = np.load(LEGACY / "reference_weights.npz")
#: largest weight difference to the pre-refactor code's on another CPU kind
WEIGHT_ATOL = 1e-5
#: largest relative difference of a prediction (to the reference's largest value)
PREDICTION_RTOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def digest(bundle: ModelBundle) -> str:
    h = hashlib.sha256()
    for k in sorted(bundle.state_dict):
        h.update(k.encode())
        h.update(bundle.state_dict[k].cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def assert_old_weights(bundle: ModelBundle, key: str) -> None:
    """Bit-identical to the reference digest, or within :data:`WEIGHT_ATOL` of the old
    code's weights (bit-identical where those were recorded)."""
    if digest(bundle) == REFERENCE[key]["digest"]:
        return
    names = sorted(k[len(key) + 1:] for k in REFERENCE_WEIGHTS.files
                   if k.startswith(key + "/") and k.count("/") == 1
                   and not k.endswith(("/best_step", "/best_loss")))
    assert sorted(bundle.state_dict) == names
    for name in names:
        np.testing.assert_allclose(bundle.state_dict[name].cpu().numpy(),
                                   REFERENCE_WEIGHTS[f"{key}/{name}"], rtol=0,
                                   atol=WEIGHT_ATOL, err_msg=f"{key}: {name}")


#: the seeded cases, as the script that recorded the old code's weights runs them
CASES = runpy.run_path(str(LEGACY / "make_reference_weights.py"))["CASES"]


@pytest.mark.parametrize("key", sorted(CASES))
def test_same_seed_gives_the_weights_of_the_old_code(key):
    method, extra = CASES[key]
    cfg = default_config(method, steps=6, batch_size=4, patch_size=(16, 16), precision="fp32",
                         seed=5, val_every=3, log_every=2,
                         network={"base_filters": 4, "depth": 1}, **extra)
    bundle = run_to_end(train(phantom_2d((48, 48), seed=3).noisy, cfg))
    ref = REFERENCE[key]
    assert bundle.info["best_step"] == ref["best_step"]
    assert bundle.info["best_loss"] == pytest.approx(ref["best_loss"], rel=1e-6, abs=0)
    assert_old_weights(bundle, key)


def test_same_seed_gives_the_weights_of_the_old_code_3d():
    cfg = default_config("n2s", steps=4, batch_size=2, patch_size=(8, 16, 16), precision="fp32",
                         seed=1, val_every=2, network={"base_filters": 4, "depth": 1})
    bundle = run_to_end(train(phantom_3d((16, 32, 32), seed=2).noisy, cfg, axes="ZYX"))
    assert_old_weights(bundle, "n2s_3d")


def test_old_model_files_load_and_predict_as_before():
    ref = np.load(LEGACY / "reference_predictions.npz")
    for key in ("n2v_jinv0_tta0", "n2s_jinv1_tta0", "n2s_jinv1_tta1", "n2same_jinv0_tta1"):
        method, jinv, tta = key.split("_")
        bundle = ModelBundle.load(LEGACY / f"legacy_{method}.sdmodel")
        assert bundle.method == method
        cfg = PredictConfig(j_invariant=jinv == "jinv1", tta=tta == "tta1", precision="fp32",
                            tile_shape=(40, 40))
        out = run_to_end(predict(bundle, ref["image"], axes="YX", config=cfg))
        np.testing.assert_allclose(out, ref[key], rtol=0, err_msg=key,
                                   atol=PREDICTION_RTOL * float(np.abs(ref[key]).max()))


@pytest.mark.parametrize("name, method", [("legacy_train_n2same.json", "n2same"),
                                          ("legacy_train_n2s_jinv.json", "n2s"),
                                          ("legacy_train_n2v_struct.json", "n2v")])
def test_old_presets_load(name, method):
    settings = load_preset(LEGACY / name)
    cfg = settings.train
    assert cfg.method == method
    if method == "n2same":
        assert cfg.lambda_inv == 1.5 and cfg.masking.grid == 3
    if method == "n2s":
        assert cfg.j_invariant_inference and cfg.masking.replacement == "zero"
    if method == "n2v":
        assert cfg.masking.struct_axis == "y" and cfg.masking.masked_fraction == 0.01
