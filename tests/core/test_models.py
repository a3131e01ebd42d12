"""Networks: shapes, padding, receptive-field halo, N2V2 structure, registry."""

import pytest
import torch

from napari_selfdenoise.core.config import NetworkConfig
from napari_selfdenoise.core.models import NETWORKS, apply_padded, build_network
from napari_selfdenoise.core.models.layers import MaxBlurPool, MaxPool


@pytest.mark.parametrize("arch", sorted(NETWORKS))
@pytest.mark.parametrize("dims", [2, 3])
def test_any_size_in_same_size_out(arch, dims):
    net = build_network(NetworkConfig(arch=arch, dncnn_layers=5, base_filters=8), dims, 2)
    x = torch.randn((1, 2) + (11,) * (dims - 1) + (13,))
    assert apply_padded(net.eval(), x).shape == x.shape
    assert len(net.halo) == dims and all(h > 0 for h in net.halo)
    assert isinstance(net.size_multiple, int)


@pytest.mark.parametrize("n2v2", [False, True])
@pytest.mark.parametrize("arch", ["unet", "dncnn"])
def test_halo_bounds_the_receptive_field(arch, n2v2):
    cfg = NetworkConfig(arch=arch, depth=2, base_filters=8, dncnn_layers=6, n2v2=n2v2)
    net = build_network(cfg, 2, 1).eval()
    size = 96
    x = torch.randn(1, 1, size, size, requires_grad=True)
    c = size // 2
    net(x)[0, 0, c, c].backward()
    g = x.grad[0, 0].abs()
    h = net.halo[0]
    inside = torch.zeros_like(g, dtype=torch.bool)
    inside[c - h : c + h + 1, c - h : c + h + 1] = True
    assert g[~inside].max() == 0  # nothing outside the halo influences the centre
    assert g[c - h // 2, c] > 0 or g[c, c - h // 2] > 0  # and the halo is not grossly loose


def test_n2v2_variant_has_blurpool_and_no_top_skip():
    cfg = NetworkConfig(depth=2, base_filters=8)
    plain = build_network(cfg, 2, 1, method="n2v")
    n2v2 = build_network(cfg, 2, 1, method="n2v2")
    assert any(isinstance(m, MaxPool) for m in plain.modules())
    assert not any(isinstance(m, MaxPool) for m in n2v2.modules())
    assert sum(isinstance(m, MaxBlurPool) for m in n2v2.modules()) == 2
    # top decoder block: plain sees upsampled (16) + skip (8) channels, N2V2 only 16
    assert plain.decode[-1][0].in_channels == 24
    assert n2v2.decode[-1][0].in_channels == 16
    assert n2v2.decode[0][0].in_channels == 32 + 16  # lower levels keep their skips
    # the config flag gives the same variant as the method
    flagged = build_network(NetworkConfig(depth=2, base_filters=8, n2v2=True), 2, 1)
    assert flagged.decode[-1][0].in_channels == 16


def test_blurpool_is_a_normalised_low_pass():
    pool = MaxBlurPool(2, 3)
    const = torch.full((1, 3, 8, 8), 2.5)
    assert torch.allclose(pool(const), torch.full((1, 3, 4, 4), 2.5))
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None]) % 2
    out = pool(checker[None, None].float().expand(1, 3, 8, 8))
    assert out.shape == (1, 3, 4, 4)
    # max over 2x2 of a checkerboard is 1 away from the far corner: no aliasing survives
    assert torch.allclose(out[..., :3, :], torch.ones(1, 3, 3, 4))
    assert torch.allclose(out[..., :, :3], torch.ones(1, 3, 4, 3))


@pytest.mark.parametrize("arch", ["unet", "dncnn"])
def test_residual_network_with_zero_head_is_identity(arch):
    net = build_network(NetworkConfig(arch=arch, base_filters=8, dncnn_layers=4), 2, 1).eval()
    head = net.head if arch == "unet" else net.last
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(net(x), x)


def test_3d_unet_depth_and_filters():
    net = build_network(NetworkConfig(depth=3, base_filters=4, batch_norm=False), 3, 1)
    assert net.size_multiple == 8
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    assert net.head.in_channels == 4
    assert apply_padded(net, torch.randn(1, 1, 9, 10, 12)).shape == (1, 1, 9, 10, 12)
