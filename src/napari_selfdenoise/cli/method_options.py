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
from ..core.methods.base import field_constraints, int_or_words


def _fields() -> dict[str, list[tuple[str, Any]]]:
    """Parameter name -> ``[(method name, pydantic field), ...]``."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for name, method in METHODS.items():
        for field_name, info in method.Params.model_fields.items():
            if field_name != "method":
                out.setdefault(field_name, []).append((name, info))
    return out


def _int_or(words: list) -> Any:
    """argparse type of an int-or-words field (``pd_train``: a number or ``auto``)."""

    def convert(text: str) -> Any:
        if text in words:
            return text
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither an integer nor {' / '.join(words)}") from None

    convert.__name__ = "int or " + " / ".join(words)
    return convert


def _kind(annotation: Any) -> tuple[Any, Any]:
    """``(type, choices)`` for argparse from a field annotation."""
    words = int_or_words(annotation)
    if words:
        return _int_or(words), None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    if args and typing.get_origin(args[0]) is typing.Literal:
        return str, list(typing.get_args(args[0]))
    return (args[0] if args else annotation), None


def _bounds(info: Any) -> str:
    parts = []
    for meta in field_constraints(info):
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                parts.append(f"{sign} {getattr(meta, attr)}")
    return f" [{', '.join(parts)}]" if parts else ""


def _switch_usage(fields: tuple[str, ...], words: tuple) -> str:
    """``"no value, PD_TRAIN PD_INFER, or auto [PD_INFER]"``."""
    names = " ".join(f.upper() for f in fields)
    rest = " ".join(f.upper() for f in fields[1:])
    alone = "".join(f", or {w} [{rest}]" if rest else f", or {w}" for w in words)
    return f"no value, {names}{alone}"


class _SwitchWithValues(argparse.Action):
    """``--flag [V1 V2 ...]``: turns a switch on and optionally sets the fields it names
    (``json_schema_extra={"cli_values": [...]}`` on the switch's field): no value, or one
    per field; a word of the first field (``--pixel-shuffle auto``) may come alone, the
    other fields then keep their defaults."""

    def __init__(self, *args: Any, fields: tuple[str, ...] = (),
                 kinds: tuple = (), words: tuple = (), **kw: Any):
        self.fields, self.kinds, self.words = fields, kinds, words
        super().__init__(*args, **kw)

    def usage(self) -> str:
        return _switch_usage(self.fields, self.words)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        n = len(values)
        if n not in (0, len(self.fields)) and not (n and values[0] in self.words):
            parser.error(f"{option} takes {self.usage()}")
        setattr(namespace, self.dest, True)
        for name, kind, value in zip(self.fields, self.kinds, values):
            try:
                setattr(namespace, name, kind(value))
            except (ValueError, argparse.ArgumentTypeError):
                parser.error(f"{option}: {name.upper()} {value!r} is not a valid value "
                             f"(it takes {self.usage()})")


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
            infos = [METHODS[owners[0][0]].Params.model_fields[v] for v in values]
            words = tuple(int_or_words(infos[0].annotation) or ())
            group.add_argument(flag, dest=field_name, default=None, nargs="*",
                               action=_SwitchWithValues, fields=tuple(values),
                               kinds=tuple(_kind(i.annotation)[0] for i in infos),
                               words=words, metavar=" ".join(v.upper() for v in values),
                               help=f"{helptext}; it takes "
                               f"{_switch_usage(tuple(values), words)}")
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
