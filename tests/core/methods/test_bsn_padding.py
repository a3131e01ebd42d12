"""Replicate padding in the blind-spot network (``params.padding``): the blind spot still
holds (by gradients, through pooling, pixel shuffle and the 3D branches), the option is
really used, a model file keeps it, a model stored without it predicts with zeros, and
new models get replicate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_bsn import assert_blind_spot, bsn_bundle, per_pixel_gradients

from napari_selfdenoise.core import inference
from napari_selfdenoise.core.bioimageio import architecture
from napari_selfdenoise.core.bundle import ModelBundle
from napari_selfdenoise.core.config import TrainConfig, default_config, resolve_config
from napari_selfdenoise.core.methods.bsn import BSNParams
from napari_selfdenoise.core.models.bsn import BlindSpotNet, HalfPlaneUNet
from napari_selfdenoise.core.models.bsn_denoiser import BSNDenoiser


@pytest.mark.parametrize("dims, shape, depth", [(2, (8, 4), 2), (2, (6, 10), 1),
                                                 (3, (2, 4, 6), 1)])
def test_replicate_padding_keeps_the_blind_spot(dims, shape, depth):
    torch.manual_seed(0)
    net = BlindSpotNet(dims, 1, 2, depth=depth, filters=4, padding="replicate",
                       separate_z=dims == 3)
    assert_blind_spot(per_pixel_gradients(net, shape), shape)


@pytest.mark.parametrize("shape", [(4, 8), (8, 4)])
def test_replicate_half_plane_branch_sees_rows_above_only(shape):
    """The top padding repeats row 0: the first rows' view stays strictly above them."""
    torch.manual_seed(0)
    g = per_pixel_gradients(HalfPlaneUNet(2, 1, depth=2, filters=4, padding="replicate"),
                            shape)
    for p in range(g.shape[0]):
        assert torch.all(g[p, p // shape[1]:] == 0)


def test_replicate_padding_through_pixel_shuffle_keeps_the_blind_spot():
    torch.manual_seed(0)
    den = BSNDenoiser(2, 1, depth=1, filters=4, noise_model="none", pd_infer=2,
                      padding="replicate")
    shape = (8, 12)
    g = per_pixel_gradients(den, shape)
    assert torch.all(g.reshape(g.shape[0], -1).diagonal() == 0)


def test_padding_changes_the_output_and_nothing_else():
    """Same weights, other padding: the same parameters, a different output at the edges."""
    torch.manual_seed(0)
    zeros = BlindSpotNet(2, 1, 1, depth=2, filters=4)
    rep = BlindSpotNet(2, 1, 1, depth=2, filters=4, padding="replicate")
    rep.load_state_dict(zeros.state_dict(), strict=True)
    x = torch.randn(1, 1, 16, 20) + 3.0
    with torch.no_grad():
        assert not torch.equal(zeros(x), rep(x))
    with pytest.raises(ValueError, match="padding"):
        BlindSpotNet(2, 1, 1, padding="reflect")


def test_new_models_replicate_and_the_stored_default_is_zeros():
    """The field's default (what a model file without it means) is zeros; a new
    configuration gets replicate from the method's defaults unless it says otherwise."""
    assert BSNParams().padding == "zeros"
    assert BlindSpotNet(2, 1, 1).padding == "zeros"
    assert TrainConfig(method="bsn").params.padding == "zeros"  # not resolved: as stored
    assert default_config("bsn").params.padding == "replicate"
    shuffled = default_config("bsn", params={"method": "bsn", "pixel_shuffle": True})
    assert shuffled.params.padding == "replicate" and shuffled.params.pixel_shuffle
    given = default_config("bsn", params={"method": "bsn", "padding": "zeros"})
    assert given.params.padding == "zeros"
    assert resolve_config(given).params.padding == "zeros"


def test_model_file_keeps_replicate_padding(tmp_path):
    b = bsn_bundle("none", padding="replicate", pixel_shuffle=True)
    loaded = ModelBundle.load(b.save(tmp_path / "rep.sdmodel"))
    assert loaded.config.params.padding == "replicate"
    assert loaded.build_model().net.padding == "replicate"
    img = np.random.default_rng(0).normal(1.0, 0.5, (64, 72)).astype(np.float32)
    same = inference.predict_array(loaded, img, axes="YX")
    np.testing.assert_array_equal(same, inference.predict_array(b, img, axes="YX"))
    zeros = b.config.params.model_copy(update={"padding": "zeros"})
    other = ModelBundle(config=b.config.model_copy(update={"params": zeros}), axes="YX",
                        spatial_dims=2, n_channels=1, norm_offset=[0.1], norm_scale=[0.5],
                        state_dict=b.state_dict)
    assert not np.array_equal(same, inference.predict_array(other, img, axes="YX"))


def test_model_stored_without_the_field_predicts_with_zeros(tmp_path):
    """A model file written before the option existed (no ``padding`` in its params)
    loads with zero padding and predicts what it predicted then."""
    from safetensors.torch import save

    b = bsn_bundle("poisson-gaussian")
    header = b.header()
    del header["config"]["params"]["padding"]
    path = tmp_path / "old.sdmodel"
    path.write_bytes(save({k: v.contiguous() for k, v in b.state_dict.items()},
                          metadata={"napari_selfdenoise": json.dumps(header)}))
    old = ModelBundle.load(path)
    assert old.config.params.padding == "zeros"
    img = np.random.default_rng(1).normal(1.0, 0.5, (48, 40)).astype(np.float32)
    np.testing.assert_array_equal(inference.predict_array(old, img, axes="YX"),
                                  inference.predict_array(b, img, axes="YX"))


def test_tiled_equals_untiled_with_replicate_padding():
    b = bsn_bundle("poisson-gaussian", padding="replicate")
    img = np.random.default_rng(0).normal(1.0, 0.5, (101, 90)).astype(np.float32)
    net = b.build_model()
    tile = tuple(2 * inference.round_up(h, net.size_multiple) + 40 for h in net.halo)
    tiled = inference.predict_array(b, img, axes="YX", tile_shape=tile)
    whole = inference.predict_array(b, img, axes="YX", tile_shape=(512, 512))
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_exported_architecture_keeps_replicate_padding():
    torch.manual_seed(0)
    net = BSNDenoiser(2, 1, depth=1, filters=4, noise_model="none", padding="replicate")
    net.eval()
    kwargs = architecture.network_kwargs(net)
    assert kwargs["padding"] == "replicate"
    module = architecture.load_architecture(architecture.architecture_source())
    twin = getattr(module, architecture.CALLABLE)(**kwargs)
    twin.load_state_dict(net.state_dict(), strict=True)
    twin.eval()
    x = torch.randn(1, 1, 16, 24)
    with torch.no_grad():
        assert torch.equal(twin(x), net(x))
