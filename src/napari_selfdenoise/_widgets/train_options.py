"""The Train widget's settings form: method, its options, budget and an advanced section.

:class:`TrainOptions` converts both ways between the form and
:class:`~napari_selfdenoise.core.presets.TrainSettings` (``settings()`` /
``set_settings()``), so presets, remembered settings and runs see exactly the same values.
"""

from __future__ import annotations

from typing import Any, Optional

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.config import METHOD_NAMES, TrainConfig, default_config
from ..core.methods import METHODS, get_method
from ..core.presets import TrainSettings
from .method_rows import params_widgets, set_widget_value, widget_value

MINUTES_MODE_STEPS = 10_000_000  # the time budget ends such runs
LOG_EVERY = 5  # loss-plot points every 5 steps (the engine's default of 10 is sparse for a plot)


def spin(lo: float, hi: float, value: float, *, decimals: int = 0, step: float = 1,
         suffix: str = "", tip: str = "") -> Any:
    """An integer (``decimals=0``) or float spin box."""
    box = QSpinBox() if decimals == 0 else QDoubleSpinBox()
    if decimals:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    if tip:
        box.setToolTip(tip)
    return box


def combo(items: dict, tip: str = "") -> QComboBox:
    """A combo box whose item data are the keys of ``items`` (labels are the values)."""
    box = QComboBox()
    for key, label in items.items():
        box.addItem(label, key)
    if tip:
        box.setToolTip(tip)
    return box


def set_combo(box: QComboBox, key: Any) -> None:
    index = box.findData(key)
    if index < 0:
        raise ValueError(f"{key!r} is not one of {[box.itemData(i) for i in range(box.count())]}")
    box.setCurrentIndex(index)


def parse_shape(text: str) -> Optional[tuple[int, ...]]:
    """``"64, 64"`` -> ``(64, 64)``; ``""`` or ``"auto"`` -> ``None``."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"patch size {text!r}: give integers such as '64, 64' or 'auto'") from None


class TrainOptions(QWidget):
    """Method, method options, budget and the advanced section of the Train widget."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        d = default_config()
        self.method = combo(METHOD_NAMES, "Self-supervised method")
        self.method_help = QLabel()
        self.method_help.setWordWrap(True)
        self.masked_percent = spin(0.01, 25, d.masking.masked_fraction * 100, decimals=2,
                                   step=0.1, suffix=" %", tip="Pixels masked per patch")
        self.neighbourhood = spin(3, 11, d.masking.neighbourhood, step=2,
                                  tip="Window the replacement pixel comes from (odd)")
        self.struct_axis = combo({None: "off", "x": "along x", "y": "along y"},
                                 "structN2V: also mask a line (correlated noise)")
        self.grid = spin(2, 8, d.masking.grid, tip="Masking grid width w (w^2 subsets)")
        self.lambda_inv = spin(0, 100, d.lambda_inv, decimals=2, step=0.5,
                               tip="Noise2Same invariance weight (2 in the paper)")
        self.j_invariant = QCheckBox("J-invariant inference")
        #: the generated rows of each method's own parameters
        self.method_params = {name: params_widgets(m.Params) for name, m in METHODS.items()}
        self.target_layer = QComboBox()
        self.target_layer.setToolTip("Noise2Noise: a second, independent noisy acquisition "
                                     "of the layer (same shape); or interlace one stack")
        self.budget = spin(1, 10_000_000, d.steps, tip="Training budget")
        self.budget_unit = combo({"steps": "steps", "minutes": "minutes"})
        self.preview = QCheckBox("live preview of the current view, every")
        self.preview.setChecked(True)
        self.preview_every = spin(0.5, 600, 3.0, decimals=1, suffix=" s")
        # advanced
        self.patch = QLineEdit("auto")
        self.patch.setToolTip("Spatial patch shape, e.g. '64, 64' or '16, 64, 64'; auto")
        self.batch = spin(1, 1024, d.batch_size)
        self.arch = combo({"unet": "U-Net", "dncnn": "DnCNN"})
        self.depth = spin(1, 5, d.network.depth, tip="U-Net levels")
        self.filters = spin(4, 256, d.network.base_filters, tip="Filters at the top level")
        self.lr = spin(1e-6, 0.5, d.learning_rate, decimals=6, step=1e-4)
        self.ema = spin(0.0, 0.9999, d.ema, decimals=4, step=0.01,
                        tip=TrainConfig.model_fields["ema"].description)
        self._hidden = d  # a loaded preset's settings the form does not show, kept
        self.replacement = combo({None: "method default", "random": "random neighbour",
                                  "median": "median", "interpolate": "interpolate",
                                  "zero": "zero"})
        self.scaling = combo({"meanstd": "standardise (mean, std)",
                              "percentile": "percentiles 1 - 99.8 to 0 - 1", "none": "none"},
                             "Intensity normalisation, stored with the model")
        self._normalization = d.normalization  # keeps a preset's percentiles
        self.augment = QCheckBox("flips and rotations")
        self.augment.setChecked(d.augment)
        self.val_fraction = spin(0, 0.49, d.val_fraction, decimals=2, step=0.05)
        self.precision = combo({"auto": "auto", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"})
        self.device = QLineEdit(d.device)
        self.device.setToolTip("'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'")
        self.seed = spin(-1, 2**31 - 1, d.seed, tip="-1: not seeded")
        self.log_every = spin(1, 10_000, LOG_EVERY, tip="Steps between loss-plot points")
        self.save_model_to = QLineEdit()
        self.save_model_to.setPlaceholderText("(optional) model file written at the end")
        self._layout()
        set_combo(self.method, d.method)
        self.method.currentIndexChanged.connect(self._method_changed)
        self._method_changed()

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("method", self.method)
        form.addRow(self.method_help)
        # shared settings: shown for the methods that list them in ``Method.settings``
        self._method_rows = {
            "masking.masked_fraction": ("masked pixels", self.masked_percent),
            "masking.neighbourhood": ("neighbourhood", self.neighbourhood),
            "masking.struct_axis": ("structN2V", self.struct_axis),
            "masking.grid": ("grid", self.grid),
            "lambda_inv": ("lambda_inv", self.lambda_inv),
            "j_invariant_inference": ("", self.j_invariant),
        }
        for label, widget in self._method_rows.values():
            form.addRow(label, widget)
        form.addRow("target layer", self.target_layer)
        for widgets in self.method_params.values():
            for name, widget in widgets.items():
                form.addRow(name.replace("_", " "), widget)
        budget = QHBoxLayout()
        budget.addWidget(self.budget, 1)
        budget.addWidget(self.budget_unit)
        form.addRow("budget", budget)
        preview = QHBoxLayout()
        preview.addWidget(self.preview)
        preview.addWidget(self.preview_every)
        form.addRow(preview)
        form.addRow("save model to", self.save_model_to)
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced = QGroupBox()
        adv = QFormLayout(self.advanced)
        for label, widget in [
            ("patch size", self.patch), ("batch size", self.batch), ("network", self.arch),
            ("depth", self.depth), ("filters", self.filters), ("learning rate", self.lr),
            ("weight average (EMA)", self.ema), ("masking", self.replacement), ("intensities", self.scaling),
            ("augmentation", self.augment),
            ("validation fraction", self.val_fraction), ("precision", self.precision),
            ("device", self.device), ("seed", self.seed), ("log every", self.log_every),
        ]:
            adv.addRow(label, widget)
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self.advanced.setVisible)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(form)
        outer.addWidget(self.advanced_toggle)
        outer.addWidget(self.advanced)
        self._form = form

    def _method_changed(self) -> None:
        """Show the method's own options, with its defaults (what is shown is what runs)."""
        method = self.method.currentData()
        info = get_method(method)
        self.method_help.setText(info.help)
        defaults = default_config(method)
        self.masked_percent.setValue(defaults.masking.masked_fraction * 100.0)
        self.grid.setValue(defaults.masking.grid)
        # the settings a method sets its own defaults for follow the method
        self.batch.setValue(defaults.batch_size)
        self.filters.setValue(defaults.network.base_filters)
        self.lr.setValue(defaults.learning_rate)
        for path, (_, widget) in self._method_rows.items():
            self._form.setRowVisible(widget, path in info.settings)
        self._form.setRowVisible(self.target_layer, info.needs_target)
        for name, widgets in self.method_params.items():
            for widget in widgets.values():
                self._form.setRowVisible(widget, name == method)
        for name, widget in self.method_params[method].items():  # e.g. bsn's padding
            set_widget_value(widget, getattr(defaults.params, name))

    def set_target_layers(self, names: list) -> None:
        """The layers a method that needs a target can use (first: interlace one stack)."""
        current = self.target_layer.currentData()
        self.target_layer.clear()
        self.target_layer.addItem("none: interlace the layer (pairs along)", None)
        for name in names:
            self.target_layer.addItem(name, name)
        index = self.target_layer.findData(current)
        self.target_layer.setCurrentIndex(max(0, index))

    def params(self) -> dict:
        """The selected method's own parameters, as the form shows them."""
        method = self.method.currentData()
        return {"method": method, **{name: widget_value(w) for name, w
                                     in self.method_params[method].items()}}

    # ------------------------------------------------------------- settings <-> form
    def settings(self, axes: Optional[str] = None) -> TrainSettings:
        """The form as validated settings (raises ``ValueError`` with a clear message)."""
        minutes = self.budget_unit.currentData() == "minutes"
        seed = self.seed.value()
        method = self.method.currentData()
        if self.arch.currentData() not in get_method(method).networks:
            raise ValueError(f"{METHOD_NAMES[method]} trains the networks "
                             f"{', '.join(get_method(method).networks)} only")
        shown = dict(
            method=method,
            params=self.params(),
            axes=axes,
            patch_size=parse_shape(self.patch.text()),
            batch_size=self.batch.value(),
            steps=MINUTES_MODE_STEPS if minutes else self.budget.value(),
            time_budget_s=self.budget.value() * 60.0 if minutes else None,
            learning_rate=self.lr.value(),
            lambda_inv=self.lambda_inv.value(),
            val_fraction=self.val_fraction.value(),
            augment=self.augment.isChecked(),
            precision=self.precision.currentData(),
            device=self.device.text().strip() or "auto",
            seed=None if seed < 0 else seed,
            log_every=self.log_every.value(),
            j_invariant_inference=self.j_invariant.isChecked(),
            network={"arch": self.arch.currentData(), "depth": self.depth.value(),
                     "base_filters": self.filters.value()},
            masking={"masked_fraction": self.masked_percent.value() / 100.0,
                     "neighbourhood": self.neighbourhood.value(),
                     "struct_axis": self.struct_axis.currentData(),
                     "grid": self.grid.value(),
                     "replacement": self.replacement.currentData()},
            normalization={**self._normalization.model_dump(), "kind": self.scaling.currentData()},
            ema=self.ema.value(),
        )
        # fields the form has no control for (clock, channels_last, val_every...) keep a
        # loaded preset's values instead of silently falling back to the defaults
        hidden = {k: v for k, v in self._hidden.model_dump().items()
                  if k not in shown}
        train = TrainConfig(**{**hidden, **shown})
        return TrainSettings(
            train=train,
            budget_unit="minutes" if minutes else "steps",
            preview=self.preview.isChecked(),
            preview_every_s=self.preview_every.value(),
            save_model_to=self.save_model_to.text().strip() or None,
        )

    def set_settings(self, settings: TrainSettings) -> None:
        """Show ``settings`` in the form."""
        t = settings.train
        set_combo(self.method, t.method)
        for name, widget in self.method_params[t.method].items():
            set_widget_value(widget, getattr(t.params, name))
        minutes = settings.budget_unit == "minutes" and t.time_budget_s is not None
        set_combo(self.budget_unit, "minutes" if minutes else "steps")
        self.budget.setValue(round(t.time_budget_s / 60.0) if minutes else t.steps)
        self.patch.setText(", ".join(map(str, t.patch_size)) if t.patch_size else "auto")
        self.batch.setValue(t.batch_size)
        set_combo(self.arch, t.network.arch)
        self.depth.setValue(t.network.depth)
        self.filters.setValue(t.network.base_filters)
        self.lr.setValue(t.learning_rate)
        self.ema.setValue(t.ema)
        self._hidden = t
        self.lambda_inv.setValue(t.lambda_inv)
        self.val_fraction.setValue(t.val_fraction)
        self.augment.setChecked(t.augment)
        set_combo(self.precision, t.precision)
        self.device.setText(t.device)
        self.seed.setValue(-1 if t.seed is None else t.seed)
        self.log_every.setValue(t.log_every)
        self.j_invariant.setChecked(t.j_invariant_inference)
        self.masked_percent.setValue(t.masking.masked_fraction * 100.0)
        self.neighbourhood.setValue(t.masking.neighbourhood)
        set_combo(self.struct_axis, t.masking.struct_axis)
        self.grid.setValue(t.masking.grid)
        set_combo(self.replacement, t.masking.replacement)
        set_combo(self.scaling, t.normalization.kind)
        self._normalization = t.normalization
        self.preview.setChecked(settings.preview)
        self.preview_every.setValue(settings.preview_every_s)
        self.save_model_to.setText(settings.save_model_to or "")
