"""Masking: each scheme hides exactly the pixels it claims, so the defining blind-spot
property holds (a masked pixel's prediction does not depend on its own input value)."""

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.config import NetworkConfig
from napari_selfdenoise.core.masking import (
    grid_mask,
    grid_masked_input,
    grid_offsets,
    interpolation_kernel,
    j_invariant_apply,
    masked_mse,
    n2v_cell_size,
    n2v_mask,
    noise2same_loss,
)
from napari_selfdenoise.core.models import build_network


def small_net(dims=2, **kw):
    torch.manual_seed(0)
    return build_network(NetworkConfig(base_filters=8, **kw), dims, 1).eval()


@pytest.mark.parametrize("dims", [2, 3])
def test_grid_masks_partition_the_image(dims):
    shape = (2, 1) + (9,) * dims
    total = sum(grid_mask(shape, o, 3).int() for o in grid_offsets(dims, 3))
    assert torch.equal(total, torch.ones(shape, dtype=torch.int64))
    m = grid_mask((5, 7), (1, 2), 4)
    assert m[1, 2] and m[1, 6] and not m[1, 3] and int(m.sum()) == 2


def test_interpolation_kernel_matches_noise2self():
    k2 = torch.tensor([[0.5, 1, 0.5], [1, 0, 1], [0.5, 1, 0.5]]) / 6
    assert torch.allclose(interpolation_kernel(2), k2)
    k3 = interpolation_kernel(3)
    assert k3[1, 1, 1] == 0 and torch.isclose(k3.sum(), torch.tensor(1.0))
    assert torch.isclose(k3[0, 1, 1], 2 * k3[0, 0, 1]) and torch.isclose(k3[0, 0, 1], 2 * k3[0, 0, 0])


def test_interpolate_value_on_a_hand_example():
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5) ** 2
    out = grid_masked_input(x, (0, 0), 2, "interpolate")  # numpy in, numpy out
    assert isinstance(out, np.ndarray)
    w = np.array([[0.5, 1, 0.5], [1, 0, 1], [0.5, 1, 0.5]]) / 6
    assert out[0, 0, 2, 2] == pytest.approx((x[0, 0, 1:4, 1:4] * w).sum(), rel=1e-6)
    assert out[0, 0, 2, 3] == x[0, 0, 2, 3]  # outside J: unchanged
    zero = grid_masked_input(x, (0, 0), 2, "zero")
    assert zero[0, 0, 0, 0] == 0 and zero[0, 0, 2, 2] == 0 and zero[0, 0, 1, 2] == x[0, 0, 1, 2]


@pytest.mark.parametrize("mode", ["interpolate", "zero"])
@pytest.mark.parametrize("dims", [2, 3])
def test_grid_masked_input_does_not_depend_on_x_J(mode, dims):
    g = torch.Generator().manual_seed(1)
    x = torch.rand((2, 2) + (8,) * dims, generator=g)
    offset = (1,) * dims
    m = grid_mask(x.shape, offset, 3)
    y = torch.where(m, torch.rand(x.shape, generator=g) * 100, x)
    assert torch.equal(grid_masked_input(x, offset, 3, mode), grid_masked_input(y, offset, 3, mode))


def test_j_invariant_apply_is_j_invariant():
    net = small_net()
    x = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    base = j_invariant_apply(net, x, grid=3)
    for p in [(5, 7), (0, 0), (23, 12)]:
        y = x.clone()
        y[(0, 0) + p] += 50.0
        out = j_invariant_apply(net, y, grid=3)
        assert torch.allclose(out[(0, 0) + p], base[(0, 0) + p], atol=1e-5)
        diff = (out - base).abs()
        assert diff.max() > 1e-3  # but the neighbours do see the change
    plain = net(x)
    assert not torch.allclose(plain, base)


@pytest.mark.parametrize("replacement", ["random", "median"])
@pytest.mark.parametrize("struct_axis", [None, "x"])
def test_n2v_masked_input_does_not_depend_on_masked_values(replacement, struct_axis):
    x = torch.rand(4, 2, 32, 32, generator=torch.Generator().manual_seed(3))
    kw = dict(masked_fraction=0.02, replacement=replacement, struct_axis=struct_axis)
    xm, m = n2v_mask(x, generator=torch.Generator().manual_seed(4), **kw)
    y = torch.where(m, x + 1000.0, x)  # change every masked pixel's own value
    ym, m2 = n2v_mask(y, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(m, m2) and torch.equal(xm, ym)
    # the network output at masked pixels is therefore blind to them
    net = small_net()
    assert torch.equal(net(xm[:, :1]) * m, net(ym[:, :1]) * m)
    # stratified: about one pixel per cell, in every sample
    cell = n2v_cell_size(0.02, 2)
    per_sample = m.flatten(1).sum(1)
    assert (per_sample >= (32 // cell) ** 2 * 0.9).all()
    assert (per_sample <= (-(-32 // cell)) ** 2).all()


def test_n2v_random_replacement_comes_from_the_window():
    x = torch.arange(2 * 40 * 40, dtype=torch.float32).reshape(2, 1, 40, 40)
    xm, m = n2v_mask(x, masked_fraction=0.01, neighbourhood=5,
                     generator=torch.Generator().manual_seed(5))
    for b, _, yy, xx in torch.nonzero(m).tolist():
        v = int(xm[b, 0, yy, xx]) - b * 1600
        sy, sx = divmod(v, 40)
        # a different pixel, within the 5x5 window (reflected at the border)
        assert (sy, sx) != (yy, xx)
        assert abs(sy - yy) <= 2 or min(yy, 39 - yy) < 2
        assert abs(sx - xx) <= 2 or min(xx, 39 - xx) < 2
    assert torch.equal(xm[~m.expand_as(xm)], x[~m.expand_as(x)])


def test_n2v2_median_excludes_the_centre():
    x = torch.zeros(1, 1, 24, 24)
    x[..., ::2, :] = 1.0  # rows alternate 1 / 0
    xm, m = n2v_mask(x, masked_fraction=0.01, neighbourhood=3, replacement="median",
                     generator=torch.Generator().manual_seed(6))
    # 3x3 window minus centre: 6 values of the other parity, 2 of the same
    for _, _, yy, xx in torch.nonzero(m).tolist():
        if 0 < yy < 23:
            assert xm[0, 0, yy, xx] == 1.0 - x[0, 0, yy, xx]


def test_struct_mask_hides_the_line():
    x = torch.full((1, 1, 32, 32), 5.0)
    xm, m = n2v_mask(x, masked_fraction=0.005, struct_axis="x", struct_span=5,
                     generator=torch.Generator().manual_seed(7))
    _, _, yy, xx = torch.nonzero(m)[0].tolist()
    line = xm[0, 0, yy, max(xx - 2, 0) : xx + 3]
    assert (line[torch.arange(line.numel()) != min(xx, 2)] < 1.0).all()  # replaced by noise in [0,1)
    assert xm[0, 0, (yy + 3) % 32, xx] == 5.0  # the other axis is untouched


def test_masked_mse_and_noise2same_loss_hand_example():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out_full = torch.tensor([[[[1.5, 2.0], [2.0, 4.0]]]])
    out_masked = torch.tensor([[[[0.5, 2.0], [2.0, 1.0]]]])
    mask = torch.tensor([[[[True, False], [False, True]]]])
    # rec = (0.25 + 0 + 1 + 0) / 4 ; inv = ((1.5-0.5)^2 + (4-1)^2) / 2 = 5
    expected = 1.25 / 4 + 2.0 * 5.0**0.5
    got = noise2same_loss(out_full, out_masked, x, mask, lambda_inv=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert masked_mse(out_full, x, mask).item() == pytest.approx(0.125)
    # gradient flows through BOTH passes
    a = out_full.clone().requires_grad_()
    b = out_masked.clone().requires_grad_()
    noise2same_loss(a, b, x, mask, 2.0).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
