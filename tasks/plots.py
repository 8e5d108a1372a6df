"""Figures for run folders and reports (matplotlib, Agg backend: no display needed).

Every figure of qtc is drawn through this module: `pyplot()` is the one headless matplotlib
set-up and `save` the one way a figure reaches disk (atomically, through the run folder's
writer). `curves` draws every model's per-epoch metrics in one figure, like the paper's Figs.
5-7: DiffQAS-QT bold, the fixed candidates thin, the classical network dashed.
`structural_weights` draws the learned ensemble weights as a bar chart.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: runs happen on headless machines
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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
    from matplotlib.ticker import FixedLocator, MaxNLocator
    lo, hi = ax.dataLim.intervalx
    if np.isfinite([lo, hi]).all() and hi - lo < 1:     # a single step: its own tick, centred
        ax.set_xlim(lo - 0.5, hi + 0.5)
        ax.xaxis.set_major_locator(FixedLocator(sorted({round(lo), round(hi)})))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_title(key))
        if key in log_keys:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    legend_outside(fig, axes.flat[0])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def structural_weights(labels: Sequence[str], weights: Sequence[float], path: str | Path, *,
                       title: str = "learned structural weights") -> Path:
    """Bar chart of the ensemble's structural weights, one bar per candidate circuit."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) + 2), 4.2))
    xs = range(len(weights))
    colors = ["tab:blue" if w >= 0 else "tab:orange" for w in weights]
    ax.bar(xs, weights, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{i + 1}: {lab}" for i, lab in enumerate(labels)], rotation=60, ha="right",
                       fontsize=8)
    ax.set_ylabel("weight")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
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
    one-std band clipped to [0, 1]; identical series drawn once, labelled as a tie; `labels`
    maps a model to its display name."""
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = labels or {}
    for i, tie in enumerate(ties({m: series_key(r) for m, r in curves.items()})):
        mean, std = moving_average_band(curves[tie[0]], window)
        x = np.arange(1, mean.size + 1)
        label = naming.tie_label(tie) if len(tie) > 1 else labels.get(tie[0], str(tie[0]))
        draw(ax, x, mean, model=tie[0], label=label, index=i,
             band=clip_band(mean, mean - std, mean + std, bounds=UNIT_RANGE))
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
