"""`qtc report DIR`: aggregate a sweep folder into Markdown, CSV and PNG files readable without qtc.

Reads OUT/<task>/<model>/seed<k>/ (trial.json, resolved.json, metrics.json, episodes.csv) and
writes OUT/report/ (or another folder):

    report.md         everything below, with the figures linked
    summary.csv       per task and model: the reported metric's median, IQR, min/max, mean, std, n
                      and per-seed values
    baselines.csv     the naive baselines per task (baselines.json of the trial folders)
    paired.json       DiffQAS-QT against each fixed circuit, seed by seed (qtc.tasks.experiments.paired)
    table2.md/.csv    forecasting: the paper's Table II, ours (median over seeds) beside it
    weights.csv       DiffQAS-QT's final structural weights per task and candidate (mean, std)
    curves.csv        the learning curves behind the PNGs (mean and std over seeds per epoch)
    curves_<task>.png learning curves with a band of one std over seeds (Figs. 5-7, 13-14)
    trials.csv        every trial: status, attempts, seconds, error

The reported metric is the test accuracy (classify) or test MSE (forecast) at the epoch each run's
selection rule picked (selection.json; the last epoch for older runs), or the mean reward of the
last `window` episodes (a3c).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.plots import moving_average_band
from qtc.tasks.runs.rundir import atomic_text, csv_text


LAST = 10   # Table II's supplementary statistic: median test MSE over the last LAST epochs
ROW_ORDER = ["DiffQAS-QT"] + [f"Config {k}" for k in range(1, 13)] + ["classical LSTM"]


# (metric key, display name, higher is better, log-scale curves) per task kind
METRICS = {"classify": ("test_accuracy", "test accuracy", True, False),
           "forecast": ("test_mse", "test MSE", False, True),
           "a3c": ("reward", "mean reward (last window)", True, False)}
CURVE_KEYS = {"classify": ("train_accuracy", "test_accuracy"), "forecast": ("train_mse", "test_mse")}


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

def _read_json(path: Path):
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
    status = _read_json(folder / "trial.json") or {}
    resolved = _read_json(folder / "resolved.json") or {}
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
    rows = _read_json(folder / "metrics.json") or []
    rec.rows = [r for r in rows if r.get("model") == model]
    rec.label = rec.rows[-1]["label"] if rec.rows else naming.label(model, rec.candidates)
    rec.selected = ((_read_json(folder / "selection.json") or {}).get(model) or {}).get("epoch")
    rec.baselines = _read_json(folder / "baselines.json") or {}
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


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(records: list[TrialRecord]) -> list[dict]:
    """Per task and model: mean and std over seeds of the final metric, with the seeds' values."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in records:
        groups.setdefault((r.task, r.model), []).append(r)
    out = []
    for (task, model), recs in groups.items():
        kind = recs[0].kind
        vals = {r.seed: final_metric(r) for r in recs}
        got = [v for v in vals.values() if v is not None]
        mean, std = _mean_std(got) if got else (math.nan, math.nan)
        q = np.percentile(got, [0, 25, 50, 75, 100]) if got else [math.nan] * 5
        epochs = [r.rows[-1]["epoch"] for r in recs if r.rows]
        out.append({"task": task, "kind": kind, "model": model, "label": recs[0].label,
                    "metric": METRICS.get(kind, ("test_loss",))[0], "n": len(got), "mean": mean, "std": std,
                    "median": float(q[2]), "q1": float(q[1]), "q3": float(q[3]), "min": float(q[0]),
                    "max": float(q[4]), "selected_epochs": [r.selected for r in recs if r.selected],
                    "epochs": max(epochs) if epochs else None,
                    "failed": sum(r.status == "failed" for r in recs),
                    "pending": sum(r.status == "pending" for r in recs),
                    "values": {s: v for s, v in sorted(vals.items()) if v is not None}})
    return out


# --------------------------------------------------------------------------------------------
# Table II (the one place it is built: `qtc report` and the `qtc table2` preset)
# --------------------------------------------------------------------------------------------

def table2_cells(records: list[TrialRecord], ties: dict | None = None) -> dict[tuple[str, str], dict]:
    """(paper row, data set) -> our test MSE per seed, mean, std, and the paper's value.

    Only finished forecast trials count. `ties` ({task: {model: trained twin}}, from a preset's
    sweep.json) reports a candidate that was not trained with its compiled twin's results.
    """
    from qtc.tasks.kinds.forecast import paper_row, paper_value
    cells: dict[tuple[str, str], dict] = {}
    for rec in sorted(records, key=lambda r: r.seed):
        if rec.kind != "forecast" or rec.status != "done" or not rec.rows:
            continue
        twins = [m for m, twin in ((ties or {}).get(rec.task) or {}).items() if twin == rec.model]
        for model in [rec.model] + twins:
            key = paper_row(model, rec.candidates)
            name = "classical LSTM" if model == naming.CLASSICAL else key or naming.label(model, rec.candidates)
            cell = cells.setdefault((name, rec.dataset), {
                "paper": paper_value(rec.dataset, key), "seeds": [], "values": [], "train": [],
                "final": [], "best_train": [], "last": [],
                "tied_with": rec.label if model != rec.model else None})
            curve = [r["test_mse"] for r in rec.rows]
            cell["seeds"].append(rec.seed)
            cell["values"].append(rec.reported["test_mse"])
            cell["train"].append(rec.reported["train_mse"])
            cell["final"].append(curve[-1])
            cell["best_train"].append(min(rec.rows, key=lambda r: r["train_mse"])["test_mse"])
            cell["last"].append(float(np.median(curve[-LAST:])))
    for cell in cells.values():
        cell["mean"], cell["std"] = _mean_std(cell["values"])
        cell["median"] = float(np.median(cell["values"]))
        cell["final_median"] = float(np.median(cell["final"]))
        cell["best_train_median"] = float(np.median(cell["best_train"]))
        cell["last_mean"] = float(np.mean(cell["last"]))
    return cells


def _table2_layout(cells: dict) -> tuple[list[str], list[str]]:
    """(rows in the paper's order, then any others; data sets in the paper's column order)."""
    from qtc.tasks.kinds.forecast import PAPER_COLUMNS
    names = {name for name, _ in cells}
    rows = [r for r in ROW_ORDER if r in names] + sorted(names - set(ROW_ORDER))
    found = {d for _, d in cells}
    return rows, [d for d in PAPER_COLUMNS if d in found] + sorted(found - set(PAPER_COLUMNS))


def _md_table(cells: dict, rows: list[str], datasets, stat: str = "mean") -> list[str]:
    from qtc.tasks.kinds.forecast import fmt
    head = " | ".join(f"{d} ours | {d} paper" for d in datasets)
    md = [f"| model | {head} |", "|---" * (1 + 2 * len(datasets)) + "|"]
    for name in rows:
        vals = []
        for d in datasets:
            c = cells.get((name, d))
            vals += [fmt(c[stat]) if c else "…", fmt(c["paper"]) if c else "…"]
        md.append(f"| {name} | " + " | ".join(vals) + " |")
    return md


def goal_checks(cells: dict, datasets, stat: str = "median") -> list[str]:
    """The goals: DiffQAS-QT <= 2x the paper (4 of 5) and better than the median fixed candidate."""
    from qtc.tasks.kinds.forecast import fmt
    lines, within, beats = [], 0, 0
    for ds in datasets:
        dq = cells.get(("DiffQAS-QT", ds))
        fixed = [c[stat] for (name, d), c in cells.items() if d == ds and name.startswith("Config")]
        if not dq or len(fixed) < 12:
            lines.append(f"- {ds}: incomplete")
            continue
        ratio = dq[stat] / dq["paper"] if dq["paper"] else float("nan")
        med = float(np.median(fixed))
        within += ratio <= 2.0
        beats += dq[stat] < med
        lines.append(f"- {ds}: DiffQAS-QT {fmt(dq[stat])} = {ratio:.2f}x the paper's {fmt(dq['paper'])}; "
                     f"median of the {len(fixed)} fixed candidates {fmt(med)} -> DiffQAS-QT "
                     f"{'better' if dq[stat] < med else 'NOT better'}")
    lines.append(f"- within 2x of the paper: {within} of {len(datasets)} data sets (goal: at least 4 of 5); "
                 f"better than the median fixed candidate: {beats} of {len(datasets)} (goal: all)")
    return lines


def _per_seed(cells: dict, rows: list[str], datasets) -> list[str]:
    from qtc.tasks.kinds.forecast import fmt
    seeds = sorted({s for c in cells.values() for s in c["seeds"]})
    if len(seeds) < 2:
        return []
    md = ["", "## Per seed", "", "| model | data set | " + " | ".join(f"seed {s}" for s in seeds)
          + " | median | mean | std |", "|---|---|" + "---|" * (len(seeds) + 3)]
    for name in rows:
        for d in datasets:
            c = cells.get((name, d))
            if c:
                per = dict(zip(c["seeds"], c["values"]))
                md.append(f"| {name} | {d} | " + " | ".join(fmt(per.get(s)) for s in seeds)
                          + f" | {fmt(c['median'])} | {fmt(c['mean'])} | {fmt(c['std'])} |")
    return md


def table2_markdown(cells: dict, sweep: dict, records: list[TrialRecord] | None = None) -> str:
    """table2.md: ours beside the paper's under the run's selection rule, the epoch-100 and
    best-training-MSE values, the goal checks, the paired statistics, the baselines, per seed."""
    rows, datasets = _table2_layout(cells)
    seeds = sorted({s for c in cells.values() for s in c["seeds"]})
    tied = sorted({f"{name} = {c['tied_with']}" for (name, _), c in cells.items() if c["tied_with"]})
    rule = _rule_of(sweep)
    md = ["# Table II: test MSE, ours beside the paper's", "",
          f"- command: `{sweep['command']}`" if sweep.get("command") else "- command: (API call)",
          f"- seeds: {', '.join(map(str, seeds))} (ours = median over seeds); epochs: "
          f"{(sweep.get('overrides') or {}).get('epochs') or 'from the specs'}; "
          f"cells filled: {sum(len(c['values']) for c in cells.values())}", "",
          f"Test MSE at the epoch the selection rule picks ({rule}; each run folder's selection.json "
          "names it). The paper does not say which epoch its Table II reports; the Quantum-Train "
          "toolkit evaluates the checkpoint with the lowest training loss.", ""]
    md += _md_table(cells, rows, datasets, "median")
    if tied:
        md += ["", "Tied candidates (one compiled node: trained once, reported for each member): "
               + "; ".join(tied) + "."]
    md += ["", "## Goals", ""] + goal_checks(cells, datasets)
    md += ["", "## The same runs at the last epoch and at the lowest-training-MSE epoch", "",
           "Median over seeds of the test MSE after the last epoch:", ""]
    md += _md_table(cells, rows, datasets, "final_median")
    md += ["", "Median over seeds of the test MSE at the epoch with the lowest training MSE (chosen "
           "without test data, as the Quantum-Train toolkit does):", ""]
    md += _md_table(cells, rows, datasets, "best_train_median") + ["", "Goals on this statistic:", ""]
    md += goal_checks(cells, datasets, "best_train_median")
    if records is not None:
        md += [""] + _md_baselines(records) + _md_paired(paired_stats(records, sweep.get("ties")))
    md += _per_seed(cells, rows, datasets)
    return "\n".join(md) + "\n"


def _rule_of(sweep: dict) -> str:
    """The selection rule a sweep ran under, in words (from its overrides; else the specs')."""
    select = (sweep.get("overrides") or {}).get("select")
    if not select:
        return "the specs' select statement"
    return f"select {select[0]}" + (f" {select[1]:g}" if select[1] is not None else "")


def table2_rows(cells: dict) -> list[dict]:
    """table2.csv: one line per cell, with the per-seed values."""
    rows, datasets = _table2_layout(cells)
    out = []
    for name in rows:
        for d in datasets:
            c = cells.get((name, d))
            if c:
                out.append({"model": name, "dataset": d, "test_mse_mean": f"{c['mean']:.8g}",
                            "test_mse_std": f"{c['std']:.8g}", "paper_test_mse": c["paper"] or "",
                            "ratio": f"{c['mean'] / c['paper']:.4g}" if c["paper"] else "",
                            "train_mse_mean": f"{np.mean(c['train']):.8g}",
                            "seeds": ";".join(map(str, c["seeds"])),
                            "test_mse_per_seed": ";".join(f"{v:.8g}" for v in c["values"]),
                            "test_mse_median": f"{c['median']:.8g}",
                            "test_mse_last_epoch_median": f"{c['final_median']:.8g}",
                            "test_mse_best_train_epoch_median": f"{c['best_train_median']:.8g}",
                            f"test_mse_last{LAST}_median_mean": f"{c['last_mean']:.8g}"})
    return out


def write_table2(root: Path | str, out: Path | str | None = None) -> list[Path]:
    """table2.md and table2.csv of the sweep folder `root` (into `out`, default `root`)."""
    root = Path(root)
    out = Path(out) if out else root
    sweep = _read_json(root / "sweep.json") or {}
    records = collect(root)
    cells = table2_cells(records, sweep.get("ties"))
    if not cells:
        return []
    return [atomic_text(out / "table2.md", table2_markdown(cells, sweep, records)),
            _csv(out / "table2.csv", table2_rows(cells))]


# --------------------------------------------------------------------------------------------
# Paired statistics and naive baselines
# --------------------------------------------------------------------------------------------

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


def paired_stats(records: list[TrialRecord], ties: dict | None = None) -> dict[str, dict]:
    """{task: paired.against_fixed(...)} for the tasks with DiffQAS-QT and fixed circuits."""
    from qtc.tasks.experiments.paired import against_fixed
    kinds = {r.task: r.kind for r in records}
    labels = {(r.task, r.model): r.label for r in records}
    out = {}
    for task, models in seed_values(records, ties).items():
        fixed = {m: v for m, v in models.items() if naming.is_fixed(m)}
        if naming.DIFFQAS in models and fixed:
            higher = METRICS.get(kinds[task], ("", "", False))[2]
            stats = against_fixed(models[naming.DIFFQAS], fixed, higher)
            stats["labels"] = {m: labels.get((task, m)) or _twin_label(records, task, m) for m in fixed}
            stats["higher_better"] = higher
            out[task] = stats
    return out


def _twin_label(records: list[TrialRecord], task: str, model: str) -> str:
    cands = next((r.candidates for r in records if r.task == task and r.candidates), [])
    return naming.label(model, cands)


def _md_paired(stats: dict[str, dict]) -> list[str]:
    if not stats:
        return []
    L = ["## Paired statistics: DiffQAS-QT against each fixed circuit, seed by seed", "",
         "Ratio = DiffQAS-QT / circuit per seed (median, bootstrap 95% interval over seeds); win rate = "
         "share of seeds where DiffQAS-QT is better (ties count half); p = two-sided Wilcoxon "
         "signed-rank (scipy.stats.wilcoxon).", ""]
    for task, st in stats.items():
        better = "higher" if st["higher_better"] else "lower"
        L += [f"### {task} ({better} is better; seeds {', '.join(map(str, st['seeds']))})", "",
              f"- DiffQAS-QT's rank among the {st['of']}: median {st['median_rank']:g} "
              f"(95% interval {st['rank_low']:g} .. {st['rank_high']:g}); per seed "
              + ", ".join(f"{s}: {r}" for s, r in st["ranks"].items()),
              f"- better than the median fixed circuit: **{st['better_than_median']}** (ratio to that "
              f"median {st['to_median']:.3g}, 95% interval {st['to_median_low']:.3g} .. "
              f"{st['to_median_high']:.3g})", "",
              "| circuit | seeds | win rate | median ratio | 95% interval | Wilcoxon p |",
              "|---|---|---|---|---|---|"]
        for m, v in st["per_model"].items():
            L.append(f"| {st['labels'][m]} | {v['n']} | {v['win_rate']:.2f} | {v['median_ratio']:.3g} | "
                     f"{v['ratio_low']:.3g} .. {v['ratio_high']:.3g} | {v['wilcoxon_p']:.3g} |")
        L.append("")
    return L


def baseline_rows(records: list[TrialRecord]) -> list[dict]:
    """One row per (task, naive baseline), from the first trial folder of the task that has them
    (the baselines depend on the data, not on the model or the seed)."""
    out, seen = [], set()
    for rec in records:
        if rec.task in seen or not rec.baselines:
            continue
        seen.add(rec.task)
        out += [{"task": rec.task, "baseline": name, **values} for name, values in rec.baselines.items()]
    return out


def _md_baselines(records: list[TrialRecord]) -> list[str]:
    rows = baseline_rows(records)
    if not rows:
        return []
    L = ["## Naive baselines (no training; fitted on the models' training data)", "",
         "| task | baseline | train | test |", "|---|---|---|---|"]
    for r in rows:
        kind = "forecast" if "test_mse" in r else ""
        key = "mse" if kind else "accuracy"
        L.append(f"| {r['task']} | {r['baseline']} | {_num(r[f'train_{key}'], kind)} | "
                 f"{_num(r[f'test_{key}'], kind)} |")
    return L + [""]


def weights(records: list[TrialRecord]) -> list[dict]:
    """DiffQAS-QT's final structural weights per task: mean/std over seeds per candidate, votes."""
    out = []
    tasks = sorted({r.task for r in records})
    for task in tasks:
        recs = [r for r in records if r.task == task and r.model == "diffqas" and r.status == "done"
                and r.rows and r.rows[-1].get("structural_weights")]
        if not recs:
            continue
        w = np.array([r.rows[-1]["structural_weights"] for r in recs], dtype=float)
        cands = recs[0].weight_labels or [f"candidate {k}" for k in range(w.shape[1])]
        votes = np.bincount(w.argmax(1), minlength=w.shape[1])
        mean = w.mean(0)
        std = w.std(0, ddof=1) if len(w) > 1 else np.zeros_like(mean)
        for k in range(w.shape[1]):
            out.append({"task": task, "index": k, "candidate": cands[k] if k < len(cands) else str(k),
                        "mean": float(mean[k]), "std": float(std[k]), "argmax_votes": int(votes[k]),
                        "seeds": len(recs), "rank": int((mean > mean[k]).sum()) + 1})
    return out


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------

def curves(records: list[TrialRecord]) -> list[dict]:
    """Per task, model, curve and epoch (or episode): mean and std over seeds."""
    out = []
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in records:
        if r.rows or r.episodes is not None:
            groups.setdefault((r.task, r.model), []).append(r)
    for (task, model), recs in groups.items():
        kind = recs[0].kind
        if recs[0].episodes is not None and not recs[0].rows:
            series = [moving_average_band(r.episodes["reward"], r.window)[0] for r in recs
                      if r.episodes is not None]
            out += _band(task, model, recs[0].label, "reward (moving average)", series)
            continue
        for key in CURVE_KEYS.get(kind, ("train_loss", "test_loss")):
            series = [np.array([row.get(key, np.nan) for row in r.rows], dtype=float) for r in recs]
            out += _band(task, model, recs[0].label, key, series)
    return out


def _band(task, model, label, curve, series: list[np.ndarray]) -> list[dict]:
    """Mean and std over seeds at each step that every seed reached."""
    if not series:
        return []
    n = min(len(s) for s in series)
    if n == 0:
        return []
    a = np.stack([s[:n] for s in series])
    mean = np.nanmean(a, 0)
    std = np.nanstd(a, 0, ddof=1) if len(a) > 1 else np.zeros(n)
    lo, hi = np.nanmin(a, 0), np.nanmax(a, 0)
    return [{"task": task, "model": model, "label": label, "curve": curve, "step": i + 1,
             "mean": float(mean[i]), "std": float(std[i]), "min": float(lo[i]), "max": float(hi[i]),
             "n": len(a)} for i in range(n)]


def plot_curves(path: Path, task: str, kind: str, rows: list[dict]) -> Path | None:
    """`bands_figure`, saved to `path`; None when the task has no curves."""
    from qtc.tasks import plots
    fig = bands_figure(task, kind, rows)
    return None if fig is None else plots.save(fig, path, dpi=100)


def bands_figure(task: str, kind: str, rows: list[dict]):
    """One panel per curve, every model's mean over seeds with a one-std band clipped to the
    metric's range (rewards, accuracies in [0, 1]; MSE positive on its log axis); models with
    identical bands (tied candidates) drawn once, labelled as a tie; the legend outside."""
    from qtc.tasks import plots
    plt = plots.pyplot()
    mine = [r for r in rows if r["task"] == task]
    names = list(dict.fromkeys(r["curve"] for r in mine))
    if not names:
        return None
    log = kind == "forecast"
    fig, axes = plt.subplots(1, len(names), figsize=(6.2 * len(names), 4.4), squeeze=False)
    models = sorted({r["model"] for r in mine}, key=naming.order)
    pts = {(m, c): [r for r in mine if r["model"] == m and r["curve"] == c] for m in models for c in names}
    ties = plots.ties({m: tuple(plots.series_key([(p["mean"], p["std"]) for p in pts[m, c]]) for c in names)
                       for m in models})
    for ax, curve in zip(axes[0], names):
        for i, tie in enumerate(ties):
            got = pts[tie[0], curve]
            if not got:
                continue
            x, m, s = (np.array([p[k] for p in got]) for k in ("step", "mean", "std"))
            label = naming.tie_label(tie) if len(tie) > 1 else got[0]["label"]
            band = plots.clip_band(m, m - s, m + s, bounds=plots.bounds_of(curve), log=log)
            plots.draw(ax, x, m, model=tie[0], label=f"{label} (n={got[0]['n']})", index=i, band=band,
                       alpha=0.08)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("episode" if kind == "a3c" else "epoch")
        ax.set_ylabel(curve.replace("_", " "))
        ax.set_title(f"{task}: {curve.replace('_', ' ')}", fontsize=10)
        ax.grid(alpha=0.3)
    plots.legend_outside(fig, axes[0][0])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

@dataclass
class Report:
    markdown: Path
    files: list[Path]


def _csv(path: Path, rows: list[dict]) -> Path:
    return atomic_text(path, csv_text([{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                                        for k, v in r.items()} for r in rows]))


def _num(v: float | None, kind: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if kind == "forecast" or abs(v) < 1e-2:
        return f"{v:.6f}" if abs(v) >= 5e-6 else f"{v:.2e}"
    return f"{v:.4f}"


def write_report(root: Path | str, out: Path | str | None = None) -> Report:
    """Aggregate the sweep folder `root`; write report.md, the CSVs and the PNGs into `out`."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    records = collect(root)
    summary = summarize(records)
    sweep = _read_json(root / "sweep.json") or {}
    cells = table2_cells(records, sweep.get("ties"))
    w = weights(records)
    cv = curves(records)
    files = [_csv(out / "summary.csv", summary), _csv(out / "curves.csv", cv),
             _csv(out / "trials.csv", [{"key": r.key, "task": r.task, "model": r.model, "seed": r.seed,
                                        "status": r.status, "attempts": r.attempts, "seconds": r.seconds,
                                        "error": (r.error or "").splitlines()[0] if r.error else ""}
                                       for r in records])]
    files += write_table2(root, out) if cells else []
    if w:
        files.append(_csv(out / "weights.csv", w))
    pngs = {}
    for task in dict.fromkeys(r.task for r in records):
        kind = next(r.kind for r in records if r.task == task)
        p = plot_curves(out / f"curves_{task}.png", task, kind, cv)
        if p:
            pngs[task] = p
            files.append(p)
    paired = paired_stats(records, sweep.get("ties"))
    if baseline_rows(records):
        files.append(_csv(out / "baselines.csv", baseline_rows(records)))
    if paired:
        atomic_text(out / "paired.json", json.dumps(paired, indent=2, default=str))
        files.append(out / "paired.json")
    text = "\n".join(_md_head(root, records, sweep) + _md_summary(summary) + _md_baselines(records)
                     + _md_paired(paired) + _md_table2(cells)
                     + _md_weights(w) + _md_curves(pngs) + _md_failed(records))
    md = atomic_text(out / "report.md", text)
    return Report(md, [md] + files)


def _md_head(root, records, sweep: dict) -> list[str]:
    n = {s: sum(r.status == s for r in records) for s in ("done", "failed", "pending")}
    secs = [r.seconds for r in records if r.seconds]
    return [f"# Sweep report: {Path(root).resolve().name}", "",
            f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `qtc report` from `{root}`."
            + (f" Command: `{sweep['command']}`." if sweep.get("command") else ""), "",
            f"- trials: {len(records)} ({n['done']} done, {n['failed']} failed, {n['pending']} unfinished)",
            f"- seeds: {sorted({r.seed for r in records})}",
            f"- overrides: {sweep.get('overrides') or 'none (the specs as written)'}",
            f"- settings (--set): {sweep.get('set') or 'none'}; grid (--grid): {sweep.get('grid') or 'none'}",
            f"- trial time: {sum(secs):.0f} s in total" + (f", {np.mean(secs):.1f} s per trial" if secs else ""),
            "", "Files: `summary.csv` (this table), `table2.md` / `table2.csv`, `weights.csv`, `curves.csv` "
            "(the curves behind the PNGs), `trials.csv` (every trial's status).", ""]


def _md_summary(summary: list[dict]) -> list[str]:
    L = ["## Final metric per task and model", "",
         "Over seeds: median, interquartile range, min .. max and mean ± sample std of the test "
         "accuracy (classify) or test MSE (forecast) at each run's selected epoch (selection.json), "
         "or the mean reward over the last window of episodes (a3c).", ""]
    for task in dict.fromkeys(s["task"] for s in summary):
        rows = [s for s in summary if s["task"] == task]
        kind = rows[0]["kind"]
        _, name, higher, _ = METRICS.get(kind, ("test_loss", "test loss", False, False))
        best, note = best_rows(rows, higher)
        L += [f"### {task} ({kind}; {name}, {'higher' if higher else 'lower'} is better)", "",
              "| model | median | IQR | min .. max | mean ± std | n | epochs | per seed |",
              "|---|---|---|---|---|---|---|---|"]
        for s in rows:
            mark = " **best**" if any(s is b for b in best) else ""
            extra = "".join([f", {s['failed']} failed" if s["failed"] else "",
                             f", {s['pending']} unfinished" if s["pending"] else ""])
            per = ", ".join(f"{k}: {_num(v, kind)}" for k, v in s["values"].items())
            L.append(f"| {s['label']}{mark} | {_num(s['median'], kind)} | {_spread(s, kind)} | "
                     f"{s['n']}{extra} | {s['epochs'] or '-'} | {per} |")
        L += ["", note, ""] if note else [""]
    return L


def _spread(s: dict, kind: str) -> str:
    """The IQR, min .. max and mean ± std cells; with one seed there is no spread to show."""
    if s["n"] < 2:
        return "- | - | one seed: no spread"
    return (f"{_num(s['q1'], kind)} .. {_num(s['q3'], kind)} | {_num(s['min'], kind)} .. "
            f"{_num(s['max'], kind)} | {_num(s['mean'], kind)} ± {_num(s['std'], kind)}")


def best_rows(rows: list[dict], higher: bool) -> tuple[list[dict], str]:
    """The rows to mark best (by median) and a note: no mark with one seed (a single run ranks
    nothing) or when every model ties; the tied rows are all marked when several share the best."""
    got = [s for s in rows if s["n"]]
    if not got:
        return [], ""
    if any(s["n"] < 2 for s in got):
        return [], "One seed: no spread, so no model is marked best."
    top = (max if higher else min)(s["median"] for s in got)
    best = [s for s in got if s["median"] == top]
    if len(best) == len(got) > 1:
        return [], f"All {len(got)} models tie (median {top:.6g})."
    if len(best) > 1:
        return best, "Tied for best: " + ", ".join(s["label"] for s in best) + "."
    return best, ""


def _md_table2(cells: dict) -> list[str]:
    if not cells:
        return []
    rows, datasets = _table2_layout(cells)
    return (["## Table II: test MSE, ours (median over seeds) beside the paper", ""]
            + _md_table(cells, rows, datasets, "median")
            + ["", "Config k is the paper's k-th circuit (H / none × ent / cyc × RX / RY / RZ); the paper "
               "gives no LSTM baseline value. Configs 1, 3, 4, 6 and 9, 12 tie in the paper because "
               "those circuits are constant. Goals, spread and per-seed values: `table2.md`.", ""])


def _md_weights(w: list[dict]) -> list[str]:
    if not w:
        return []
    L = ["## Which architecture DiffQAS-QT's weights favour", "",
         "Final structural weights, mean over seeds; 'votes' = seeds whose largest weight it is.", "",
         "| task | favoured candidate | weight (mean ± std) | votes | runner-up | weight | most votes |",
         "|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(x["task"] for x in w):
        rows = sorted([x for x in w if x["task"] == task], key=lambda x: x["rank"])
        a, b = rows[0], rows[1] if len(rows) > 1 else None
        v = max(rows, key=lambda x: x["argmax_votes"])
        spread = f" ± {a['std']:.4f}" if a["seeds"] > 1 else " (one seed: no spread)"
        L.append(f"| {task} | {a['index'] + 1} {a['candidate']} | {a['mean']:.4f}{spread} | "
                 f"{a['argmax_votes']}/{a['seeds']} | "
                 + (f"{b['index'] + 1} {b['candidate']} | {b['mean']:.4f} | " if b else "- | - | ")
                 + f"{v['index'] + 1} {v['candidate']} ({v['argmax_votes']}/{v['seeds']}) |")
    return L + ["", "The weights are raw (not softmaxed) and may be negative; candidates whose circuits "
                "are constant produce the same probabilities, so their weights act as one.", ""]


def _md_curves(pngs: dict) -> list[str]:
    if not pngs:
        return []
    L = ["## Learning curves", "", "Mean over seeds with a band of one standard deviation.", ""]
    for task, p in pngs.items():
        L += [f"### {task}", "", f"![{task}]({Path(p).name})", ""]
    return L


def _md_failed(records) -> list[str]:
    bad = [r for r in records if r.status == "failed"]
    if not bad:
        return []
    L = ["## Failed trials", "", "| trial | attempts | error |", "|---|---|---|"]
    for r in bad:
        err = (r.error or "?").strip().splitlines()[0].replace("|", "\\|")
        L.append(f"| {r.key} | {r.attempts} | {err} |")
    return L + [""]
