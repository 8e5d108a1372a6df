"""Golden output of `qtc report` and of the Table II files, from a synthetic sweep folder.

The folder is written here from a fixed generator (no training): a forecast task with
DiffQAS-QT, the paper's 12 configs (one of them tied), the classical LSTM and naive baselines
over three seeds; a second forecast data set with a few models; a one-seed classify task; an
A3C task with episode logs; a failed and an unfinished trial; a `--grid` variant. Every text
file the report writes is compared whole with `tests/golden/report/<file>` (the time of writing
and the folder's path are masked); the PNGs must exist. On a mismatch `<file>.new` is
written beside the golden and the test names both.

    QTC_UPDATE_GOLDEN=1 pytest tests/test_report_golden.py    # rewrite, then review the diff
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np

from qtc.tasks.experiments.report import write_report
from qtc.tasks.experiments.table2 import write_table2

GOLDEN = Path(__file__).resolve().parent / "golden" / "report"
UPDATE = os.environ.get("QTC_UPDATE_GOLDEN") == "1"
# The paper's 12 configurations (Table I order), as a run folder records its candidates.
CANDIDATES = ["H-ent-RX", "H-ent-RY", "H-ent-RZ", "H-cyc-RX", "H-cyc-RY", "H-cyc-RZ",
              "none-ent-RX", "none-ent-RY", "none-ent-RZ", "none-cyc-RX", "none-cyc-RY",
              "none-cyc-RZ"]


def _json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _label(model: str) -> str:
    if model.startswith("fixed:"):
        k = int(model[6:])
        return f"config {k + 1} ({CANDIDATES[k]})"
    return {"diffqas": "DiffQAS-QT", "classical": "classical"}[model]


def _trial(root: Path, task: str, model: str, seed: int, kind: str, *, dataset: str = "",
           rows: list | None = None, status: str | None = "done", error: str | None = None,
           selected: int | None = None, baselines: dict | None = None, episodes=None,
           window: int | None = None) -> None:
    folder = root / task / model.replace(":", "_") / f"seed{seed}"
    task_json = {"kind": kind, "data": {"dataset": dataset} if dataset else None}
    if window:
        task_json["a3c"] = {"window": window}
    _json(folder / "resolved.json", {"task": task_json, "program": {"candidates": CANDIDATES,
                                                                     "weights": CANDIDATES,
                                                                     "weights_norm": "raw"}})
    if status:
        _json(folder / "trial.json", {"status": status, "task": task, "model": model, "seed": seed,
                                      "kind": kind, "attempts": 2 if status == "failed" else 1,
                                      "seconds": 1.5 + seed, "error": error})
    if rows is not None:
        _json(folder / "metrics.json", [{"model": model, "label": _label(model), **r} for r in rows])
    if selected is not None:
        _json(folder / "selection.json", {model: {"epoch": selected, "rule": "train"}})
    if baselines:
        _json(folder / "baselines.json", baselines)
    if episodes is not None:
        with (folder / "episodes.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["episode", "reward"])
            w.writerows((i + 1, f"{r:.4f}") for i, r in enumerate(episodes))


def _forecast_rows(rng, model: str, scale: float, epochs: int = 12) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        test = round(float(scale * (1 + 3 / e) * rng.uniform(0.8, 1.2)), 9)
        row = {"epoch": e, "train_mse": round(test * float(rng.uniform(0.5, 0.9)), 9), "test_mse": test,
               "train_loss": test, "seconds": 0.1}
        if model == "diffqas":
            row["structural_weights"] = [round(float(v), 4) for v in rng.normal(0, 0.3, 12)]
        rows.append(row)
    return rows


def make_sweep(root: Path) -> None:
    rng = np.random.default_rng(7)
    fixed = [f"fixed:{k}" for k in range(12) if k != 2]          # config 3 is tied to config 1
    base = {"last value": {"train_mse": 0.00123, "test_mse": 0.00234},
            "mean": {"train_mse": 0.0456, "test_mse": 0.0567}}
    for seed in (0, 1, 2):
        for i, model in enumerate(["diffqas", *fixed, "classical"]):
            _trial(root, "narma5", model, seed, "forecast", dataset="narma5",
                   rows=_forecast_rows(rng, model, 4e-5 * (1 + i / 4)), selected=7 + seed,
                   baselines=base)
    for model in ("diffqas", "fixed:0", "classical"):
        _trial(root, "bessel", model, 0, "forecast", dataset="bessel",
               rows=_forecast_rows(rng, model, 3e-4))
    _trial(root, "bessel", "fixed:4", 0, "forecast", dataset="bessel", rows=[], status="failed",
           error="training diverged | loss nan\nTraceback ...")
    _trial(root, "bessel", "fixed:5", 0, "forecast", dataset="bessel", status=None)
    for seed in (0, 1):
        _trial(root, "narma5@train.lr=1e-3", "diffqas", seed, "forecast", dataset="narma5",
               rows=_forecast_rows(rng, "diffqas", 6e-5, epochs=4))
    acc = {"majority": {"train_accuracy": 0.5, "test_accuracy": 0.5}}
    for model in ("diffqas", "fixed:1", "classical"):
        rows = [{"epoch": e, "train_accuracy": round(float(rng.uniform(0.6, 1)), 4),
                 "test_accuracy": round(float(rng.uniform(0.6, 1)), 4), "train_loss": 0.3, "seconds": 1.0}
                for e in (1, 2, 3)]
        _trial(root, "mnist", model, 0, "classify", dataset="mnist", rows=rows, baselines=acc)
    for seed in (0, 1):
        for model in ("diffqas", "classical"):
            _trial(root, "grid", model, seed, "a3c", window=5, rows=[],
                   episodes=rng.uniform(0, 1, 30).round(4))
    _json(root / "sweep.json", {"command": "qtc sweep specs/*.task --seeds 3",
                                "overrides": {"epochs": 12}, "set": None, "grid": None,
                                "ties": {"narma5": {"fixed:2": "fixed:0"}}})


def _masked(name: str, data: bytes, root: Path) -> bytes:
    """report.md with the time of writing and the sweep folder's path as placeholders."""
    if name == "report.md":
        data = re.sub(rb"Generated \d{4}-\d\d-\d\d \d\d:\d\d by", b"Generated <time> by", data)
        return data.replace(str(root).encode(), b"<sweep>")
    return data


def test_report_files_match_their_goldens(tmp_path):
    root = tmp_path / "sweep"
    make_sweep(root)
    report = write_report(root)
    out = root / "report"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["a3c_grid.png", "curves_bessel.png", "curves_grid.png", "curves_mnist.png", "curves_narma5.png",
                    "curves_narma5@train.lr=1e-3.png", "variants_narma5.png"]
    assert all((out / p).stat().st_size > 0 for p in pngs)
    assert sorted(p.name for p in report.files) == sorted(p.name for p in out.iterdir())
    got = {p.name: _masked(p.name, p.read_bytes(), root) for p in sorted(out.iterdir()) if p.suffix != ".png"}
    for p in write_table2(root):               # the `qtc table2` preset writes them into the sweep folder
        got[f"preset-{p.name}"] = p.read_bytes()
    assert set(got) >= {"report.md", "summary.csv", "curves.csv", "trials.csv", "table2.md", "table2.csv",
                        "weights.csv", "baselines.csv", "paired.json", "preset-table2.md", "variants.csv"}
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for p in GOLDEN.iterdir():
            p.unlink()
        for name, data in got.items():
            (GOLDEN / name).write_bytes(data)
        return
    bad = []
    for name, data in got.items():
        golden = GOLDEN / name
        if not golden.is_file() or golden.read_bytes() != data:
            golden.with_name(name + ".new").write_bytes(data)
            bad.append(f"{golden} differs: see {golden}.new")
    missing = sorted({p.name for p in GOLDEN.iterdir() if not p.name.endswith(".new")} - set(got))
    assert not bad and not missing, "\n".join(bad + [f"{m}: no longer written" for m in missing])
