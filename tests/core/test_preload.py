"""Torch's one-time optimiser import is paid in the background (core.preload)."""

from __future__ import annotations

import subprocess
import sys

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
