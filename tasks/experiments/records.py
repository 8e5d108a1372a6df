"""The trial folders of a sweep as records: what `qtc report` and Table II read.

`collect(root)` finds every OUT/<task>/<model>/seed<k>/ folder (trial.json, resolved.json,
metrics.json, selection.json, baselines.json, episodes.csv) and returns one `TrialRecord` per
folder; `final_metric` is the one number a trial reports: the test accuracy (classify) or test
MSE (forecast) at the epoch its selection rule picked (selection.json; the last epoch for older
runs), or the mean reward of the last `window` episodes (a3c).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.runs.rundir import atomic_text, csv_text

# (metric key, display name, higher is better, log-scale curves) per task kind
METRICS = {"classify": ("test_accuracy", "test accuracy", True, False),
           "forecast": ("test_mse", "test MSE", False, True),
           "a3c": ("reward", "mean reward (last window)", True, False)}


@dataclass
class TrialRecord:
    """One trial folder as found on disk."""
    key: str
    task: str
    model: str
    seed: int
    status: str                       # done | failed | pending
    kind: str = ""
    dataset: str = ""
    label: str = ""
    attempts: int = 0
    seconds: float | None = None
    error: str | None = None
    rows: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    weight_labels: list = field(default_factory=list)   # one per structural weight
    episodes: dict | None = None
    window: int = 1000
    selected: int | None = None       # the epoch selection.json names (None: the last)
    baselines: dict = field(default_factory=dict)

    @property
    def reported(self) -> dict | None:
        """The metrics row the run reports: its selected epoch's, else its last."""
        pick = [r for r in self.rows if r.get("epoch") == self.selected]
        return pick[-1] if pick else (self.rows[-1] if self.rows else None)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def read_json(path: Path):
    """A JSON file's value, or None (missing or unreadable: a trial folder may be half written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect(root: Path | str) -> list[TrialRecord]:
    """Every trial folder under `root` (OUT/<task>/<model>/seed<k>)."""
    root = Path(root)
    if not root.is_dir():
        raise QtcError(f"sweep folder {root} not found")
    folders = sorted({p.parent for pat in ("*/*/seed*/trial.json", "*/*/seed*/resolved.json")
                      for p in root.glob(pat)})
    out = [_record(root, f) for f in folders]
    if not out:
        raise QtcError(f"{root} holds no trials (expected <task>/<model>/seed<k>/ folders written by qtc sweep)")
    return sorted(out, key=lambda r: (r.task, naming.order(r.model), r.seed))


def _record(root: Path, folder: Path) -> TrialRecord:
    status = read_json(folder / "trial.json") or {}
    resolved = read_json(folder / "resolved.json") or {}
    task = resolved.get("task") or {}
    model = status.get("model") or naming.from_folder(folder.parent.name)
    rec = TrialRecord(key=str(folder.relative_to(root)), task=status.get("task") or folder.parent.parent.name,
                      model=model, seed=int(status.get("seed", folder.name.removeprefix("seed") or 0)),
                      status=status.get("status", "pending"), kind=status.get("kind") or task.get("kind", ""),
                      dataset=((task.get("data") or {}).get("dataset") or ""),
                      attempts=int(status.get("attempts") or 0), seconds=status.get("seconds"),
                      error=status.get("error"))
    program = resolved.get("program") or {}
    rec.candidates = list(program.get("candidates") or [])
    rec.weight_labels = list(program.get("weights") or rec.candidates)   # older runs: candidates
    rec.window = int(((task.get("a3c") or {}).get("window")) or 1000)
    rows = read_json(folder / "metrics.json") or []
    rec.rows = [r for r in rows if r.get("model") == model]
    rec.label = rec.rows[-1]["label"] if rec.rows else naming.label(model, rec.candidates)
    rec.selected = ((read_json(folder / "selection.json") or {}).get(model) or {}).get("epoch")
    rec.baselines = read_json(folder / "baselines.json") or {}
    eps = _find_episodes(folder, model)
    if eps is not None:
        rec.episodes = eps
    return rec


def _find_episodes(folder: Path, model: str) -> dict | None:
    """An A3C episode log (episode, reward columns) in the trial folder, if there is one."""
    stem = naming.folder(model)
    for p in (folder / "episodes.csv", folder / stem / "episodes.csv", folder / "models" / stem / "episodes.csv"):
        if p.is_file():
            with p.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows and "reward" in rows[0]:
                return {"episode": np.array([int(r.get("episode") or i + 1) for i, r in enumerate(rows)]),
                        "reward": np.array([float(r["reward"]) for r in rows])}
    return None


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------

def final_metric(rec: TrialRecord) -> float | None:
    """The trial's final value of its kind's metric (None when unfinished or missing)."""
    if rec.status != "done":
        return None
    if rec.kind == "a3c" or (rec.episodes is not None and not rec.rows):
        if rec.episodes is None or not len(rec.episodes["reward"]):
            return None
        return float(rec.episodes["reward"][-rec.window:].mean())
    if not rec.rows:
        return None
    key = METRICS.get(rec.kind, ("test_loss",))[0]
    value = rec.reported.get(key, rec.reported.get("test_loss"))
    return float(value) if value is not None else None


def seed_values(records: list[TrialRecord], ties: dict | None = None) -> dict[str, dict[str, dict[int, float]]]:
    """{task: {model: {seed: reported metric}}}; a tied candidate gets its trained twin's values."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for rec in records:
        value = final_metric(rec)
        if value is None:
            continue
        twins = [m for m, twin in ((ties or {}).get(rec.task) or {}).items() if twin == rec.model]
        for model in [rec.model] + twins:
            out.setdefault(rec.task, {}).setdefault(model, {})[rec.seed] = value
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


# --------------------------------------------------------------------------------------------
# Writing: numbers as the report shows them, tables as CSV
# --------------------------------------------------------------------------------------------

def fmt_metric(v: float | None, kind: str = "") -> str:
    """A metric value of a task kind: MSEs (and small values) with 6 decimals, else 4."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if kind == "forecast" or abs(v) < 1e-2:
        return f"{v:.6f}" if abs(v) >= 5e-6 else f"{v:.2e}"
    return f"{v:.4f}"


def write_csv(path: Path, rows: list[dict]) -> Path:
    """`rows` as a CSV file (written atomically); a dict or list value as its JSON text."""
    return atomic_text(path, csv_text([{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                                        for k, v in r.items()} for r in rows]))
