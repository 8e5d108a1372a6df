"""`qtc report` as a researcher uses it day to day (issue 30): plain `qtc run` folders side by
side, grid variants compared per model, no "best" the data cannot support, the weights sentence
of the space's normalisation, only written files listed, failed trials shown whole.

The folders are written here (no training): resolved.json, metrics.json and selection.json as a
run writes them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtc.cli import main
from qtc.errors import QtcError
from qtc.tasks.experiments.report import best_rows, write_report

LABELS = {"diffqas": "DiffQAS-QT", "classical": "classical", "fixed:0": "config 1 (A)"}


def _run_folder(path: Path, *, seed: int, lr: float, test: dict[str, float], kind: str = "forecast",
                norm: str = "raw", epochs: int = 2) -> Path:
    """A finished plain run folder of task `toy` with these models' final test metric."""
    key = "test_mse" if kind == "forecast" else "test_accuracy"
    path.mkdir(parents=True)
    (path / "resolved.json").write_text(json.dumps({
        "task": {"name": "toy", "kind": kind, "data": {"dataset": "narma5"},
                 "train": {"lr": lr, "seed": 0, "epochs": 100, "line": 3, "column": 1}},
        "settings": {}, "options": {"models": list(test), "epochs": epochs, "seed": seed, "threads": 1},
        "program": {"candidates": ["A", "B"], "weights": ["A", "B"], "weights_norm": norm}}))
    rows = []
    for model, value in test.items():
        for e in range(1, epochs + 1):
            row = {"model": model, "label": LABELS[model], "epoch": e, key: value * (1 + (epochs - e)),
                   key.replace("test", "train"): value, "train_loss": value, "seconds": 0.5}
            if model == "diffqas":
                row["structural_weights"] = [0.7, 0.3]
            rows.append(row)
    (path / "metrics.json").write_text(json.dumps(rows))
    return path


def test_plain_run_folders_side_by_side_as_variants(tmp_path):
    runs = [_run_folder(tmp_path / f"r{i}", seed=seed, lr=lr, test={"diffqas": v, "classical": 2 * v})
            for i, (seed, lr, v) in enumerate([(0, 0.01, 1e-3), (1, 0.01, 2e-3), (0, 0.1, 5e-3),
                                               (1, 0.1, 6e-3)])]
    with pytest.raises(QtcError, match="needs -o"):
        write_report(runs)
    rep = write_report(runs, tmp_path / "rep")
    md = rep.markdown.read_text()
    # same settings, other seed: one group over seeds; another lr: a variant named by it
    assert "### toy@train.lr=0.01 (forecast" in md and "### toy@train.lr=0.1 (forecast" in md
    assert "| DiffQAS-QT | train.lr=0.1 | 0.005500 |" in md
    assert "| DiffQAS-QT | train.lr=0.01 | 0.001500 |" in md
    assert (tmp_path / "rep" / "variants_toy.png").stat().st_size > 0
    # the CLI takes several folders too; a missing one is named
    assert main(["report", *map(str, runs), "-o", str(tmp_path / "cli")]) == 0
    assert main(["report", str(tmp_path / "nope")]) == 2


def test_one_run_folder_is_reported(tmp_path, capsys):
    run = _run_folder(tmp_path / "run", seed=0, lr=0.01, test={"diffqas": 0.9, "fixed:0": 0.8},
                      kind="classify", norm="softmax")
    assert main(["report", str(run)]) == 0
    md = (run / "report" / "report.md").read_text()
    assert "| DiffQAS-QT | 0.9000 |" in md
    # the weights are the softmax's (what the model mixes), not "raw ... may be negative"
    assert "softmax of the trainable weights" in md and "may be negative" not in md
    # a classify report writes no Table II, and does not list it
    assert not (run / "report" / "table2.md").exists()
    assert "table2" not in md
    listed = {f.name for f in rep_files(run / "report")}
    assert listed >= {"summary.csv", "weights.csv", "trials.csv"}


def rep_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix != ".png"]


def _row(label, values):
    import numpy as np
    v = np.asarray(values, dtype=float)
    return {"label": label, "n": len(v), "median": float(np.median(v)), "min": float(v.min()),
            "max": float(v.max())}


def test_best_needs_three_seeds_and_ranges_apart():
    # two seeds each: too few to rank, whatever the medians
    best, note = best_rows([_row("a", [1, 2]), _row("b", [5, 6])], higher=True)
    assert best == [] and "fewer than 3" in note
    # three seeds, overlapping ranges: no claim
    best, note = best_rows([_row("a", [1, 2, 9]), _row("b", [5, 6, 7])], higher=True)
    assert best == [] and "overlaps a" in note
    # three seeds, ranges apart: the claim is made
    rows = [_row("a", [1, 2, 3]), _row("b", [5, 6, 7])]
    best, note = best_rows(rows, higher=True)
    assert best == [rows[1]] and note == ""
    best, _ = best_rows(rows, higher=False)
    assert best == [rows[0]]


def test_a_failed_trial_shows_its_whole_error_aligned(tmp_path):
    folder = tmp_path / "sweep" / "toy" / "fixed_0" / "seed0"
    folder.mkdir(parents=True)
    message = "MNIST data not found. Looked in:\n  /a/b (absent)\n  /c/d (absent)\nTo fix: pass --data-root DIR."
    (folder / "trial.json").write_text(json.dumps({"status": "failed", "task": "toy", "model": "fixed:0",
                                                   "seed": 0, "kind": "classify", "attempts": 1,
                                                   "error": message}))
    _run_folder(tmp_path / "sweep" / "toy" / "diffqas" / "seed0", seed=0, lr=0.1, test={"diffqas": 0.7},
                kind="classify")
    (tmp_path / "sweep" / "toy" / "diffqas" / "seed0" / "trial.json").write_text(json.dumps(
        {"status": "done", "task": "toy", "model": "diffqas", "seed": 0, "kind": "classify", "attempts": 1}))
    md = write_report(tmp_path / "sweep").markdown.read_text()
    row = next(line for line in md.splitlines() if line.startswith("| config 1"))
    header = next(line for line in md.splitlines() if line.startswith("| model | median"))
    assert row.count(" | ") == header.count(" | ") and "no finished seed" in row
    assert "/c/d (absent)<br>To fix: pass --data-root DIR." in md
    assert "To fix" in (tmp_path / "sweep" / "report" / "trials.csv").read_text()


def test_the_report_says_how_many_examples_the_runs_used(tmp_path):
    """examples.json (train/test after --limit, the class filter and windowing) in report.md."""
    runs = [_run_folder(tmp_path / f"r{seed}", seed=seed, lr=0.01, test={"diffqas": 0.9}, kind="classify")
            for seed in (0, 1)]
    for run in runs:
        (run / "examples.json").write_text(json.dumps({"train": 1000, "test": 500, "fit": 800,
                                                       "validation": 200}))
    md = write_report(runs, tmp_path / "rep").markdown.read_text()
    assert "Examples per run: 1,000 train (800 fit + 200 validation), 500 test" in md
    (runs[1] / "examples.json").write_text(json.dumps({"train": 200, "test": 100}))
    md = write_report(runs, tmp_path / "rep2").markdown.read_text()
    assert "Examples per run differ" in md and "200 train, 100 test (1 runs)" in md
