"""Command-line options generated from the method registry.

``--method`` lists :data:`~napari_selfdenoise.core.methods.METHODS`; every field of every
method's parameter model becomes a flag (``pairs_along`` -> ``--pairs-along``) whose help is
the field's description and bounds. A flag given for another method is an error.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from ..core.methods import DEFAULT_METHOD, METHODS


def _fields() -> dict[str, list[tuple[str, Any]]]:
    """Parameter name -> ``[(method name, pydantic field), ...]``."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for name, method in METHODS.items():
        for field_name, info in method.Params.model_fields.items():
            if field_name != "method":
                out.setdefault(field_name, []).append((name, info))
    return out


def _kind(annotation: Any) -> tuple[Any, Any]:
    """``(type, choices)`` for argparse from a field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    if args and typing.get_origin(args[0]) is typing.Literal:
        return str, list(typing.get_args(args[0]))
    return (args[0] if args else annotation), None


def _bounds(info: Any) -> str:
    parts = []
    for meta in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                parts.append(f"{sign} {getattr(meta, attr)}")
    return f" [{', '.join(parts)}]" if parts else ""


class _SwitchWithValues(argparse.Action):
    """``--flag [V1 V2 ...]``: turns a switch on and optionally sets the fields it names
    (``json_schema_extra={"cli_values": [...]}`` on the switch's field)."""

    def __init__(self, *args: Any, fields: tuple[str, ...] = (), **kw: Any):
        self.fields = fields
        super().__init__(*args, **kw)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        if len(values) not in (0, len(self.fields)):
            parser.error(f"{option} takes no value or {len(self.fields)} "
                         f"({' '.join(f.upper() for f in self.fields)})")
        setattr(namespace, self.dest, True)
        for name, value in zip(self.fields, values):
            setattr(namespace, name, value)


def add_method_arguments(parser: argparse.ArgumentParser,
                         default: str = DEFAULT_METHOD) -> None:
    """``--method`` and one flag per method parameter."""
    listing = ", ".join(f"{n} ({m.title})" for n, m in METHODS.items())
    parser.add_argument("--method", default=default, choices=list(METHODS),
                        help=f"{listing} (default {default})")
    group = parser.add_argument_group("method parameters")
    for field_name, owners in _fields().items():
        info = owners[0][1]
        flag = "--" + field_name.replace("_", "-")
        methods = "/".join(n for n, _ in owners)
        helptext = f"{methods}: {info.description}{_bounds(info)} (default {info.default})"
        typ, choices = _kind(info.annotation)
        values = (info.json_schema_extra or {}).get("cli_values") if isinstance(
            info.json_schema_extra, dict) else None
        if typ is bool and values:
            group.add_argument(flag, dest=field_name, default=None, nargs="*", type=int,
                               action=_SwitchWithValues, fields=tuple(values),
                               metavar=" ".join(v.upper() for v in values),
                               help=f"{helptext}; optional values: "
                               f"{' '.join(v.upper() for v in values)}")
        elif typ is bool:
            group.add_argument(flag, dest=field_name, default=None,
                               action=argparse.BooleanOptionalAction, help=helptext)
        else:
            group.add_argument(flag, dest=field_name, type=typ, choices=choices, default=None,
                               help=helptext)


def method_params(args: argparse.Namespace) -> dict[str, Any]:
    """The ``params`` of ``TrainConfig`` for the parsed arguments.

    Raises
    ------
    ValueError
        A flag of another method was given.
    """
    params: dict[str, Any] = {"method": args.method}
    for field_name, owners in _fields().items():
        value = getattr(args, field_name, None)
        if value is None:
            continue
        if args.method not in [n for n, _ in owners]:
            flag = "--" + field_name.replace("_", "-")
            raise ValueError(f"{flag} applies to method {'/'.join(n for n, _ in owners)}, "
                             f"not {args.method}")
        params[field_name] = value
    return params
