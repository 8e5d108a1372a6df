"""Time-series forecasting (paper Table II, Figs. 8-12): a QT-generated LSTM, window of 4 -> next.

`run(built, rundir, opts)` is the `forecast` task kind of `qtc run`. It generates the spec's data
set (qtc.tasks.data.series, every generator constant settable as a data-statement option), cuts the
time-ordered windows, trains every requested model with the shared supervised engine (MSE), and
writes, besides the engine's metrics, checkpoints and exported networks:

    plots/predictions_<model>_epoch<E>.png   ground truth, train/test predictions, the split line
                                             (the spec's `report epochs`, plus the last epoch)
    plots/curves.png                         train and test MSE per epoch, every model (log scale)
    plots/structural_weights.png             DiffQAS-QT's structural weights over the epochs and at the end
    summary.md, summary.json                 the test-MSE table with the paper's Table II beside it
"""
from __future__ import annotations

import re
import sys

import torch
import torch.nn.functional as F

from qtc.dsl.data import FILE_SOURCES
from qtc.errors import QtcError, SpecError, did_you_mean
from qtc.tasks import naming
from qtc.tasks.data import series as S
from qtc.tasks.data import sources
from qtc.tasks.build import Built
from qtc.tasks.runs.rundir import RunDir
from qtc.tasks.engines import selection
from qtc.tasks.engines.baselines import BASELINES, forecast_baselines
from qtc.tasks.engines.supervised import (Supervised, architecture_section, held_out, train_all, twins_note,
                                          unmoved_note)

name = "forecast"          # the kind's entry in qtc.tasks.kinds.KINDS
engine = "supervised"


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def load_series(built: Built, data_root=None) -> tuple[S.Series, S.Windows, str]:
    """The spec's series (generated, or read from its file: `data_root` is --data-root), its
    windows and a one-line description; spec errors point at the data line."""
    data = built.spec.data
    if data is None:
        raise SpecError("a forecast task needs a data statement, e.g. 'data bessel window 4 split 0.67'",
                        file=built.spec.file, source=built.spec.source, line=1, column=1)
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in data.options.items()}
    if sources.is_file_source(built.spec):
        series, describe = sources.series(built.spec, data_root)
        options = {}
    try:
        if not sources.is_file_source(built.spec):
            describe = S.describe(data.dataset, **options)   # names the data set and checks option names
            series = S.generate(data.dataset, **options)
        wins = S.windows(series, window=data.window, train_fraction=data.split, drop_last=data.drop_last)
    except QtcError as err:
        raise _located(built, str(err), options) from None
    except (TypeError, ValueError, OverflowError) as err:  # e.g. a word where a number belongs
        raise _located(built, f"data set {data.dataset!r}: bad option value ({err})", options) from None
    return series, wins, describe


def _located(built: Built, message: str, options: dict) -> SpecError:
    """`message` as a spec error at the data option it names (else at the data statement)."""
    data = built.spec.data
    line, column = data.line, data.column
    lines = built.spec.source.splitlines()
    named = [k for k in options if re.search(rf"\b{re.escape(k)}\b", message)]
    if named and line and 0 < line <= len(lines):
        hit = re.search(rf"(?<![\w.]){re.escape(named[0])}(?![\w.])", lines[line - 1][(column or 1) - 1:])
        if hit:
            column = (column or 1) + hit.start()
    hint = None
    if data.dataset in S.NAMES and "unknown option" in message:
        hint = "data-set options are the keyword arguments of qtc.tasks.data.series.generate"
    return SpecError(message, file=built.spec.file, source=built.spec.source, line=line,
                     column=column, hint=hint)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def plot_predictions(path, series: S.Series, wins: S.Windows, pred_train, pred_test, title: str,
                     window: int) -> None:
    """`predictions_figure`, saved to `path`."""
    from qtc.tasks import plots
    plots.save(predictions_figure(series, wins, pred_train, pred_test, title, window), path, dpi=110)


def predictions_figure(series: S.Series, wins: S.Windows, pred_train, pred_test, title: str,
                       window: int):
    """Ground truth over the whole series, predictions on train and test windows, the split line."""
    from qtc.tasks import plots
    plt = plots.pyplot()
    axis = series.axis
    n_train, n_test = len(pred_train), len(pred_test)
    t_train = axis[window:window + n_train]
    t_test = axis[window + n_train:window + n_train + n_test]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(axis, series.targets, color="0.55", lw=1.6, label="ground truth")
    ax.plot(t_train, pred_train, color="tab:blue", lw=1.0, label="prediction (train)")
    ax.plot(t_test, pred_test, color="tab:red", lw=1.0, label="prediction (test)")
    ax.axvline(axis[window + n_train], color="k", ls="--", lw=1.0, label="train / test")
    ax.set_xlabel(series.axis_label)
    ax.set_ylabel("value")
    ax.set_title(title, fontsize=10)
    plots.legend_outside(fig, ax)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------------

def mse_scores(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    return {"mse": float(F.mse_loss(outputs, targets)),
            "mae": float((outputs - targets).abs().mean())}


def check(built: Built) -> None:
    """The spec's data set exists with valid options, and its network takes the data's window
    and gives one value (located SpecErrors, raised by load_task)."""
    data = built.spec.data
    if data is None:
        raise built.error(None, "a forecast task needs a 'data' statement",
                          "e.g. 'data bessel window 4 split 0.67'")
    if sources.is_file_source(built.spec):
        if FILE_SOURCES[data.dataset] != name:
            raise built.error(data, f"'data {data.dataset}' is a {FILE_SOURCES[data.dataset]} task's "
                              "data; a forecast task reads a series", "data csv \"FILE\" column NAME "
                              "or data npy \"FILE\"")
        return      # the file is read by preflight: --data-root is a run option
    if data.dataset not in S.NAMES:
        known = (*S.NAMES, *(k for k, v in FILE_SOURCES.items() if v == name))
        raise built.error(data, f"unknown time-series data set '{data.dataset}'",
                          did_you_mean(data.dataset, known))
    load_series(built)  # every option named and in range; sizes bounded by series.MAX_POINTS
    built.check_io(built.main_net.name, (data.window, 1), (1,), f"the data's 'window {data.window}'")


def preflight(built: Built, opts) -> None:
    """Errors the run would meet, raised before its folder exists: a data file that is missing or
    malformed, or that does not fit the network; a validation block smaller than one batch (a
    built-in series' options and the network's shape: checked by load_task)."""
    if opts.data_root and not sources.is_file_source(built.spec):
        raise QtcError(f"--data-root: {built.spec.data.dataset} is generated, not read from a file "
                       "(--data-root finds a 'data csv' or 'data npy' file)")
    series, wins, _ = load_series(built, opts.data_root)
    if sources.is_file_source(built.spec):
        data = built.spec.data
        features = wins.x_train.shape[2]
        built.check_io(built.main_net.name, (data.window, features), (1,),
                       f"'{data.file}' with 'window {data.window}' ({features} input "
                       f"column{'s' * (features > 1)})")
    if opts.select == "validation":
        selection.validation_split(len(wins.x_train), opts.validation, built.spec.train.batch)
    late = [e for e in (built.spec.report.epochs if built.spec.report else ()) if e > opts.epochs]
    if late:                  # --epochs shortened the run: said, not silently skipped
        print(f"note: --epochs {opts.epochs} ends before the spec's report epoch"
              f"{'s' * (len(late) > 1)} {', '.join(map(str, late))}: no prediction plot for "
              f"{'them' if len(late) > 1 else 'it'} (epoch {opts.epochs}, the last, is plotted)",
              file=sys.stderr)


def supervised(built: Built, rundir: RunDir, opts) -> Supervised:
    """The task the engine trains on (also rebuilt by each worker of `--jobs N`): the spec's
    series as windows; the prediction plots of the `report` epochs are drawn as they pass."""
    return _task(built, rundir, opts, *load_series(built, opts.data_root))


def _task(built: Built, rundir: RunDir, opts, series: S.Series, wins: S.Windows,
          description: str) -> Supervised:
    net = built.main_net
    window = built.spec.data.window
    report = sorted(set(built.spec.report.epochs if built.spec.report else ()) | {opts.epochs})
    rundir.subfolder("plots")

    def on_epoch(model: str, epoch: int, flat: torch.Tensor) -> None:
        if epoch not in report:
            return
        pred_train = net.forward(flat, wins.x_train).squeeze(1).numpy()
        pred_test = net.forward(flat, wins.x_test).squeeze(1).numpy()
        mse = float(((torch.from_numpy(pred_test)[:, None] - wins.y_test) ** 2).mean())
        title = f"{built.spec.name}: {built.model_label(model)}, epoch {epoch} (test MSE {mse:.3g})"
        plot_predictions(rundir.path / "plots" / f"predictions_{naming.folder(model)}_epoch{epoch}.png",
                         series, wins, pred_train, pred_test, title, window)

    return Supervised(train=torch.utils.data.TensorDataset(wins.x_train, wins.y_train),
                      test=torch.utils.data.TensorDataset(wins.x_test, wins.y_test),
                      loss=F.mse_loss, scores=mse_scores, on_epoch=on_epoch,
                      preprocessing=preprocessing(built, series, description))


def run(built: Built, rundir: RunDir, opts) -> dict:
    """Train every model of opts.models on the spec's series; write metrics, plots and the summary."""
    series, wins, description = load_series(built, opts.data_root)
    task = _task(built, rundir, opts, series, wins, description)
    fit, _ = held_out(task, opts, built.spec.train.batch)    # baselines see what the models train on
    base = forecast_baselines(*fit.train.tensors, *task.test.tensors, last=_target_column(built, opts))
    rundir.write_json(BASELINES, base)
    done = train_all(built, rundir, opts, task)
    summary = write_summary(built, rundir, opts, done, description, wins, base)
    print(summary["table"])
    return done


def _target_column(built: Built, opts) -> int | None:
    """Which input feature is the target's own past (the "last value" baseline repeats it): the
    only one of a univariate series; of several csv columns the target's, None when the target
    is not among the inputs."""
    data = built.spec.data
    if not sources.is_file_source(built.spec) or data.columns is None and not (
            data.dataset == "npy" and data.target is not None):
        return -1
    names = sources.read(built.spec, opts.data_root).names
    return names.index(str(data.target)) if str(data.target) in names else None


def preprocessing(built: Built, series: S.Series, description: str) -> str:
    """What an exported forecaster expects and returns (its README): the window and the series'
    scaling with the constants of this run's series."""
    window = built.spec.data.window
    narma = series.inputs is not series.targets        # inputs u, target y; else one series
    features = series.inputs.shape[1] if series.inputs.ndim == 2 else 1
    part = f"{features} input columns" if features > 1 else "input u" if narma else "series"
    lines = [f"- data: {description}",
             f"- input: float32, shape (N, {window}, {features}): the {window} "
             f"{'steps' if features > 1 else 'values'} before the one predicted (of the {part}, "
             f"oldest first; the spec's `window {window}`)",
             "- output: shape (N, 1), the next value" + (" of the target" if narma else "")]
    if not series.ranges:
        lines.append("- scaling: none, the series is unscaled: inputs and output are its raw values")
    for part, (lo, hi) in series.ranges.items():
        lines.append(f"- scaling ({part}): min-max to [-1, 1] from this run's raw {part}, lo = {lo!r}, "
                     f"hi = {hi!r}: `scaled = -1 + 2 * (x - lo) / (hi - lo)`; back to raw values: "
                     "`x = lo + (y + 1) * (hi - lo) / 2`")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------

def write_summary(built: Built, rundir: RunDir, opts, done: dict[str, dict], description: str,
                  wins: S.Windows, baselines: dict) -> dict:
    """summary.md / summary.json: one row per model (at its selected epoch), ours beside the
    paper's Table II value, then the naive baselines."""
    # Imported here: a run need not load the sweep's modules (and scipy) to start.
    from qtc.tasks.experiments.table2 import fmt, paper_row, paper_value
    dataset = built.spec.data.dataset
    rows = []
    for model, row in done.items():
        key = paper_row(model, built.candidate_labels())
        paper = paper_value(dataset, key)
        rows.append({"model": model, "label": built.model_label(model), "paper_key": key,
                     "epochs": row["epoch"], "train_mse": row["train_mse"], "test_mse": row["test_mse"],
                     "paper_test_mse": paper,
                     "ratio": row["test_mse"] / paper if paper else None,
                     "structural_weights": row.get("structural_weights")})
    lines = [f"# {built.spec.name}: test MSE", "",
             f"- data: {description}",
             f"- windows: {len(wins.x_train)} train, {len(wins.x_test)} test (window "
             f"{built.spec.data.window}, split {built.spec.data.split}, time order)",
             f"- seed {opts.seed}, {opts.epochs} epochs, batch order {built.spec.train.order}"
             + (f", at most {opts.max_batches} batches per epoch" if opts.max_batches else ""),
             f"- reported epoch: {_rule_text(opts)} (selection.json)", "",
             "| model | epoch | train MSE | test MSE | paper test MSE | ours / paper |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        lines.append(f"| {r['label']} | {r['epochs']} | {fmt(r['train_mse'])} | {fmt(r['test_mse'])} | "
                     f"{fmt(r['paper_test_mse'])} | {ratio} |")
    lines += [f"| *baseline:* {name} | - | {fmt(b['train_mse'])} | {fmt(b['test_mse'])} | - | - |"
              for name, b in baselines.items()]
    table = "\n".join(lines[-(len(rows) + len(baselines) + 2):])
    note = unmoved_note(rundir.metrics()) if built.program is None or built.program.weights.kind == "candidate" else None
    lines += ["", f"Note: {note}."] if note else []
    merged = twins_note(rundir.metrics())
    lines += ["", f"Note: {merged}."] if merged else []
    lines += architecture_section(built.program, done, built.sampled)
    rundir.write_text("summary.md", "\n".join(lines) + "\n")
    rundir.write_json("summary.json", {"task": built.spec.name, "dataset": dataset, "seed": opts.seed,
                                       "epochs": opts.epochs, "select": opts.select,
                                       "validation": opts.validation, "description": description,
                                       "rows": rows, "baselines": baselines})
    _final_plots(built, rundir)
    return {"rows": rows, "table": table}


def _rule_text(opts) -> str:
    """The selection rule in words."""
    if opts.select == "validation":
        return f"the epoch with the lowest MSE on the held-out last {opts.validation:g} of the training windows"
    return {"last": "the last epoch", "train": "the epoch with the lowest training MSE"}[opts.select]


def _final_plots(built: Built, rundir: RunDir) -> None:
    """Curves of every model (shared plots module) and DiffQAS-QT's structural weights."""
    from qtc.tasks import plots
    rows = rundir.metrics()
    plots.curves(rows, ["train_mse", "test_mse"], rundir.path / "plots" / "curves.png",
                 title=f"{built.spec.name}: MSE per epoch", log_keys=("train_mse", "test_mse"))
    plots.diffqas_weights(built.program, rows, rundir.path / "plots" / "structural_weights.png", built.spec.name)

