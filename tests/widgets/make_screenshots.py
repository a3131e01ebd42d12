"""Screenshots of each dock widget with a real result, for docs/images (headless).

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/widgets/make_screenshots.py``
(about seven minutes on a busy 2-core CPU). Writes ``docs/images/{train,calibrate,predict}.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "images"
TRAIN_SECONDS = 300


def shoot(viewer, app, name: str) -> None:
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    image = viewer.screenshot(canvas_only=False, flash=False)
    from skimage.io import imsave

    OUT.mkdir(parents=True, exist_ok=True)
    imsave(OUT / name, image, check_contrast=False)
    print("wrote", OUT / name)


def main() -> int:
    os.environ.setdefault("NAPARI_SELFDENOISE_CONFIG_DIR", tempfile.mkdtemp())
    sys.path.insert(0, str(Path(__file__).parent))
    import napari
    from conftest import PLUGIN, process_until
    from qtpy.QtWidgets import QApplication

    from napari_selfdenoise.core.samples import phantom_2d

    viewer = napari.Viewer()
    viewer.window.resize(1500, 950)
    app = QApplication.instance()
    viewer.open_sample(PLUGIN, "phantom2d")
    truth = viewer.layers["phantom 2D (ground truth)"]

    # Train: N2V2 for a minute on the noisy phantom; noisy | denoised | ground truth
    dock, train = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    train.layer_combo.setCurrentText("phantom 2D (noisy)")
    o = train.options
    o.method.setCurrentIndex(o.method.findData("n2s"))
    o.batch.setValue(8)  # light enough for a 2-core CPU shared with others
    o.patch.setText("32, 32")
    o.filters.setValue(16)
    o.budget_unit.setCurrentIndex(o.budget_unit.findData("minutes"))
    o.budget.setValue(TRAIN_SECONDS // 60)
    train.start()
    process_until(lambda: "phantom 2D (noisy) [n2s]" in viewer.layers, TRAIN_SECONDS + 120)
    process_until(lambda: not train.runner.running, 30)
    truth.visible = True
    viewer.grid.enabled = True
    viewer.reset_view()
    shoot(viewer, app, "train.png")
    viewer.window.remove_dock_widget(dock)

    # Predict: that model (from the result layer's metadata) on a new phantom, with TTA
    other = phantom_2d(seed=7).noisy
    for name in ("phantom 2D (noisy)", "phantom 2D (ground truth)"):
        viewer.layers.remove(name)
    viewer.layers["phantom 2D (noisy) [n2s]"].visible = False
    viewer.add_image(other, name="new phantom (noisy)", colormap="magma",
                     contrast_limits=truth.contrast_limits)
    dock, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict")
    predict.layer_combo.setCurrentText("new phantom (noisy)")
    predict.model_combo.setCurrentText("layer: phantom 2D (noisy) [n2s]")
    predict.tta.setChecked(True)
    predict.run()
    process_until(lambda: "new phantom (noisy) [n2s]" in viewer.layers, 120)
    process_until(lambda: not predict.runner.running, 30)
    viewer.reset_view()
    shoot(viewer, app, "predict.png")
    viewer.window.remove_dock_widget(dock)

    # Calibrate: Auto on the real lysosome time-lapse
    viewer.layers.clear()
    viewer.open_sample(PLUGIN, "lysosome")
    dock, calibrate = viewer.window.add_plugin_dock_widget(PLUGIN, "Calibrate")
    calibrate.layer_combo.setCurrentText("lysosome (noisy, confocal)")
    calibrate.run()
    process_until(lambda: not calibrate.runner.running and calibrate.result is not None, 300)
    viewer.reset_view()
    shoot(viewer, app, "calibrate.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
