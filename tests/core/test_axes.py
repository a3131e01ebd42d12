"""Axes strings: validation, inference and the canonical (N, C, [Z], Y, X) round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_selfdenoise.core import axes as ax
from napari_selfdenoise.core.axes import AxesError


def test_axes_error_is_a_value_error():
    assert issubclass(AxesError, ValueError)


def test_validate_upper_cases_and_checks_length():
    assert ax.validate_axes("tzyx", (2, 3, 4, 5)) == "TZYX"
    with pytest.raises(AxesError, match=r"name 3 dimensions but the data has 2.*'YX'"):
        ax.validate_axes("ZYX", (64, 64))


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "non-empty"),
        (None, "non-empty"),
        ("YXQ", r"unknown letters \['Q'\]"),
        ("YYX", r"repeats \['Y'\]"),
        ("ZY", "must contain both Y and X"),
        ("TX", "must contain both Y and X"),
    ],
)
def test_validate_rejects_malformed_axes(bad, message):
    with pytest.raises(AxesError, match=message):
        ax.validate_axes(bad)


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((64, 64), "YX"),
        ((3, 64, 64), "CYX"),
        ((4, 64, 64), "CYX"),
        ((10, 64, 64), "TYX"),
        ((2, 16, 64, 64), "CZYX"),
        ((8, 16, 64, 64), "TZYX"),
        ((5, 2, 16, 64, 64), "TCZYX"),
        ((2, 5, 2, 16, 64, 64), "STCZYX"),
    ],
)
def test_infer_axes(shape, expected):
    assert ax.infer_axes(shape) == expected
    # an inferred string always validates against its shape
    assert ax.validate_axes(expected, shape) == expected


def test_rgb_is_refused_unless_allowed():
    with pytest.raises(AxesError, match="RGB"):
        ax.infer_axes((64, 64, 3))
    assert ax.infer_axes((64, 64, 4), allow_rgb=True) == "YXC"


@pytest.mark.parametrize("shape", [(64,), (1, 2, 3, 4, 5, 6, 7)])
def test_infer_axes_rejects_unsupported_dimensionality(shape):
    with pytest.raises(AxesError, match="cannot infer axes"):
        ax.infer_axes(shape)


def test_spatial_axes_and_permutation():
    assert ax.spatial_axes("xyzct") == "ZYX"
    assert ax.spatial_axes("TYX") == "YX"
    assert ax.canonical_permutation("XYC") == (2, 1, 0)
    assert ax.canonical_permutation("ZTYX") == (1, 0, 2, 3)


@pytest.mark.parametrize(
    "axes, shape, canonical",
    [
        ("YX", (6, 7), (1, 1, 6, 7)),
        ("CYX", (2, 6, 7), (1, 2, 6, 7)),
        ("TYX", (3, 6, 7), (3, 1, 6, 7)),
        ("ZYX", (4, 6, 7), (1, 1, 4, 6, 7)),
        ("TZYX", (3, 4, 6, 7), (3, 1, 4, 6, 7)),
        ("SCZYX", (2, 3, 4, 6, 7), (2, 3, 4, 6, 7)),
        ("STCZYX", (2, 3, 2, 4, 6, 7), (6, 2, 4, 6, 7)),
        ("YXC", (6, 7, 2), (1, 2, 6, 7)),
    ],
)
def test_to_canonical_shapes(axes, shape, canonical):
    arr = np.arange(np.prod(shape)).reshape(shape)
    assert ax.to_canonical(arr, axes).shape == canonical


def test_to_canonical_moves_values_to_the_right_place():
    arr = np.random.default_rng(0).random((7, 6, 2, 3))  # X Y C T
    canon = ax.to_canonical(arr, "XYCT")
    for x, y, c, t in [(0, 0, 0, 0), (6, 5, 1, 2), (3, 2, 1, 1)]:
        assert canon[t, c, y, x] == arr[x, y, c, t]


def test_samples_merge_s_major_then_t():
    arr = np.zeros((2, 3, 4, 5))  # S T Y X
    for s, t in itertools.product(range(2), range(3)):
        arr[s, t] = 10 * s + t
    canon = ax.to_canonical(arr, "STYX")
    assert [canon[n, 0, 0, 0] for n in range(6)] == [0, 1, 2, 10, 11, 12]


@pytest.mark.parametrize("letters", ["YX", "CYX", "TZYX", "SCZYX", "STCZYX"])
def test_round_trip_every_axis_order(letters):
    rng = np.random.default_rng(1)
    sizes = {"S": 2, "T": 3, "C": 2, "Z": 4, "Y": 5, "X": 6}
    for order in itertools.permutations(letters):
        axes = "".join(order)
        shape = tuple(sizes[a] for a in axes)
        arr = rng.random(shape)
        before = arr.copy()
        canon = ax.to_canonical(arr, axes)
        back = ax.from_canonical(canon, axes, shape)
        np.testing.assert_array_equal(back, arr)
        np.testing.assert_array_equal(arr, before)  # input untouched


def test_to_canonical_rejects_mismatched_axes():
    with pytest.raises(AxesError, match="name 2 dimensions but the data has 3"):
        ax.to_canonical(np.zeros((3, 8, 8)), "YX")
