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
last `window` episodes (a3c): qtc.tasks.experiments.records reads the trial folders. This module
holds the summary, weights and curves sections and assembles report.md; Table II
(qtc.tasks.experiments.table2) and the paired statistics and baselines
(qtc.tasks.experiments.paired) bring their own.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qtc.tasks import naming
from qtc.tasks.experiments import table2
from qtc.tasks.experiments.paired import (baseline_rows, baselines_markdown, paired_markdown,
                                          paired_stats)
from qtc.tasks.experiments.records import (METRICS, TrialRecord, collect, final_metric, fmt_metric,
                                           mean_std, read_json, write_csv)
from qtc.tasks.plots import moving_average_band
from qtc.tasks.runs.rundir import atomic_text

CURVE_KEYS = {"classify": ("train_accuracy", "test_accuracy"), "forecast": ("train_mse", "test_mse")}


# --------------------------------------------------------------------------------------------
# Summary and structural weights
# --------------------------------------------------------------------------------------------

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
        mean, std = mean_std(got) if got else (math.nan, math.nan)
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


def write_report(root: Path | str, out: Path | str | None = None) -> Report:
    """Aggregate the sweep folder `root`; write report.md, the CSVs and the PNGs into `out`."""
    root = Path(root)
    out = Path(out) if out else root / "report"
    records = collect(root)
    summary = summarize(records)
    sweep = read_json(root / "sweep.json") or {}
    cells = table2.table2_cells(records, sweep.get("ties"))
    w = weights(records)
    cv = curves(records)
    files = [write_csv(out / "summary.csv", summary), write_csv(out / "curves.csv", cv),
             write_csv(out / "trials.csv", [{"key": r.key, "task": r.task, "model": r.model, "seed": r.seed,
                                        "status": r.status, "attempts": r.attempts, "seconds": r.seconds,
                                        "error": (r.error or "").splitlines()[0] if r.error else ""}
                                       for r in records])]
    files += table2.write_table2(root, out) if cells else []
    if w:
        files.append(write_csv(out / "weights.csv", w))
    pngs = {}
    for task in dict.fromkeys(r.task for r in records):
        kind = next(r.kind for r in records if r.task == task)
        p = plot_curves(out / f"curves_{task}.png", task, kind, cv)
        if p:
            pngs[task] = p
            files.append(p)
    paired = paired_stats(records, sweep.get("ties"))
    if baseline_rows(records):
        files.append(write_csv(out / "baselines.csv", baseline_rows(records)))
    if paired:
        atomic_text(out / "paired.json", json.dumps(paired, indent=2, default=str))
        files.append(out / "paired.json")
    text = "\n".join(_md_head(root, records, sweep) + _md_summary(summary) + baselines_markdown(records)
                     + paired_markdown(paired) + table2.report_section(cells)
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
            per = ", ".join(f"{k}: {fmt_metric(v, kind)}" for k, v in s["values"].items())
            L.append(f"| {s['label']}{mark} | {fmt_metric(s['median'], kind)} | {_spread(s, kind)} | "
                     f"{s['n']}{extra} | {s['epochs'] or '-'} | {per} |")
        L += ["", note, ""] if note else [""]
    return L


def _spread(s: dict, kind: str) -> str:
    """The IQR, min .. max and mean ± std cells; with one seed there is no spread to show."""
    if s["n"] < 2:
        return "- | - | one seed: no spread"
    return (f"{fmt_metric(s['q1'], kind)} .. {fmt_metric(s['q3'], kind)} | {fmt_metric(s['min'], kind)} .. "
            f"{fmt_metric(s['max'], kind)} | {fmt_metric(s['mean'], kind)} ± {fmt_metric(s['std'], kind)}")


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
