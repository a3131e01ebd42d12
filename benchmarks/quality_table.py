"""Merge ``quality_methods.py --json`` outputs into one markdown table with a summary.

For every image: the noisy PSNR, every method's PSNR, the calibrated classical filter, the
best network and its margin over the classical filter. Then per data set: how often the
best network beats the filter, the mean margin, and the mean PSNR of each method.

Usage::

    python benchmarks/quality_table.py a.jsonl b.jsonl [--reference section2.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """``{(dataset, image): {"noisy": dB, method: dB, ...}}`` (later lines win)."""
    cells: dict[tuple[str, str], dict] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            cell = cells.setdefault((row["dataset"], row["image"]), {})
            cell["noisy"] = row["noisy_psnr"]
            cell[row["method"]] = row["psnr"]
            if row["method"] == "classical":
                cell["classical_name"] = f"{row.get('denoiser')} {row.get('value', 0):.3g}"
    return cells


def render(cells: dict, methods: list[str]) -> str:
    """The table and the per-data-set summary as markdown."""
    nets = [m for m in methods if m != "classical"]
    head = ["data", "image", "noisy", *nets, "classical (filter)", "best network - classical"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary: dict[str, list] = {}
    # the methods run on each data set (Noise2Noise runs on pairs only)
    per_set: dict[str, set] = {}
    for (dataset, _), c in cells.items():
        per_set.setdefault(dataset, set()).update(m for m in nets if m in c)
    for (dataset, image), c in cells.items():
        got = {m: c[m] for m in nets if m in c}
        best = max(got.values()) if got else None
        margin = best - c["classical"] if best is not None and "classical" in c else None
        row = [dataset, image, f"{c['noisy']:.2f}"]
        row += [(f"**{c[m]:.2f}**" if c[m] == best else f"{c[m]:.2f}") if m in c else "-"
                for m in nets]
        row.append(f"{c['classical']:.2f} ({c['classical_name']})" if "classical" in c else "-")
        row.append(f"{margin:+.2f}" if margin is not None else "-")
        out.append("| " + " | ".join(row) + " |")
        if margin is not None and set(got) == per_set[dataset]:
            summary.setdefault(dataset, []).append((margin, c))
    out.append("")
    for dataset, items in summary.items():
        margins = [m for m, _ in items]
        wins = sum(m > 0 for m in margins)
        run = [m for m in nets if m in per_set[dataset]] + ["classical"]
        means = {m: sum(c[m] for _, c in items) / len(items) for m in run}
        ranked = ", ".join(f"{m} {v:.2f}" for m, v in sorted(means.items(), key=lambda kv: -kv[1]))
        out.append(f"- {dataset} ({len(items)} complete images): best network above the "
                   f"classical filter on {wins}/{len(items)}, mean margin "
                   f"{sum(margins) / len(margins):+.2f} dB (min {min(margins):+.2f}, max "
                   f"{max(margins):+.2f}); mean PSNR by method: {ranked}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    cells = load(args.files)
    methods = list(dict.fromkeys(m for c in cells.values() for m in c
                                 if m not in ("noisy", "classical_name")))
    methods = [m for m in methods if m != "classical"] + ["classical"]
    print(render(cells, methods))


if __name__ == "__main__":
    main()
