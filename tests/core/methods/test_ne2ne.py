"""Neighbor2Neighbor: the sub-images are orthogonal neighbours (never the same or a
diagonal pixel) and the loss equals the paper's formula on a hand-made example."""

import numpy as np
import pytest
import torch

from napari_selfdenoise.core.config import TrainConfig
from napari_selfdenoise.core.methods import StepContext, get_method
from napari_selfdenoise.core.methods.ne2ne import (
    NEIGHBOUR_PAIRS, ne2ne_loss, neighbour_choice, subsample,
)

NE2NE = get_method("ne2ne")


@pytest.mark.parametrize("shape", [(4, 1, 16, 18), (2, 2, 3, 8, 10), (3, 1, 9, 11)])
def test_sub_images_are_always_orthogonal_neighbours(shape):
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(shape)
    i1, i2 = neighbour_choice(x, g)
    h, w = shape[-2] // 2, shape[-1] // 2
    # positions encoded as values: row * 1000 + column, the same in every channel
    rows = torch.arange(shape[-2]).reshape(-1, 1) * 1000
    pos = (rows + torch.arange(shape[-1])).float().expand(shape)
    p1, p2 = subsample(pos, i1), subsample(pos, i2)
    assert p1.shape == shape[:-2] + (h, w)
    dy, dx = (p1 // 1000 - p2 // 1000).abs(), (p1 % 1000 - p2 % 1000).abs()
    assert ((dy + dx) == 1).all()  # orthogonal neighbours: never the same, never diagonal
    assert (p1 // 1000 // 2 == p2 // 1000 // 2).all() and (p1 % 1000 // 2 == p2 % 1000 // 2).all()
    assert torch.equal(p1[:, :1], p1[:, -1:])  # same choice for all channels
    pairs = set(zip(i1.flatten().tolist(), i2.flatten().tolist()))
    assert pairs <= set(NEIGHBOUR_PAIRS)
    if len(shape) == 4 and shape[0] == 4:
        assert pairs == set(NEIGHBOUR_PAIRS)  # all 8 are drawn


class Doubler(torch.nn.Module):
    """f(y) = 2 y + 1: easy to evaluate by hand."""

    size_multiple = 1

    def forward(self, t):
        return 2 * t + 1


def test_loss_equals_the_formula_on_a_hand_made_example():
    y = torch.tensor([[[[1.0, 2.0, 5.0, 3.0],
                        [4.0, 0.0, 1.0, 2.0]]]])
    i1 = torch.tensor([[[[0, 3]]]])  # cell 1: top-left, cell 2: bottom-right
    i2 = torch.tensor([[[[1, 1]]]])  # cell 1: top-right, cell 2: top-right
    g1 = np.array([1.0, 2.0])  # y[0,0], y[1,3]
    g2 = np.array([2.0, 3.0])  # y[0,1], y[0,3]
    f_g1 = 2 * g1 + 1
    fy = 2 * y.numpy()[0, 0] + 1
    g1f, g2f = np.array([fy[0, 0], fy[1, 3]]), np.array([fy[0, 1], fy[0, 3]])
    weight = 1.5
    expected = (np.mean((f_g1 - g2) ** 2)
                + weight * np.mean((f_g1 - g2 - (g1f - g2f)) ** 2))
    got = ne2ne_loss(Doubler(), y, i1, i2, weight)
    assert float(got) == pytest.approx(expected)


def test_f_of_y_has_no_gradient_and_the_weight_ramps_to_gamma():
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    y = torch.randn(2, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    cfg = TrainConfig(method="ne2ne")
    batch = NE2NE.make_batch(y, cfg, g, StepContext())
    first = NE2NE.loss(net, batch, cfg, StepContext(progress=0.0))
    plain = ne2ne_loss(net, y, batch["i1"], batch["i2"], 0.0)
    assert float(first) == pytest.approx(float(plain))
    last = NE2NE.loss(net, batch, cfg, StepContext(progress=1.0))
    assert float(last) == pytest.approx(float(ne2ne_loss(net, y, batch["i1"], batch["i2"], 2.0)))
    # the gradient flows through f(g1 y) only: with f(y) detached, the regulariser's
    # gradient equals the one computed with f(y) passed in as a constant
    net.zero_grad()
    last.backward()
    grad = net.weight.grad.clone()
    with torch.no_grad():
        full = net(y)
    g1, g2 = subsample(y, batch["i1"]), subsample(y, batch["i2"])
    diff = net(g1) - g2
    const = subsample(full, batch["i1"]) - subsample(full, batch["i2"])
    net.zero_grad()
    ((diff ** 2).mean() + 2.0 * ((diff - const) ** 2).mean()).backward()
    assert torch.allclose(grad, net.weight.grad)
