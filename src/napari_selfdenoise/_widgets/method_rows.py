"""Form rows generated from a method's pydantic parameter model.

Each field becomes a widget (bool: check box; a literal: combo box; int / float: spin box
with the field's bounds as range; an int or a word, ``pd_train``'s ``auto``: a spin box
whose lowest position shows the word) with the field's description as tooltip, so a
method added to the registry appears in the Train widget without widget code.
"""

from __future__ import annotations

import typing
from typing import Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox, QWidget

from ..core.methods.base import field_constraints, int_or_words

#: spin-box range when a field has no bound on that side
OPEN_RANGE = 1e6
#: the Qt property of a spin box whose lowest position stands for a word
WORD = "field_word"


def _bound(info: Any, names: tuple[str, ...]) -> Any:
    for meta in field_constraints(info):
        for name in names:
            value = getattr(meta, name, None)
            if value is not None:
                return value
    return None


def _choices(annotation: Any) -> list:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    choices: list = []
    for arg in typing.get_args(annotation):
        if arg is type(None):
            choices.insert(0, None)
        elif typing.get_origin(arg) is typing.Literal:
            choices += list(typing.get_args(arg))
    return choices


def field_widget(info: Any, none_label: str = "off") -> QWidget:
    """A widget for one pydantic field: its value type, bounds, default and description."""
    annotation = info.annotation
    words = int_or_words(annotation)
    choices = [] if words else _choices(annotation)
    if words:
        w: Any = QSpinBox()
        lo, hi = _bound(info, ("ge", "gt")), _bound(info, ("le", "lt"))
        w.setRange((0 if lo is None else int(lo)) - 1, int(OPEN_RANGE if hi is None else hi))
        w.setSpecialValueText(words[0])  # shown at the minimum: the word
        w.setProperty(WORD, words[0])
        set_widget_value(w, info.default)
    elif annotation is bool:
        w = QCheckBox()
        w.setChecked(bool(info.default))
    elif choices:
        w = QComboBox()
        for c in choices:
            w.addItem(none_label if c is None else str(c), c)
        w.setCurrentIndex(max(0, w.findData(info.default)))
    else:
        w = QSpinBox() if annotation is int else QDoubleSpinBox()
        lo = _bound(info, ("ge", "gt"))
        hi = _bound(info, ("le", "lt"))
        w.setRange(-OPEN_RANGE if lo is None else lo, OPEN_RANGE if hi is None else hi)
        if annotation is not int:
            w.setDecimals(3)
        w.setValue(info.default)
    w.setToolTip(info.description or "")
    return w


def widget_value(w: QWidget) -> Any:
    """The value a :func:`field_widget` shows."""
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, QComboBox):
        return w.currentData()
    if w.property(WORD) and w.value() == w.minimum():
        return w.property(WORD)
    return w.value()


def set_widget_value(w: QWidget, value: Any) -> None:
    """Show ``value`` in a :func:`field_widget`."""
    if isinstance(w, QCheckBox):
        w.setChecked(bool(value))
    elif isinstance(w, QComboBox):
        w.setCurrentIndex(max(0, w.findData(value)))
    elif isinstance(value, str) and value == w.property(WORD):
        w.setValue(w.minimum())
    else:
        w.setValue(value)


def params_widgets(params_model: type) -> dict[str, QWidget]:
    """``{field name: widget}`` for every field of a method's parameter model."""
    return {name: field_widget(info) for name, info in params_model.model_fields.items()
            if name != "method"}
