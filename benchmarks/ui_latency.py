"""Napari experience: time from pressing Train to the first preview, and UI latency.

Drives the real Train widget in a real viewer (run it under a display or Xvfb)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/ui_latency.py

1. presses Start (``start_button.click()``) on a 256 x 256 noisy phantom with the
   widget's default settings (the default method with its defaults: Noise2Self since
   2026-12-02; N2V, U-Net depth 2, 32 filters, batch 16, 64 x 64 patches before),
   preview every ``--preview-every`` seconds, and reports the time until the preview
   layer shows;
2. measures the event loop while training: a 20 ms ``QTimer`` runs for ``--seconds``
   and its lateness (time beyond 20 ms between ticks) is reported as p50 / p95 / max,
   next to the same measurement with the viewer idle (no training), in one run.

The widget starts torch's one-time optimiser import when it opens (``core.preload``), so
it runs during the idle window here; ``--no-preload`` leaves it to the first Start, as
before 2026-12-02 (run both, one process each: the import happens once per process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "widgets"))  # the widget tests' helpers

from conftest import PLUGIN, LatencyProbe, process_until  # noqa: E402
PERIOD_MS = 20


def lateness_ms(seconds: float) -> np.ndarray:
    """Lateness of a 20 ms timer while the event loop runs for ``seconds``."""
    probe = LatencyProbe(PERIOD_MS)
    probe.start()
    end = time.perf_counter() + seconds
    process_until(lambda: time.perf_counter() > end, seconds + 60)
    return probe.stop()


def summary(values: np.ndarray) -> dict:
    return {"ticks": int(values.size), "p50_ms": round(float(np.percentile(values, 50)), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2),
            "max_ms": round(float(values.max()), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="latency window")
    parser.add_argument("--preview-every", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-preload", action="store_true",
                        help="do not import torch's optimiser module when the widget opens")
    args = parser.parse_args(argv)
    os.environ.setdefault("NAPARI_SELFDENOISE_CONFIG_DIR", tempfile.mkdtemp())
    import napari
    import torch

    from napari_selfdenoise.core.samples import phantom_2d
    from machine import engine_precision, print_header

    print_header(engine_precision())

    if args.no_preload:  # a finished thread: the widget's preload call then does nothing
        import threading

        from napari_selfdenoise.core import preload

        preload._thread = threading.Thread(target=lambda: None)
        preload._thread.start()
    viewer = napari.Viewer()
    viewer.add_image(phantom_2d((256, 256), seed=0).noisy, name="noisy")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train")
    o = widget.options
    o.budget.setValue(1_000_000)
    o.preview_every.setValue(args.preview_every)
    o.device.setText(args.device)
    settle = time.perf_counter() + 2.0  # let the window appear and draw
    process_until(lambda: time.perf_counter() > settle, 10)
    idle = lateness_ms(args.seconds)

    t0 = time.perf_counter()
    widget.start_button.click()
    process_until(lambda: widget.first_preview_s is not None, 600)
    first_preview_s = time.perf_counter() - t0
    training = lateness_ms(args.seconds)
    widget.stop_button.click()
    process_until(lambda: widget.bundle is not None, 600)
    info = widget.bundle.info
    result = {
        "device": str(info.get("device")),
        "torch_threads": torch.get_num_threads(),
        "preview_every_s": args.preview_every,
        "preload": not args.no_preload,
        "time_to_first_preview_s": round(first_preview_s, 2),
        "training_steps": int(info["steps"]),
        "training_s": round(float(info["elapsed_s"]), 1),
        "idle_latency": summary(idle),
        "training_latency": summary(training),
    }
    print(json.dumps(result, indent=2))
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
