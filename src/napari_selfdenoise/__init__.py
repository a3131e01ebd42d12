"""Self-supervised denoising for napari.

The package root imports neither torch nor Qt, so napari discovers the plugin quickly.
The algorithms live in :mod:`napari_selfdenoise.core`.
"""

__version__ = "0.1.0"
