"""Tile planning: context from the network's halo, the reflected border, the tile shape
from the memory model, and the tiles left to run on a resumed output."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..bundle import ModelBundle
from ..config import PredictConfig, default_patch_size
from ..tiling import TilePlan, make_plan, round_up
from .layout import Layout
from .memory import auto_tile, batch_size
from .runner import refine_network


def default_border(bundle: ModelBundle, halo: tuple[int, ...], context: tuple[int, ...],
                   multiple: int = 1) -> tuple[int, ...]:
    """Voxels reflected beyond each end of each spatial axis when none are asked for.

    Half the context (16 voxels for the default U-Net), and a quarter of it along an axis
    the model's training patches were shorter than its receptive field (``2 * halo + 1``;
    the 16-plane Z of the default 3D patch): the network never learned to use neighbours
    that far away along it. On FMD images and 3D phantoms these borders denoise as well as
    the full context (docs/prediction.md, "How much border"), and a thin volume costs far
    less: a 16-plane volume runs as 32 planes instead of 80.
    """
    patch = bundle.config.patch_size
    if patch is None or len(patch) != len(context):
        patch = default_patch_size(len(context))
    return tuple(min(c, round_up(-(-c // (2 if p >= 2 * h + 1 else 4)), multiple))
                 for p, h, c in zip(patch, halo, context))


def plan_tiles(layout: Layout, net: Any, bundle: ModelBundle, config: PredictConfig,
               cost: float, budget: float, device_type: str, j_invariant: bool,
               grid: int) -> tuple[TilePlan, int, list[str]]:
    """The tile plan, tiles per batch and notes (overlap raised to the halo) for ``layout``."""
    nd = len(layout.spatial)
    notes = []
    net_halo = tuple(int(h) for h in getattr(net, "halo", (0,) * nd))
    halo = net_halo
    multiple = int(getattr(net, "size_multiple", 1))
    if config.r3:  # refinement passes read the first pass's output around each pixel
        halo = tuple(h + r + 1 for h, r in zip(halo, refine_network(net).halo))
    if j_invariant:
        halo = tuple(h + 1 for h in halo)  # neighbour interpolation of the masked pixels
        multiple = math.lcm(multiple, grid)
    context = list(halo)
    if config.overlap is not None:
        if len(config.overlap) != nd:
            raise ValueError(f"overlap needs {nd} entries ({layout.spatial}), got {config.overlap}")
        context = [max(h, int(o)) for h, o in zip(halo, config.overlap)]
        if any(int(o) < h for h, o in zip(halo, config.overlap)):
            notes.append(f"overlap {tuple(config.overlap)} raised to the network's "
                         f"receptive-field halo {halo}")
    context = [round_up(c, multiple) for c in context]
    if config.border is not None:
        if len(config.border) != nd:
            raise ValueError(f"border needs {nd} entries ({layout.spatial}), got {config.border}")
        border = tuple(min(int(b), c) for b, c in zip(config.border, context))
    else:
        border = default_border(bundle, net_halo, tuple(context), multiple)
    if config.tile_shape is not None:
        if len(config.tile_shape) != nd:
            raise ValueError(
                f"tile_shape needs {nd} entries ({layout.spatial}), got {config.tile_shape}")
        tile = tuple(int(t) for t in config.tile_shape)
    else:
        tile = auto_tile(cost * (config.batch_size or 1), budget, layout.spatial_shape,
                         tuple(context), multiple, border, device_type)
    plan = make_plan(layout.spatial_shape, tile, context, border=border, multiple=multiple)
    batch = config.batch_size or batch_size(
        math.prod(plan.tile_shape), cost, budget, device_type)
    return plan, int(batch), notes


def work_list(plan: TilePlan, layout: Layout, done: np.ndarray) -> list[tuple[int, tuple]]:
    """(sample, tile) pairs still to run: every tile of an untouched sample, the tiles
    feeding the missing chunks of a partly done one (C order)."""
    work = []
    per_sample = done.reshape(layout.n_samples, plan.n_tiles)
    all_tiles = list(plan.tiles())
    for s in range(layout.n_samples):
        if per_sample[s].all():
            continue
        if not per_sample[s].any():
            work.extend((s, t) for t in all_tiles)
            continue
        chunks = [np.unravel_index(i, plan.grid) for i in np.flatnonzero(~per_sample[s])]
        work.extend((s, t) for t in plan.tiles_for_chunks(chunks))
    return work
