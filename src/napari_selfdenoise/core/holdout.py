"""Where :func:`~napari_selfdenoise.core.compare.compare` scores: thin held-out bands
spread over the image, and the rest to train and calibrate on.

One band at the end of Y is one sample of the image: where the bottom fifth is mostly
background a smoothing filter wins there while a network wins on the whole image
(docs/benchmarks.md section 8, W2S 020_1 and 030_2). So the held-out rows are split into up
to :data:`MAX_BANDS` bands of equal height, evenly spaced, each with :data:`CONTEXT` rows
of image above and below as the J-invariant forms' context; the pieces between them are
the training data (each at least :data:`MIN_PIECE` rows: a training patch). An image too
small for two such bands keeps one band at the end of Y (context above it only).

Arrays are ``(N, *S)``; the bands are stacked along the first axis (``(K * N, ...)``), so
every scoring function treats each band as a plane of its own and no residual, block or
autocorrelation crosses from one band into the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: at most this many bands
MAX_BANDS = 4
#: each band is at least this many rows
MIN_BAND = 16
#: rows of image above (and below) a band given to every J-invariant form as context
CONTEXT = 32
#: the held-out rows are at least this many in all
MIN_REGION = 32
#: each training piece between two bands is at least this many rows (a training patch)
MIN_PIECE = 64


class HoldoutError(ValueError):
    """The image is too small for a training part and a scoring region."""


@dataclass(frozen=True)
class Holdout:
    """The scoring bands of an image of ``height`` rows.

    Attributes
    ----------
    height : int
        Rows of the image (its Y).
    bands : tuple of (int, int)
        ``(start, stop)`` rows of each band, top to bottom, all of one height.
    context : (int, int)
        Rows of context above and below every band.
    """

    height: int
    bands: tuple[tuple[int, int], ...]
    context: tuple[int, int]

    @property
    def band_rows(self) -> int:
        """The height of one band."""
        return self.bands[0][1] - self.bands[0][0]

    def pieces_rows(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of the training pieces: every row outside the bands."""
        out, at = [], 0
        for s, e in self.bands:
            if s > at:
                out.append((at, s))
            at = e
        if at < self.height:
            out.append((at, self.height))
        return out

    def region(self, arr: np.ndarray) -> np.ndarray:
        """The bands of ``arr`` (``(N, *S)``), stacked: ``(K * N, ..., band rows, X)``."""
        return np.concatenate([arr[..., s:e, :] for s, e in self.bands], axis=0)

    def crops(self, arr: np.ndarray) -> np.ndarray:
        """Every band with its context, stacked as :meth:`region`."""
        up, down = self.context
        return np.concatenate([arr[..., s - up:e + down, :] for s, e in self.bands], axis=0)

    def strip(self, out: np.ndarray) -> np.ndarray:
        """An output on :meth:`crops` cut to the bands (the shape of :meth:`region`)."""
        up = self.context[0]
        return out[..., up:up + self.band_rows, :]

    def pieces(self, arr: np.ndarray) -> list[np.ndarray]:
        """The training pieces of ``arr`` (views), top to bottom."""
        return [arr[..., s:e, :] for s, e in self.pieces_rows()]

    def joined(self, arr: np.ndarray) -> np.ndarray:
        """The training pieces joined along Y (one array, for the filters' calibration:
        a few rows of each seam mix two pieces in a filter's window)."""
        return np.concatenate(self.pieces(arr), axis=-2)

    def describe(self) -> str:
        """E.g. ``rows 89-115, 192-218, 294-320, 397-423``."""
        return "rows " + ", ".join(f"{s}-{e}" for s, e in self.bands)


def _spread(height: int, k: int, rows: int) -> tuple[tuple[int, int], ...]:
    """``k`` bands of ``rows`` centred at ``height * (j + 1) / (k + 1)``."""
    starts = [int(round(height * (j + 1) / (k + 1) - rows / 2)) for j in range(k)]
    return tuple((s, s + rows) for s in starts)


def plan(height: int, fraction: float, max_bands: int = MAX_BANDS) -> Holdout:
    """The bands for an image of ``height`` rows holding out ``fraction`` of them.

    The most bands (up to ``max_bands``) whose training pieces are each at least
    :data:`MIN_PIECE` rows; else one band at the end of Y.

    Raises
    ------
    HoldoutError
        When even one band leaves fewer than :data:`MIN_PIECE` rows to train on.
    """
    total = max(int(math.ceil(fraction * height)), MIN_REGION)
    for k in range(max_bands, 1, -1):
        rows = max(int(math.ceil(total / k)), MIN_BAND)
        bands = _spread(height, k, rows)
        hold = Holdout(height, bands, (CONTEXT, CONTEXT))
        pieces = hold.pieces_rows()
        if len(pieces) == k + 1 and min(e - s for s, e in pieces) >= max(MIN_PIECE, CONTEXT):
            return hold
    if height - total < MIN_PIECE:
        raise HoldoutError(f"the image is only {height} pixels along Y; compare needs at "
                           f"least {MIN_PIECE + MIN_REGION} (a training part and a scoring "
                           "region)")
    return Holdout(height, ((height - total, height),), (min(CONTEXT, height - total), 0))


__all__ = ["CONTEXT", "Holdout", "HoldoutError", "MAX_BANDS", "plan"]
