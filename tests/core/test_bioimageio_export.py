"""bioimage.io export and import: build, validate with bioimageio.core, load back exactly.

Small networks (a few thousand weights) keep each export to seconds; every export runs
bioimageio.core's package test itself (both weight formats) before writing anything.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

pytest.importorskip("bioimageio.core")

from napari_selfdenoise.core.bioimageio import export as export_mod  # noqa: E402
from napari_selfdenoise.core.bioimageio.export import PackageTestError, export_bioimageio  # noqa: E402
from napari_selfdenoise.core.bundle import ModelBundle, ModelFileError  # noqa: E402
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig  # noqa: E402
from napari_selfdenoise.core.events import Message, run_to_end  # noqa: E402
from napari_selfdenoise.core.inference import predict_array  # noqa: E402
from napari_selfdenoise.core.models import build_network  # noqa: E402

CASES = {  # name: (method, arch, spatial dims, depth, channels)
    "unet2d": ("n2v", "unet", 2, 2, 1),
    "unet3d": ("n2v", "unet", 3, 1, 1),
    "n2v2": ("n2v2", "unet", 2, 2, 1),
    "dncnn": ("n2s", "dncnn", 2, 2, 2),  # two channels, each with its normalisation
    "bsn": ("bsn", "unet", 2, 1, 1),  # the blind-spot network with its posterior mean
}
OFFSETS, SCALES = [300.0, 120.0], [40.0, 8.0]


def make_bundle(method: str, arch: str, dims: int, depth: int, ch: int = 1) -> ModelBundle:
    torch.manual_seed(0)
    cfg = TrainConfig(method=method, network=NetworkConfig(
        arch=arch, depth=depth, base_filters=4, dncnn_layers=5))
    net = build_network(cfg.network, dims, ch, method, cfg.params)
    if hasattr(net, "set_noise"):
        net.set_noise([0.2] * ch, [0.1] * ch)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    axes = ("" if ch == 1 else "C") + "ZYX"[-dims:]
    return ModelBundle(config=cfg, axes=axes, spatial_dims=dims,
                       n_channels=ch, norm_offset=OFFSETS[:ch], norm_scale=SCALES[:ch],
                       state_dict=net.state_dict(), info={"source": "test"})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case exported once: ``name -> (bundle, package path, messages)``."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            bundle = make_bundle(*CASES[name])
            out = tmp_path_factory.mktemp(name) / f"{name}.zip"
            messages: list = []
            path = run_to_end(export_bioimageio(bundle, out), messages.append)
            cache[name] = (bundle, path, messages)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(CASES))
def test_export_validates_and_round_trips_exactly(exported, name):
    bundle, path, messages = exported(name)
    assert path.is_file() and not list(path.parent.glob(".*.part"))
    if name == "unet2d":  # the export tested these bytes; once more from the written file
        # (spec validation, both weight formats reproduce the test output, sizes n = 0..2)
        from bioimageio.core import test_model

        summary = test_model(str(path), devices=["cpu"])
        assert summary.status == "passed", summary.display()
        _check_default_prediction(bundle, path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    assert {"rdf.yaml", "model.sdmodel", "weights.pt", "weights_torchscript.pt",
            "selfdenoise_architecture.py", "test_input.npy", "test_output.npy",
            "sample_input.tif", "sample_output.tif", "cover.png", "README.md"} <= names
    # lossless round trip: same weights and settings, identical fp32 predictions
    loaded = ModelBundle.load(path)
    assert loaded.config == bundle.config and loaded.info == bundle.info
    assert loaded.state_dict.keys() == bundle.state_dict.keys()
    assert all(torch.equal(loaded.state_dict[k], bundle.state_dict[k]) for k in bundle.state_dict)
    shape = (20, 40, 36) if bundle.spatial_dims == 3 else (70, 52)
    shape = shape if bundle.n_channels == 1 else (bundle.n_channels,) + shape
    img = np.random.default_rng(3).normal(300, 40, shape).astype(np.float32)
    np.testing.assert_array_equal(predict_array(loaded, img, axes=bundle.axes),
                                  predict_array(bundle, img, axes=bundle.axes))
    assert any(isinstance(m, Message) and m.level == "warning" and "--tta" in m.text
               for m in messages)


def _check_default_prediction(bundle: ModelBundle, path) -> None:
    """bioimageio.core's ordinary prediction pads the input by the declared halo
    (symmetric) and crops it again: that equals our network on the same padding (to the
    rounding of scale_linear), and inside the image it equals the unpadded test output,
    because the halo is a multiple of the pooling step (the grid does not move)."""
    from bioimageio.core import create_prediction_pipeline, load_model_description
    from bioimageio.core.digest_spec import create_sample_for_model

    descr = load_model_description(str(path))
    halo = descr.outputs[0].axes[-1].halo
    assert halo % bundle.build_model().size_multiple == 0
    with zipfile.ZipFile(path) as zf:
        x, y = np.load(zf.open("test_input.npy")), np.load(zf.open("test_output.npy"))
    pipeline = create_prediction_pipeline(descr, weight_format="pytorch_state_dict",
                                          devices=["cpu"])
    out = pipeline.predict_sample_without_blocking(
        create_sample_for_model(descr, inputs={"input": x})).members["output"].data.values
    h = halo
    padded = np.pad(x, [(0, 0), (0, 0), (h, h), (h, h)], mode="symmetric")
    with torch.no_grad():
        ours = bundle.build_model()(torch.from_numpy(bundle.normalize(padded)))
    ours = bundle.denormalize(ours.numpy())[..., h:-h, h:-h]
    np.testing.assert_allclose(out, ours, rtol=1e-6, atol=0)
    assert x.shape[-1] > 2 * h
    np.testing.assert_allclose(out[..., h:-h, h:-h], y[..., h:-h, h:-h], rtol=1e-6, atol=0)


def test_package_description_and_documentation(exported):
    import yaml

    bundle, path, _ = exported("dncnn")  # Noise2Self: J-invariant inference by default?
    with zipfile.ZipFile(path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        readme = zf.read("README.md").decode()
        x = np.load(zf.open("test_input.npy"))
        y = np.load(zf.open("test_output.npy"))
    assert rdf["format_version"].startswith("0.5.")
    assert rdf["cite"][0]["url"].startswith("https://arxiv.org/abs/")
    assert "Noise2Self" in rdf["cite"][0]["text"]
    axes = rdf["inputs"][0]["axes"]
    assert [a["type"] for a in axes] == ["batch", "channel", "space", "space"]
    assert axes[2]["size"]["step"] == 1 and axes[2]["size"]["min"] > 2 * 5
    assert rdf["outputs"][0]["axes"][2]["halo"] >= 5  # DnCNN with 5 layers: radius 5
    pre = rdf["inputs"][0]["preprocessing"]
    assert {"id": "scale_linear", "kwargs": {
        "axis": "channel", "gain": [1 / s for s in SCALES],
        "offset": [-o / s for o, s in zip(OFFSETS, SCALES)]}} in pre
    post = rdf["outputs"][0]["postprocessing"]
    assert {"id": "scale_linear", "kwargs": {"axis": "channel", "gain": SCALES,
                                             "offset": OFFSETS}} in post
    assert axes[1]["channel_names"] == ["channel0", "channel1"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["network"] == "DnCNN"
    # the test output is our own prediction of the test input
    net = bundle.build_model()
    with torch.no_grad():
        ours = bundle.denormalize(net(torch.from_numpy(bundle.normalize(x))).numpy())
    np.testing.assert_array_equal(y, ours)
    assert "## Validation" in readme and "--tta" in readme


def test_j_invariant_method_says_what_is_left_out(tmp_path):
    bundle = make_bundle("n2s", "dncnn", 2, 2)
    bundle.config = bundle.config.model_copy(update={"j_invariant_inference": True})
    notes = export_mod.inexpressible(bundle)
    assert any("j-invariant" in n and "one plain pass" in n for n in notes)


def test_the_package_files_come_from_one_network(tmp_path, monkeypatch):
    """The network is built once: its sizes, the architecture check, the weights and
    the trace all use that instance (it was built twice)."""
    bundle = make_bundle(*CASES["unet2d"])
    built = []
    real = ModelBundle.build_model

    def build(self, *args, **kwargs):
        built.append(real(self, *args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ModelBundle, "build_model", build)
    files, _ = export_mod._write_files(bundle, tmp_path, None, None, "t")
    assert len(built) == 1
    net = built[0]
    saved = torch.load(files.state_dict, weights_only=True)
    assert saved.keys() == net.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    with torch.no_grad():
        x = torch.from_numpy(bundle.normalize(np.load(files.test_input), channel_axis=1))
        y = bundle.denormalize(net(x).numpy(), channel_axis=1)
    np.testing.assert_array_equal(np.load(files.test_output), y)


def test_failing_package_is_refused_and_nothing_written(tmp_path, monkeypatch):
    bundle = make_bundle("n2v", "dncnn", 2, 2)
    real = export_mod.content.our_prediction

    def wrong(*args):  # a bug in our test output: the real package test must catch it
        return real(*args) + 5.0

    monkeypatch.setattr(export_mod.content, "our_prediction", wrong)
    out = tmp_path / "bad.zip"
    with pytest.raises(PackageTestError, match="failed its test") as info:
        run_to_end(export_bioimageio(bundle, out))
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_foreign_zips_are_one_line_errors(exported, tmp_path):
    _, path, _ = exported("unet2d")
    plain = tmp_path / "notes.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(ModelFileError, match="not a bioimage.io model package"):
        ModelBundle.load(plain)
    # a package of another tool: no .sdmodel inside
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(foreign, "w") as dst:
        for n in src.namelist():
            if n == "rdf.yaml":
                dst.writestr(n, src.read(n).decode().replace("model.sdmodel", "other.bin")
                             .replace("napari_selfdenoise:", "careamics:"))
            elif n != "model.sdmodel":
                dst.writestr(n, src.read(n))
    with pytest.raises(ModelFileError, match="without a napari-selfdenoise model") as info:
        ModelBundle.load(foreign)
    assert "selfdenoise_network" in str(info.value) and "\n" not in str(info.value)
    # a modified .sdmodel does not match the package's checksum
    tampered = tmp_path / "tampered.zip"
    other = make_bundle("n2v", "dncnn", 2, 2).to_bytes()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for n in src.namelist():
            dst.writestr(n, other if n == "model.sdmodel" else src.read(n))
    with pytest.raises(ModelFileError, match="checksum"):
        ModelBundle.load(tampered)
    # a torch.save checkpoint (a zip holding a pickle) is never opened
    ckpt = tmp_path / "ckpt.zip"
    torch.save({"w": torch.zeros(2)}, ckpt)
    with pytest.raises(ModelFileError, match="pickled"):
        ModelBundle.load(ckpt)
