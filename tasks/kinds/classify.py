"""Image classification (paper Figs. 5-7: binary): MNIST / FashionMNIST, K >= 2 of their ten
classes (`classes [c1, ..., cK]`, c_k is output k, or `classes all`), a QT-generated CNN.

`run` loads the classes (before anything a resume could trust is written), trains each
model with the shared supervised engine, and after every model refreshes the run folder's
figures and summary:

    curves.png                loss and accuracy per epoch, all models in one figure
    structural_weights.png    DiffQAS-QT's structural weights over the epochs and at the end
    summary.md                final accuracies (per class for K > 2), epochs, DiffQAS-QT's rank
                              among the fixed candidates
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from qtc.dsl.data import FILE_SOURCES
from qtc.errors import did_you_mean
from qtc.tasks import naming, plots
from qtc.tasks.build import Built
from qtc.tasks.data import sources
from qtc.tasks.data.images import CLASSES, DATASETS, chosen_classes, load_classes, torchvision_class
from qtc.tasks.runs.rundir import RunDir
from qtc.tasks.engines import selection
from qtc.tasks.engines.baselines import BASELINES, majority_baseline
from qtc.tasks.engines.supervised import (SELECTION, Supervised, architecture_section, held_out, train_all, twins_note,
                                          unmoved_note)

name = "classify"          # the kind's entry in qtc.tasks.kinds.KINDS
engine = "supervised"
CURVE_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Fraction of argmax predictions equal to the targets."""
    return {"accuracy": float((outputs.argmax(1) == targets).float().mean())}


def check(built: Built) -> None:
    """The spec's data set and classes exist, and its network takes a 1x28x28 image and gives
    one logit per class (located SpecErrors, raised by load_task)."""
    data = built.spec.data
    example = "'data mnist classes [1, 5]' (or fashion_mnist; 'classes all' for all ten)"
    if data is None:
        raise built.error(None, "a classify task needs a 'data' statement", f"e.g. {example}")
    if sources.is_file_source(built.spec):
        if FILE_SOURCES[data.dataset] != name:
            raise built.error(data, f"'data {data.dataset}' is a {FILE_SOURCES[data.dataset]} task's "
                              "data; a classify task reads labelled examples",
                              'data npz "FILE", data folder "DIR" or data cifar10 "DIR"')
        return      # the file is read by preflight: --data-root is a run option
    if "split" in data.model_fields_set and data.dataset in DATASETS:
        raise built.error(data, f"'split' does not apply to {data.dataset}: it comes split into train "
                          "and test", "remove 'split' (it splits an npz without test arrays or a folder)")
    if data.dataset not in DATASETS:
        known = (*DATASETS, *(k for k, v in FILE_SOURCES.items() if v == name))
        raise built.error(data, f"unknown image data set '{data.dataset}'", did_you_mean(data.dataset, known))
    if data.classes is None:
        raise built.error(data, "a classify task needs its classes", f"e.g. {example}")
    chosen = chosen_classes(data.classes)
    absent = [c for c in chosen if c not in CLASSES]
    if absent:
        raise built.error(data, f"class {absent[0]} does not exist in {data.dataset} "
                          f"(classes {CLASSES[0]}..{CLASSES[-1]})")
    k = len(chosen)      # distinct, two or more: the data statement's own check
    built.check_io(built.main_net.name, (1, 28, 28), (k,),
                   f"{data.dataset} with {k} classes (one output each)")


def accuracy_per_class(outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """`accuracy`; `class_accuracy`: per output k, the fraction of the examples of class k
    predicted as k (None for a class with no examples); `confusion`: counts, row = true class,
    column = predicted. For K > 2 classes; binary rows keep their keys."""
    k = outputs.shape[1]
    predicted = outputs.argmax(1)
    confusion = torch.bincount(targets * k + predicted, minlength=k * k).reshape(k, k)
    counts, hits = confusion.sum(1), confusion.diagonal()
    return {**accuracy(outputs, targets),
            "class_accuracy": [float(h) / int(c) if c else None for h, c in zip(hits, counts)],
            "confusion": confusion.tolist()}


def preflight(built: Built, opts) -> None:
    """Errors the run would meet, raised before its folder exists: missing data (a data file
    missing or malformed, or not fitting the network), a validation block smaller than one
    batch (a built-in set's classes and shapes: checked by load_task)."""
    train, _ = _load(built, opts)
    if sources.is_file_source(built.spec):
        data, k = built.spec.data, len(_outputs(built, opts))
        built.check_io(built.main_net.name, tuple(train.tensors[0].shape[1:]), (k,),
                       f"'{data.file}' with {k} classes (one output each)")
    if opts.select == "validation":
        selection.validation_split(len(train), opts.validation, built.spec.train.batch)


def _load(built: Built, opts):
    """The spec's classes (train, test)."""
    data = built.spec.data
    if sources.is_file_source(built.spec):
        got = sources.classes(built.spec, opts.data_root, opts.limit)
        return got.train, got.test
    return load_classes(data.dataset, chosen_classes(data.classes), data_root=opts.data_root,
                       normalize=tuple(data.normalize), download=opts.download, limit=opts.limit)


def _outputs(built: Built, opts) -> list[str]:
    """What each output index is, in words: `label 7 (Sneaker)`, `label 3` (MNIST, npz), `label 0 (cat)`
    (a folder's sub-folder name, CIFAR-10's label name)."""
    data = built.spec.data
    if sources.is_file_source(built.spec):
        got = sources.classes(built.spec, opts.data_root, opts.limit)
        return [f"label {c}" + (f" ({n})" if n != str(c) else "") for c, n in zip(got.labels, got.names)]
    labels = torchvision_class(data.dataset).classes        # MNIST's say "7 - seven": no name
    return [f"label {c}" + ("" if labels[c].startswith(f"{c} - ") else f" ({labels[c]})")
            for c in chosen_classes(data.classes)]


def supervised(built: Built, rundir: RunDir, opts) -> Supervised:
    """The task the engine trains on (also rebuilt by each worker of `--jobs N`): the spec's
    classes; the figures and summary are refreshed after each model."""
    train, test = _load(built, opts)
    scores = accuracy_per_class if built.many_classes() else accuracy
    outputs = _outputs(built, opts)
    return Supervised(train=train, test=test, loss=F.cross_entropy, scores=scores,
                      preprocessing=preprocessing(built, opts),
                      on_model=lambda _model: report(built, rundir, outputs))


def run(built: Built, rundir: RunDir, opts) -> dict:
    """Train every requested model on the spec's classes; return {model: selected metrics row}."""
    task = supervised(built, rundir, opts)
    fit, _ = held_out(task, opts, built.spec.train.batch)    # the baseline sees what the models train on
    rundir.write_json(BASELINES, majority_baseline(fit.train.tensors[1], task.test.tensors[1]))
    done: dict = {}
    try:
        done = train_all(built, rundir, opts, task)
    finally:
        if rundir.metrics():  # interrupted or failed: still leave figures of what was done
            report(built, rundir, _outputs(built, opts))
    return done


def preprocessing(built: Built, opts) -> str:
    """What an exported classifier expects and returns (its README): the input's scaling and
    which label each output index is (the spec's `classes`, in order)."""
    data, net = built.spec.data, next(iter(built.nets.values()))
    outputs = _outputs(built, opts)
    said = "all" if data.classes in ("all", None) else f"[{', '.join(map(str, data.classes))}]"
    if sources.is_file_source(built.spec):
        what = f"examples of {data.file}, {sources.classes(built.spec, opts.data_root, opts.limit).scaling}"
    else:
        mean, std = data.normalize
        what = (f"{DATASETS[data.dataset]} images, each pixel x (0..255) as `(x / 255 - {mean:g}) / "
                f"{std:g}` (the spec's `normalize [{mean:g}, {std:g}]`)")
    first = "" if sources.is_file_source(built.spec) else DATASETS[data.dataset] + " "
    mapping = ", ".join(f"index {k} is {first if k == 0 else ''}{o}" for k, o in enumerate(outputs))
    return (f"- input: float32, shape (N, {', '.join(map(str, net.input_shape))}): {what}\n"
            f"- output: {len(outputs)} logits; {mapping} (the spec's `classes {said}`); the "
            f"prediction is the argmax\n")


def report(built: Built, rundir: RunDir, outputs: list[str]) -> None:
    """Redraw the figures and rewrite summary.md from the run's metrics (`outputs`: what each
    output index is, for the per-class table and the confusion matrix)."""
    rows = rundir.metrics()
    if not rows:
        return
    plots.curves(rows, CURVE_KEYS, rundir.path / "curves.png", title=_figure_title(built),
                 log_keys=("train_loss", "test_loss"))
    final = final_rows(rows, _optional_json(rundir, SELECTION))
    shown = {r.get("label", m): r["test_confusion"] for m, r in final.items()
             if r.get("test_confusion") and not naming.is_fixed(m)}
    if shown:
        plots.confusion(shown, outputs, rundir.path / "confusion.png",
                        title=f"{_figure_title(built)}: test confusion at the reported epoch")
    plots.diffqas_weights(built.program, rows, rundir.path / "structural_weights.png", built.spec.name)
    rundir.write_text("summary.md", summary(built, rows, _optional_json(rundir, SELECTION),
                                            _optional_json(rundir, BASELINES), outputs))


def _optional_json(rundir: RunDir, name: str) -> dict:
    return rundir.read_json(name) if (rundir.path / name).is_file() else {}


def _figure_title(built: Built) -> str:
    data = built.spec.data
    if sources.is_file_source(built.spec):
        return f"{built.spec.name}: {data.file}, {built.main_net.output_shape[0]} classes"
    name = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}.get(data.dataset, data.dataset)
    chosen = chosen_classes(data.classes)
    if len(chosen) == 2:
        return f"{built.spec.name}: {name} {chosen[0]} vs {chosen[1]}"
    return f"{built.spec.name}: {name}, {len(chosen)} classes"


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


def final_table(final: dict[str, dict], rows: list[dict], metric: str, shown: str) -> list[str]:
    """The summary's table of each model at its reported epoch: the `metric` (train_/test_
    columns headed `shown`), the losses and the mean seconds per epoch."""
    lines = [f"| model | epochs | train {shown} | test {shown} | train loss | test loss | s/epoch |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for model, r in final.items():
        secs = [x["seconds"] for x in rows if x["model"] == model]
        lines.append(f"| {r.get('label', model)} | {r['epoch']} | {r[f'train_{metric}']:.4f} | "
                     f"{r[f'test_{metric}']:.4f} | {r['train_loss']:.4g} | {r['test_loss']:.4g} | "
                     f"{sum(secs) / len(secs):.1f} |")
    return lines


def standing(final: dict[str, dict], key: str = "test_accuracy", higher: bool = True) -> str:
    """DiffQAS-QT's place by `key` among itself and the fixed candidates, in words: its rank
    (1 = best, the highest value, or the lowest unless `higher`; ties count in its favour) with
    the candidates it ties named once, or "all tie"."""
    fixed = {m: r[key] for m, r in final.items() if naming.is_fixed(m)}
    if naming.DIFFQAS not in final or not fixed:
        return "DiffQAS-QT's rank among the fixed candidates: not available (not all were run)."
    mine, what = final[naming.DIFFQAS][key], key.replace("_", " ")
    if all(v == mine for v in fixed.values()):
        return f"DiffQAS-QT and the {len(fixed)} fixed candidates all tie on final {what} ({mine:.4f})."
    sign = 1 if higher else -1
    better = sorted((m for m, v in fixed.items() if sign * v > sign * mine), key=lambda m: -sign * fixed[m])
    tied = [m for m, v in fixed.items() if v == mine]
    return (f"DiffQAS-QT ranks {1 + len(better)} of {len(fixed) + 1} by final {what} among itself and "
            f"the {len(fixed)} fixed candidates"
            + (f", tied with {naming.configs(tied)}" if tied else "")
            + (f"; better: {naming.configs(better)}." if better else "."))


def summary(built: Built, rows: list[dict], selected: dict | None = None,
            baselines: dict | None = None, outputs: list[str] | None = None) -> str:
    """Markdown: the reported accuracies (each model at its selected epoch), the majority-class
    baseline, and DiffQAS-QT's standing among the fixed candidates."""
    final = final_rows(rows, selected)
    lines = [f"# {_figure_title(built)}", ""] + final_table(final, rows, "accuracy", "acc")
    lines += [f"| *baseline:* {name} (class {b['class']}) | - | {b['train_accuracy']:.4f} | "
              f"{b['test_accuracy']:.4f} | - | - | - |" for name, b in (baselines or {}).items()]
    lines += _per_class(final, outputs or [])
    rule = next(iter((selected or {}).values()), {}).get("rule", "last")
    lines += ["", f"Reported epoch per model: select {rule} (selection.json)."]
    lines += ["", standing(final) + " One seed: no spread (`qtc run --seeds K` reports over seeds)."]
    note = unmoved_note(rows) if built.program is None or built.program.weights.kind == "candidate" else None
    lines += ["", f"Note: {note}."] if note else []
    lines += architecture_section(built.program, final, built.sampled)
    merged = twins_note(rows)
    lines += ["", f"Note: {merged}."] if merged else []
    return "\n".join(lines) + "\n"


def _per_class(final: dict[str, dict], outputs: list[str]) -> list[str]:
    """A table of test accuracy per class (K > 2 classes: the rows carry it), one column per
    model at its reported epoch; `outputs` says what each output index is."""
    models = [m for m, r in final.items() if r.get("test_class_accuracy")]
    if not models:
        return []
    lines = ["", "Test accuracy per class (output index: label):", "",
             "| class | " + " | ".join(final[m].get("label", m) for m in models) + " |",
             "|---|" + "---:|" * len(models)]
    for k, said in enumerate(outputs):
        cells = [final[m]["test_class_accuracy"][k] for m in models]
        lines.append(f"| {k}: {said.removeprefix('label ')} | "
                     + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |")
    return lines
