"""Noise2Self J-invariant calibration of classical denoisers (Batson & Royer 2019).

For a J-invariant denoiser f and noise independent across pixels and zero-mean,
``E||f(x) - x||^2 = E||f(x) - y||^2 + E||x - y||^2``: the self-supervised loss ranks the
parameters as the ground-truth loss would. :func:`calibrate` measures that loss for every
value of a parameter grid and keeps the lowest:

* donut filters (median, mean without the centre) are J-invariant by construction;
* every other denoiser is made J-invariant by grid masking: the pixels ``J`` of one subset of
  a ``GRID``-wide grid are replaced by the interpolation of their neighbours
  (:func:`~napari_selfdenoise.core.masking.grid_masked_input`), the denoiser runs on that
  input, and the loss is taken on ``J`` only.

The loss is measured on a central crop (``config.crop``) and on enough grid subsets to reach
a target number of loss pixels; all grid values (and masks) go through the torch filters of
:mod:`~napari_selfdenoise.core.denoisers` together. The chosen denoiser is then applied to the
whole image block by block (:func:`denoise_image`), reading one block at a time from lazy
(zarr / memory-mapped) input.

Modules: :mod:`.limits` (grid width, loss-pixel targets, block sizes), :mod:`.results`
(curves and the result), :mod:`.crop` (reading and checking the calibration crop),
:mod:`.search` (the losses and :func:`calibrate`), :mod:`.blockwise` (applying a choice to
a whole image), :mod:`.network` (a trained network's grid width).
"""

from __future__ import annotations

from .blockwise import apply_denoiser, denoise_image, j_invariant_apply
from .crop import check_image, estimate_noise_sigma, read_crop
from .limits import (
    BLOCK_VOXELS, CHUNK_ELEMENTS, GRID, LOSS_PIXELS, MASKED_LOSS_PIXELS, MAX_GRID_EXTENSIONS,
    MIN_SIDE, TILES_PER_SIDE,
)
from .network import calibrate_network
from .results import CalibrationResult, DenoiserCurve
from .search import calibrate, grid_extension

__all__ = [
    "BLOCK_VOXELS", "CHUNK_ELEMENTS", "GRID", "LOSS_PIXELS", "MASKED_LOSS_PIXELS",
    "MAX_GRID_EXTENSIONS", "MIN_SIDE", "TILES_PER_SIDE", "CalibrationResult", "DenoiserCurve",
    "apply_denoiser", "calibrate", "calibrate_network", "check_image", "denoise_image",
    "estimate_noise_sigma", "grid_extension", "j_invariant_apply", "read_crop",
]
