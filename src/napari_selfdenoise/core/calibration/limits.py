"""Sizes the calibration works with: the masking grid, loss-pixel targets, batch and block
sizes, the smallest calibratable image."""

from __future__ import annotations

#: rounds of :func:`~.search.grid_extension` (2 values each) when a default grid's minimum is
#: on its edge
MAX_GRID_EXTENSIONS = 3
GRID = 4  # Noise2Self grid width (GRID ** ndim masks), as scikit-image's stride
LOSS_PIXELS = 2**16  # target loss pixels for the cheap local filters (mean, Gaussian)
MASKED_LOSS_PIXELS = 2**14  # ... for the others (scikit-image uses 1/16 of the image)
MIN_SIDE = {2: 16, 3: 8}  # smallest calibratable size along Y/X, and along Z in 3D
CHUNK_ELEMENTS = 2**22  # elements of one batched evaluation (images x values x pixels)
TILES_PER_SIDE = 4  # large 2D images: calibrate on 4 x 4 tiles of side crop / 4
BLOCK_VOXELS = 2**22  # spatial block size when applying to a whole image
