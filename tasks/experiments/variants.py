"""The variants of a task side by side: the points of a `--grid`, or plain runs that differ in a
setting, per model, each paired seed by seed with the task's first variant (variants.csv, the
report's "Variants side by side" section and variants_<task>.png).

A report group is `task@setting=value,...` for a grid point and the task alone "as written".
"""
from __future__ import annotations

import numpy as np

from qtc.tasks import naming
from qtc.tasks.experiments.paired import versus
from qtc.tasks.experiments.ranking import MIN_SEEDS, best_rows, count_cell, spread_cells
from qtc.tasks.experiments.records import TrialRecord, final_metric, fmt_metric, metric_of


def base_task(group: str) -> str:
    """The task of a report group: `narma5@train.lr=1e-3` -> `narma5`."""
    return group.split("@", 1)[0]


def variant_name(group: str) -> str:
    """The variant of a report group: `narma5@train.lr=1e-3` -> `train.lr=1e-3` ("as written")."""
    return group.split("@", 1)[1] if "@" in group else "as written"


def variants(summary: list[dict], records: list[TrialRecord]) -> list[dict]:
    """Per task with more than one variant, per model and variant: the summary's statistics
    and, against the task's first variant, the per-seed paired comparison (qtc.tasks.experiments.
    paired.versus: win rate, median ratio with its bootstrap interval, Wilcoxon p)."""
    values = {(r.task, r.model): {} for r in records}
    for r in records:
        v = final_metric(r)
        if v is not None:
            values[r.task, r.model][r.seed] = v
    out = []
    for task in dict.fromkeys(base_task(s["task"]) for s in summary):
        groups = list(dict.fromkeys(s["task"] for s in summary if base_task(s["task"]) == task))
        if len(groups) < 2:
            continue
        first = next(s for s in summary if s["task"] == groups[0])
        higher = metric_of(first["kind"], first.get("own_metric"))[2]
        for model in sorted({s["model"] for s in summary if s["task"] in groups}, key=naming.order):
            rows = [s for g in groups for s in summary if s["task"] == g and s["model"] == model]
            if len(rows) < 2:          # a model of one variant only: nothing to put beside it
                continue
            ref = rows[0]
            for s in rows:
                mine, theirs = values[s["task"], model], values[ref["task"], model]
                common = sorted(set(mine) & set(theirs))
                pair = (versus(mine, theirs, higher) if s is not ref and common
                        else {"n": len(common) if s is not ref else 0})
                out.append({"task": task, "variant": variant_name(s["task"]), "group": s["task"],
                            "model": model, "label": s["label"], "kind": s["kind"],
                            **{k: s[k] for k in ("n", "median", "q1", "q3", "min", "max", "mean", "std",
                                                 "failed", "pending", "values")},
                            "reference": variant_name(ref["task"]), "paired_seeds": pair["n"],
                            **{k: pair.get(k) for k in ("win_rate", "median_ratio", "ratio_low",
                                                        "ratio_high", "wilcoxon_p")}})
    return out


def variants_markdown(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    L = ["## Variants side by side", "",
         "Each task's variants (the points of `--grid`, or runs that differ in a setting) per model: "
         "the final metric over seeds, and each variant against the first, seed by seed (ratio = "
         "variant / first per seed: median and bootstrap 95% interval; win rate = share of seeds "
         "where the variant is better, ties half; p = two-sided Wilcoxon signed-rank). "
         f"**best** follows the rule of the summary (at least {MIN_SEEDS} seeds each, ranges apart).", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        kind = mine[0]["kind"]
        _, name, higher, _ = metric_of(kind, mine[0].get("own_metric"))
        L += [f"### {task} ({kind}; {name}, {'higher' if higher else 'lower'} is better)", "",
              "| model | variant | median | IQR | min .. max | mean ± std | n | against the first: "
              "seeds | win rate | median ratio (95% interval) | Wilcoxon p |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        notes = []
        for model in dict.fromkeys(r["model"] for r in mine):
            got = [r for r in mine if r["model"] == model]
            best, note = best_rows(got, higher, "variant", "variant")
            if note:
                notes.append(f"{got[0]['label']}: {note}")
            for r in got:
                mark = " **best**" if any(r is b for b in best) else ""
                vs = (f"{r['paired_seeds']} | {r['win_rate']:.2f} | {r['median_ratio']:.3g} "
                      f"({r['ratio_low']:.3g} .. {r['ratio_high']:.3g}) | {r['wilcoxon_p']:.3g}"
                      if r["win_rate"] is not None else
                      ("(the first) | - | - | -" if r["variant"] == r["reference"] else "0 | - | - | -"))
                L.append(f"| {r['label']} | {r['variant']}{mark} | {fmt_metric(r['median'], kind)} | "
                         f"{spread_cells(r, kind)} | {count_cell(r)} | {vs} |")
        L += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    return L


def variants_figure(task: str, rows: list[dict]):
    """Every seed's value per variant (dots) and the median over seeds (joined), one line per
    model; the variants in their order along x; MSE on a log axis."""
    from qtc.tasks import plots
    plt = plots.pyplot()
    mine = [r for r in rows if r["task"] == task]
    names = list(dict.fromkeys(r["variant"] for r in mine))
    kind = mine[0]["kind"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 3), 4.4))
    for i, model in enumerate(dict.fromkeys(r["model"] for r in mine)):
        got = [r for r in mine if r["model"] == model]
        x = np.array([names.index(r["variant"]) for r in got], dtype=float)
        med = np.array([r["median"] for r in got], dtype=float)
        line = plots.draw(ax, x, med, model=model, label=got[0]["label"], index=i)
        line.set_marker("o")
        for r in got:
            seeds = list(r["values"].values())
            ax.scatter([names.index(r["variant"])] * len(seeds), seeds, s=14, alpha=0.5,
                       color=line.get_color(), zorder=line.get_zorder())
    if kind == "forecast":
        plots.log_axis(ax)
    ax.set_xticks(range(len(names)), names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_xlabel("variant")
    ax.set_ylabel(metric_of(kind, mine[0].get("own_metric"))[1] + " (dots: seeds; line: median)")
    ax.set_title(f"{task}: variants side by side", fontsize=10)
    ax.grid(alpha=0.3)
    plots.legend_outside(fig, ax)
    fig.tight_layout()
    return fig
