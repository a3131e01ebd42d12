"""The exported architecture file: imports only torch and reproduces every network we ship.

Every registered method is built with every network family it trains (and with pixel
shuffle where it offers it), so a network or method added later is covered too (the
BSN's posterior denoiser included).
"""

from __future__ import annotations

import ast

import pytest
import torch

from napari_selfdenoise.core.bioimageio import architecture
from napari_selfdenoise.core.config import NetworkConfig, TrainConfig
from napari_selfdenoise.core.methods import METHODS
from napari_selfdenoise.core.methods.pd_option import PixelShuffleParams
from napari_selfdenoise.core.models import NETWORKS, build_network


def _cases():
    for name, method in METHODS.items():
        for arch in method.networks:
            for dims in (2, 3):
                yield name, arch, dims, False
            if issubclass(method.Params, PixelShuffleParams):
                yield name, arch, 2, True


CASES = list(_cases())


def _randomise_batch_norm(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)


def test_architecture_file_imports_only_torch():
    source = architecture.architecture_source()
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports  # it does import torch
    for node in imports:
        if isinstance(node, ast.Import):
            assert all(a.name == "torch" or a.name.startswith("torch.") for a in node.names)
        else:
            assert node.level == 0 and node.module.split(".")[0] == "torch"
    assert "__import__" not in source and "importlib" not in source
    assert architecture.imported_modules(source) == {"torch"}
    # and it is a working module on its own (nothing but torch in its namespace)
    module = architecture.load_architecture(source)
    assert callable(getattr(module, architecture.CALLABLE))


def test_import_check_catches_other_imports():
    with pytest.raises(RuntimeError, match="numpy"):
        architecture.check_imports_only_torch("import torch\nimport numpy as np\n")
    with pytest.raises(RuntimeError):
        architecture.check_imports_only_torch("from .layers import conv\n")


def test_every_registered_network_family_is_covered():
    assert {arch for _, arch, _, _ in CASES} == set(NETWORKS)


def test_unknown_network_is_refused_in_one_line():
    with pytest.raises(architecture.UnsupportedNetworkError, match="cannot be exported"):
        architecture.network_kwargs(torch.nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize("method, arch, dims, shuffle", CASES)
def test_exported_network_is_exactly_ours(method, arch, dims, shuffle):
    torch.manual_seed(0)
    params = {"method": method}
    if shuffle:
        params.update(pixel_shuffle=True, pd_infer=2)
    cfg = TrainConfig(method=method, params=params,
                      network=NetworkConfig(arch=arch, depth=2, base_filters=4, dncnn_layers=4))
    net = build_network(cfg.network, dims, 2, method, cfg.params)
    _randomise_batch_norm(net)
    if hasattr(net, "set_noise"):  # the BSN's posterior: a noise model that matters
        net.set_noise([0.3, 0.1], [0.05, 0.2])
    net.eval()
    kwargs = architecture.network_kwargs(net)
    module = architecture.load_architecture(architecture.architecture_source())
    twin = getattr(module, architecture.CALLABLE)(**kwargs)
    twin.load_state_dict(net.state_dict(), strict=True)  # same parameter names and shapes
    twin.eval()
    assert twin.halo == net.halo and twin.size_multiple == net.size_multiple
    step = net.size_multiple
    x = torch.randn((1, 2) + tuple(step * k for k in (2, 3, 5)[-dims:]))
    with torch.no_grad():
        assert torch.equal(twin(x), net(x))  # fp32, bit for bit
