"""Snapshot of what the canvas shows, for live previews (main thread only).

:func:`view_region` returns the displayed slice of a layer, cropped to the visible part of
the canvas (at most ``max_side`` pixels a side), with the index that cut it out;
:func:`region_geometry` gives the scale and translate that put a result computed on that
region exactly back over the source layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import layer_data


def camera_of(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def view_region(viewer: Any, layer: Any, axes: str, *, canvas_px: int = 512,
                max_side: int = 256, z_window: int = 16) -> tuple[np.ndarray, tuple, str]:
    """The data of ``layer`` around the canvas centre, in the current slice.

    Parameters
    ----------
    viewer, layer
        The napari viewer and the image layer.
    axes : str
        Axes of the layer (``S``/``T`` are taken at the current slice, ``C`` whole; with a
        ``Z`` axis a window of ``z_window`` planes around the current one is kept, so
        a 3D model can denoise it).
    canvas_px : int
        Size of the canvas in screen pixels (the visible extent is this over the zoom).
    max_side : int
        Largest YX side of the crop.

    Returns
    -------
    image : np.ndarray
        The cropped data (a copy).
    index : tuple
        One int or slice per layer dimension.
    image_axes : str
        Axes of ``image`` (``axes`` without the integer-indexed letters).
    """
    data = layer_data(layer)
    shape = data.shape
    point = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)
    centre = _canvas_centre(viewer, layer, point)
    half = _visible_half_extent(viewer, layer, canvas_px, max_side)
    index: list = []
    for dim, letter in enumerate(axes):
        size = shape[dim]
        if letter in "ST":
            index.append(int(np.clip(round(point[dim]), 0, size - 1)))
        elif letter == "C":
            index.append(slice(None))
        else:
            width = min(z_window, size) if letter == "Z" else min(2 * half[dim], size)
            start = int(np.clip(round(centre[dim] - width / 2), 0, size - width))
            index.append(slice(start, start + width))
    image = np.array(data[tuple(index)], copy=True)
    image_axes = "".join(a for a, i in zip(axes, index) if isinstance(i, slice))
    return image, tuple(index), image_axes


def _canvas_centre(viewer: Any, layer: Any, point: np.ndarray) -> np.ndarray:
    centre = point.copy()
    displayed = list(viewer.dims.displayed)
    world = np.asarray(viewer.dims.point, dtype=float).copy()
    cam = np.asarray(camera_of(viewer).center, dtype=float)
    world[displayed] = cam[-len(displayed):]
    in_data = np.asarray(layer.world_to_data(world), dtype=float)
    offset = len(world) - layer.ndim
    for dim in range(layer.ndim):
        if dim + offset in displayed:
            centre[dim] = in_data[dim]
    return centre


def _visible_half_extent(viewer: Any, layer: Any, canvas_px: int, max_side: int) -> list[int]:
    """Half the visible extent (data pixels) per layer dimension, capped at max_side/2."""
    visible_world = canvas_px / max(camera_of(viewer).zoom, 1e-6)
    scale = np.abs(np.asarray(layer.scale, dtype=float))
    return [int(max(16, min(max_side // 2, visible_world / (2 * s)))) for s in scale]


def region_geometry(layer: Any, index: tuple) -> dict:
    """Scale and translate placing a result of the region ``index`` over ``layer``.

    The result must be reshaped with :func:`expand_to_layer` first (singleton dimensions
    where ``index`` holds an int), so it keeps the layer's dimensionality.
    """
    scale = np.asarray(layer.scale, dtype=float)
    translate = np.asarray(layer.translate, dtype=float).copy()
    for dim, i in enumerate(index):
        start = i if isinstance(i, int) else (i.start or 0)
        translate[dim] += start * scale[dim]
    return {"scale": tuple(scale), "translate": tuple(translate)}


def expand_to_layer(image: np.ndarray, index: tuple) -> np.ndarray:
    """Insert singleton dimensions where ``index`` held an integer."""
    for dim, i in enumerate(index):
        if isinstance(i, int):
            image = np.expand_dims(image, dim)
    return image
