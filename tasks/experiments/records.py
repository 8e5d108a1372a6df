"""The trial folders of a sweep, or plain run folders, as records: what `qtc report` and Table II read.

`collect(*roots)` finds every OUT/<task>/<model>/seed<k>/ folder of a sweep (trial.json,
resolved.json, metrics.json, selection.json, baselines.json, episodes.csv) and returns one
`TrialRecord` per folder. A root may also be a plain `qtc run` folder (resolved.json at its top),
or a folder of them: each model trained there is one record, its seed the run's. Plain runs of
one task that differ in a setting other than the seed are variants of the task (as a --grid
point is), named by the settings that differ: `narma5@train.lr=0.001`.

`final_metric` is the one number a trial reports: the test accuracy (classify) or test MSE
(forecast) at the epoch its selection rule picked (selection.json; the last epoch of a model
still training, which has no entry there yet), the mean reward of the last `window` episodes
(a3c), or the metric its folder's metric.json names (a Python experiment's).
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
from qtc.tasks.runs.rundir import RESOLVED, atomic_text, csv_text, read_json_or_none

# (metric key, display name, higher is better, log-scale curves) per task kind
METRICS = {"classify": ("test_accuracy", "test accuracy", True, False),
           "forecast": ("test_mse", "test MSE", False, True),
           "a3c": ("reward", "mean reward (last window)", True, False)}
OWN_METRIC = "metric.json"     # a run's own metric (a Python experiment's, tasks/kinds/python.py)


def metric_of(kind: str, own: dict | None = None) -> tuple[str, str, bool, bool]:
    """(key, display name, higher is better, log-scale curves) of a run's reported metric: the
    one its run folder names (metric.json: {"key", "name", "higher"}), else its kind's, else
    the test loss."""
    if own:
        return own["key"], own["name"], bool(own["higher"]), False
    return METRICS.get(kind, ("test_loss", "test loss", False, False))


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
    weights_norm: str | None = None   # the space's `weights` normalisation (None: not recorded)
    twins: list = field(default_factory=list)      # merged candidates reported with this trial
    examples: dict = field(default_factory=dict)   # examples.json: train/test counts after --limit etc.
    env: str = ""                     # an A3C task's environment id (its reward threshold)
    metric: dict | None = None        # metric.json: the run's own metric (metric_of)

    @property
    def reported(self) -> dict | None:
        """The metrics row the run reports: its selected epoch's, else its last."""
        pick = [r for r in self.rows if r.get("epoch") == self.selected]
        return pick[-1] if pick else (self.rows[-1] if self.rows else None)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def collect(*roots: Path | str) -> list[TrialRecord]:
    """Every trial under the `roots`: sweep folders (OUT/<task>/<model>/seed<k>), plain run
    folders, or folders holding run folders."""
    out: list[TrialRecord] = []
    runs: list[Path] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise QtcError(f"no such folder: {root} (qtc report takes sweep folders or qtc run folders)")
        trials = sorted({p.parent for pat in ("*/*/seed*/trial.json", "*/*/seed*/resolved.json")
                         for p in root.glob(pat)})
        prefix = "" if len(roots) == 1 else f"{root.name}/"
        out += [rec for f in trials for rec in _records(root, f, prefix)]
        if (root / RESOLVED).is_file():
            runs.append(root)
        elif not trials:
            runs += sorted(p.parent for p in root.glob(f"*/{RESOLVED}"))
    out += _plain_runs(runs)
    if not out:
        raise QtcError(f"{', '.join(map(str, roots))} holds no trials (expected a qtc sweep folder "
                       "(<task>/<model>/seed<k>/), qtc run folders (resolved.json), or a folder of them)")
    return sorted(out, key=lambda r: (r.task, naming.order(r.model), r.seed))


def _records(root: Path, folder: Path, prefix: str = "") -> list[TrialRecord]:
    """The trial folder's record, and one more per companion model trained in its run (`found`
    after DiffQAS-QT: trial.json's `companions`), keyed `<folder> [<model>]`. Such a folder's
    records each take their seconds from their own epochs (the trial's time is theirs together)."""
    status = read_json_or_none(folder / "trial.json") or {}
    main = _record(root, folder, prefix, status)
    companions = list(status.get("companions") or [])
    if not companions:
        return [main]
    out = [main] + [_record(root, folder, prefix, status, model) for model in companions]
    for rec in out:
        rec.seconds = round(sum(r.get("seconds") or 0 for r in rec.rows), 3) or None
    return out


def _record(root: Path, folder: Path, prefix: str = "", status: dict | None = None,
            companion: str | None = None) -> TrialRecord:
    status = status if status is not None else read_json_or_none(folder / "trial.json") or {}
    resolved = read_json_or_none(folder / RESOLVED) or {}
    task = resolved.get("task") or {}
    model = companion or status.get("model") or naming.from_folder(folder.parent.name)
    key = prefix + str(folder.relative_to(root)) + (f" [{companion}]" if companion else "")
    rec = TrialRecord(key=key, task=status.get("task") or folder.parent.parent.name,
                      model=model, seed=int(status.get("seed", folder.name.removeprefix("seed") or 0)),
                      status=status.get("status", "pending"), kind=status.get("kind") or task.get("kind", ""),
                      dataset=((task.get("data") or {}).get("dataset") or ""),
                      attempts=int(status.get("attempts") or 0), seconds=status.get("seconds"),
                      error=status.get("error"), twins=[] if companion else list(status.get("twins") or []))
    _read_run(rec, folder, resolved)
    return rec


def _read_run(rec: TrialRecord, folder: Path, resolved: dict) -> None:
    """Fill `rec` (its model set) from the run folder's files."""
    task = resolved.get("task") or {}
    program = resolved.get("program") or {}
    rec.candidates = list(program.get("candidates") or [])
    rec.weight_labels = list(program.get("weights") or [])
    rec.weights_norm = program.get("weights_norm")
    rec.examples = read_json_or_none(folder / "examples.json") or {}
    rec.metric = read_json_or_none(folder / OWN_METRIC)
    rec.window = int(((task.get("a3c") or {}).get("window")) or 1000)
    rec.env = (task.get("env") or {}).get("id") or ""
    rows = read_json_or_none(folder / "metrics.json", list) or []
    rec.rows = [r for r in rows if r.get("model") == rec.model]
    rec.label = rec.rows[-1]["label"] if rec.rows else naming.label(rec.model, rec.candidates)
    rec.selected = ((read_json_or_none(folder / "selection.json") or {}).get(rec.model) or {}).get("epoch")
    rec.baselines = read_json_or_none(folder / "baselines.json") or {}
    eps = _find_episodes(folder, rec.model)
    if eps is not None:
        rec.episodes = eps


# Recorded settings that do not make two plain runs different experiments: where and how they
# ran, which models (one folder may hold DiffQAS-QT, another the baselines) and the seed itself.
_NOT_A_VARIANT = {"options.models", "options.seed", "options.data_root", "options.download",
                  "options.backend", "options.threads", "options.jobs", "options.progress",
                  "options.tensorboard", "options.workers", "task.train.seed", "task.train.seeds"}


def _plain_runs(folders: list[Path]) -> list[TrialRecord]:
    """One record per model trained in each plain run folder. Runs of one task whose settings
    differ (other than the seed, the models and where they ran) are variants `<task>@<what
    differs>`; two runs of one variant with the same seed are told apart by their folder names."""
    runs = []
    for folder in folders:
        resolved = read_json_or_none(folder / RESOLVED) or {}
        task = resolved.get("task") or {}
        setting = {k: v for k, v in _flat({"task": task, "options": resolved.get("options") or {},
                                            "set": resolved.get("settings") or {}}).items()
                   if k not in _NOT_A_VARIANT and not k.endswith((".line", ".column"))}
        runs.append((folder, resolved, task.get("name") or folder.name, setting))
    out = []
    for name in dict.fromkeys(r[2] for r in runs):
        mine = [r for r in runs if r[2] == name]
        differ = sorted({k for _, _, _, s in mine for k in s if len({repr(x[3].get(k)) for x in mine}) > 1})
        seen: set = set()
        for folder, resolved, _, setting in mine:
            options = resolved.get("options") or {}
            seed = int(options.get("seed") or 0)
            variant = ",".join(f"{k.removeprefix('task.').removeprefix('options.').removeprefix('set.')}="
                               f"{_short(setting.get(k))}" for k in differ)
            models = options.get("models") or []
            if any((variant, m, seed) in seen for m in models):
                variant = f"{variant},{folder.name}" if variant else folder.name
            for model in models:
                seen.add((variant, model, seed))
                rec = TrialRecord(key=f"{folder.name}/{naming.folder(model)}",
                                  task=f"{name}@{variant}" if variant else name, model=model, seed=seed,
                                  status="pending", kind=task.get("kind", ""),
                                  dataset=(task.get("data") or {}).get("dataset") or "")
                _read_run(rec, folder, resolved)
                rec.status = "done" if _finished(rec, options) else "pending"
                rec.seconds = sum(r.get("seconds") or 0 for r in rec.rows) or None
                out.append(rec)
    return out


def _finished(rec: TrialRecord, options: dict) -> bool:
    """A plain run's model is done when it reached the run's budget (epochs; an A3C model when
    it logged its episodes)."""
    if rec.kind == "a3c":
        return rec.episodes is not None and len(rec.episodes["reward"]) > 0
    return bool(rec.rows) and rec.rows[-1].get("epoch", 0) >= int(options.get("epochs") or 0)


def _flat(value, prefix: str = "") -> dict:
    """{"a.b.c": leaf} of nested dicts (lists are leaves)."""
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short(value) -> str:
    """A setting's value as a variant name shows it (lists without spaces)."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)


def _find_episodes(folder: Path, model: str) -> dict | None:
    """An A3C episode log (episode, reward columns) in the trial folder, if there is one; a
    merged twin's is the log of the model trained for it (its summary.json's `trained_as`)."""
    twin = (read_json_or_none(folder / "a3c" / naming.folder(model) / "summary.json") or {}).get("trained_as")
    stem = naming.folder(twin or model)
    for p in (folder / "episodes.csv", folder / stem / "episodes.csv", folder / "models" / stem / "episodes.csv",
              folder / "a3c" / stem / "episodes.csv"):
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
    key = metric_of(rec.kind, rec.metric)[0]
    value = rec.reported.get(key, rec.reported.get("test_loss"))
    return float(value) if value is not None else None


LAST = 10   # the statistic that does not hinge on one epoch: the median over the last LAST epochs


def curve_of(rec: TrialRecord) -> list[float]:
    """The trial's reported metric at every epoch (empty: unfinished, an A3C trial, no metric)."""
    if rec.status != "done" or not rec.rows:
        return []
    key = metric_of(rec.kind, rec.metric)[0]
    return [float(r[key]) for r in rec.rows if r.get(key) is not None]


def last_epochs(rec: TrialRecord) -> tuple[float | None, float | None]:
    """(the metric at the last epoch, its median over the last `LAST` epochs) of a trial, beside
    the selected epoch's `final_metric`: how much the reported number hinges on one epoch."""
    curve = curve_of(rec)
    return (curve[-1], float(np.median(curve[-LAST:]))) if curve else (None, None)


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


def ties_of(records: list[TrialRecord]) -> dict[str, dict[str, str]]:
    """{task: {merged candidate: the model trained for it}} from the trials' own records
    (trial.json's `twins`), for reports of several folders, which have no one sweep.json."""
    out: dict[str, dict[str, str]] = {}
    for rec in records:
        for twin in rec.twins:
            out.setdefault(rec.task, {})[twin] = rec.model
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
