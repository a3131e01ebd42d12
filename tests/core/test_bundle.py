"""Model files: exact round trips; corrupt, truncated, foreign or pickled files are refused
with ModelFileError and never execute anything."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from napari_selfdenoise.core.bundle import METADATA_KEY, ModelBundle, ModelFileError
from napari_selfdenoise.core.bundle import find_model_in_metadata
from napari_selfdenoise.core.config import TrainConfig
from napari_selfdenoise.core.models import build_network


def make_bundle() -> ModelBundle:
    cfg = TrainConfig(method="n2v2", axes="CYX", patch_size=(32, 32),
                      network={"base_filters": 4, "depth": 1})
    torch.manual_seed(0)
    net = build_network(cfg.network, 2, 2, cfg.method)
    net.train()
    net(torch.randn(4, 2, 16, 16))  # non-trivial batch-norm running statistics
    return ModelBundle(
        config=cfg, axes="CYX", spatial_dims=2, n_channels=2,
        norm_offset=[1.5, -2.25], norm_scale=[10.0, 0.125],
        state_dict={k: v.clone() for k, v in net.state_dict().items()},
        history=[{"step": 10, "loss": 0.5, "val_loss": None},
                 {"step": 20, "loss": 0.25, "val_loss": 0.3}],
        info={"stop_reason": "steps", "data_shapes": [[1, 2, 64, 64]]},
    )


def assert_same(a: ModelBundle, b: ModelBundle) -> None:
    assert a.header() == b.header()
    assert a.state_dict.keys() == b.state_dict.keys()
    for k in a.state_dict:
        assert a.state_dict[k].dtype == b.state_dict[k].dtype
        assert torch.equal(a.state_dict[k], b.state_dict[k]), k
    x = torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(a.build_model()(x), b.build_model()(x))


def test_file_bytes_and_metadata_round_trips_are_exact(tmp_path):
    bundle = make_bundle()
    path = bundle.save(tmp_path / "model.sdmodel")
    assert_same(bundle, ModelBundle.load(path))
    assert_same(bundle, ModelBundle.from_bytes(bundle.to_bytes()))
    meta = json.loads(json.dumps({METADATA_KEY: bundle.to_metadata()}))  # plain JSON data
    assert_same(bundle, ModelBundle.from_metadata(find_model_in_metadata(meta)))
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    assert np.allclose(bundle.denormalize(bundle.normalize(x)), x)
    with pytest.raises(FileExistsError):
        bundle.save(path, overwrite=False)


class Boom:
    """Unpickling this creates a marker file (what an attacker's payload would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["torch_zip", "torch_legacy", "pickle"])
def test_pickles_are_refused_without_running_them(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / f"{kind}.pt"
    payload = {"state_dict": {"w": torch.zeros(2)}, "evil": Boom(marker)}
    if kind == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=(kind == "torch_zip"))
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="pickle"):
        ModelBundle.load(path)
    assert not marker.exists()


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path):
    good = make_bundle().to_bytes()
    foreign = st_save({"weight": torch.ones(3)})
    wrong_tag = st_save({"weight": torch.ones(3)},
                        metadata={"napari_selfdenoise": json.dumps({"format": "other"})})
    corrupt_header = bytearray(good)
    corrupt_header[10:20] = b"\xff" * 10
    corrupt_weights = good[: len(good) - 100]
    mismatched = make_bundle()
    mismatched.state_dict = {k: v for k, v in mismatched.state_dict.items() if "head" not in k}
    cases = {
        "empty": (b"", "empty"),
        "tiny": (b"abc", "truncated"),
        "random": (bytes(range(256)) * 4, "not a napari-selfdenoise model"),
        "half": (good[: len(good) // 2], ""),
        "foreign": (foreign, "not a napari-selfdenoise model"),
        "wrong_tag": (wrong_tag, "wrong format tag"),
        "corrupt_header": (bytes(corrupt_header), "corrupt header"),
        "corrupt_weights": (corrupt_weights, "corrupt weights"),
        "mismatched": (mismatched.to_bytes(), "weights do not match"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / f"{name}.sdmodel"
        path.write_bytes(data)
        with pytest.raises(ModelFileError, match=words):
            ModelBundle.load(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        ModelBundle.load(tmp_path / "missing.sdmodel")


def test_bad_metadata_entries_are_refused():
    assert find_model_in_metadata({"other": 1}) is None
    meta = make_bundle().to_metadata()
    with pytest.raises(ModelFileError, match="base64"):
        ModelBundle.from_metadata({**meta, "safetensors_b64": "not base64!!"})
    with pytest.raises(ModelFileError):
        ModelBundle.from_metadata({"format": "something else"})
    with pytest.raises(ModelFileError, match="no model payload"):
        ModelBundle.from_metadata({**meta, "safetensors_b64": None})
