"""Tiled, blended, streamed inference on images of any size.

:func:`predict` maps the model's axes onto the data's (:mod:`.layout`), cuts every sample
(2D models: each S/T/Z plane; 3D models: each S/T volume) into aligned tiles with enough
context to cover the receptive field (:mod:`.plan`, sized by the memory model in
:mod:`.memory`), runs them in batches (:mod:`.runner`: TTA, J-invariant passes, R3) and
cross-fades neighbouring tiles (:mod:`.stitch`), so the result equals running the network
on the whole image. An execution backend (:mod:`.backends`) runs the tiles: ``threaded``
(one process, a reader thread prefetching tiles and a writer thread stitching and writing
finished chunks while the device computes). Output goes to a sink (:mod:`.sinks`): numpy,
``.npy``, a zarr store (chunked like the tiles, resumable through the completion record in
:mod:`.progress`) or a BigTIFF.
"""

from ..tiling import round_up
from .api import inference_bundle, predict, predict_array
from .layout import Layout, map_axes
from .memory import (
    auto_tile, batch_size, bytes_per_voxel, flops_per_voxel, fold_batch_norm, memory_budget,
)
from .plan import default_border, plan_tiles
from .progress import PROGRESS_KEY
from .runner import refine_network

_plan = plan_tiles  # the name benchmarks/predict_roofline.py imports

__all__ = [
    "PROGRESS_KEY", "Layout", "auto_tile", "batch_size", "bytes_per_voxel", "default_border",
    "flops_per_voxel", "fold_batch_norm", "inference_bundle", "map_axes", "memory_budget",
    "plan_tiles", "predict", "predict_array", "refine_network", "round_up",
]
