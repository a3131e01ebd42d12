"""Self-supervised methods: one module per method, an explicit registry.

To add a method: write ``core/methods/<name>.py`` with a :class:`~.base.Method` subclass
and its :class:`~.base.MethodParams` model, and add it to :data:`METHODS` below
(docs/architecture.md, "Methods"). Nothing else in the package compares method names.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from . import ams, bsn, n2n, n2s, n2same, n2v, n2v2, ne2ne
from .base import Batch, Method, MethodParams, Predictor, StepContext

#: every method, by name (the order is the order of the widget's and the CLI's lists)
METHODS: dict[str, Method] = {
    "n2v": n2v.METHOD,
    "n2v2": n2v2.METHOD,
    "n2s": n2s.METHOD,
    "n2same": n2same.METHOD,
    "n2n": n2n.METHOD,
    "ne2ne": ne2ne.METHOD,
    "ams": ams.METHOD,
    "bsn": bsn.METHOD,
}

#: the method a new training run uses unless told otherwise: Noise2Self had the best mean
#: PSNR on both the FMD confocal and the W2S widefield sets at 60 CPU-seconds, and the best
#: result on 8 of 13 images (docs/benchmarks.md section 7)
DEFAULT_METHOD = "n2s"

#: a method's parameters, told apart by their ``method`` field
MethodParamsUnion = Annotated[
    Union[tuple(m.Params for m in METHODS.values())],  # type: ignore[misc]
    Field(discriminator="method"),
]


class UnknownMethodError(ValueError):
    """A method name that is not in :data:`METHODS`."""


def get_method(name: str) -> Method:
    """The registered method ``name``.

    Raises
    ------
    UnknownMethodError
        When ``name`` is not registered.
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


__all__ = ["DEFAULT_METHOD", "METHODS", "Method", "MethodParams", "MethodParamsUnion", "Batch", "Predictor",
           "StepContext", "UnknownMethodError", "get_method"]
