"""Classical denoisers for J-invariant calibration, 2D and 3D, in torch where possible.

Every denoiser takes a batch ``x`` shaped ``(B, 1, [Z], Y, X)`` (float32 torch tensor) and a
list of ``P`` parameter values and returns ``(B, P, [Z], Y, X)``: one output per value,
computed together (vectorised across the parameter grid) for the torch filters.

* ``median`` (radius of a disk / ball footprint) and ``mean`` (radius of a box): with
  ``exclude_centre=True`` they are the "donut" filters of Noise2Self, exactly J-invariant.
* ``gaussian`` (sigma), ``tv`` (Chambolle weight), ``wavelet`` (soft threshold),
  ``nlm`` (non-local means ``h``), ``bilateral`` (range sigma) are made J-invariant by grid
  masking in :mod:`~napari_selfdenoise.core.calibration`.

The local filters (median, mean, Gaussian, bilateral) can evaluate their output on a regular
sub-lattice only (``lattice=(offset, stride)``), which is all the calibration loss needs.
Intensity parameters (TV weight, wavelet threshold, NLM ``h``, bilateral range sigma) are in
the units of the data; their default grids are multiples of the estimated noise sigma.

One module per denoiser (``median.py``, ``mean.py``, ``gaussian.py``, ``bilateral.py``,
``tv.py``, ``wavelet.py``, ``nlm.py``), each defining its function and its registry entry
``DENOISER``; :mod:`.base` holds :class:`Denoiser`, :mod:`.helpers` the shared pieces
(lattice views, padding, separable convolution, footprints, numpy loops, grids).

To add a denoiser: write ``core/denoisers/<name>.py`` with the function and
``DENOISER = Denoiser(...)``, import it and add it to :data:`DENOISERS` below, add its tests
(``tests/core/test_denoisers.py``) and its row in docs/calibration.md ("Denoisers").
Nothing else in the package compares denoiser names.

The package re-exports each entry module's function under the module's own name
(``denoisers.median`` is the function, as before the split): import an entry module with
``from napari_selfdenoise.core.denoisers.median import DENOISER`` or
``importlib.import_module``, not ``import ...denoisers.median as m``.
"""

from __future__ import annotations

from .base import Denoiser
from .bilateral import BILATERAL_SIGMA_SPATIAL, bilateral
from .bilateral import DENOISER as _BILATERAL
from .gaussian import DENOISER as _GAUSSIAN
from .gaussian import gaussian, gaussian_kernels
from .helpers import Lattice
from .mean import DENOISER as _MEAN
from .mean import mean
from .median import DENOISER as _MEDIAN
from .median import NETWORK_MEDIAN_MAX, median, median_network
from .nlm import DENOISER as _NLM
from .nlm import nlm
from .tv import DENOISER as _TV
from .tv import TV_EPS, TV_MAX_ITER, tv
from .wavelet import DENOISER as _WAVELET
from .wavelet import WAVELET, wavelet, wavelet_levels

#: every denoiser, by name (the order of the widget's list and of ``auto``'s comparison)
DENOISERS: dict[str, Denoiser] = {
    "median": _MEDIAN,
    "mean": _MEAN,
    "gaussian": _GAUSSIAN,
    "tv": _TV,
    "wavelet": _WAVELET,
    "nlm": _NLM,
    "bilateral": _BILATERAL,
}


def get_denoiser(name: str) -> Denoiser:
    """The registered denoiser called ``name`` (``ValueError`` listing the choices)."""
    try:
        return DENOISERS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown denoiser {name!r}; choose one of {sorted(DENOISERS)} or 'auto'"
        ) from None


__all__ = [
    "BILATERAL_SIGMA_SPATIAL", "DENOISERS", "Denoiser", "Lattice", "NETWORK_MEDIAN_MAX",
    "TV_EPS", "TV_MAX_ITER", "WAVELET", "bilateral", "gaussian", "gaussian_kernels",
    "get_denoiser", "mean", "median", "median_network", "nlm", "tv", "wavelet",
    "wavelet_levels",
]
