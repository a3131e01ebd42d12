"""The dock-widget base class: layer picker, presets, remembered settings, progress, one
run at a time and a clean shutdown; batch runs come from :class:`.batch_runs.BatchRuns`.

Subclasses set :attr:`kind` and implement :meth:`settings`, :meth:`set_settings`,
:meth:`_controls` (what to disable while running) and their own run.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path
from typing import Any, Callable, Generator, Optional

from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core import presets
from ..core.axes import validate_axes
from . import _common
from .batch_runs import BatchRuns


class DockWidget(BatchRuns, QWidget):
    """Common machinery of the Train, Calibrate and Predict widgets."""

    kind = ""  # "train", "predict" or "calibrate"

    def __init__(self, napari_viewer: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.runner = _common.Runner()
        self.run_started = 0.0
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Image layer to work on")
        self.axes_edit = QLineEdit()
        self.axes_edit.setToolTip(
            "Axes of the layer, one letter per dimension from STCZYX (S, T: samples; "
            "C: channels; Z, Y, X: space). Inferred from the layer; edit to override."
        )
        self.shape_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = QLabel("ready")
        self.status.setWordWrap(True)
        self.save_preset_button = QPushButton("Save preset…")
        self.load_preset_button = QPushButton("Load preset…")
        self.defaults_button = QPushButton("Defaults")
        self.defaults_button.setToolTip(
            "Show the default settings instead of the remembered or loaded ones")
        self.batch_button = QToolButton()
        self.batch_button.setText("Batch run…")
        self.batch_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.batch_button)
        menu.addAction("on the selected layers", self._batch_layers_clicked)
        menu.addAction("on a folder of files…", self._batch_folder_clicked)
        self.batch_button.setMenu(menu)
        self.layer_combo.currentIndexChanged.connect(self._layer_changed)
        self.save_preset_button.clicked.connect(self._save_preset_clicked)
        self.load_preset_button.clicked.connect(self._load_preset_clicked)
        self.defaults_button.clicked.connect(self._defaults_clicked)
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._watched: Any = None

    def ready(self) -> None:
        """End of a subclass's ``__init__``: list layers, restore settings, enable."""
        self.reset_choices()
        self.restore_last_settings()
        self._set_running(False)

    # ----------------------------------------------------------------- layout helpers
    def _picker_row(self) -> QVBoxLayout:
        box = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("layer"))
        row.addWidget(self.layer_combo, 1)
        box.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("axes"))
        row.addWidget(self.axes_edit)
        row.addWidget(self.shape_label, 1)
        box.addLayout(row)
        return box

    def _footer(self) -> QVBoxLayout:
        box = QVBoxLayout()
        box.addWidget(self.progress)
        box.addWidget(self.status)
        row = QHBoxLayout()
        for button in (self.save_preset_button, self.load_preset_button, self.defaults_button,
                       self.batch_button):
            row.addWidget(button)
        box.addLayout(row)
        return box

    def build_layout(self, form: Any, buttons: list, extra: list = ()) -> QVBoxLayout:
        """Picker, ``form``, a row of ``buttons``, progress / presets, then ``extra``."""
        layout = QVBoxLayout(self)
        layout.addLayout(self._picker_row())
        if isinstance(form, QWidget):
            layout.addWidget(form)
        else:
            layout.addLayout(form)
        row = QHBoxLayout()
        for button in buttons:
            row.addWidget(button)
        layout.addLayout(row)
        layout.addLayout(self._footer())
        for widget in extra:
            layout.addWidget(widget)
        layout.addStretch(1)
        return layout

    # ------------------------------------------------------------------------ layers
    def layer_filter(self, layer: Any) -> bool:
        """Which image layers the picker lists (all by default)."""
        return True

    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer picker (napari calls this when layers change)."""
        names = [lay.name for lay in _common.image_layers(self.viewer) if self.layer_filter(lay)]
        if refill(self.layer_combo, names):
            self._layer_changed()

    def _layers_changed(self, *_: Any) -> None:
        self.reset_choices()

    def selected_layer(self) -> Any:
        """The picked layer (``ValueError`` with a clear message when there is none)."""
        name = self.layer_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise ValueError("choose an image layer first (open an image or a sample)")
        return self.viewer.layers[name]

    def _layer_changed(self, *_: Any) -> None:
        name = self.layer_combo.currentText()
        if not name or name not in self.viewer.layers:
            self.axes_edit.setText("")
            self.shape_label.setText("")
            return
        layer = self.viewer.layers[name]
        shape = _common.layer_data(layer).shape
        self.shape_label.setText("shape " + " x ".join(map(str, shape)))
        try:
            self.axes_edit.setText(_common.layer_axes(layer))
        except ValueError as exc:
            self.axes_edit.setText("")
            self.status.setText(str(exc))

    def selected_axes(self, layer: Any) -> str:
        """The axes typed (or inferred) for ``layer``, checked against its shape."""
        text = self.axes_edit.text().strip() or _common.layer_axes(layer)
        return validate_axes(text, _common.layer_data(layer).shape)

    # ------------------------------------------------------------------ notifications
    def notify(self, text: str, level: str = "info") -> None:
        """Status line + a napari notification (always called on the main thread)."""
        from napari.utils.notifications import show_error, show_info, show_warning

        self.status.setText(text)
        {"error": show_error, "warning": show_warning}.get(level, show_info)(text)

    def on_message(self, event: Any) -> None:
        """An engine's Message: warnings are notified, notes only shown in the status."""
        if event.level == "info":
            self.status.setText(event.text)
        else:
            self.notify(event.text, event.level)

    def guarded(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; a user mistake becomes a message instead of a traceback."""
        try:
            return action()
        except (ValueError, OSError, RuntimeError) as exc:
            self.notify(_common.user_message(exc), "error")
            return None

    # -------------------------------------------------------------------- settings
    def settings(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_settings(self, settings: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def restore_last_settings(self) -> None:
        """Show the settings remembered from the last session, else the core defaults.

        The form's starting values thus always come from the settings models in
        ``core`` (one source of defaults for the widgets, presets and the CLI).
        """
        last = _common.load_last_settings(self.kind)
        if last is not None:
            try:
                self.set_settings(last)
                return
            except ValueError:
                pass
        self.set_settings(presets.SETTINGS_TYPES[self.kind]())

    def save_preset(self, path: str) -> Path:
        """Save the current settings as a preset file."""
        return presets.save_preset(path, self.settings())

    def reset_settings(self) -> Any:
        """Show the core defaults (remembered settings are replaced on the next run)."""
        settings = presets.SETTINGS_TYPES[self.kind]()
        self.set_settings(settings)
        return settings

    def _defaults_clicked(self) -> None:
        if self.guarded(self.reset_settings) is not None:
            self.notify("default settings restored")

    def load_preset(self, path: str) -> Any:
        """Load a preset file into the form (``PresetError`` names any bad key)."""
        settings = presets.load_preset(path, kind=self.kind)
        self.set_settings(settings)
        return settings

    def _save_preset_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", f"{self.kind}.json",
                                              "Presets (*.json)")
        if path:
            saved = self.guarded(lambda: self.save_preset(path))
            if saved:
                self.notify(f"preset saved to {saved}")

    def _load_preset_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", "", "Presets (*.json)")
        if path and self.guarded(lambda: self.load_preset(path)) is not None:
            self.notify(f"preset loaded from {path}")

    # ------------------------------------------------------------------------- runs
    def _controls(self) -> list:
        """Widgets that cannot change while a run goes on."""
        return [self.layer_combo, self.axes_edit, self.load_preset_button, self.defaults_button,
                self.batch_button]

    def _set_running(self, running: bool) -> None:
        for widget in self._controls():
            widget.setEnabled(not running)

    def launch(self, make: Callable[[Any], Generator], on_event: Callable[[Any], None],
               on_done: Callable[[Any], None], label: str) -> bool:
        """Start ``make(stop_event)`` in a worker; False (and a message) when busy."""
        if self.runner.running:
            self.notify("a run is already going on: stop it first", "warning")
            return False
        _common.remember_settings(self.settings())
        self._watch_window()  # docked by now: closing the viewer must stop this run
        self.run_started = time.perf_counter()
        self.progress.setValue(0)
        self.status.setText(label)
        self._set_running(True)
        self.runner.start(make, on_event, on_done, self._on_error, self._on_finished)
        return True

    def _on_error(self, exc: BaseException) -> None:
        self.notify(f"{self.kind} failed: {_common.user_message(exc)}", "error")

    def _on_finished(self) -> None:
        self._set_running(False)

    def set_progress(self, fraction: Optional[float], text: str) -> None:
        if fraction is not None:
            self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
        self.status.setText(text)

    def stop(self) -> None:
        """Ask the current run to stop (training keeps its model so far)."""
        if self.runner.running:
            self.runner.stop()
            self.status.setText("stopping…")

    # ------------------------------------------------------------------- shutdown
    def _watch_window(self) -> None:
        """Watch the top-level window (napari's main window once docked) for Close."""
        top = self.window()
        watched = self._watched() if self._watched is not None else None
        if top is not self and top is not watched:
            if watched is not None:
                watched.removeEventFilter(self)
            self._watched = weakref.ref(top)  # never keep napari's window alive
            top.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def event(self, event: Any) -> bool:  # noqa: D401 - Qt API
        # remove_dock_widget() re-parents the widget to None: stop its work then;
        # once docked, watch the main window so closing the viewer stops it too
        kind = event.type()
        if kind == QEvent.Type.ParentChange and self.parent() is None:
            self.shutdown()
        elif kind in (QEvent.Type.ParentChange, QEvent.Type.Show):
            self._watch_window()
        return super().event(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop any run, wait for its thread and forget the viewer's events."""
        if self.runner.running:
            self.runner.shutdown()
        try:
            _common.remember_settings(self.settings())
        except ValueError:
            pass
        for emitter in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            emitter.disconnect(self._layers_changed)


def refill(box: QComboBox, items: list[str]) -> bool:
    """Replace the items of ``box``, keeping the current one; True when it changed."""
    current = box.currentText()
    box.blockSignals(True)
    box.clear()
    box.addItems(items)
    if current in items:
        box.setCurrentText(current)
    box.blockSignals(False)
    return box.currentText() != current

