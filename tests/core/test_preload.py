"""Torch's one-time optimiser import is paid in the background (core.preload)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
from napari_selfdenoise.core import preload

assert "torch" not in sys.modules  # importing the module starts nothing
thread = preload.preload_optimiser()
assert preload.preload_optimiser() is thread and thread.daemon  # once per process
thread.join(300)
assert not thread.is_alive() and preload.MODULE in sys.modules
import torch

params = [torch.nn.Parameter(torch.zeros(3))]
before = set(sys.modules)
torch.optim.Adam(params)  # the first optimiser imports nothing more
assert not {m for m in set(sys.modules) - before if m.startswith("torch._dynamo")}
print("ok")
"""


def test_preload_imports_what_the_first_optimiser_needs_once_in_a_thread():
    # a fresh interpreter: this test process has long imported torch._dynamo
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_first_optimiser_of_a_fresh_process_imports_the_preloaded_module():
    # what the preload is for: without it, creating the first optimiser imports it
    code = ("import sys, torch\nassert 'torch._dynamo' not in sys.modules\n"
            "torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))])\n"
            "print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


class _Spy:
    """Stands in for the preload thread: records when it is waited for."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def join(self, timeout=None) -> None:
        self.calls.append("join")


def test_train_waits_for_the_import_before_its_budget_starts(monkeypatch):
    from napari_selfdenoise.core import training
    from napari_selfdenoise.core.config import default_config
    from napari_selfdenoise.core.events import run_to_end
    from napari_selfdenoise.core.samples import phantom_2d

    calls: list = []
    real_clock = training.budget_clock

    def clock(config):
        calls.append("clock")
        return real_clock(config)

    monkeypatch.setattr(training, "preload_optimiser", lambda: _Spy(calls))
    monkeypatch.setattr(training, "budget_clock", clock)
    cfg = default_config("n2s", steps=2, batch_size=2, patch_size=(32, 32), seed=0,
                         network={"depth": 1, "base_filters": 4})
    run_to_end(training.train(phantom_2d((64, 64), seed=0).noisy, cfg, axes="YX"))
    assert calls[:2] == ["join", "clock"]


def test_compare_waits_for_the_import_before_its_clock_starts(monkeypatch):
    from napari_selfdenoise.core import compare as compare_mod

    calls: list = []

    class Clock:
        def __init__(self, config) -> None:
            calls.append("clock")
            raise RuntimeError("stop here")

    monkeypatch.setattr(compare_mod, "preload_optimiser", lambda: _Spy(calls))
    monkeypatch.setattr(compare_mod, "Clock", Clock)
    with pytest.raises(RuntimeError, match="stop here"):
        compare_mod._Run(None, None, None, None)
    assert calls == ["join", "clock"]
