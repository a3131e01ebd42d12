"""Command line: ``napari-selfdenoise {train,predict,calibrate,compare,run,demo,noise,export}``.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` (which
registers the sub-command and sets ``func``) and calls the same ``core`` generators the
widgets use. Heavy imports (torch) happen inside the commands, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

SUBCOMMANDS = ("train", "predict", "calibrate", "compare", "run", "demo", "noise", "export")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="napari-selfdenoise",
        description="Self-supervised denoising of microscopy images (no clean data needed).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of errors (put it before COMMAND)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}_cmd")
        module.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``napari-selfdenoise`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, MemoryError) as exc:
        from ..core.validation import is_user_error, user_message

        if args.debug or not is_user_error(exc):
            raise  # programming errors keep their traceback
        # user mistakes (bad axes, missing files, corrupt models, full disk) get one line
        print(f"napari-selfdenoise {args.command}: error: {user_message(exc)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
