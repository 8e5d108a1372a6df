"""Figures readable at a glance (issue 13): checked on matplotlib's artists, never on pixels."""
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from qtc.tasks import naming, plots
from qtc.tasks.experiments.report import bands_figure

MODELS = [naming.DIFFQAS] + [naming.fixed(k) for k in range(12)] + [naming.CLASSICAL]   # 14
TIED = (0, 2, 3, 5)            # the paper space's uniform constants: configs 1, 3, 4, 6


def _rows(models, epochs=3, tied=()):
    """Metrics rows with a distinct series per model, except the `tied` fixed candidates."""
    rows = []
    for i, m in enumerate(models):
        k = naming.fixed_index(m)
        seed = TIED[0] + 1 if k in tied else i
        for e in range(1, epochs + 1):
            rows.append({"model": m, "label": naming.label(m, [f"c{j}" for j in range(12)]), "epoch": e,
                         "train_loss": 1.0 / (e + seed), "test_accuracy": 0.5 + 0.03 * seed + 0.01 * e})
    return rows


def _lines(fig):
    return [ln for ax in fig.axes for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def _first_panel(fig):
    return [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]


def test_fourteen_models_get_distinct_colours_and_diffqas_stands_out():
    fig = plots.curves_figure(_rows(MODELS), ["train_loss", "test_accuracy"])
    lines = _first_panel(fig)
    assert len(lines) == 14
    assert len({(to_rgba(ln.get_color()), ln.get_linestyle()) for ln in lines}) == 14
    assert len({to_rgba(ln.get_color()) for ln in lines}) == 14
    dq = next(ln for ln in lines if ln.get_label() == "DiffQAS-QT")
    others = [ln for ln in lines if ln is not dq]
    assert dq.get_linewidth() > max(ln.get_linewidth() for ln in others)
    assert dq.get_zorder() > max(ln.get_zorder() for ln in others)
    assert to_rgba(dq.get_color()) == to_rgba("black")


def test_legend_is_outside_the_axes_and_every_axis_is_labelled():
    fig = plots.curves_figure(_rows(MODELS), ["train_loss", "test_accuracy"])
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert all(legend.x0 >= ax.get_window_extent().x1 for ax in fig.axes)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_tied_candidates_are_drawn_once_and_labelled_as_a_tie():
    fig = plots.curves_figure(_rows(MODELS, tied=TIED), ["train_loss"])
    labels = [ln.get_label() for ln in _first_panel(fig)]
    assert len(labels) == 14 - 3
    assert "configs 1=3=4=6 (tie)" in labels
    assert not any(lab.startswith(("config 3 ", "config 4 ", "config 6 ")) for lab in labels)


def test_a_one_epoch_series_is_drawn_with_markers():
    fig = plots.curves_figure(_rows(MODELS[:3], epochs=1), ["train_loss"])
    assert all(ln.get_marker() not in (None, "None", "") for ln in _first_panel(fig))


def _band_ys(ax):
    return np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])


def test_reward_bands_stay_in_zero_one_and_ties_draw_once():
    rng = np.random.default_rng(0)
    noisy = (rng.random(300) < 0.5).astype(float)             # std 0.5 around a mean of 0.5
    curves = {naming.DIFFQAS: noisy, naming.fixed(8): np.zeros(300), naming.fixed(11): np.zeros(300),
              **{naming.fixed(k): rng.random(300) for k in range(8)}}
    fig = plots.rewards_figure(curves, 20, labels={m: naming.label(m, ()) for m in curves})
    ax = fig.axes[0]
    ys = _band_ys(ax)
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "configs 9=12 (tie)" in labels and len(labels) == len(curves) - 1
    assert ax.get_legend() is None and fig.legends
    assert len({to_rgba(ln.get_color()) for ln in ax.get_lines()}) == len(labels)


def _seed_rows(task, curve, means, stds):
    return [{"task": task, "model": m, "label": naming.label(m, ()), "curve": curve, "step": i + 1,
             "mean": mu, "std": sd, "min": mu, "max": mu, "n": 3}
            for m, (mu_s, sd_s) in zip(MODELS, zip(means, stds)) for i, (mu, sd) in enumerate(zip(mu_s, sd_s))]


@pytest.mark.parametrize("kind,curve", [("forecast", "test_mse"), ("classify", "test_accuracy"),
                                        ("a3c", "reward (moving average)")])
def test_seed_bands_are_clipped_to_the_metrics_range(kind, curve):
    means = [np.full(4, 0.05 + 0.06 * i) for i in range(len(MODELS))]
    stds = [np.full(4, 0.5) for _ in MODELS]                 # wider than the range on both sides
    fig = bands_figure("t", kind, _seed_rows("t", curve, means, stds))
    ys = _band_ys(fig.axes[0])
    if kind == "forecast":
        assert ys.min() > 0 and fig.axes[0].get_yscale() == "log"
    else:
        assert ys.min() >= 0.0 and ys.max() <= 1.0
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()


def test_a_one_step_seed_band_is_not_empty():
    fig = bands_figure("t", "classify", _seed_rows("t", "test_accuracy", [[0.6]] * 14, [[0.1]] * 14))
    assert all(ln.get_marker() not in (None, "None", "") for ln in fig.axes[0].get_lines())


def test_prediction_plots_label_both_axes():
    from qtc.tasks.data import series as S
    from qtc.tasks.kinds.forecast import predictions_figure
    axis = np.arange(40.0)
    ser = S.Series("s", np.sin(axis), np.sin(axis), axis)
    wins = None
    fig = predictions_figure(ser, wins, np.zeros(20), np.zeros(16), "title", 4)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time step", "value")
    assert ax.get_legend() is None and fig.legends


def test_epoch_and_episode_axes_tick_only_whole_numbers():
    """One epoch is one tick at 1 (not 0.945 .. 1.05); no fractional episodes (issue 30)."""
    from qtc.tasks import plots
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    ax.plot([1], [0.5], marker="o")
    plots.whole_steps(ax)
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def _tick_labels(ax, which="y"):
    """The labels a reader sees on an axis: the visible major and minor ticks' texts."""
    ax.figure.canvas.draw()
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1.get_text() for t in ticks
            if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi]


@pytest.mark.parametrize("lo,hi", [(0.55, 0.70), (0.62, 0.68), (0.05, 0.8), (1e-4, 0.9)])
def test_a_log_axis_has_readable_ticks_on_any_range(lo, hi):
    """A loss between 0.55 and 0.7 on a log axis: matplotlib alone gives one tick or none and
    minor labels such as 6x10^-1 (issue 30); every log axis gets at least two plain labels."""
    rows = [{"model": naming.DIFFQAS, "label": "DiffQAS-QT", "epoch": e, "train_loss": v}
            for e, v in enumerate(np.geomspace(hi, lo, 5), start=1)]
    fig = plots.curves_figure(rows, ["train_loss"], log_keys=("train_loss",))
    labels = _tick_labels(fig.axes[0])
    assert 2 <= len(labels) <= 10, labels
    if hi / lo < 100:          # plain numbers: no 10^k, no a x 10^k
        assert all(float(t.replace("\N{MINUS SIGN}", "-")) > 0 for t in labels), labels
    plots.pyplot().close(fig)


def test_the_report_over_seeds_uses_readable_log_ticks_too():
    means = [np.linspace(0.70, 0.55, 4) + 0.001 * i for i in range(len(MODELS))]
    fig = bands_figure("t", "forecast", _seed_rows("t", "test_mse", means, [np.full(4, 0.001)] * 14))
    labels = _tick_labels(fig.axes[0])
    assert len(labels) >= 2 and all(float(t) > 0 for t in labels), labels


def _legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_the_reward_band_is_labelled_as_one_std_over_the_window():
    rng = np.random.default_rng(0)
    fig = plots.rewards_figure({naming.DIFFQAS: rng.random(50)}, 20)
    said = [t for t in _legend_texts(fig) if "std" in t]
    assert said and "window" in said[0] and "20 episodes" in said[0]


def test_the_report_band_is_labelled_as_one_std_over_seeds():
    fig = bands_figure("t", "a3c", _seed_rows("t", "reward (moving average)", [np.full(4, 0.5)] * 14,
                                             [np.full(4, 0.1)] * 14))
    assert any("std over seeds" in t for t in _legend_texts(fig))


@pytest.mark.parametrize("name,label", [("bessel", "x (the argument of J2)"), ("damped_shm", "time t (s)"),
                                        ("narma5", "time step")])
def test_a_prediction_plot_names_its_series_axis(name, label):
    from qtc.tasks.data import series as S
    from qtc.tasks.kinds.forecast import predictions_figure
    ser = S.generate(name)
    fig = predictions_figure(ser, None, np.zeros(100), np.zeros(50), "title", 4)
    assert fig.axes[0].get_xlabel() == label
    plots.pyplot().close(fig)


def test_structural_weights_are_drawn_over_the_epochs_with_tie_groups_as_one_line():
    """Merged circuits (configs 1=3=4=6, 9=12 in the paper space) keep equal weights all run:
    one labelled line in the trajectory, one colour in the final bars (issue 30)."""
    labels = [f"c{k}" for k in range(12)]
    rng = np.random.default_rng(1)
    start = np.full(12, 1 / 12)
    steps = rng.normal(0, 0.01, (4, 12))
    steps[:, [2, 3, 5]] = steps[:, [0]]          # configs 3, 4, 6 move as config 1
    steps[:, [8, 11]] = 0.0                      # configs 9, 12 never move
    history = start + np.cumsum(steps, axis=0)
    fig = plots.structural_weights_figure(labels, history, [1, 2, 3, 4])
    trajectory, bars = fig.axes[:2]
    names = [ln.get_label() for ln in trajectory.get_lines()]
    assert len(names) == 12 - 3 - 1
    assert "configs 1=3=4=6 (tie)" in names and "configs 9=12 (tie)" in names
    assert "config 2 (c1)" in names
    assert trajectory.get_xlabel() == "epoch" and len(trajectory.get_lines()[0].get_xdata()) == 4
    colours = [to_rgba(p.get_facecolor()) for p in bars.patches]
    assert colours[0] == colours[2] == colours[3] == colours[5] and colours[8] == colours[11]
    assert len(set(colours)) == 8
    assert fig.legends and any("(tie)" in t for t in _legend_texts(fig))
    plots.pyplot().close(fig)
