"""What goes into a package besides the weights: sizes, test tensors, cover, README.

Everything here is computed by our own code: the test output is our network applied to
the test input with our normalisation (:meth:`ModelBundle.normalize` / ``denormalize``),
so the package test compares bioimage.io's run of the package against napari-selfdenoise.
"""

from __future__ import annotations

import io as _io
import math
from typing import Any, Optional

import numpy as np

#: test images are at least this large in Y and X (a useful cover), at most the minimum
#: valid size above it
TEST_YX = 64


def declared_halo(halo: int, step: int) -> int:
    """The smallest multiple of ``step`` that is at least ``halo`` (and at least 1).

    A consumer pads the input by the halo before the network and crops it after; a
    multiple of the step keeps the padded tile a valid size *and* keeps the network's
    pooling (and pixel-shuffle) grid where it is on the unpadded image, so the result
    inside the image does not depend on the padding.
    """
    return max(step * math.ceil(int(halo) / step), 1)


def size_rule(halo: tuple[int, ...], step: int) -> tuple[list[int], list[int]]:
    """Per spatial axis: ``(halo, minimum size)``; a valid input is ``min + k * step``.

    The minimum is the smallest multiple of ``step`` larger than both halos, so a tile
    keeps at least one valid pixel after the halo is cropped.
    """
    halos = [declared_halo(h, step) for h in halo]
    mins = [step * math.ceil((2 * h + 1) / step) for h in halos]
    return halos, mins


def test_shape(mins: list[int], step: int, spatial_dims: int) -> tuple[int, ...]:
    """Spatial shape of the test tensor: the minimum, Y and X grown to :data:`TEST_YX`."""
    shape = list(mins)
    for i in range(len(shape) - 2, len(shape)):
        shape[i] = max(shape[i], step * math.ceil(TEST_YX / step))
    return tuple(shape[-spatial_dims:])


def synthetic_input(bundle: Any, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A ``(1, C, *shape)`` float32 test image in data units: smooth blobs plus noise,
    spread like the training data (its normalisation offset and scale)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, s, dtype=np.float64) for s in shape], indexing="ij")
    out = np.empty((1, bundle.n_channels) + tuple(shape), np.float32)
    for c in range(bundle.n_channels):
        signal = np.zeros(shape)
        for _ in range(6):
            centre = rng.uniform(0.1, 0.9, len(shape))
            r2 = sum((g - m) ** 2 for g, m in zip(grids, centre))
            signal += np.exp(-r2 / (2 * rng.uniform(0.05, 0.15) ** 2))
        signal = (signal - signal.mean()) / (signal.std() + 1e-12)
        noisy = signal + rng.normal(0.0, 1.0, shape)
        out[0, c] = bundle.norm_offset[c] + bundle.norm_scale[c] * noisy
    return out


def sample_input(bundle: Any, image: Any, axes: str, shape: tuple[int, ...]) -> np.ndarray:
    """A ``(1, C, *shape)`` float32 crop of ``image`` (any array-like, read lazily; axes
    ``axes``, T / S / other axes at their middle index) from its centre; reflect-padded
    where the image is smaller."""
    axes = axes.upper()
    spatial = "ZYX"[-bundle.spatial_dims:]
    if len(axes) != len(image.shape) or any(a not in axes for a in spatial):
        raise ValueError(f"the sample image's axes {axes!r} do not fit its shape "
                         f"{tuple(image.shape)} and the model's {spatial} axes")
    want = dict(zip(spatial, shape))
    index = []
    for a, n in zip(axes, image.shape):
        if a in want:
            start = max(0, (n - want[a]) // 2)
            index.append(slice(start, start + want[a]))
        else:
            index.append(slice(None) if a == "C" else n // 2)
    kept = [a for a in axes if a in spatial or a == "C"]
    arr = np.asarray(image[tuple(index)], dtype=np.float32)  # only the crop is read
    if "C" not in kept:
        arr, kept = arr[None], ["C"] + kept
    arr = np.transpose(arr, [kept.index(a) for a in "C" + spatial])
    if arr.shape[0] != bundle.n_channels:
        raise ValueError(f"the sample image has {arr.shape[0]} channels, the model "
                         f"{bundle.n_channels}")
    pad = [(0, 0)] + [(0, s - n) for n, s in zip(arr.shape[1:], shape)]
    if any(p[1] for p in pad):
        small = any(p[1] >= n for n, p in zip(arr.shape, pad))
        arr = np.pad(arr, pad, mode="edge" if small else "reflect")
    return np.ascontiguousarray(arr[None], dtype=np.float32)


def our_prediction(bundle: Any, net: Any, x: np.ndarray) -> np.ndarray:
    """napari-selfdenoise's output for ``x`` ``(1, C, *S)`` (one plain pass, fp32)."""
    import torch

    with torch.no_grad():
        y = net(torch.from_numpy(bundle.normalize(x, channel_axis=1)))
    return bundle.denormalize(y.numpy(), channel_axis=1)


def _to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


def cover_png(x: np.ndarray, y: np.ndarray, height: int = 256) -> bytes:
    """PNG bytes: the test input and output side by side (first channel, middle Z),
    scaled to ``height`` pixels (aspect 2:1 for square tensors), one intensity range."""
    from PIL import Image

    def plane(t: np.ndarray) -> np.ndarray:
        t = t[0, 0]
        return t[t.shape[0] // 2] if t.ndim == 3 else t

    a, b = plane(x), plane(y)
    lo, hi = np.percentile(a, [1, 99.8])
    pair = np.concatenate([_to_uint8(a, lo, hi), _to_uint8(b, lo, hi)], axis=1)
    width = int(round(pair.shape[1] * height / pair.shape[0]))
    img = Image.fromarray(pair).resize((width, height), Image.NEAREST)
    buf = _io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def readme(bundle: Any, *, title: str, notes: list[str], halo: list[int], mins: list[int],
           step: int, sdmodel_name: str, sample: Optional[str]) -> str:
    """The package's documentation (README.md), with a '## Validation' section."""
    from ..methods import get_method

    method = get_method(bundle.method)
    spatial = "ZYX"[-bundle.spatial_dims:]
    norm = ", ".join(f"channel {c}: (x - {o:.6g}) / {s:.6g}"
                     for c, (o, s) in enumerate(zip(bundle.norm_offset, bundle.norm_scale)))
    lines = [
        f"# {title}", "",
        f"A self-supervised denoising model trained with **{method.title}** in "
        "napari-selfdenoise (a napari plugin) on data with axes "
        f"`{bundle.axes}` ({bundle.spatial_dims}D, {bundle.n_channels} channel(s)).", "",
        f"Reference: {method.citation} {method.citation_url}", "",
        "## Inputs and outputs", "",
        f"- input and output: float32 `B C {' '.join(spatial)}` in the units of the data; "
        f"the spatial sizes must be `min + k * {step}` with min {dict(zip(spatial, mins))}.",
        f"- pre-processing (in the package): the training normalisation, {norm}; "
        "post-processing: its inverse, so outputs are in the units of the input.",
        f"- halo (receptive field, crop it from each side of a tile): "
        f"{dict(zip(spatial, halo))} pixels.", "",
        "## What this package computes", "",
        "One plain pass of the network, exactly as napari-selfdenoise runs it (pixel-shuffle "
        "down-sampling and a blind-spot network's posterior mean under its noise model are "
        "part of the architecture where the model uses them).",
    ]
    if notes:
        lines += ["", "napari-selfdenoise applies this model differently; those parts are "
                  "**not** expressible in the bioimage.io spec and are not in this package:", ""]
        lines += [f"- {n}" for n in notes]
    lines += [
        "", "## Use in napari-selfdenoise", "",
        f"The package carries the original model file (`{sdmodel_name}`); napari-selfdenoise "
        "loads it back losslessly (`napari-selfdenoise predict PACKAGE.zip IMAGE --out "
        "denoised.tif` or the Predict widget's model file), with every inference option.", "",
        "## Validation", "",
        "The test input is " + (f"a crop of `{sample}`" if sample else
                                "a synthetic noisy image (blobs plus Gaussian noise) in the "
                                "range of the training data") +
        "; the test output is napari-selfdenoise's own prediction of it. The export ran "
        "bioimageio.core's package test, which reproduced it from this package. A "
        "self-supervised model needs no ground truth to train; to validate it "
        "quantitatively, compare its predictions against clean or averaged acquisitions of "
        "the same sample (PSNR / SSIM), or use napari-selfdenoise's validation loss.", "",
    ]
    return "\n".join(lines)
