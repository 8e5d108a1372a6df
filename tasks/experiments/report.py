"""`qtc report DIR`: aggregate a sweep folder into Markdown, CSV and PNG files readable without qtc.

Reads OUT/<task>/<model>/seed<k>/ (trial.json, resolved.json, metrics.json, episodes.csv) and
writes OUT/report/ (or another folder):

    report.md         everything below, with the figures linked
    summary.csv       per task and model: the final metric's mean, std, n and per-seed values
    table2.csv        forecasting: our test MSE (mean, std over seeds) beside the paper's Table II
    weights.csv       DiffQAS-QT's final structural weights per task and candidate (mean, std)
    curves.csv        the learning curves behind the PNGs (mean and std over seeds per epoch)
    curves_<task>.png learning curves with a band of one std over seeds (Figs. 5-7, 13-14)
    trials.csv        every trial: status, attempts, seconds, error

The final metric is the last epoch's test accuracy (classify), test MSE (forecast) or the mean
reward of the last `window` episodes (a3c).
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


def paper_table2() -> tuple[dict[str, dict[str, float]], tuple[str, ...]]:
    """({data set: {"DiffQAS-QT" | "Config k": MSE}}, the candidate labels of Config 1..12)."""
    from qtc.tasks.kinds.forecast import PAPER_CONFIG_LABELS, PAPER_TABLE2
    return PAPER_TABLE2, tuple(PAPER_CONFIG_LABELS)


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
    episodes: dict | None = None
    window: int = 1000


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
    return sorted(out, key=lambda r: (r.task, _model_order(r.model), r.seed))


def _model_order(model: str) -> tuple:
    if model == "diffqas":
        return (0, 0)
    if model.startswith("fixed:"):
        return (1, int(model.split(":")[1]))
    return (2, 0)


def _record(root: Path, folder: Path) -> TrialRecord:
    status = _read_json(folder / "trial.json") or {}
    resolved = _read_json(folder / "resolved.json") or {}
    task = resolved.get("task") or {}
    model = status.get("model") or folder.parent.name.replace("_", ":", 1)
    rec = TrialRecord(key=str(folder.relative_to(root)), task=status.get("task") or folder.parent.parent.name,
                      model=model, seed=int(status.get("seed", folder.name.removeprefix("seed") or 0)),
                      status=status.get("status", "pending"), kind=status.get("kind") or task.get("kind", ""),
                      dataset=((task.get("data") or {}).get("dataset") or ""),
                      attempts=int(status.get("attempts") or 0), seconds=status.get("seconds"),
                      error=status.get("error"))
    rec.candidates = list(((resolved.get("program") or {}).get("candidates")) or [])
    rec.window = int(((task.get("a3c") or {}).get("window")) or 1000)
    rows = _read_json(folder / "metrics.json") or []
    rec.rows = [r for r in rows if r.get("model") == model]
    rec.label = rec.rows[-1]["label"] if rec.rows else _label(model, rec.candidates)
    eps = _find_episodes(folder, model)
    if eps is not None:
        rec.episodes = eps
    return rec


def _label(model: str, candidates: list[str]) -> str:
    if model.startswith("fixed:"):
        k = int(model.split(":")[1])
        return f"config {k + 1} ({candidates[k]})" if k < len(candidates) else model
    return {"diffqas": "DiffQAS-QT", "classical": "classical"}.get(model, model)


def _find_episodes(folder: Path, model: str) -> dict | None:
    """An A3C episode log (episode, reward columns) in the trial folder, if there is one."""
    stem = model.replace(":", "_")
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
    value = rec.rows[-1].get(key, rec.rows[-1].get("test_loss"))
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
        epochs = [r.rows[-1]["epoch"] for r in recs if r.rows]
        out.append({"task": task, "kind": kind, "model": model, "label": recs[0].label,
                    "metric": METRICS.get(kind, ("test_loss",))[0], "n": len(got), "mean": mean, "std": std,
                    "epochs": max(epochs) if epochs else None,
                    "failed": sum(r.status == "failed" for r in recs),
                    "pending": sum(r.status == "pending" for r in recs),
                    "values": {s: v for s, v in sorted(vals.items()) if v is not None}})
    return out


def table2(records: list[TrialRecord], summary: list[dict]) -> list[dict]:
    """Paper Table II beside ours: one row per paper row (DiffQAS-QT, Config 1..12), plus LSTM."""
    paper, labels = paper_table2()
    by_task = {}
    for r in records:
        if r.kind == "forecast" and r.dataset in paper:
            by_task.setdefault(r.dataset, r.task)
    if not by_task:
        return []
    cands = next((r.candidates for r in records if r.kind == "forecast" and r.candidates), [])
    stats = {(s["task"], s["model"]): s for s in summary}
    rows = []
    for name in ["DiffQAS-QT"] + [f"Config {k}" for k in range(1, 13)] + ["classical LSTM"]:
        model = _model_for(name, cands, labels)
        row = {"model": name, "ours_model": model}
        for ds in paper:
            if ds not in by_task:
                continue
            s = stats.get((by_task[ds], model)) if model else None
            row[f"{ds}_ours"] = s["mean"] if s and s["n"] else None
            row[f"{ds}_std"] = s["std"] if s and s["n"] else None
            row[f"{ds}_n"] = s["n"] if s else 0
            row[f"{ds}_paper"] = paper[ds].get(name)
        rows.append(row)
    return rows


def _model_for(paper_row: str, candidates: list[str], labels: tuple[str, ...]) -> str | None:
    """Our model name for a paper row: Config k is the candidate labelled labels[k-1]."""
    if paper_row == "DiffQAS-QT":
        return "diffqas"
    if paper_row == "classical LSTM":
        return "classical"
    label = labels[int(paper_row.split()[1]) - 1]
    return f"fixed:{candidates.index(label)}" if label in candidates else None


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
        cands = recs[0].candidates or [f"candidate {k}" for k in range(w.shape[1])]
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
            series = [_moving(r.episodes["reward"], r.window) for r in recs if r.episodes is not None]
            out += _band(task, model, recs[0].label, "reward (moving average)", series)
            continue
        for key in CURVE_KEYS.get(kind, ("train_loss", "test_loss")):
            series = [np.array([row.get(key, np.nan) for row in r.rows], dtype=float) for r in recs]
            out += _band(task, model, recs[0].label, key, series)
    return out


def _moving(x: np.ndarray, window: int) -> np.ndarray:
    c = np.cumsum(np.insert(np.asarray(x, dtype=float), 0, 0.0))
    n = np.arange(1, len(x) + 1)
    lo = np.maximum(0, n - window)
    return (c[n] - c[lo]) / (n - lo)


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
    """One panel per curve; DiffQAS-QT thick, classical dashed, the fixed candidates thin; bands = 1 std."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mine = [r for r in rows if r["task"] == task]
    names = list(dict.fromkeys(r["curve"] for r in mine))
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(6.2 * len(names), 4.4), squeeze=False)
    models = sorted({r["model"] for r in mine}, key=_model_order)
    cmap = plt.get_cmap("tab20")
    for ax, curve in zip(axes[0], names):
        for i, model in enumerate(models):
            pts = [r for r in mine if r["curve"] == curve and r["model"] == model]
            if not pts:
                continue
            x = np.array([p["step"] for p in pts])
            m = np.array([p["mean"] for p in pts])
            s = np.array([p["std"] for p in pts])
            style = ({"color": "k", "lw": 2.4, "zorder": 5} if model == "diffqas" else
                     {"color": "0.35", "lw": 1.8, "ls": "--", "zorder": 4} if model == "classical" else
                     {"color": cmap(i % 20), "lw": 0.9})
            ax.plot(x, m, label=f"{pts[0]['label']} (n={pts[0]['n']})", **style)
            lo = m - s
            if kind == "forecast":  # log scale: a band below zero would swallow the plot
                lo = np.where(lo > 0, lo, np.array([p["min"] for p in pts]))
            ax.fill_between(x, lo, m + s, color=style["color"], alpha=0.18 if model == "diffqas" else 0.08,
                            lw=0)
        if kind == "forecast":
            ax.set_yscale("log")
        ax.set_xlabel("episode" if kind == "a3c" else "epoch")
        ax.set_ylabel(curve.replace("_", " "))
        ax.set_title(f"{task}: {curve.replace('_', ' ')}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6.5, ncol=2 if len(models) > 6 else 1, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

@dataclass
class Report:
    markdown: Path
    files: list[Path]


def _csv(path: Path, rows: list[dict]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys or ["empty"])
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return path


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
    out.mkdir(parents=True, exist_ok=True)
    records = collect(root)
    summary = summarize(records)
    t2 = table2(records, summary)
    w = weights(records)
    cv = curves(records)
    files = [_csv(out / "summary.csv", summary), _csv(out / "curves.csv", cv),
             _csv(out / "trials.csv", [{"key": r.key, "task": r.task, "model": r.model, "seed": r.seed,
                                        "status": r.status, "attempts": r.attempts, "seconds": r.seconds,
                                        "error": (r.error or "").splitlines()[0] if r.error else ""}
                                       for r in records])]
    if t2:
        files.append(_csv(out / "table2.csv", t2))
    if w:
        files.append(_csv(out / "weights.csv", w))
    pngs = {}
    for task in dict.fromkeys(r.task for r in records):
        kind = next(r.kind for r in records if r.task == task)
        p = plot_curves(out / f"curves_{task}.png", task, kind, cv)
        if p:
            pngs[task] = p
            files.append(p)
    md = out / "report.md"
    md.write_text(_markdown(root, records, summary, t2, w, pngs))
    return Report(md, [md] + files)


def _markdown(root, records, summary, t2, w, pngs) -> str:
    sweep = _read_json(Path(root) / "sweep.json") or {}
    n = {s: sum(r.status == s for r in records) for s in ("done", "failed", "pending")}
    secs = [r.seconds for r in records if r.seconds]
    L = [f"# Sweep report: {Path(root).resolve().name}", "",
         f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `qtc report` from `{root}`."
         + (f" Command: `{sweep['command']}`." if sweep.get("command") else ""), "",
         f"- trials: {len(records)} ({n['done']} done, {n['failed']} failed, {n['pending']} unfinished)",
         f"- seeds: {sorted({r.seed for r in records})}",
         f"- overrides: {sweep.get('overrides') or 'none (the specs as written)'}",
         f"- trial time: {sum(secs):.0f} s in total" + (f", {np.mean(secs):.1f} s per trial" if secs else ""),
         "", "Files: `summary.csv` (this table), `table2.csv`, `weights.csv`, `curves.csv` (the curves "
         "behind the PNGs), `trials.csv` (every trial's status).", ""]
    L += ["## Final metric per task and model", "",
          "Mean ± sample std over seeds of the last epoch's test accuracy (classify), test MSE "
          "(forecast) or mean reward over the last window of episodes (a3c).", ""]
    for task in dict.fromkeys(s["task"] for s in summary):
        rows = [s for s in summary if s["task"] == task]
        kind = rows[0]["kind"]
        _, name, higher, _ = METRICS.get(kind, ("test_loss", "test loss", False, False))
        got = [s for s in rows if s["n"]]
        best = (max if higher else min)(got, key=lambda s: s["mean"]) if got else None
        L += [f"### {task} ({kind}; {name}, {'higher' if higher else 'lower'} is better)", "",
              "| model | mean ± std | n | epochs | per seed |", "|---|---|---|---|---|"]
        for s in rows:
            mark = " **best**" if s is best else ""
            extra = "".join([f", {s['failed']} failed" if s["failed"] else "",
                             f", {s['pending']} unfinished" if s["pending"] else ""])
            per = ", ".join(f"{k}: {_num(v, kind)}" for k, v in s["values"].items())
            L.append(f"| {s['label']}{mark} | {_num(s['mean'], kind)} ± {_num(s['std'], kind)} | "
                     f"{s['n']}{extra} | {s['epochs'] or '-'} | {per} |")
        L.append("")
    if t2:
        ds = [d for d in paper_table2()[0] if f"{d}_paper" in t2[0]]
        L += ["## Table II: test MSE, ours (mean ± std over seeds) beside the paper", "",
              "| model | " + " | ".join(f"{d} ours | {d} paper" for d in ds) + " |",
              "|---|" + "---|---|" * len(ds)]
        for row in t2:
            cells = []
            for d in ds:
                ours = row.get(f"{d}_ours")
                cells.append("-" if ours is None else f"{_num(ours, 'forecast')} ± {_num(row[f'{d}_std'], 'forecast')}")
                cells.append(_num(row.get(f"{d}_paper"), "forecast"))
            L.append(f"| {row['model']} | " + " | ".join(cells) + " |")
        L += ["", "Config k is the paper's k-th circuit (H / none × ent / cyc × RX / RY / RZ); the paper "
              "gives no LSTM baseline value. Configs 1, 3, 4, 6 and 9, 12 tie in the paper because "
              "those circuits are constant.", ""]
    if w:
        L += ["## Which architecture DiffQAS-QT's weights favour", "",
              "Final structural weights, mean over seeds; 'votes' = seeds whose largest weight it is.", "",
              "| task | favoured candidate | weight (mean ± std) | votes | runner-up | weight | most votes |",
              "|---|---|---|---|---|---|---|"]
        for task in dict.fromkeys(x["task"] for x in w):
            rows = sorted([x for x in w if x["task"] == task], key=lambda x: x["rank"])
            a, b = rows[0], rows[1] if len(rows) > 1 else None
            v = max(rows, key=lambda x: x["argmax_votes"])
            L.append(f"| {task} | {a['index'] + 1} {a['candidate']} | {a['mean']:.4f} ± {a['std']:.4f} | "
                     f"{a['argmax_votes']}/{a['seeds']} | "
                     + (f"{b['index'] + 1} {b['candidate']} | {b['mean']:.4f} | " if b else "- | - | ")
                     + f"{v['index'] + 1} {v['candidate']} ({v['argmax_votes']}/{v['seeds']}) |")
        L += ["", "The weights are raw (not softmaxed) and may be negative; candidates whose circuits are "
              "constant produce the same probabilities, so their weights act as one.", ""]
    if pngs:
        L += ["## Learning curves", "", "Mean over seeds with a band of one standard deviation.", ""]
        for task, p in pngs.items():
            L += [f"### {task}", "", f"![{task}]({Path(p).name})", ""]
    bad = [r for r in records if r.status == "failed"]
    if bad:
        L += ["## Failed trials", "", "| trial | attempts | error |", "|---|---|---|"]
        for r in bad:
            err = (r.error or "?").strip().splitlines()[0].replace("|", "\\|")
            L.append(f"| {r.key} | {r.attempts} | {err} |")
        L.append("")
    return "\n".join(L)
