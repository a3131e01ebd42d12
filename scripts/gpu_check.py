"""``make gpu-check``: every CUDA check and figure in one command (under 5 minutes).

Runs the ``gpu``-marked tests, ``benchmarks/predict_roofline.py`` and the training-
throughput benchmark on CUDA and writes what they print, with the machine's header, to one
file (``--out``, default ``gpu_check.txt``). Without a CUDA device it fails at once with a
clear message. ``--device cpu --quick`` runs the same plumbing on tiny inputs (the test
suite does, so this script keeps working where no GPU is lent).

Usage::

    make gpu-check                      # or: python scripts/gpu_check.py [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

#: (name, command, timeout in seconds); sized so the whole check stays under 5 minutes
FULL = [
    ("gpu-marked tests", ["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                          "--no-header", "-rs", str(REPO / "tests")], 120),
    ("predict_roofline", [str(BENCH / "predict_roofline.py"), "--repeats", "2"], 120),
    ("train_throughput", [str(BENCH / "train_throughput.py"), "--device", "cuda",
                          "--steps", "30", "--rounds", "2"], 90),
]
#: the plumbing on tiny CPU inputs (tests): generous limits, as a CPU without native bf16
#: emulates the bf16 rows (train_throughput: 50 s on an idle AVX2 EPYC, over 120 s loaded)
QUICK = [
    ("predict_roofline", [str(BENCH / "predict_roofline.py"), "--device", "cpu", "--planes",
                          "1", "--size", "96", "--depth-3d", "4", "--size-3d", "32",
                          "--matmul", "128", "--repeats", "1"], 300),
    ("train_throughput", [str(BENCH / "train_throughput.py"), "--device", "cpu", "--steps",
                          "1", "--rounds", "1"], 300),
]


def cuda_problem() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed in this Python"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} sees no CUDA device (a CPU build, no GPU or no "
                "driver): run `make gpu-check` on a machine with an NVIDIA GPU and a CUDA "
                "build of torch (GPU_PYTHON=python3 picks another interpreter)")
    return None


def run_step(name: str, args: list[str], timeout: int, env: dict) -> tuple[str, int]:
    """Run one step with this interpreter; return its output (stdout + stderr) and code."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, timeout=timeout,
                              capture_output=True, text=True)
        out, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(
            exc.stdout, bytes) else (exc.stdout or "")
        out, code = out + f"\n[timed out after {timeout} s]", 124
    lines = [ln for ln in out.splitlines() if "Warning" not in ln and "warn(" not in ln]
    text = f"## {name} (exit {code}, {time.perf_counter() - t0:.0f} s)\n" + "\n".join(lines)
    return text + "\n", code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "gpu_check.txt")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny inputs (plumbing check)")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        problem = cuda_problem()
        if problem:
            print(f"gpu-check: {problem}", file=sys.stderr)
            return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"),
                                                    env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    sys.path[:0] = [str(BENCH), str(REPO / "src")]
    from machine import header

    report = [f"# make gpu-check, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
              header("auto", args.device), ""]
    steps = QUICK if args.quick else FULL
    worst = 0
    for name, cmd, timeout in steps:
        print(f"gpu-check: {name}…", flush=True)
        text, code = run_step(name, cmd, timeout, env)
        report.append(text)
        print(text, flush=True)
        worst = worst or code
    args.out.write_text("\n".join(report))
    print(f"gpu-check: figures written to {args.out}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
