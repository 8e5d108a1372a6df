"""Binary image classification (paper Figs. 5-7): MNIST / FashionMNIST, a QT-generated CNN.

`run` loads the two classes (before anything a resume could trust is written), trains each
model with the shared supervised engine, and after every model refreshes the run folder's
figures and summary:

    curves.png                loss and accuracy per epoch, all models in one figure
    structural_weights.png    DiffQAS-QT's learned structural weights (bar chart)
    summary.md                final accuracies, epochs, DiffQAS-QT's rank among the fixed candidates
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from qtc.errors import QtcError, SpecError, did_you_mean
from qtc.tasks import naming, plots
from qtc.tasks.build import Built
from qtc.tasks.data.images import CLASSES, DATASETS, load_binary
from qtc.tasks.runs.rundir import RunDir
from qtc.tasks.engines import selection
from qtc.tasks.engines.baselines import majority_baseline
from qtc.tasks.engines.supervised import SELECTION, Supervised, held_out, train_all

CURVE_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
BASELINES = "baselines.json"


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Fraction of argmax predictions equal to the targets."""
    return {"accuracy": float((outputs.argmax(1) == targets).float().mean())}


def preflight(built: Built, opts) -> None:
    """Errors the run would meet, raised before its folder exists: missing data, a validation
    block smaller than one batch (the spec's set, classes and shapes: checked by load_task)."""
    train, _ = _load(built, opts)
    if opts.select == "validation":
        selection.validation_split(len(train), opts.validation, built.spec.train.batch)


def _load(built: Built, opts):
    """The spec's two classes (train, test)."""
    data = built.spec.data
    return load_binary(data.dataset, tuple(data.classes), data_root=opts.data_root,
                       normalize=tuple(data.normalize), download=opts.download, limit=opts.limit)


def run(built: Built, rundir: RunDir, opts) -> dict:
    """Train every requested model on the spec's two classes; return {model: selected metrics row}."""
    train, test = _load(built, opts)
    task = Supervised(train=train, test=test, loss=F.cross_entropy, scores=accuracy)
    fit, _ = held_out(task, opts, built.spec.train.batch)    # the baseline sees what the models train on
    rundir.write_json(BASELINES, majority_baseline(fit.train.tensors[1], test.tensors[1]))
    done: dict = {}
    try:
        # One model at a time, so the figures and summary are refreshed after each of them.
        for model in opts.models:
            done = train_all(built, rundir, replace(opts, models=[model]), task)
            report(built, rundir)
    finally:
        if rundir.metrics():  # interrupted or failed: still leave figures of what was done
            report(built, rundir)
    return done


def report(built: Built, rundir: RunDir) -> None:
    """Redraw the figures and rewrite summary.md from the run's metrics."""
    rows = rundir.metrics()
    if not rows:
        return
    plots.curves(rows, CURVE_KEYS, rundir.path / "curves.png", title=_figure_title(built),
                 log_keys=("train_loss", "test_loss"))
    weights = [r for r in rows if r["model"] == "diffqas" and r.get("structural_weights")]
    if weights and built.program is not None:
        plots.structural_weights(built.program.weight_labels, weights[-1]["structural_weights"],
                                 rundir.path / "structural_weights.png",
                                 title=f"DiffQAS-QT structural weights after epoch {weights[-1]['epoch']}")
    rundir.write_text("summary.md", summary(built, rows, _optional_json(rundir, SELECTION),
                                            _optional_json(rundir, BASELINES)))


def _optional_json(rundir: RunDir, name: str) -> dict:
    return rundir.read_json(name) if (rundir.path / name).is_file() else {}


def _figure_title(built: Built) -> str:
    data = built.spec.data
    name = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}.get(data.dataset, data.dataset)
    return f"{built.spec.name}: {name} {data.classes[0]} vs {data.classes[1]}"


def final_rows(rows: list[dict], selected: dict | None = None) -> dict[str, dict]:
    """The reported row of each model, in first-seen order: the epoch selection.json names
    (`selected`), else the last."""
    out: dict[str, dict] = {}
    for r in rows:
        pick = (selected or {}).get(r["model"], {}).get("epoch")
        if pick is not None:
            if r["epoch"] == pick:
                out[r["model"]] = r
        elif r["model"] not in out or r["epoch"] >= out[r["model"]]["epoch"]:
            out[r["model"]] = r
    return out


def rank_among_fixed(final: dict[str, dict], key: str = "test_accuracy") -> tuple[int, int] | None:
    """DiffQAS-QT's rank (1 = best) by `key` among itself and the fixed candidates, and their count.

    Ties count in DiffQAS-QT's favour (rank = 1 + number of candidates strictly better); None
    when DiffQAS-QT or all fixed candidates are missing.
    """
    fixed = [r[key] for m, r in final.items() if naming.is_fixed(m)]
    if "diffqas" not in final or not fixed:
        return None
    mine = final["diffqas"][key]
    return 1 + sum(v > mine for v in fixed), len(fixed) + 1


def summary(built: Built, rows: list[dict], selected: dict | None = None,
            baselines: dict | None = None) -> str:
    """Markdown: the reported accuracies (each model at its selected epoch), the majority-class
    baseline, and DiffQAS-QT's standing among the fixed candidates."""
    final = final_rows(rows, selected)
    lines = [f"# {_figure_title(built)}", "",
             "| model | label | epochs | train acc | test acc | train loss | test loss | s/epoch |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model, r in final.items():
        secs = [x["seconds"] for x in rows if x["model"] == model]
        lines.append(f"| {model} | {r.get('label', model)} | {r['epoch']} | {r['train_accuracy']:.4f} | "
                     f"{r['test_accuracy']:.4f} | {r['train_loss']:.4g} | {r['test_loss']:.4g} | "
                     f"{sum(secs) / len(secs):.1f} |")
    lines += [f"| *baseline* | {name} (class {b['class']}) | - | {b['train_accuracy']:.4f} | "
              f"{b['test_accuracy']:.4f} | - | - | - |" for name, b in (baselines or {}).items()]
    rule = next(iter((selected or {}).values()), {}).get("rule", "last")
    lines += ["", f"Reported epoch per model: select {rule} (selection.json)."]
    rank = rank_among_fixed(final)
    lines.append("")
    if rank:
        better = sorted((r["test_accuracy"], r.get("label", m)) for m, r in final.items()
                        if naming.is_fixed(m) and r["test_accuracy"] > final["diffqas"]["test_accuracy"])
        lines.append(f"DiffQAS-QT ranks {rank[0]} of {rank[1]} by final test accuracy among itself and "
                     f"the {rank[1] - 1} fixed candidates (ties count in its favour)"
                     + (f"; better: {', '.join(lab for _, lab in reversed(better))}." if better else "."))
    else:
        lines.append("DiffQAS-QT's rank among the fixed candidates: not available (not all were run).")
    return "\n".join(lines) + "\n"
