"""Tables and target checks of docs/benchmarks.md section 8 from compare_quality.py JSONL.

Usage::

    python benchmarks/compare_table.py results/*.jsonl
"""

from __future__ import annotations

import json
import sys


def est(x: dict) -> float:
    """The estimated PSNR of the delivered output (of the scored form in older files)."""
    return x.get("est_delivered_psnr", x["est_psnr"])


def true(x: dict) -> float:
    """The true PSNR of what ``est`` estimates, on the scoring region."""
    return x.get("true_region_delivered_psnr", x["true_region_psnr"])


def best_output(c: dict) -> tuple[str, float]:
    """The true best of what compare could have handed out: every candidate's delivered
    output, and a network's plain pass where it handed out its J-invariant form."""
    outs = [(x["name"], x["psnr"]) for x in c.values()] + [
        (x["name"] + " (plain)", x["psnr_plain"]) for x in c.values() if "psnr_plain" in x]
    return max(outs, key=lambda o: o[1])


def main(paths: list[str]) -> None:
    rows = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    singles = {(r["dataset"], r["image"]): r for r in rows if "candidates" not in r}
    comps = [r for r in rows if "candidates" in r]
    print("| data | image | noisy | pick | pick PSNR | true best | best filter | "
          "single n2s (same budget) | max abs(est - true) | noise corr. |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    errs, within_best, above_filter, vs_single, no_blend = [], [], [], [], []
    for r in comps:
        c = {x["name"]: x for x in r["candidates"]}
        pick = c[r["pick"]]
        # the pick had there been no blend: the first single candidate of the ranking
        single_pick = next(x for x in r["candidates"] if x["kind"] != "blend")
        no_blend.append(pick["psnr"] - single_pick["psnr"])
        best_name, best_psnr = best_output(c)
        filt = max((x for x in c.values() if x["kind"] == "filter"), key=lambda x: x["psnr"])
        e = [abs(est(x) - true(x)) for x in c.values()]
        errs += e
        within_best.append(best_psnr - pick["psnr"])
        above_filter.append(pick["psnr"] - filt["psnr"])
        s = r.get("single_psnr") or singles.get((r["dataset"], r["image"]), {}).get(
            "single_psnr")
        if s is not None:
            vs_single.append(pick["psnr"] - s)
        single = f"{s:.2f}" if s is not None else "-"
        print(f"| {r['dataset']} | {r['image']} | {r['noisy_psnr']:.2f} | {r['pick']} | "
              f"{pick['psnr']:.2f} | {best_name} {best_psnr:.2f} | {filt['name']} "
              f"{filt['psnr']:.2f} | {single} | {max(e):.2f} | {r['noise_correlation']:.2f} |")
    print("\n| data | image | candidate | score | est. PSNR, J-inv. form | true, J-inv. form "
          "| est. PSNR, delivered [range] | true, delivered (region) | true, delivered "
          "(whole image) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in comps:
        for x in r["candidates"]:
            lo, hi = x.get("est_delivered_range", x["est_range"])
            print(f"| {r['dataset']} | {r['image']} | {x['name']}{' (pick)' if x['name'] == r['pick'] else ''} "
                  f"| {x['score']:.4g} | {x['est_psnr']:.2f} | {x['true_region_psnr']:.2f} | "
                  f"{est(x):.2f} [{lo:.2f}, {hi:.2f}] | {true(x):.2f} | {x['psnr']:.2f} |")
            if "psnr_plain" in x:  # handed out its J-invariant form; the plain pass it kept back
                print(f"| {r['dataset']} | {r['image']} | {x['name']} plain pass (not handed "
                      f"out) | - | - | - | {x['est_plain_psnr']:.2f} (Stein) | "
                      f"{x['true_region_plain_psnr']:.2f} | {x['psnr_plain']:.2f} |")
    for ds in sorted({r["dataset"] for r in comps}):
        e = [abs(est(x) - true(x)) for r in comps if r["dataset"] == ds
             for x in r["candidates"]]
        e_nw = [abs(est(x) - true(x)) for r in comps if r["dataset"] == ds
                for x in r["candidates"] if x["name"] != "wavelet"]
        print(f"- {ds}: within 1 dB {sum(v <= 1 for v in e)}/{len(e)}; without the wavelet "
              f"{sum(v <= 1 for v in e_nw)}/{len(e_nw)}; median abs error "
              f"{sorted(e)[len(e) // 2]:.2f} dB")
    reg = [abs(est(x) - x["true_region_delivered_registered_psnr"]) for r in comps
           for x in r["candidates"] if "true_region_delivered_registered_psnr" in x]
    if reg:  # the truth registered to the frame (fmd_truth_check.py)
        for ds in sorted({r["dataset"] for r in comps}):
            e = [abs(est(x) - x["true_region_delivered_registered_psnr"]) for r in comps
                 if r["dataset"] == ds for x in r["candidates"]
                 if "true_region_delivered_registered_psnr" in x]
            if e:
                print(f"- {ds}, against the registered truth: within 1 dB "
                      f"{sum(v <= 1 for v in e)}/{len(e)}; median abs error "
                      f"{sorted(e)[len(e) // 2]:.2f} dB")
    n = len(errs)
    if n:
        ok = sum(e <= 1.0 for e in errs)
        print(f"\n- estimated PSNR within 1 dB of the truth: {ok}/{n} = {100 * ok / n:.0f} % "
              f"(target >= 90 %); median abs error {sorted(errs)[n // 2]:.2f} dB")
    if within_best:
        print(f"- pick within 0.2 dB of the true best: {sum(d <= 0.2 for d in within_best)}/"
              f"{len(within_best)} images (worst {max(within_best):.2f} dB below)")
        print(f"- pick at or above the best calibrated filter: "
              f"{sum(d >= 0 for d in above_filter)}/{len(above_filter)} images (min "
              f"{min(above_filter):+.2f} dB, mean {sum(above_filter) / len(above_filter):+.2f})")
    if any(no_blend):
        print(f"- pick against the pick without the blend: mean {sum(no_blend) / len(no_blend):+.2f} "
              f"dB (min {min(no_blend):+.2f}, max {max(no_blend):+.2f})")
    if vs_single:
        print(f"- pick at or above the single method with the same budget: "
              f"{sum(d >= 0 for d in vs_single)}/{len(vs_single)} images (mean "
              f"{sum(vs_single) / len(vs_single):+.2f} dB, min {min(vs_single):+.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
