"""The memory model: FLOPs and live bytes per voxel of a network, the memory budget,
tiles per batch and the largest tile that fits."""

from __future__ import annotations

import copy
import math
from typing import Any, Optional

from ..config import PredictConfig
from ..tiling import round_up

_CPU_BUDGET_CAP = 1.25 * 1024**3
_LIVE_FRACTION = 0.35  # peak live activations / sum of all layer outputs (measured, U-Net)
_PIPELINE_BYTES = 32.0  # per voxel: tiles queued for compute and for writing
_MAX_BATCH_VOXELS = {"cpu": 4 * 1024**2, "cuda": 64 * 1024**2}
# Largest tile side per spatial rank and device. On a CPU larger tiles do not run faster
# (and the budget keeps 3D tiles near 117^3 anyway). On a GPU a 3D tile pays for 2 x 32
# context voxels per axis: at 160^3 only (160 - 80)^3 / 160^3 = 1/8 of the computed voxels
# are output, at 256^3 a third, so GPUs get larger 3D tiles when their memory allows.
_MAX_TILE = {"cpu": {2: 1536, 3: 160}, "cuda": {2: 1536, 3: 256}}
_MIN_TILE = {2: 96, 3: 48}


def fold_batch_norm(net: Any) -> Any:
    """A copy of ``net`` with every Conv -> BatchNorm pair (eval) folded into the conv."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net)
    convs = (torch.nn.Conv2d, torch.nn.Conv3d)
    norms = (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    for mod in net.modules():
        if isinstance(mod, torch.nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], convs) and isinstance(mod[i + 1], norms):
                    mod[i] = fuse_conv_bn_eval(mod[i], mod[i + 1])
                    mod[i + 1] = torch.nn.Identity()
    return net.eval()


def _conv_profile(net: Any, spatial_dims: int, in_channels: int) -> tuple[float, float]:
    """(conv FLOPs, activation floats) per input voxel, from one small forward pass."""
    import torch

    side = 4 * int(getattr(net, "size_multiple", 1))
    x = torch.zeros((1, in_channels) + (side,) * spatial_dims)
    flops = [0.0]
    floats = [0.0]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor):
            floats[0] += out.numel()
        if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            k = math.prod(mod.kernel_size)
            flops[0] += 2.0 * out.numel() * (mod.in_channels // mod.groups) * k
            if mod.bias is not None:
                flops[0] += out.numel()

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            net(x)
    finally:
        for h in handles:
            h.remove()
    vox = side**spatial_dims
    return flops[0] / vox, floats[0] / vox


def flops_per_voxel(net: Any, spatial_dims: int, in_channels: int = 1) -> float:
    """Convolution FLOPs (2 per multiply-add, plus bias adds) per input voxel of ``net``.

    Exact for fully convolutional networks whose every ``nn.ConvNd`` output scales with
    the input (the U-Net and DnCNN here); elementwise ops (BN, ReLU, pooling) excluded.
    """
    return _conv_profile(net, spatial_dims, in_channels)[0]


def memory_budget(device: Any, config: PredictConfig) -> float:
    """Bytes available for one batch: config, else free CUDA memory or available RAM."""
    if config.memory_budget_mb:
        return float(config.memory_budget_mb) * 1024**2
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return 0.6 * free
    import psutil

    return min(0.25 * psutil.virtual_memory().available, _CPU_BUDGET_CAP)


def bytes_per_voxel(net: Any, spatial_dims: int, in_channels: int, j_invariant: bool) -> float:
    """Estimated peak host/device bytes per tile voxel while a batch is in flight."""
    live = 4.0 * _conv_profile(net, spatial_dims, in_channels)[1] * _LIVE_FRACTION
    if j_invariant:
        live += 8.0 * in_channels  # masked input and the assembled output
    return live + _PIPELINE_BYTES * in_channels


def batch_size(tile_voxels: int, cost: float, budget: float, device_type: str) -> int:
    """Tiles per batch: as many as fit in ``budget`` (large batches do not help on CPU)."""
    cap = _MAX_BATCH_VOXELS.get(device_type, _MAX_BATCH_VOXELS["cpu"]) // max(tile_voxels, 1)
    return int(max(1, min(16, cap, budget // (cost * tile_voxels))))


def auto_tile(cost: float, budget: float, shape: tuple[int, ...], context: tuple[int, ...],
              multiple: int = 1, border: Optional[tuple[int, ...]] = None,
              device_type: str = "cpu") -> tuple[int, ...]:
    """Largest tile (context included) whose batch of one fits in ``budget``, fitted to
    the data.

    An axis whose whole length plus border is shorter than an even share of the voxels
    gets exactly that (a 16-plane volume is not tiled as if it were a cube), and the other
    axes share the rest equally. The tile holds at most ``_MAX_TILE[device][d] ** d``
    voxels and at least ``_MIN_TILE[d]`` per tiled axis.
    """
    nd = len(shape)
    m = max(1, int(multiple))
    cap = _MAX_TILE.get(device_type, _MAX_TILE["cpu"])[nd]
    voxels = min(budget / cost, float(cap) ** nd)
    # one tile covering the axis: its length and the reflected border on both sides
    border = context if border is None else border
    whole = [round_up(n, m) + 2 * min(round_up(b, m), round_up(c, m))
             for n, b, c in zip(shape, border, context)]
    tile = [0] * nd
    free = list(range(nd))
    side = 0.0
    while free:
        fixed = math.prod(tile[i] for i in range(nd) if i not in free)
        side = (voxels / fixed) ** (1.0 / len(free))
        fits = [i for i in free if whole[i] <= side]
        if not fits:
            break
        for i in fits:
            tile[i] = whole[i]
            free.remove(i)
    for i in free:
        tile[i] = max(_MIN_TILE[nd], int(side))
    return tuple(tile)
