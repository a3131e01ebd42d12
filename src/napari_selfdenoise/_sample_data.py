"""napari sample-data contributions (*File > Open Sample > napari-selfdenoise*).

Each function returns napari layer-data tuples ``(data, kwargs, "image")``. The synthetic
phantoms come with their ground truth as a second, hidden layer, so a denoising result can
be compared with it.
"""

from __future__ import annotations

from typing import Any

from .core import samples

LayerDataTuple = tuple[Any, dict, str]


def _phantom_layers(phantom: samples.Phantom, name: str) -> list[LayerDataTuple]:
    clean = phantom.clean
    contrast = [float(clean.min()), float(clean.max())]
    meta = {
        "axes": phantom.axes,
        "photons": phantom.photons,
        "background": phantom.background,
        "read_noise": phantom.read_noise,
        "seed": phantom.seed,
    }
    return [
        (phantom.noisy, {"name": f"{name} (noisy)", "colormap": "magma",
                         "contrast_limits": contrast, "metadata": dict(meta)}, "image"),
        (clean, {"name": f"{name} (ground truth)", "colormap": "magma",
                 "contrast_limits": contrast, "visible": False,
                 "metadata": dict(meta, ground_truth=True)}, "image"),
    ]


def phantom_2d() -> list[LayerDataTuple]:
    """Noisy 2D fluorescence phantom (256 x 256, YX) and its ground truth."""
    return _phantom_layers(samples.phantom_2d(), "phantom 2D")


def phantom_3d() -> list[LayerDataTuple]:
    """Noisy 3D fluorescence phantom (32 x 128 x 128, ZYX) and its ground truth."""
    return _phantom_layers(samples.phantom_3d(), "phantom 3D")


def phantom_correlated() -> list[LayerDataTuple]:
    """2D phantom (256 x 256) with spatially correlated Poisson-Gaussian noise (noise
    convolved with a 3 x 3 binomial kernel) and its ground truth: for pixel shuffle."""
    layers = _phantom_layers(samples.phantom_correlated(), "correlated-noise phantom")
    for _, kwargs, _ in layers:
        kwargs["metadata"]["noise_kernel"] = samples.CORRELATION_KERNEL.tolist()
    return layers


def lysosome() -> list[LayerDataTuple]:
    """Real noisy confocal time-lapse of lysosomes (10 x 128 x 128, TYX, MIT licence)."""
    data, axes = samples.load_lysosome()
    return [(data, {"name": "lysosome (noisy, confocal)", "colormap": "gray",
                    "metadata": {"axes": axes, "source": "BoHuangLab/Transfer-Learning-Denoising",
                                 "license": "MIT"}}, "image")]
