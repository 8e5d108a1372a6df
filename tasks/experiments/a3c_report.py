"""The paper's MiniGrid comparison (Figs. 13-14) from A3C trials: figure, table, paired statistics.

`qtc report` (qtc.tasks.experiments.report) calls `comparisons` on its trial records and, for
every A3C task (each grid, each --grid point), adds a section to report.md and writes:

    a3c_<task>.png  every model's reward as a moving average (+- one std of the window), the mean
                    over seeds; DiffQAS-QT black on top, tied candidates once, the classical
                    network dashed, the random policy dotted; right: the final phase alone
    a3c.csv         per task, model and seed: the final phase's mean and std of the reward, the
                    episodes to the environment's threshold as a moving average (MiniGrid: the
                    paper's 0.9; a gymnasium environment: its spec's, CartPole-v1's 475)
    a3c_paired.json DiffQAS-QT against each fixed circuit and the median one, seed by seed, for
                    the final mean (higher is better) and the final std (lower is better)

The paper's set-up: 50,000 episodes, moving average over 1,000, the final phase the last 5,000.
Both scale with the budget (`phases`: 1/50 and 1/10 of the episodes every seed of the task ran;
the window never above the spec's `a3c window`), so a reduced run is read the same way.

The final phase's std is the population std of the episode rewards in it (the spread the
paper's inset shows); the paired comparisons are per-seed differences DiffQAS-QT - circuit
(rewards and their spread may be 0, where ratios break), with the bootstrap interval and the
Wilcoxon test of qtc.tasks.experiments.paired. The paper's two claims, as `claims` decides them:

1. "higher average rewards and significantly lower variance during the final training phase"
   (than the handcrafted circuits): yes when against every fixed circuit the interval of the
   final mean's difference lies above 0 and that of the final std's below 0; no when one lies
   on the wrong side; else undecided.
2. "outperforms most handcrafted baselines in both final reward and stability": the same two
   questions against the median fixed circuit (per seed).

Both are undecided with fewer than `MIN_SEEDS` seeds, whatever the intervals say.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qtc.tasks import naming
from qtc.tasks.engines.a3c.episodes import episodes_to_threshold
from qtc.tasks.experiments.paired import against_fixed, verdict
from qtc.tasks.experiments.records import TrialRecord, ties_of, write_csv
from qtc.tasks.plots import moving_average_band
from qtc.tasks.runs.rundir import atomic_text

THRESHOLD = 0.9                       # the paper's "solved" moving average
PAPER = {"episodes": 50_000, "window": 1_000, "final": 5_000}
MIN_SEEDS = 3                         # fewer: a claim is undecided


def phases(episodes: int, window: int) -> tuple[int, int]:
    """(moving-average window, final phase) for a budget of `episodes`: the paper's 1,000 and
    5,000 of 50,000 episodes, scaled (1/50 and 1/10), the window at most the spec's."""
    w = max(1, min(window, episodes * PAPER["window"] // PAPER["episodes"]))
    return w, max(1, min(PAPER["final"], episodes * PAPER["final"] // PAPER["episodes"]))


def final_phase(rewards, final: int) -> tuple[float, float]:
    """Mean and population std of the last `final` episode rewards."""
    r = np.asarray(rewards, dtype=float)[-final:]
    return float(r.mean()), float(r.std())


@dataclass
class Comparison:
    """One A3C task's models over seeds, read at its scaled phases."""
    task: str
    episodes: int                                   # what every seed of every model ran
    window: int
    final: int
    labels: dict = field(default_factory=dict)      # model -> display label
    rewards: dict = field(default_factory=dict)     # model -> {seed: episode rewards}
    trained_as: dict = field(default_factory=dict)  # merged twin -> the model trained for it
    random_reward: float | None = None              # the random policy's mean evaluation reward
    threshold: float | None = THRESHOLD             # the env's "solved" average (None: it has none)

    def per_seed(self) -> list[dict]:
        """Per model and seed: the final phase's mean and std, the episodes to the threshold."""
        out = []
        for model in sorted(self.rewards, key=naming.order):
            for seed, r in sorted(self.rewards[model].items()):
                mean, std = final_phase(r[:self.episodes], self.final)
                out.append({"task": self.task, "model": model, "label": self.labels[model], "seed": seed,
                            "episodes": self.episodes, "window": self.window, "final": self.final,
                            "final_mean": mean, "final_std": std,
                            "to_threshold": (None if self.threshold is None else
                                             episodes_to_threshold(r[:self.episodes], self.window, self.threshold)),
                            "trained_as": self.trained_as.get(model, "")})
        return out

    def paired(self) -> dict | None:
        """DiffQAS-QT against the fixed circuits: {"mean": ..., "std": ...} (paired.against_fixed
        on per-seed differences), or None without DiffQAS-QT or fixed circuits."""
        rows = self.per_seed()
        value = {(r["model"], r["seed"]): r for r in rows}
        fixed = [m for m in self.rewards if naming.is_fixed(m)]
        if naming.DIFFQAS not in self.rewards or not fixed:
            return None
        out = {}
        for key, higher in (("final_mean", True), ("final_std", False)):
            pick = {m: {s: value[m, s][key] for s in self.rewards[m]} for m in self.rewards}
            out[key] = against_fixed(pick[naming.DIFFQAS], {m: pick[m] for m in fixed}, higher,
                                     difference=True)
        return out


def comparisons(records: list[TrialRecord], ties: dict | None = None) -> list[Comparison]:
    """One Comparison per A3C task with finished episode logs; a merged twin (`ties`, else the
    trials' own `twins`) gets the episodes of the model trained for it."""
    ties = ties or ties_of(records)
    out = []
    for task in dict.fromkeys(r.task for r in records if r.kind == "a3c"):
        mine = [r for r in records if r.task == task and r.status == "done" and r.episodes is not None
                and len(r.episodes["reward"])]
        if not mine:
            continue
        c = Comparison(task, min(len(r.episodes["reward"]) for r in mine), 0, 0)
        c.window, c.final = phases(c.episodes, min(r.window for r in mine))
        c.threshold = threshold_of(mine[0].env)
        tied = (ties or {}).get(task) or {}
        for rec in mine:
            for model in [rec.model] + [t for t, first in tied.items() if first == rec.model]:
                c.rewards.setdefault(model, {})[rec.seed] = np.asarray(rec.episodes["reward"], dtype=float)
                c.labels[model] = rec.label if model == rec.model else naming.label(model, rec.candidates)
                if model != rec.model:
                    c.trained_as[model] = rec.model
            got = (rec.baselines.get("random policy") or {}).get("eval_reward")
            if got is not None and c.random_reward is None:
                c.random_reward = float(got)
        out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------------

def claims(paired: dict | None) -> dict[str, dict]:
    """The paper's two claims as yes / no / undecided, each with the reason in words."""
    if not paired:
        return {}
    mean, std = paired["final_mean"], paired["final_std"]
    seeds = len(mean["seeds"])
    if seeds < MIN_SEEDS:
        why = f"{seeds} paired seed(s): at least {MIN_SEEDS} are needed to decide"
        return {"1": {"verdict": "undecided", "why": why}, "2": {"verdict": "undecided", "why": why}}
    higher = [_side(v, True) for v in mean["per_model"].values()]
    lower = [_side(v, False) for v in std["per_model"].values()]
    n = len(higher)
    one = _combine(higher + lower)
    two = _combine([mean["better_than_median"], std["better_than_median"]])
    return {"1": {"verdict": one, "why": f"final mean higher than {higher.count('yes')} of {n} fixed circuits "
                  f"(lower than {higher.count('no')}) and final std lower than {lower.count('yes')} of {n} "
                  f"(higher than {lower.count('no')}), by the 95% intervals of the per-seed differences"},
            "2": {"verdict": two, "why": f"against the median fixed circuit: final mean "
                  f"{mean['better_than_median']}, final std {std['better_than_median']}"}}


def _side(v: dict, higher: bool) -> str:
    """DiffQAS-QT better than one circuit? From the interval of the per-seed differences."""
    return verdict(v["ratio_low"], v["ratio_high"], higher, 0.0)


def _combine(verdicts: list[str]) -> str:
    """Every part yes: yes; any no: no; else undecided."""
    if verdicts and all(v == "yes" for v in verdicts):
        return "yes"
    return "no" if "no" in verdicts else "undecided"


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------

def figure(c: Comparison):
    """Left: every model's moving average over the whole run (mean over seeds of the moving
    mean, band the mean over seeds of the window's std); right: the final phase alone."""
    from qtc.tasks import plots
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    bands = {}
    for model, seeds in c.rewards.items():
        pairs = [moving_average_band(r[:c.episodes], c.window) for r in seeds.values()]
        bands[model] = (np.mean([p[0] for p in pairs], 0), np.mean([p[1] for p in pairs], 0), len(pairs))
    models = sorted(bands, key=lambda m: (m == naming.DIFFQAS, naming.order(m)))   # DiffQAS-QT last: on top
    groups = plots.ties({m: plots.series_key(bands[m][0]) + plots.series_key(bands[m][1]) for m in models})
    x = np.arange(1, c.episodes + 1)
    start = c.episodes - c.final
    for ax, lo in zip(axes, (0, start)):
        for i, tie in enumerate(groups):
            mean, std, n = bands[tie[0]]
            label = (naming.tie_label(tie) if len(tie) > 1 else c.labels[tie[0]]) + f" (n={n})"
            band = plots.clip_band(mean, mean - std, mean + std, bounds=plots.UNIT_RANGE)
            plots.draw(ax, x[lo:], mean[lo:], model=tie[0], label=label, index=i,
                       band=(band[0][lo:], band[1][lo:]), alpha=0.05)
        if c.random_reward is not None:
            ax.axhline(c.random_reward, color="grey", linestyle=":", linewidth=1.2,
                       label=f"random policy (evaluation mean {c.random_reward:.3f})")
        ax.set_xlabel("episode")
        plots.whole_steps(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"reward (moving average, window {c.window:,}; band: +- one std)")
    axes[0].set_title(f"{c.task}: all {c.episodes:,} episodes", fontsize=10)
    axes[1].set_title(f"the final phase: the last {c.final:,} episodes", fontsize=10)
    plots.legend_outside(fig, axes[1])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Writing: files and the report.md section
# --------------------------------------------------------------------------------------------

def write(comps: list[Comparison], out: Path) -> list[Path]:
    """a3c.csv, a3c_paired.json and one a3c_<task>.png per comparison, into `out`."""
    from qtc.tasks import plots
    files = [write_csv(out / "a3c.csv", [r for c in comps for r in c.per_seed()])]
    paired = {c.task: {"paired": c.paired(), "claims": claims(c.paired())} for c in comps if c.paired()}
    if paired:
        files.append(atomic_text(out / "a3c_paired.json", json.dumps(paired, indent=2, default=str)))
    files += [plots.save(figure(c), out / f"a3c_{c.task}.png", dpi=100) for c in comps]
    return files


def _ms(values) -> str:
    """mean ± std over seeds (no spread for one seed)."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f}" + (f" ± {v.std(ddof=1):.3f}" if len(v) > 1 else "")


def threshold_of(env: str) -> float | None:
    """The "solved" moving-average reward of `env`: MiniGrid's is the paper's 0.9, a gymnasium
    environment's its spec's reward threshold (None where it has none, or cannot be made here)."""
    if not env:
        return THRESHOLD
    from qtc.tasks.engines.a3c import envs
    try:
        return envs.describe(env).threshold
    except Exception:  # noqa: BLE001 - a report of runs made elsewhere: no threshold, not a crash
        return None


def _to(c: Comparison) -> str:
    return f"to {c.threshold:g}" if c.threshold is not None else "to threshold (none)"


def markdown(comps: list[Comparison]) -> list[str]:
    """The report section: per task the claims, the table, the paired statistics, the figure."""
    if not comps:
        return []
    L = ["## A3C: DiffQAS-QT against the fixed circuits (the paper's Figs. 13-14)", "",
         f"The paper runs 50,000 episodes and reads a moving average over {PAPER['window']:,} episodes "
         f"and a final phase of the last {PAPER['final']:,}; here both scale with the episodes every "
         "seed ran (1/50 and 1/10 of them; the window at most the spec's). Final mean and std: of the "
         "episode rewards in the final phase, per seed, then mean ± std over seeds. 'to T': "
         "episodes until a full window's mean reward first reaches the environment's threshold T "
         "(MiniGrid: the paper's 0.9; a gymnasium environment: its spec's) (median over seeds; "
         "'not reached' counts as never). Paired: per-seed differences DiffQAS-QT - circuit, "
         "median with a bootstrap 95% interval, and the two-sided Wilcoxon p.", ""]
    for c in comps:
        rows = c.per_seed()
        paired = c.paired()
        said = claims(paired)
        L += [f"### {c.task}: {c.episodes:,} episodes, window {c.window:,}, final phase {c.final:,}", ""]
        if said:
            L += [f"- Claim 1, \"higher average rewards and significantly lower variance during the final "
                  f"training phase\": **{said['1']['verdict']}** ({said['1']['why']}).",
                  f"- Claim 2, \"outperforms most handcrafted baselines in both final reward and "
                  f"stability\": **{said['2']['verdict']}** ({said['2']['why']}).", ""]
        L += [f"| model | seeds | final mean | final std | {_to(c)} (median) | {_to(c)} per seed |",
              "|---|---|---|---|---|---|"]
        for model in sorted(c.rewards, key=naming.order):
            mine = [r for r in rows if r["model"] == model]
            reach = [r["to_threshold"] for r in mine]
            known = sorted(math.inf if v is None else v for v in reach)
            med = float(np.median(known))
            note = f" (trained as {naming.short(c.trained_as[model])})" if model in c.trained_as else ""
            L.append(f"| {c.labels[model]}{note} | {len(mine)} | {_ms([r['final_mean'] for r in mine])} | "
                     f"{_ms([r['final_std'] for r in mine])} | "
                     f"{'not reached' if math.isinf(med) else f'{med:,.0f}'} | "
                     + ", ".join(f"{r['seed']}: " + ("not reached" if r["to_threshold"] is None
                                                     else f"{r['to_threshold']:,}") for r in mine) + " |")
        if c.random_reward is not None:
            L.append(f"| *random policy* (uniform actions, greedy-evaluation episodes) | - | "
                     f"{c.random_reward:.3f} | - | - | - |")
        L.append("")
        if paired:
            L += _paired_table(c, paired)
        L += [f"![{c.task}](a3c_{c.task}.png)", ""]
    return L


def _paired_table(c: Comparison, paired: dict) -> list[str]:
    mean, std = paired["final_mean"], paired["final_std"]
    L = [f"Paired over seeds {', '.join(map(str, mean['seeds']))}: DiffQAS-QT - circuit.", "",
         "| against | final mean: median diff (95% interval) | p | final std: median diff (95% interval) | p |",
         "|---|---|---|---|---|"]
    for m in sorted(mean["per_model"], key=naming.order):
        a, b = mean["per_model"][m], std["per_model"][m]
        L.append(f"| {c.labels[m]} | {a['median_ratio']:+.3f} ({a['ratio_low']:+.3f} .. {a['ratio_high']:+.3f}) | "
                 f"{a['wilcoxon_p']:.3g} | {b['median_ratio']:+.3f} ({b['ratio_low']:+.3f} .. "
                 f"{b['ratio_high']:+.3f}) | {b['wilcoxon_p']:.3g} |")
    L.append(f"| the median fixed circuit | {mean['to_median']:+.3f} ({mean['to_median_low']:+.3f} .. "
             f"{mean['to_median_high']:+.3f}): **{mean['better_than_median']}** | - | {std['to_median']:+.3f} "
             f"({std['to_median_low']:+.3f} .. {std['to_median_high']:+.3f}): **{std['better_than_median']}** | - |")
    return L + [""]
