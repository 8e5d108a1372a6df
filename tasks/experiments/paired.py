"""Paired statistics over seeds: is DiffQAS-QT better than the fixed circuits, or is it noise?

Every model of a seed starts from that seed and sees the same data order, so the seeds pair the
runs: for each fixed circuit, DiffQAS-QT's win rate, the median of the per-seed ratios
DiffQAS-QT / circuit with a bootstrap 95% interval, and the Wilcoxon signed-rank p (scipy);
DiffQAS-QT's rank among all of them with its interval; and the claim "better than the median
fixed circuit" decided from the interval of the per-seed ratio to that median (yes / no /
undecided when the interval holds 1). With `difference=True` the per-seed comparison is the
difference DiffQAS-QT - circuit instead of the ratio (and the verdict asks whether its interval
holds 0): for values that may be 0, such as a reward or its spread. The bootstrap resamples
seeds with a fixed generator seed, so a report is reproducible.

`against_task` pairs two tasks of a report (`qtc report --pair TASK=REFERENCE`): every model of
TASK against REFERENCE's DiffQAS-QT over their common seeds, e.g. the untied sampled search
(narma5_sampled) and the architecture it found, retrained, against the tied search (narma5).
The seeds pair them as they pair the models of one task: a seed's runs start from that seed
and see the same data in the same order.

Also here, as the other comparison a report makes: the naive baselines (no training) each
trial folder records (baselines.json), one row per task. `paired_stats`/`baseline_rows` read
trial records (qtc.tasks.experiments.records); `*_markdown` are their report sections.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.experiments.records import TrialRecord, fmt_metric, metric_of, seed_values

BOOTSTRAP = 10_000
LEVEL = 0.95


def bootstrap_median(values, *, n: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile interval of the median of `values`, resampled with replacement."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, len(v), size=(n, len(v)))], axis=1)
    tail = (1 - LEVEL) / 2 * 100
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))


def wilcoxon_p(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p of the pairs (1.0 when every pair ties)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(a, b).pvalue)


def versus(mine: dict[int, float], theirs: dict[int, float], higher_better: bool,
           difference: bool = False) -> dict:
    """DiffQAS-QT (`mine`) against one model over their common seeds; `median_ratio` and its
    interval are of the per-seed differences a - b when `difference`."""
    seeds = sorted(set(mine) & set(theirs))
    a = np.array([mine[s] for s in seeds], dtype=float)
    b = np.array([theirs[s] for s in seeds], dtype=float)
    better = a > b if higher_better else a < b
    ratio = a - b if difference else a / b
    low, high = bootstrap_median(ratio)
    return {"seeds": seeds, "n": len(seeds), "win_rate": float((better + 0.5 * (a == b)).mean()),
            "median_ratio": float(np.median(ratio)), "ratio_low": low, "ratio_high": high,
            "wilcoxon_p": wilcoxon_p(a, b)}


def rank_per_seed(mine: dict[int, float], fixed: dict[str, dict[int, float]], higher_better: bool) -> dict[int, int]:
    """DiffQAS-QT's rank (1 = best; ties in its favour) among itself and the fixed circuits, per seed."""
    out = {}
    for s in sorted(mine):
        others = [v[s] for v in fixed.values() if s in v]
        out[s] = 1 + sum((o > mine[s]) if higher_better else (o < mine[s]) for o in others)
    return out


def verdict(low: float, high: float, higher_better: bool, null: float = 1.0) -> str:
    """'yes' / 'no' / 'undecided' for "DiffQAS-QT is better", from the interval of its ratio
    (`null` 1), or of its difference (`null` 0)."""
    if (low > null) if higher_better else (high < null):
        return "yes"
    if (high < null) if higher_better else (low > null):
        return "no"
    return "undecided"


def against_fixed(mine: dict[int, float], fixed: dict[str, dict[int, float]], higher_better: bool,
                  difference: bool = False) -> dict:
    """Every paired statistic of DiffQAS-QT against the fixed circuits of one task (`to_median`
    and the per-model comparisons as differences when `difference`)."""
    seeds = [s for s in sorted(mine) if all(s in v for v in fixed.values())]
    ranks = rank_per_seed({s: mine[s] for s in seeds}, fixed, higher_better)
    medians = [float(np.median([v[s] for v in fixed.values()])) for s in seeds]
    to_median = [mine[s] - m if difference else mine[s] / m for s, m in zip(seeds, medians)]
    low, high = bootstrap_median(to_median) if seeds else (math.nan, math.nan)
    rank_low, rank_high = bootstrap_median(list(ranks.values())) if seeds else (math.nan, math.nan)
    return {"per_model": {m: versus(mine, v, higher_better, difference) for m, v in fixed.items()},
            "seeds": seeds, "ranks": ranks, "of": len(fixed) + 1,
            "median_rank": float(np.median(list(ranks.values()))) if seeds else math.nan,
            "rank_low": rank_low, "rank_high": rank_high,
            "to_median": float(np.median(to_median)) if seeds else math.nan,
            "to_median_low": low, "to_median_high": high,
            "better_than_median": verdict(low, high, higher_better, 0.0 if difference else 1.0)
            if seeds else "undecided", **({"difference": True} if difference else {})}


# --------------------------------------------------------------------------------------------
# From trial records: the statistics per task, the naive baselines, their report sections
# --------------------------------------------------------------------------------------------

def paired_stats(records: list[TrialRecord], ties: dict | None = None) -> dict[str, dict]:
    """{task: paired.against_fixed(...)} for the tasks with DiffQAS-QT and fixed circuits (an
    A3C task's are a3c_report's: differences of the final phase's mean and spread)."""
    kinds = {r.task: (r.kind, r.metric) for r in records}
    labels = {(r.task, r.model): r.label for r in records}
    out = {}
    for task, models in seed_values(records, ties).items():
        fixed = {m: v for m, v in models.items() if naming.is_fixed(m)}
        if kinds[task][0] == "a3c":   # rewards may be 0 (no ratio): qtc.tasks.experiments.a3c_report
            continue
        if naming.DIFFQAS in models and fixed:
            higher = metric_of(*kinds[task])[2]
            stats = against_fixed(models[naming.DIFFQAS], fixed, higher)
            stats["labels"] = {m: labels.get((task, m)) or _twin_label(records, task, m) for m in fixed}
            stats["higher_better"] = higher
            out[task] = stats
    return out


def parse_pairs(texts) -> list[tuple[str, str]]:
    """`--pair narma5_sampled=narma5` (repeatable) -> [("narma5_sampled", "narma5")]."""
    out = []
    for text in texts or ():
        task, sep, reference = (part.strip() for part in str(text).partition("="))
        if not sep or not task or not reference or task == reference:
            raise QtcError(f"--pair {text!r}: expected TASK=REFERENCE, two different task names "
                           "(e.g. --pair narma5_sampled=narma5)")
        out.append((task, reference))
    return list(dict.fromkeys(out))


def against_task(records: list[TrialRecord], task: str, reference: str, ties: dict | None = None) -> dict:
    """Every model of `task` against `reference`'s DiffQAS-QT, seed by seed (`versus`: win rate,
    median ratio with its bootstrap interval, Wilcoxon p), with each side's values per seed."""
    values = seed_values(records, ties)
    kinds = {r.task: (r.kind, r.metric) for r in records}
    for name in (task, reference):
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise QtcError(f"--pair {task}={reference}: no finished trial of task '{name}' in the "
                           f"report's folders (tasks with results: {known})")
    if naming.DIFFQAS not in values[reference]:
        raise QtcError(f"--pair {task}={reference}: task '{reference}' has no finished DiffQAS-QT "
                       "trial to pair against")
    if kinds[task][0] != kinds[reference][0]:
        raise QtcError(f"--pair {task}={reference}: a {kinds[task][0]} task against a "
                       f"{kinds[reference][0]} one; paired tasks report the same metric")
    higher = metric_of(*kinds[reference])[2]
    ref = values[reference][naming.DIFFQAS]
    labels = {(r.task, r.model): r.label for r in records}
    models = sorted(values[task], key=naming.order)
    return {"task": task, "reference": reference, "higher_better": higher,
            "reference_values": ref,
            "labels": {m: labels.get((task, m)) or naming.short(m) for m in models},
            "values": {m: values[task][m] for m in models},
            "per_model": {m: versus(values[task][m], ref, higher) if set(values[task][m]) & set(ref)
                          else {"seeds": [], "n": 0} for m in models}}


def pairs_markdown(pairs: list[dict]) -> list[str]:
    """The report section of `against_task` for every --pair (none without them)."""
    if not pairs:
        return []
    L = ["## Paired statistics: one task's models against another's DiffQAS-QT (--pair)", "",
         "Ratio = model / the reference task's DiffQAS-QT per seed (median, bootstrap 95% interval "
         "over seeds); win rate = share of seeds where the model is better (ties count half); "
         "p = two-sided Wilcoxon signed-rank (scipy.stats.wilcoxon).", ""]
    for p in pairs:
        better = "higher" if p["higher_better"] else "lower"
        L += [f"### {p['task']} against {p['reference']}'s DiffQAS-QT ({better} is better)", "",
              "| model | seeds | win rate | median ratio | 95% interval | Wilcoxon p |",
              "|---|---|---|---|---|---|"]
        for m, v in p["per_model"].items():
            L.append(f"| {p['labels'][m]} | {', '.join(map(str, v['seeds'])) or '-'} | "
                     + (f"{v['win_rate']:.2f} | {v['median_ratio']:.3g} | {v['ratio_low']:.3g} .. "
                        f"{v['ratio_high']:.3g} | {v['wilcoxon_p']:.3g} |" if v["n"] else "- | - | - | - |"))
        L.append("")
    return L


def _twin_label(records: list[TrialRecord], task: str, model: str) -> str:
    cands = next((r.candidates for r in records if r.task == task and r.candidates), [])
    return naming.label(model, cands)


def paired_markdown(stats: dict[str, dict]) -> list[str]:
    """The report section of `paired_stats` (none without them)."""
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


def baselines_markdown(records: list[TrialRecord]) -> list[str]:
    """The report section of `baseline_rows` (none without them)."""
    rows = [r for r in baseline_rows(records) if "eval_reward" not in r]   # A3C's: a3c_report's section
    if not rows:
        return []
    L = ["## Naive baselines (no training; fitted on the models' training data)", "",
         "| task | baseline | train | test |", "|---|---|---|---|"]
    for r in rows:
        kind = "forecast" if "test_mse" in r else ""
        key = "mse" if kind else "accuracy"
        L.append(f"| {r['task']} | {r['baseline']} | {fmt_metric(r[f'train_{key}'], kind)} | "
                 f"{fmt_metric(r[f'test_{key}'], kind)} |")
    return L + [""]
