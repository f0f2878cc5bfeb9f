#!/usr/bin/env python3
"""Standardised residuals of a sigprop-validate result: z = (prediction - measurement) / se.

    python3 scripts/zscores.py RESULT.json [RESULT.json ...]

A formula that is exact up to the measurement's noise gives z with mean ~0 and rms ~1 over
the points; a systematic error shows as a mean away from 0 or an rms well above 1, long
before it shows in a percentile of the relative error. Prints one Markdown table row per
component and quantity, for the paper's formulas and ours. Python standard library only.
"""
import json
import math
import sys

QUANTITIES = ["x_mean", "x_var", "g_var", "x_cov", "g_cov"]
SCORED = {"softmax": ["x_mean", "x_var", "g_var"]}


def stats(zs):
    zs = [z for z in zs if math.isfinite(z)]
    if not zs:
        return "-"
    mean = sum(zs) / len(zs)
    rms = math.sqrt(sum(z * z for z in zs) / len(zs))
    return f"{mean:+.2f} / {rms:.2f}"


def main():
    print("| component | quantity | points | paper: mean / rms of z | ours: mean / rms of z |")
    print("| --- | --- | ---: | ---: | ---: |")
    for path in sys.argv[1:]:
        with open(path) as f:
            points = json.load(f)["points"]
        by_component = {}
        for p in points:
            by_component.setdefault(p["component"], []).append(p)
        for comp, pts in by_component.items():
            for q in SCORED.get(comp, QUANTITIES):
                z = {"paper": [], "best": []}
                for p in pts:
                    se = p["measured"]["se"][q]
                    m = p["measured"]["value"][q]
                    if not se or se <= 0:
                        continue
                    for form in z:
                        pred = p["predicted"][form][q]
                        if pred is not None:
                            z[form].append((pred - m) / se)
                print(f"| {comp} | {q.replace('_', ' ')} | {len(pts)} | {stats(z['paper'])} | {stats(z['best'])} |")


if __name__ == "__main__":
    main()
