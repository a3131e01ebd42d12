"""Reading tiles: one tile of one sample, reflected at the image's ends, in the
network's ``(C, *spatial)`` order and normalised; and the masked-pass subset ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..bundle import ModelBundle
from ..tiling import TilePlan, read_reflected, reflect_index
from .layout import Layout
from .runner import Runner


def read_tile(data: Any, layout: Layout, plan: TilePlan, bundle: ModelBundle, sample: int,
              tile: tuple) -> np.ndarray:
    """Tile ``tile`` of sample ``sample``: reflected at the image's ends, ``(C, *spatial)``,
    normalised."""
    values: dict[str, Any] = dict(layout.sample_index(sample))
    values["C"] = slice(None)
    index = [values.get(a) for a in layout.axes]
    dims = [layout.axes.index(a) for a in layout.spatial]
    block = read_reflected(data, index, plan.tile_region(tile), dims, plan.shape)
    letters = layout.block_letters
    if "C" in letters:
        block = np.moveaxis(block, letters.index("C"), 0)
        rest = letters.replace("C", "")
    else:
        block = block[None]
        rest = letters
    perm = [0] + [1 + rest.index(a) for a in layout.spatial]
    block = np.transpose(block, perm)
    return bundle.normalize(block, channel_axis=0)


def phase_ids(plan: TilePlan, tile: tuple, runner: Runner) -> np.ndarray:
    """Subset id of the *source* pixel of every tile voxel (reflected copies included).

    J-invariant: the grid subset (``range(grid ** ndim)``); complementary masks: the mask
    :func:`~napari_selfdenoise.core.masking.complementary_phase` assigns to the pixel.
    """
    sources = [reflect_index(np.arange(start, stop), n)
               for (start, stop), n in zip(plan.tile_region(tile), plan.shape)]
    if runner.predictor == "complementary":
        from ..masking import complementary_phase

        return complementary_phase(sources, runner.n_subsets)[None]
    grid = runner.grid
    ids = np.zeros((), dtype=np.int16)
    for src in sources:
        ids = np.add.outer(ids * grid, (src % grid).astype(np.int16))
    return ids[None]
