"""How the model's axes map onto the data's, and how an input is opened."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import io, validation
from ..axes import AxesError, validate_axes
from ..bundle import ModelBundle


@dataclass(frozen=True)
class Layout:
    """How the model's axes map onto the data's.

    ``sample_letters`` (in data order) are iterated; ``spatial`` (``"YX"`` or ``"ZYX"``)
    is tiled; ``C`` (if present) is fed jointly to the network.
    """

    axes: str
    shape: tuple[int, ...]
    spatial: str
    sample_letters: str

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.spatial)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.sample_letters)

    @property
    def n_samples(self) -> int:
        return math.prod(self.sample_shape)

    @property
    def block_letters(self) -> str:
        """Letters left after indexing one sample, in data order (C and spatial)."""
        return "".join(a for a in self.axes if a not in self.sample_letters)

    def sample_index(self, s: int) -> dict[str, int]:
        idx = np.unravel_index(s, self.sample_shape) if self.sample_letters else ()
        return {a: int(i) for a, i in zip(self.sample_letters, idx)}


def map_axes(bundle: ModelBundle, axes: str, shape: tuple[int, ...]) -> Layout:
    """Map a model onto data with ``axes`` and ``shape`` (clear errors on mismatches)."""
    axes = validate_axes(axes, shape)
    n_c = shape[axes.index("C")] if "C" in axes else 1
    if n_c != bundle.n_channels:
        raise AxesError(
            f"the model was trained on {bundle.n_channels} channel(s) but the data has {n_c} "
            f"(axes {axes!r}, shape {tuple(shape)}); "
            + ("give the channel axis as C in axes" if "C" not in axes else
               "split or select channels to match the model")
        )
    if bundle.spatial_dims == 3:
        if "Z" not in axes:
            raise AxesError(
                f"this is a 3D model (trained on {bundle.axes!r}) but the data has no Z axis "
                f"(axes {axes!r}); use a 2D model, or give axes with Z if the data is a volume"
            )
        spatial = "ZYX"
    else:
        spatial = "YX"
    samples = "".join(a for a in axes if a not in spatial and a != "C")
    return Layout(axes, tuple(int(s) for s in shape), spatial, samples)


def resolve_input(data: Any, axes: Optional[str], bundle: ModelBundle, check: bool = True
                  ) -> tuple[Any, str]:
    """``data`` opened lazily (a path) or as an array, and its axes (validated); ``check``
    False leaves the pixel checks (``validation.check_array``) to the backend's workers."""
    file_axes = None
    if isinstance(data, (str, os.PathLike)):
        data, file_axes = io.open_image(data)
    if not hasattr(data, "shape") or not hasattr(data, "__getitem__"):
        data = np.asarray(data)
    shape = tuple(int(s) for s in data.shape)
    if check:
        validation.check_array(data, "the input", purpose="predict")
    return data, validation.resolve_axes(shape, axes, file_axes=file_axes,
                                         model_axes=bundle.axes, name="the input")
