#!/usr/bin/env python3
"""Sums an Nsight Compute CSV of gpu__time_duration per kernel name.

    ncu --metrics gpu__time_duration.sum --csv CMD > k.csv
    bench/gpu/kernel-times.py k.csv [STEPS] [--grid]

Prints one line per kernel name (launches, total and mean microseconds, and
the total divided by STEPS: the time per forward step when the profiled run
made STEPS steps of the same shape), the largest first. ncu runs each kernel
alone at base clocks with its caches flushed, so the figures are upper bounds
of the real ones; their proportions are what they are for. --grid keeps
launches of different grid sizes apart (a kernel's decode and prefill shapes).
"""
import csv
import re
import sys
from collections import defaultdict


def short_name(name: str) -> str:
    # Drop template arguments and parameter lists: one line per kernel family.
    name = name.replace("(anonymous namespace)", "").replace("<unnamed>", "")
    name = re.sub(r"\(.*$", "", name)
    depth, out = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).replace("void ", "").strip()[:70]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    args = [a for a in sys.argv[1:] if a != "--grid"]
    by_grid = "--grid" in sys.argv
    steps = float(args[1]) if len(args) > 1 else 1.0
    total = defaultdict(float)
    count = defaultdict(int)
    with open(args[0], newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu prints its own notes first
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "ns")
        scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}.get(unit, 1e-3)
        name = short_name(row["Kernel Name"])
        if by_grid:
            name = f"{name[:50]} {row.get('Grid Size', '')}"
        total[name] += value * scale
        count[name] += 1
    grand = sum(total.values())
    print(f"{'kernel':70} {'launches':>8} {'total us':>10} {'mean us':>9} {'us/step':>9} {'share':>6}")
    for name, us in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"{name:70} {count[name]:8d} {us:10.1f} {us / count[name]:9.2f} {us / steps:9.1f} {us / grand:6.1%}")
    print(f"{'all':70} {sum(count.values()):8d} {grand:10.1f} {'':9} {grand / steps:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
