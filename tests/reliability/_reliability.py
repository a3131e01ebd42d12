"""Helpers of the reliability catalogue: a CLI runner that captures the one-line errors,
checksums proving inputs and existing files unchanged, subprocess commands.

Every case keeps its work tiny (32 x 32 images, a 4-filter network, a few steps) so the
whole catalogue runs in well under a few minutes on two CPU cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import os
import subprocess
import sys
from pathlib import Path


SRC = Path(__file__).resolve().parents[2] / "src"
#: training options that keep every CLI training run to a second or two
FAST_TRAIN = ["--steps", "2", "--batch", "2", "--patch", "16", "16", "--depth", "1",
              "--filters", "4", "--device", "cpu", "--precision", "fp32", "--quiet"]


def digest(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file under ``paths`` (folders recursively), by path."""
    out = {}
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.exists():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def listing(folder: Path) -> list[str]:
    """Names in ``folder`` (hidden ones too): stray temporaries show up here."""
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).exists() else []


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``napari-selfdenoise ARGS`` in-process: ``(exit code, stdout, stderr)``."""
    from napari_selfdenoise.cli import main

    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


def one_line_error(err: str, *words: str) -> None:
    """``err`` is exactly one ``error:`` line holding every word, and no traceback."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, err
    for w in words:
        assert w.lower() in errors[0].lower(), (w, errors[0])


def env() -> dict[str, str]:
    """Environment for subprocess runs: this worktree's sources, one thread."""
    src = os.environ.get("RELIABILITY_SRC", str(SRC))  # another tree, e.g. to see it fail
    return {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_selfdenoise", *map(str, args)]


def run_sub(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), env=env(), capture_output=True, text=True,
                          timeout=timeout)
