"""Figures for run folders and reports (matplotlib, Agg backend: no display needed).

Every figure of qtc is drawn through this module: `pyplot()` is the one headless matplotlib
set-up and `save` the one way a figure reaches disk (atomically, through the run folder's
writer). `curves` draws every model's per-epoch metrics in one figure, like the paper's Figs.
5-7: DiffQAS-QT bold, the fixed candidates thin, the classical network dashed.
`structural_weights` draws the ensemble's structural weights over the epochs and at the end,
candidates whose weights are tied (merged circuits) drawn once as a labelled group. `log_axis`
is every log axis's ticks: readable numbers however narrow the range.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: runs happen on headless machines
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import (FixedLocator, LogFormatterSciNotation, LogLocator, MaxNLocator,  # noqa: E402
                               NullFormatter)

from qtc.errors import QtcError  # noqa: E402
from qtc.tasks import naming  # noqa: E402
from qtc.tasks.runs.rundir import atomic_write  # noqa: E402


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (set when this module was imported)."""
    return plt


# The fixed candidates' colours: tab20 without its reds (the classical network's colour) and
# greys (too close to DiffQAS-QT's black); past 16 candidates the linestyle changes too.
_FIXED_COLOURS = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (6, 7, 14, 15)]
_LINESTYLES = ("-", (0, (5, 2)), (0, (1, 1)), (0, (5, 1, 1, 1)))
DIFFQAS_STYLE = {"color": "black", "linewidth": 2.8, "zorder": 10}
CLASSICAL_STYLE = {"color": "tab:red", "linewidth": 1.6, "linestyle": "--", "zorder": 8}
UNIT_RANGE = (0.0, 1.0)          # rewards (MiniGrid) and accuracies


def style(model: str, index: int = 0) -> dict:
    """Line style by model: DiffQAS-QT black, thick and on top; classical red dashed; each fixed
    candidate its own colour (by its index, so a config has one colour in every figure);
    other models by `index`."""
    if model == naming.DIFFQAS:
        return dict(DIFFQAS_STYLE)
    if model == naming.CLASSICAL:
        return dict(CLASSICAL_STYLE)
    k = naming.fixed_index(model)
    k = index if k is None else k
    return {"color": _FIXED_COLOURS[k % len(_FIXED_COLOURS)], "linewidth": 1.0, "zorder": 3,
            "linestyle": _LINESTYLES[(k // len(_FIXED_COLOURS)) % len(_LINESTYLES)]}


def ties(series: dict[str, object]) -> list[list[str]]:
    """Models whose data are equal (constant candidates give bit-identical runs), in first-seen
    order: one group per distinct series. `series` maps model -> a hashable value of its data."""
    groups: dict[object, list[str]] = {}
    for model, key in series.items():
        groups.setdefault(key, []).append(model)
    return list(groups.values())


def series_key(values) -> bytes:
    """A hashable, exact key of a numeric series (NaN equal to NaN), for `ties`."""
    return np.asarray(values, dtype=np.float64).tobytes()


def clip_band(mean, lo, hi, *, bounds: tuple[float, float] | None = None, log: bool = False):
    """A band's edges inside the metric's range: within `bounds` (rewards, accuracies in
    [0, 1]); on a log axis a lower edge that is not positive is replaced by the mean."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if bounds is not None:
        lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
    if log:
        lo = np.where(lo > 0, lo, np.asarray(mean, dtype=np.float64))
    return lo, hi


def bounds_of(key: str) -> tuple[float, float] | None:
    """The range a metric lives in: accuracies and rewards [0, 1]; others unbounded."""
    return UNIT_RANGE if key.endswith("accuracy") or "reward" in key else None


def draw(ax, x, y, *, model: str, label: str, index: int = 0, band=None, alpha: float = 0.15):
    """One model's series: its style, a marker when it has a single point (a one-epoch run is not
    an empty plot), and `band` = (lo, hi) already clipped (`clip_band`)."""
    st = style(model, index)
    x, y = np.asarray(x), np.asarray(y)
    (line,) = ax.plot(x, y, label=label, marker="o" if x.size == 1 else None,
                      markersize=6 if model == naming.DIFFQAS else 4, **st)
    if band is not None:
        ax.fill_between(x, band[0], band[1], color=st["color"], lw=0, zorder=st["zorder"] - 1,
                        alpha=2 * alpha if model == naming.DIFFQAS else alpha)
    return line


def whole_steps(ax) -> None:
    """Epochs and episodes are whole numbers: ticks only there (one epoch is one tick at 1,
    not an axis from 0.945 to 1.05; no episode 2.5)."""
    lo, hi = ax.dataLim.intervalx
    if np.isfinite([lo, hi]).all() and hi - lo < 1:     # a single step: its own tick, centred
        ax.set_xlim(lo - 0.5, hi + 0.5)
        ax.xaxis.set_major_locator(FixedLocator(sorted({round(lo), round(hi)})))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# A log axis spanning less than _NARROW (a ratio) gets plain evenly spaced ticks, up to
# _FEW_DECADES ticks at 1, 2 and 5 times the powers of ten; both with plain numbers as labels.
_NARROW, _FEW_DECADES = 10.0, 100.0


class _LogTicks(LogLocator):
    """A log axis's major ticks by its span: over a wide range the decades (matplotlib's); over
    one to two decades 1, 2 and 5 times each power of ten; inside one decade evenly spaced
    plain values (0.55, 0.6, 0.65), where matplotlib's locator leaves one tick or none and labels
    the minor ones as 6x10^-1."""

    def tick_values(self, vmin, vmax):
        lo, hi = sorted((vmin, vmax))
        if lo > 0 and hi / lo < _NARROW:
            ticks = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
            return ticks[ticks > 0]
        if lo > 0 and hi / lo < _FEW_DECADES:
            return LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)).tick_values(lo, hi)
        return super().tick_values(vmin, vmax)


class _LogLabels(LogFormatterSciNotation):
    """Plain numbers (0.6, 0.05) where `_LogTicks` chose plain ticks; 10^k over wide ranges."""

    def __call__(self, x, pos=None):
        lo, hi = sorted(self.axis.get_view_interval())
        if lo > 0 and hi / lo < _FEW_DECADES:
            return f"{x:.3g}"
        return super().__call__(x, pos)


def log_axis(ax) -> None:
    """A logarithmic y axis whose ticks a reader can read on any range (`_LogTicks`): at least
    two labelled ticks, plain numbers unless it spans two decades or more; minor ticks carry
    no labels."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(_LogTicks())
    ax.yaxis.set_major_formatter(_LogLabels())
    ax.yaxis.set_minor_formatter(NullFormatter())


def band_legend(ax, text: str) -> None:
    """A legend entry saying what the shaded bands are (one std over the window, over seeds)."""
    ax.fill_between([], [], [], color="0.5", alpha=0.3, lw=0, label=text)


def legend_outside(fig, ax) -> None:
    """The legend right of the axes, never on the data (saved with bbox_inches='tight')."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                   frameon=False)


def _by_model(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Rows grouped by model in first-seen order, each group sorted by epoch."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["model"], []).append(r)
    return {m: sorted(rs, key=lambda r: r["epoch"]) for m, rs in out.items()}


def _title(key: str) -> str:
    split, _, what = key.partition("_")
    return f"{split} {what}" if what else key


def _tied_groups(groups: dict[str, list[dict]], keys: Sequence[str]) -> list[list[str]]:
    """`ties` of the models' per-epoch values of every drawn key."""
    return ties({m: tuple(series_key([r.get(k, np.nan) for r in rs]) for k in keys)
                 for m, rs in groups.items()})


def curves(metrics_rows: Sequence[dict], keys: Sequence[str], path: str | Path, *,
           title: str | None = None, log_keys: Sequence[str] = ()) -> Path | None:
    """`curves_figure`, saved to `path`; None when there is nothing to draw."""
    fig = curves_figure(metrics_rows, keys, title=title, log_keys=log_keys)
    return None if fig is None else save(fig, path)


def curves_figure(metrics_rows: Sequence[dict], keys: Sequence[str], *, title: str | None = None,
                  log_keys: Sequence[str] = ()):
    """One panel per metric key (e.g. train_loss, test_accuracy), every model in each panel.

    `metrics_rows` are the run's metrics rows ({"model", "label", "epoch", key: value, ...}).
    Models with identical values (tied candidates) are drawn once, labelled as a tie. Keys listed
    in `log_keys` get a logarithmic y axis. None when there is nothing to draw.
    """
    groups = _by_model(metrics_rows)
    keys = [k for k in keys if any(k in r for rs in groups.values() for r in rs)]
    if not groups or not keys:
        return None
    drawn = _tied_groups(groups, keys)
    cols = min(2, len(keys))
    rows_n = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.2 * cols, 3.9 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for i, tie in enumerate(drawn):
            rs = groups[tie[0]]
            pts = [(r["epoch"], r[key]) for r in rs if r.get(key) is not None]
            if pts:
                label = naming.tie_label(tie) if len(tie) > 1 else rs[-1].get("label", tie[0])
                draw(ax, *zip(*pts), model=tie[0], label=label, index=i)
        ax.set_xlabel("epoch")
        whole_steps(ax)
        ax.set_ylabel(_title(key))
        ax.set_title(_title(key))
        if key in log_keys:
            log_axis(ax)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    legend_outside(fig, axes.flat[0])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def weight_groups(history: Sequence[Sequence[float]]) -> list[list[int]]:
    """Structural weights tied over the whole run (equal at every recorded epoch: the members of
    a merged circuit from equal starts, weights that never moved), one group per distinct
    trajectory in first-seen order; `history` has one row of weights per epoch."""
    h = np.asarray(history, dtype=np.float64).reshape(len(history), -1)
    return ties({k: series_key(h[:, k]) for k in range(h.shape[1])})


def structural_weights(labels: Sequence[str], history: Sequence[Sequence[float]], epochs: Sequence[int],
                       path: str | Path, *, configs: bool = True, title: str = "structural weights") -> Path:
    """`structural_weights_figure`, saved to `path`."""
    return save(structural_weights_figure(labels, history, epochs, configs=configs, title=title), path)


def diffqas_weights(program, rows: Sequence[dict], path: str | Path, name: str) -> Path | None:
    """DiffQAS-QT's structural weights over the epochs of the metrics `rows` (`structural_weights`,
    saved to `path`), or None where it did not run or the program has no weights."""
    weights = [r for r in rows if r["model"] == "diffqas" and r.get("structural_weights")]
    if not weights or program is None:
        return None
    return structural_weights(program.weight_labels, [r["structural_weights"] for r in weights],
                              [r["epoch"] for r in weights], path,
                              configs=program.weights.kind == "candidate",
                              title=f"{name}: DiffQAS-QT structural weights")


def structural_weights_figure(labels: Sequence[str], history: Sequence[Sequence[float]],
                              epochs: Sequence[int], *, configs: bool = True,
                              title: str = "structural weights"):
    """The structural weights over the epochs (left) and at the last one (right): one line per
    group of tied weights (`weight_groups`), labelled as the group (`configs 1=3=4=6 (tie)`);
    a tied candidate's bar has its group's colour. `configs`: the labels are candidates, shown
    as the paper's configs with their colours in the curves; else per-position weights."""
    h = np.asarray(history, dtype=np.float64).reshape(len(history), -1)
    groups = weight_groups(h)
    names = [naming.fixed(k) if configs else labels[k] for k in range(h.shape[1])]
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(max(11.0, 0.45 * len(labels) + 7), 4.4),
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    colour = {}
    for i, group in enumerate(groups):
        if len(group) > 1:
            label = (naming.tie_label([names[k] for k in group]) if configs
                     else " = ".join(labels[k] for k in group) + " (tie)")
        else:
            label = f"{naming.short(names[group[0]])} ({labels[group[0]]})" if configs else labels[group[0]]
        line = draw(ax, epochs, h[:, group[0]], model=names[group[0]] if configs else "", label=label, index=i)
        colour.update({k: line.get_color() for k in group})
    ax.set_xlabel("epoch")
    whole_steps(ax)
    ax.set_ylabel("weight")
    ax.set_title("over the epochs (tied weights: one line)", fontsize=10)
    ax.grid(alpha=0.3)
    xs = range(h.shape[1])
    bars.bar(xs, h[-1], color=[colour[k] for k in xs])
    bars.axhline(0, color="black", linewidth=0.8)
    bars.set_xticks(list(xs))
    bars.set_xticklabels([f"{k + 1}: {lab}" for k, lab in enumerate(labels)], rotation=60, ha="right",
                         fontsize=8)
    bars.set_ylabel("weight")
    bars.set_title(f"after epoch {epochs[-1]} (a tie group shares its colour)", fontsize=10)
    bars.grid(axis="y", alpha=0.3)
    legend_outside(fig, ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion(matrices: dict[str, Sequence[Sequence[int]]], labels: Sequence[str], path: str | Path, *,
              title: str = "confusion") -> Path:
    """One panel per model: counts of (true class row, predicted class column), shaded by the
    fraction of the true class's examples (each row sums to 1), the count written in each cell
    (up to 12 classes; more get the shading alone)."""
    k = len(labels)
    fig, axes = plt.subplots(1, len(matrices), figsize=(0.5 * k * len(matrices) + 2.5, 0.5 * k + 2.2),
                             squeeze=False)
    for ax, (model, matrix) in zip(axes[0], matrices.items()):
        counts = np.asarray(matrix, dtype=float)
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
        ticks = [str(t) for t in range(k)]
        ax.set_xticks(range(k), ticks, fontsize=7)
        ax.set_yticks(range(k), ticks, fontsize=7)
        ax.set_xlabel("predicted output")
        ax.set_ylabel("true output")
        ax.set_title(f"{model}: accuracy {np.trace(counts) / max(counts.sum(), 1):.3f}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.01, "outputs: " + ", ".join(f"{i} = {lab}" for i, lab in enumerate(labels)),
             fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save(fig, path)


def moving_average_band(rewards, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing moving mean and (population) standard deviation, one value per episode.

    Entry i covers episodes max(0, i - window + 1) .. i, so the first window-1 entries use the
    episodes seen so far.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if window < 1:
        raise QtcError(f"the moving-average window must be >= 1, got {window}")
    if r.size == 0:
        return r.copy(), r.copy()
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    hi = np.arange(1, r.size + 1)
    lo = np.maximum(hi - window, 0)
    n = hi - lo
    mean = (c1[hi] - c1[lo]) / n
    var = np.maximum((c2[hi] - c2[lo]) / n - mean * mean, 0.0)
    return mean, np.sqrt(var)


def plot_rewards(curves: dict, window: int, path: Path | str, title: str | None = None,
                 labels: dict[str, str] | None = None) -> Path:
    """`rewards_figure`, saved to `path`."""
    return save(rewards_figure(curves, window, title=title, labels=labels), path)


def rewards_figure(curves: dict, window: int, *, title: str | None = None,
                   labels: dict[str, str] | None = None):
    """One figure: for each model's reward series ({model: rewards}), the moving mean and a
    band of one standard deviation of the rewards in the same window, clipped to [0, 1] (the
    legend says so); identical series drawn once, labelled as a tie; `labels` maps a model to
    its display name."""
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = labels or {}
    for i, tie in enumerate(ties({m: series_key(r) for m, r in curves.items()})):
        mean, std = moving_average_band(curves[tie[0]], window)
        x = np.arange(1, mean.size + 1)
        label = naming.tie_label(tie) if len(tie) > 1 else labels.get(tie[0], str(tie[0]))
        draw(ax, x, mean, model=tie[0], label=label, index=i,
             band=clip_band(mean, mean - std, mean + std, bounds=UNIT_RANGE))
    band_legend(ax, f"shaded: ± 1 std of the rewards in the window ({window} episodes)")
    ax.set_xlabel("episode")
    whole_steps(ax)
    ax.set_ylabel(f"reward (moving average, window {window})")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    legend_outside(fig, ax)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path, **savefig) -> Path:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a PNG."""
    options = {"dpi": 120, "bbox_inches": "tight", **savefig}
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, **options))
    finally:
        plt.close(fig)
