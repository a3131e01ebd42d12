"""Fixtures for the widget tests: a real napari viewer (under Xvfb) with our manifest.

Every test here is marked ``gui`` (skipped without a display; run them with
``xvfb-run -a -s "-screen 0 1600x1000x24" pytest tests/widgets``). Settings are remembered
in a per-test folder (``NAPARI_SELFDENOISE_CONFIG_DIR``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PLUGIN = "napari-selfdenoise"


def pytest_collection_modifyitems(config, items) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SELFDENOISE_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def viewer(make_napari_viewer):
    """A real napari viewer (the installed plugin is discovered through its manifest)."""
    return make_napari_viewer()


@pytest.fixture
def dock(viewer):
    """``dock("Train")`` adds a widget through the manifest and returns it."""

    def add(name: str):
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        return widget

    return add


@pytest.fixture
def noisy2d():
    """A 64 x 64 noisy phantom (the package's sample generator) and its ground truth."""
    from napari_selfdenoise.core.samples import phantom_2d

    p = phantom_2d((64, 64), seed=1)
    return p.noisy.astype(np.float32), p.clean


def wait_until(qtbot, predicate, timeout_s: float = 60.0) -> None:
    """Process Qt events until ``predicate()`` is true."""
    qtbot.waitUntil(predicate, timeout=int(timeout_s * 1000))


@pytest.fixture(scope="session")
def tiny_bundle():
    """A tiny N2V model trained for a few steps on a 2D phantom (seconds on CPU)."""
    from napari_selfdenoise.core.config import TrainConfig
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.samples import phantom_2d
    from napari_selfdenoise.core.training import train

    cfg = TrainConfig(method="n2v", steps=5, batch_size=4, patch_size=(32, 32),
                      val_fraction=0.0, network={"depth": 1, "base_filters": 8})
    return run_to_end(train(phantom_2d((48, 48), seed=3).noisy, cfg, axes="YX"))


def process_until(predicate, timeout_s: float, app=None) -> None:
    """Process Qt events until ``predicate()`` is true (scripts without qtbot)."""
    import time

    from qtpy.QtWidgets import QApplication

    app = app or QApplication.instance()
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"not done after {timeout_s} s")
        app.processEvents()
        time.sleep(0.002)


class LatencyProbe:
    """A precise ``period_ms`` QTimer recording how late each tick comes (in ms)."""

    def __init__(self, period_ms: int = 20) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.period_ms = period_ms
        self.lateness: list[float] = []
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0

    def _tick(self) -> None:
        import time

        now = time.perf_counter()
        self.lateness.append(max(0.0, (now - self._last) * 1000 - self.period_ms))
        self._last = now

    def start(self) -> None:
        import time

        self._last = time.perf_counter()
        self._timer.start(self.period_ms)

    def stop(self) -> np.ndarray:
        self._timer.stop()
        return np.asarray(self.lateness)
