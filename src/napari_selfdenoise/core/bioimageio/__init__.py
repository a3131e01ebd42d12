"""bioimage.io model packages: export (:mod:`.export`) and import (:mod:`.importer`).

Export needs the optional ``bioimageio`` extra (bioimageio.spec to build and save the
package, bioimageio.core to test it); import of our own packages needs neither.
"""

from __future__ import annotations

from ..validation import UserError

INSTALL_HINT = 'pip install "napari-selfdenoise[bioimageio]"'


class BioimageioMissingError(UserError):
    """bioimageio.spec / bioimageio.core are not installed."""


def require_bioimageio() -> None:
    """Raise :class:`BioimageioMissingError` (one line) when the extra is not installed."""
    try:
        import bioimageio.core  # noqa: F401
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise BioimageioMissingError(
            f"bioimage.io export needs bioimageio.spec and bioimageio.core: {INSTALL_HINT}"
        ) from None


__all__ = ["INSTALL_HINT", "BioimageioMissingError", "require_bioimageio"]
