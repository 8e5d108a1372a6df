"""Paired statistics over seeds: is DiffQAS-QT better than the fixed circuits, or is it noise?

Every model of a seed starts from that seed and sees the same data order, so the seeds pair the
runs: for each fixed circuit, DiffQAS-QT's win rate, the median of the per-seed ratios
DiffQAS-QT / circuit with a bootstrap 95% interval, and the Wilcoxon signed-rank p (scipy);
DiffQAS-QT's rank among all of them with its interval; and the claim "better than the median
fixed circuit" decided from the interval of the per-seed ratio to that median (yes / no /
undecided when the interval holds 1). The bootstrap resamples seeds with a fixed generator seed,
so a report is reproducible.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

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


def versus(mine: dict[int, float], theirs: dict[int, float], higher_better: bool) -> dict:
    """DiffQAS-QT (`mine`) against one model over their common seeds."""
    seeds = sorted(set(mine) & set(theirs))
    a = np.array([mine[s] for s in seeds], dtype=float)
    b = np.array([theirs[s] for s in seeds], dtype=float)
    better = a > b if higher_better else a < b
    ratio = a / b
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


def verdict(low: float, high: float, higher_better: bool) -> str:
    """'yes' / 'no' / 'undecided' for "DiffQAS-QT is better", from the interval of its ratio."""
    if (low > 1) if higher_better else (high < 1):
        return "yes"
    if (high < 1) if higher_better else (low > 1):
        return "no"
    return "undecided"


def against_fixed(mine: dict[int, float], fixed: dict[str, dict[int, float]], higher_better: bool) -> dict:
    """Every paired statistic of DiffQAS-QT against the fixed circuits of one task."""
    seeds = [s for s in sorted(mine) if all(s in v for v in fixed.values())]
    ranks = rank_per_seed({s: mine[s] for s in seeds}, fixed, higher_better)
    to_median = [mine[s] / float(np.median([v[s] for v in fixed.values()])) for s in seeds]
    low, high = bootstrap_median(to_median) if seeds else (math.nan, math.nan)
    rank_low, rank_high = bootstrap_median(list(ranks.values())) if seeds else (math.nan, math.nan)
    return {"per_model": {m: versus(mine, v, higher_better) for m, v in fixed.items()},
            "seeds": seeds, "ranks": ranks, "of": len(fixed) + 1,
            "median_rank": float(np.median(list(ranks.values()))) if seeds else math.nan,
            "rank_low": rank_low, "rank_high": rank_high,
            "to_median": float(np.median(to_median)) if seeds else math.nan,
            "to_median_low": low, "to_median_high": high,
            "better_than_median": verdict(low, high, higher_better) if seeds else "undecided"}
