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
from qtc.tasks.runs.rundir import atomic_write  # noqa: E402


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (set when this module was imported)."""
    return plt


def _style(model: str, index: int) -> dict:
    """Line style by model kind: DiffQAS-QT stands out, the baselines recede."""
    if model == "diffqas":
        return {"color": "black", "linewidth": 2.6, "zorder": 5}
    if model == "classical":
        return {"color": "tab:red", "linewidth": 1.6, "linestyle": "--", "zorder": 4}
    return {"color": plt.get_cmap("tab20")(index % 20), "linewidth": 0.9, "alpha": 0.85}


def _by_model(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Rows grouped by model in first-seen order, each group sorted by epoch."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["model"], []).append(r)
    return {m: sorted(rs, key=lambda r: r["epoch"]) for m, rs in out.items()}


def _title(key: str) -> str:
    split, _, what = key.partition("_")
    return f"{split} {what}" if what else key


def curves(metrics_rows: Sequence[dict], keys: Sequence[str], path: str | Path, *,
           title: str | None = None, log_keys: Sequence[str] = ()) -> Path | None:
    """One panel per metric key (e.g. train_loss, test_accuracy), every model in each panel.

    `metrics_rows` are the run's metrics rows ({"model", "label", "epoch", key: value, ...}).
    Keys listed in `log_keys` get a logarithmic y axis. Returns the path written, or None when
    there is nothing to draw.
    """
    groups = _by_model(metrics_rows)
    keys = [k for k in keys if any(k in r for rs in groups.values() for r in rs)]
    if not groups or not keys:
        return None
    cols = min(2, len(keys))
    rows_n = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.2 * cols, 3.9 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for i, (model, rs) in enumerate(groups.items()):
            pts = [(r["epoch"], r[key]) for r in rs if r.get(key) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o" if len(xs) == 1 else None, markersize=3,
                        label=rs[-1].get("label", model), **_style(model, i))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_title(key))
        if key in log_keys:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


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


def plot_rewards(curves: dict, window: int, path: Path | str, title: str | None = None) -> Path:
    """One figure: for each named reward series, the moving mean and a one-std band."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rewards in curves.items():
        mean, std = moving_average_band(rewards, window)
        x = np.arange(1, mean.size + 1)
        (line,) = ax.plot(x, mean, label=str(name), lw=1.2)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("episode")
    ax.set_ylabel(f"reward (moving average, window {window})")
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path, bbox_inches=None)


def save(fig, path: str | Path, **savefig) -> Path:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a PNG."""
    options = {"dpi": 120, "bbox_inches": "tight", **savefig}
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, **options))
    finally:
        plt.close(fig)
