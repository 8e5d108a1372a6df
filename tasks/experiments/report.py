"""`qtc report DIR...`: aggregate sweep or run folders into Markdown, CSV and PNG files readable without qtc.

Reads OUT/<task>/<model>/seed<k>/ (trial.json, resolved.json, metrics.json, episodes.csv) of a
sweep, or plain `qtc run` folders side by side (qtc.tasks.experiments.records), and writes
OUT/report/ (or another folder):

    report.md         everything below, with the figures linked
    summary.csv       per task and model: the reported metric's median, IQR, min/max, mean, std, n
                      and per-seed values
    baselines.csv     the naive baselines per task (baselines.json of the trial folders)
    paired.json       DiffQAS-QT against each fixed circuit, seed by seed (qtc.tasks.experiments.paired)
    a3c.csv, a3c_paired.json, a3c_<task>.png   A3C: the paper's MiniGrid comparison
                      (qtc.tasks.experiments.a3c_report)
    table2.md/.csv    forecasting: the paper's Table II, ours (median over seeds) beside it
    variants.csv      the variants of a task (--grid points, or runs that differ in a setting)
                      side by side per model, each paired seed by seed with the first
    variants_<task>.png  the same as a figure: every seed's value per variant, the median joined
    pairs.json        with --pair TASK=REFERENCE: every model of TASK against REFERENCE's
                      DiffQAS-QT, seed by seed (qtc.tasks.experiments.paired.against_task)
    weights.csv       DiffQAS-QT's final structural weights per task and candidate (mean, std)
    favourites.csv    a per-position search's: per position and alternative, its final
                      probability over seeds and how many seeds favour it
    curves.csv        the learning curves behind the PNGs (mean and std over seeds per epoch)
    curves_<task>.png learning curves with a band of one std over seeds (Figs. 5-7, 13-14)
    trials.csv        every trial: status, attempts, seconds, error (whole)

Only the files a report has content for are written, and report.md lists exactly those. A row
is marked **best** only where the data can say so: every row compared has at least
`MIN_SEEDS` finished seeds and the best median's min .. max range over seeds lies wholly on the
better side of every other row's (`best_rows`).

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

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.experiments import a3c_report, table2
from qtc.tasks.experiments.paired import (against_task, baseline_rows, baselines_markdown,
                                          paired_markdown, paired_stats, pairs_markdown)
from qtc.tasks.experiments.ranking import MIN_SEEDS, best_rows, count_cell, spread_cells
from qtc.tasks.experiments.records import (LAST, TrialRecord, collect, final_metric, fmt_metric,
                                           last_epochs, metric_of, mean_std, ties_of, write_csv)
from qtc.tasks.plots import moving_average_band
from qtc.tasks.experiments.variants import variants, variants_figure, variants_markdown
from qtc.tasks.runs.rundir import atomic_text, read_json_or_none

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
        ends = [last_epochs(r) for r in recs]
        last = [a for a, _ in ends if a is not None]
        last10 = [b for _, b in ends if b is not None]
        mean, std = mean_std(got) if got else (math.nan, math.nan)
        q = np.percentile(got, [0, 25, 50, 75, 100]) if got else [math.nan] * 5
        epochs = [r.rows[-1]["epoch"] for r in recs if r.rows]
        out.append({"task": task, "kind": kind, "model": model, "label": recs[0].label,
                    "metric": metric_of(kind, recs[0].metric)[0], "n": len(got), "mean": mean, "std": std,
                    "median": float(q[2]), "q1": float(q[1]), "q3": float(q[3]), "min": float(q[0]),
                    "max": float(q[4]), "selected_epochs": [r.selected for r in recs if r.selected],
                    "epochs": max(epochs) if epochs else None,
                    "failed": sum(r.status == "failed" for r in recs),
                    "pending": sum(r.status == "pending" for r in recs),
                    **({"own_metric": recs[0].metric} if recs[0].metric else {}),   # metric.json
                    "values": {s: v for s, v in sorted(vals.items()) if v is not None},
                    # beside the selected epoch: the last epoch's and the last ten's (medians over seeds)
                    "last_median": float(np.median(last)) if last else None,
                    f"last{LAST}_median": float(np.median(last10)) if last10 else None})
    return out




def _final_weights(records: list[TrialRecord], task: str) -> list[TrialRecord]:
    """The task's finished DiffQAS-QT trials that recorded structural weights."""
    return [r for r in records if r.task == task and r.model == "diffqas" and r.status == "done"
            and r.rows and r.rows[-1].get("structural_weights")]


def per_position(rec: TrialRecord) -> bool:
    """A per-position space (`untie layers`): no enumerated candidates, one weight per
    (position, alternative), labelled "layer 0.1: RY"."""
    return not rec.candidates and bool(rec.weight_labels) and all(": " in w for w in rec.weight_labels)


def weights(records: list[TrialRecord]) -> list[dict]:
    """DiffQAS-QT's final structural weights per task: mean/std over seeds per candidate, votes
    (a per-position space's are `favourites`': the argmax over all its weights means nothing)."""
    out = []
    tasks = sorted({r.task for r in records})
    for task in tasks:
        recs = _final_weights(records, task)
        if not recs or per_position(recs[0]):
            continue
        w = np.array([r.rows[-1]["structural_weights"] for r in recs], dtype=float)
        cands = recs[0].weight_labels or [f"candidate {k}" for k in range(w.shape[1])]
        votes = np.bincount(w.argmax(1), minlength=w.shape[1])
        norm = recs[0].weights_norm or "not recorded"
        mean = w.mean(0)
        std = w.std(0, ddof=1) if len(w) > 1 else np.zeros_like(mean)
        for k in range(w.shape[1]):
            out.append({"task": task, "index": k, "candidate": cands[k] if k < len(cands) else str(k),
                        "mean": float(mean[k]), "std": float(std[k]), "argmax_votes": int(votes[k]),
                        "seeds": len(recs), "rank": int((mean > mean[k]).sum()) + 1,
                        "weights_norm": norm})
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
        plots.band_legend(ax, "shaded: ± 1 std over seeds")
        if log:
            plots.log_axis(ax)
        ax.set_xlabel("episode" if kind == "a3c" else "epoch")
        plots.whole_steps(ax)
        ax.set_ylabel(curve.replace("_", " "))
        ax.set_title(f"{task}: {curve.replace('_', ' ')}", fontsize=10)
        ax.grid(alpha=0.3)
    plots.legend_outside(fig, axes[0][0])
    fig.tight_layout()
    return fig


def favourites(records: list[TrialRecord]) -> list[dict]:
    """The architectures a per-position search found, per task: for every position and
    alternative its final probability (mean and std over seeds) and `votes`, the seeds whose
    favourite it is at that position (how often each favourite recurs across seeds)."""
    out = []
    for task in sorted({r.task for r in records}):
        recs = _final_weights(records, task)
        if not recs or not per_position(recs[0]):
            continue
        w = np.array([r.rows[-1]["structural_weights"] for r in recs], dtype=float)
        slots: dict[str, list[int]] = {}
        for k, label in enumerate(recs[0].weight_labels):
            slots.setdefault(label.rsplit(": ", 1)[0], []).append(k)
        for position, ks in slots.items():
            votes = np.bincount(w[:, ks].argmax(1), minlength=len(ks))
            for j, k in enumerate(ks):
                out.append({"task": task, "position": position,
                            "alternative": recs[0].weight_labels[k].rsplit(": ", 1)[1],
                            "mean": float(w[:, k].mean()),
                            "std": float(w[:, k].std(ddof=1)) if len(w) > 1 else 0.0,
                            "votes": int(votes[j]), "seeds": len(recs),
                            "per_seed": ",".join(f"{r.seed}:{x:.4f}" for r, x in zip(recs, w[:, k]))})
    return out


def _md_favourites(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    L = ["## Architectures found by a per-position search: how often each favourite recurs", "",
         "Per position, the alternative most seeds' final weights favour (its votes: the seeds whose "
         "largest weight it is at that position; a tie between alternatives is listed as one), its "
         "final probability (mean ± std over the seeds), and every alternative's votes.", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        n = mine[0]["seeds"]
        L += [f"### {task} ({n} seed{'s' if n != 1 else ''})", "",
              "| position | favourite | seeds choosing it | probability (mean ± std) | votes per alternative |",
              "|---|---|---|---|---|"]
        unanimous = 0
        positions = list(dict.fromkeys(r["position"] for r in mine))
        for position in positions:
            alts = [r for r in mine if r["position"] == position]
            most = max(a["votes"] for a in alts)
            top = [a for a in alts if a["votes"] == most]
            unanimous += most == n
            L.append(f"| {position} | {' = '.join(a['alternative'] for a in top)} | {most}/{n} | "
                     + " = ".join(f"{a['mean']:.3f} ± {a['std']:.3f}" for a in top) + " | "
                     + ", ".join(f"{a['alternative']} {a['votes']}" for a in alts) + " |")
        L += ["", f"Every seed chose the same favourite at {unanimous} of {len(positions)} positions.", ""]
    return L


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

@dataclass
class Report:
    markdown: Path
    files: list[Path]


def write_report(roots, out: Path | str | None = None, pairs=()) -> Report:
    """Aggregate the sweep or run folder(s) `roots` (one path or several); write report.md, the
    CSVs and the PNGs into `out` (default: the one folder's report/; required for several).
    `pairs`: (task, reference) pairs whose models are compared seed by seed with the
    reference's DiffQAS-QT (`--pair`; qtc.tasks.experiments.paired.against_task)."""
    roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
    if out is None and len(roots) > 1:
        raise QtcError("a report of several folders needs -o/--output: where to write it")
    out = Path(out) if out else roots[0] / "report"
    records = collect(*roots)
    summary = summarize(records)
    sweep = (read_json_or_none(roots[0] / "sweep.json") or {}) if len(roots) == 1 else {}
    cells = table2.table2_cells(records, sweep.get("ties"))
    w = weights(records)
    fav = favourites(records)
    ties = sweep.get("ties") or (ties_of(records) if len(roots) > 1 else None)
    pairs = [against_task(records, task, ref, ties) for task, ref in pairs]
    cv = curves(records)
    var = variants(summary, records)
    files = [write_csv(out / "summary.csv", summary), write_csv(out / "curves.csv", cv),
             write_csv(out / "trials.csv", [{"key": r.key, "task": r.task, "model": r.model, "seed": r.seed,
                                        "status": r.status, "attempts": r.attempts, "seconds": r.seconds,
                                        "error": (r.error or "").strip()}
                                       for r in records])]
    if cells:
        files += (table2.write_table2(roots[0], out) if len(roots) == 1
                  else table2.write_table2(out, out, records))
    if w:
        files.append(write_csv(out / "weights.csv", w))
    if fav:
        files.append(write_csv(out / "favourites.csv", fav))
    if var:
        files.append(write_csv(out / "variants.csv", var))
    pngs = {}
    for task in dict.fromkeys(r.task for r in records):
        kind = next(r.kind for r in records if r.task == task)
        p = plot_curves(out / f"curves_{task}.png", task, kind, cv)
        if p:
            pngs[task] = p
            files.append(p)
    from qtc.tasks import plots
    var_pngs = {task: plots.save(variants_figure(task, var), out / f"variants_{task}.png", dpi=100)
                for task in dict.fromkeys(r["task"] for r in var)}
    files += var_pngs.values()
    paired = paired_stats(records, sweep.get("ties"))
    rl = a3c_report.comparisons(records, sweep.get("ties"))
    files += a3c_report.write(rl, out) if rl else []
    if baseline_rows(records):
        files.append(write_csv(out / "baselines.csv", baseline_rows(records)))
    if paired:
        atomic_text(out / "paired.json", json.dumps(paired, indent=2, default=str))
        files.append(out / "paired.json")
    if pairs:
        atomic_text(out / "pairs.json", json.dumps(pairs, indent=2, default=str))
        files.append(out / "pairs.json")
    text = "\n".join(_md_head(roots, records, sweep, files) + _md_summary(summary, records) + variants_markdown(var)
                     + _md_figures("Variants side by side: figures", var_pngs)
                     + a3c_report.markdown(rl)
                     + baselines_markdown(records) + paired_markdown(paired) + pairs_markdown(pairs)
                     + table2.report_section(cells)
                     + _md_weights(w) + _md_favourites(fav) + _md_curves(pngs) + _md_failed(records))
    md = atomic_text(out / "report.md", text)
    return Report(md, [md] + files)


# What each file holds, in the order report.md lists them.
FILES = {"summary.csv": "the final metric per task and model", "variants.csv": "the variants side by side",
         "table2.md": "Table II in full", "table2.csv": "Table II's cells",
         "weights.csv": "DiffQAS-QT's structural weights",
         "favourites.csv": "the per-position favourites across seeds",
         "curves.csv": "the curves behind the PNGs",
         "baselines.csv": "the naive baselines", "paired.json": "the paired statistics",
         "pairs.json": "the tasks paired with --pair",
         "a3c.csv": "A3C's final phase per model and seed", "a3c_paired.json": "A3C's paired statistics and claims",
         "trials.csv": "every trial's status and whole error"}


def _md_head(roots, records, sweep: dict, files: list[Path]) -> list[str]:
    n = {s: sum(r.status == s for r in records) for s in ("done", "failed", "pending")}
    secs = [r.seconds for r in records if r.seconds]
    names = {Path(p).name for p in files}
    title = (f"# Sweep report: {roots[0].resolve().name}" if sweep else
             "# Report: " + ", ".join(r.resolve().name for r in roots))
    where = ", ".join(f"`{r}`" for r in roots)
    return [title, "",
            f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `qtc report` from {where}."
            + (f" Command: `{sweep['command']}`." if sweep.get("command") else ""), "",
            f"- trials: {len(records)} ({n['done']} done, {n['failed']} failed, {n['pending']} unfinished)",
            f"- seeds: {sorted({r.seed for r in records})}",
            f"- overrides: {sweep.get('overrides') or 'none (the specs as written)'}",
            f"- settings (--set): {sweep.get('set') or 'none'}; grid (--grid): {sweep.get('grid') or 'none'}",
            f"- trial time: {sum(secs):.0f} s in total" + (f", {np.mean(secs):.1f} s per trial" if secs else ""),
            "", "Files: " + ", ".join(f"`{f}` ({what})" for f, what in FILES.items() if f in names) + "; "
            "the figures below are PNGs beside this file.", ""]


def examples_text(counts: dict) -> str:
    """examples.json in words: `1,000 train (800 fit + 200 validation), 1,000 test`."""
    held = (f" ({counts['fit']:,} fit + {counts['validation']:,} validation)"
            if "validation" in counts else "")
    return f"{counts['train']:,} train{held}, {counts['test']:,} test"


def _md_examples(records: list[TrialRecord], task: str) -> list[str]:
    """How many examples the task's runs trained and tested on (their examples.json; runs from
    before qtc recorded it, and trials that failed before loading data, have none)."""
    seen: dict[str, int] = {}
    for r in records:
        if r.task == task and r.examples:
            text = examples_text(r.examples)
            seen[text] = seen.get(text, 0) + 1
    if not seen:
        return []
    if len(seen) == 1:
        return [f"Examples per run: {next(iter(seen))} (after --limit, the class filter and the "
                "windowing; examples.json).", ""]
    return ["Examples per run differ (examples.json): "
            + "; ".join(f"{text} ({n} runs)" for text, n in seen.items()) + ".", ""]


def _md_summary(summary: list[dict], records: list[TrialRecord]) -> list[str]:
    L = ["## Final metric per task and model", "",
         "Over seeds: median, interquartile range, min .. max and mean ± sample std of the test "
         "accuracy (classify) or test MSE (forecast) at each run's selected epoch (selection.json), "
         f"or the mean reward over the last window of episodes (a3c). A model is marked **best** only "
         f"when every model has at least {MIN_SEEDS} finished seeds and the best median's min .. max "
         "range over seeds does not overlap any other model's. Beside it, so that a claim can be seen "
         f"not to hinge on one epoch: the median over seeds of the metric at the last epoch and of "
         f"its median over the last {LAST} epochs (supervised tasks).", ""]
    for task in dict.fromkeys(s["task"] for s in summary):
        rows = [s for s in summary if s["task"] == task]
        kind = rows[0]["kind"]
        _, name, higher, _ = metric_of(kind, rows[0].get("own_metric"))
        best, note = best_rows(rows, higher)
        L += [f"### {task} ({kind}; {name}, {'higher' if higher else 'lower'} is better)", ""]
        L += _md_examples(records, task) + [
              f"| model | median | IQR | min .. max | mean ± std | n | epochs | last epoch | last {LAST} "
              "| per seed |", "|---|---|---|---|---|---|---|---|---|---|"]
        for s in rows:
            mark = " **best**" if any(s is b for b in best) else ""
            per = ", ".join(f"{k}: {fmt_metric(v, kind)}" for k, v in s["values"].items()) or "-"
            L.append(f"| {s['label']}{mark} | {fmt_metric(s['median'], kind)} | {spread_cells(s, kind)} | "
                     f"{count_cell(s)} | {s['epochs'] or '-'} | {fmt_metric(s['last_median'], kind)} | "
                     f"{fmt_metric(s[f'last{LAST}_median'], kind)} | {per} |")
        L += ["", note, ""] if note else [""]
    return L


# What the recorded weights are, by the space's `weights` normalisation (resolved.json).
WEIGHTS_NORM = {
    "softmax": "the softmax of the trainable weights, as the model mixes its candidates (positive, "
               "summing to 1 over each set of alternatives)",
    "raw": "raw (not softmaxed) and may be negative",
    "not recorded": "as the run recorded them; its folder does not say whether the space's weights "
                    "are raw or softmaxed (a run from before qtc recorded it)"}


def _md_weights(w: list[dict]) -> list[str]:
    if not w:
        return []
    L = ["## Which architecture DiffQAS-QT's weights favour", "",
         "Final structural weights, mean over seeds; 'votes' = seeds whose largest weight it is.", "",
         "| task | favoured candidate | weight (mean ± std) | votes | runner-up | weight | most votes |",
         "|---|---|---|---|---|---|---|"]
    norms: dict[str, list[str]] = {}
    for task in dict.fromkeys(x["task"] for x in w):
        rows = sorted([x for x in w if x["task"] == task], key=lambda x: x["rank"])
        a, b = rows[0], rows[1] if len(rows) > 1 else None
        norms.setdefault(a["weights_norm"], []).append(task)
        v = max(rows, key=lambda x: x["argmax_votes"])
        spread = f" ± {a['std']:.4f}" if a["seeds"] > 1 else " (one seed: no spread)"
        L.append(f"| {task} | {a['index'] + 1} {a['candidate']} | {a['mean']:.4f}{spread} | "
                 f"{a['argmax_votes']}/{a['seeds']} | "
                 + (f"{b['index'] + 1} {b['candidate']} | {b['mean']:.4f} | " if b else "- | - | ")
                 + f"{v['index'] + 1} {v['candidate']} ({v['argmax_votes']}/{v['seeds']}) |")
    said = [f"The weights are {WEIGHTS_NORM[n]}" if len(norms) == 1 else
            f"For {', '.join(tasks)} the weights are {WEIGHTS_NORM[n]}" for n, tasks in norms.items()]
    return L + ["", "; ".join(said) + ". Candidates whose circuits are constant produce the same "
                "probabilities, so their weights act as one.", ""]


def _md_curves(pngs: dict) -> list[str]:
    if not pngs:
        return []
    return _md_figures("Learning curves", pngs, "Mean over seeds with a band of one standard deviation.")


def _md_figures(title: str, pngs: dict, text: str = "") -> list[str]:
    if not pngs:
        return []
    L = [f"## {title}", ""] + ([text, ""] if text else [])
    for task, p in pngs.items():
        L += [f"### {task}", "", f"![{task}]({Path(p).name})", ""]
    return L


def _md_failed(records) -> list[str]:
    """Every failed trial with its whole error (lines joined), as trials.csv holds it."""
    bad = [r for r in records if r.status == "failed"]
    if not bad:
        return []
    L = ["## Failed trials", "", "| trial | attempts | error |", "|---|---|---|"]
    for r in bad:
        err = "<br>".join(line.strip() for line in (r.error or "?").strip().splitlines()).replace("|", "\\|")
        L.append(f"| {r.key} | {r.attempts} | {err} |")
    return L + [""]
