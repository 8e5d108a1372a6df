"""The median over seeds of each model's test accuracy per class, at each run's selected epoch
(selection.json, metrics.json), from the run folders of a K-class task: a markdown table, and
with --csv a file to commit beside the report that a page quotes (docs/results/ten_class.md).

    python bench/per_class.py RUNDIR [RUNDIR ...] [--csv docs/results/X/per_class.csv]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def per_class(roots: list[Path]) -> tuple[list[str], list[list[str]]]:
    by_model: dict[str, list[list[float]]] = {}
    for root in roots:
        for sel in sorted(root.glob("*/*/seed*/selection.json")):
            (_, info), = json.loads(sel.read_text()).items()
            row = next(r for r in json.loads((sel.parent / "metrics.json").read_text()) if r["epoch"] == info["epoch"])
            by_model.setdefault(row["label"], []).append(row["test_class_accuracy"])
    models = sorted(by_model, key=lambda m: (m != "DiffQAS-QT", m == "classical", m))
    k = len(next(iter(by_model.values()))[0])
    rows = [[str(c)] + [f"{statistics.median(r[c] for r in by_model[m]):.3f}" for m in models] for c in range(k)]
    return ["class"] + models, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--csv", type=Path)
    a = ap.parse_args()
    header, rows = per_class(a.runs)
    print("| " + " | ".join(header) + " |\n|---|" + "---:|" * (len(header) - 1))
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    if a.csv:
        with a.csv.open("w", newline="") as f:
            csv.writer(f).writerows([header] + rows)


if __name__ == "__main__":
    main()
