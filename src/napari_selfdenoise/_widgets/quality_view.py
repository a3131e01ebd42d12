"""What the Train widget says about the data and the result while it trains: the noise
model, the live estimated PSNR, and a pinned warning when the noise is correlated between
pixels (the assumption every masking method and the estimate itself rest on)."""

from __future__ import annotations

from typing import Optional

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

#: what the noise-model and quality labels say until the run in progress has a value
NOISE_PENDING = "noise model: (estimated when training starts)"
QUALITY_PENDING = "estimated PSNR: (at the first validation)"
#: how the correlated-noise warning is set apart from the labels above it
WARNING_STYLE = "color: #e0a020;"


class QualityView(QWidget):
    """Noise model, estimated PSNR and the correlated-noise warning of the current run."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.noise_label = QLabel(NOISE_PENDING)
        self.noise_label.setToolTip("variance = a * signal + b per channel, estimated from the "
                                    "training image (data units); stored in the model")
        self.noise_label.setWordWrap(True)
        self.quality_label = QLabel(QUALITY_PENDING)
        self.quality_label.setToolTip(
            "PSNR against the unknown clean image, estimated without ground truth: the "
            "J-invariant self-supervised loss on a held-out crop minus the estimated noise "
            "variance (range: one standard error). Assumes pixel-independent noise.")
        self.warning_label = QLabel("")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.warning_label.setToolTip(
            "Measured on the held-out crop from the noise's autocorrelation between "
            "neighbouring pixels (no reference needed). Masking methods and the estimated "
            "PSNR assume independent noise: with correlated noise the network can learn the "
            "noise, and the estimate reads high.")
        self.warning_label.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label in (self.noise_label, self.quality_label, self.warning_label):
            layout.addWidget(label)

    def start_run(self, noise_record: Optional[dict], continued: bool) -> None:
        """A run starts: no estimate or warning yet; a continued model shows its noise
        model (``noise_record``), a new run estimates its own."""
        self.quality_label.setText(QUALITY_PENDING)
        self.show_warning(None)
        if continued:
            self.show_noise_model(noise_record)
        else:
            self.noise_label.setText(NOISE_PENDING)

    def show_noise_model(self, record: Optional[dict]) -> None:
        """The model's noise-model record (``{"a": [...], "b": [...]}``), or "not
        estimated"."""
        if not record:
            self.noise_label.setText("noise model: not estimated")
            return
        from ..core.noise_model import NoiseModel

        model = NoiseModel(tuple(record["a"]), tuple(record["b"]))
        self.noise_label.setText(f"noise model: {model.describe()}")

    def show_estimate(self, psnr: float, psnr_range: Optional[tuple], step: int) -> None:
        """The live estimated PSNR (dB) with its range, at training step ``step``."""
        lo, hi = psnr_range or (psnr, psnr)
        self.quality_label.setText(
            f"estimated PSNR: {psnr:.1f} dB ({lo:.1f}-{hi:.1f}) at step {step}")

    def show_warning(self, text: Optional[str]) -> None:
        """Pin the correlated-noise warning under the estimate (None: hide it)."""
        self.warning_label.setText(f"⚠ {text}" if text else "")
        self.warning_label.setVisible(bool(text))
