"""`qtc.experiment.Experiment`: the run machinery of `qtc run`, for a model and data defined in Python.

A `.task` names its network, data and loss in the spec language; an experiment takes them as
Python objects -- an nn.Module factory, tensors (or a Dataset), a loss and a metric -- with a
`.qs` search space and the `generator`, `train` and `compare` statements' options as keywords.
`run()` then does what `qtc run` does, through the same code (qtc.tasks.runs.runner: start,
reopen, run; the supervised engine; sweep trials for seeds): DiffQAS-QT beside the fixed
candidates and the classical network, validation selection, checkpoints and resume, figures,
summary.md, exported models with their README, and with `seeds` one folder per (model, seed)
and a report over seeds with paired statistics.

The front is thin: it checks the Python objects, turns the keywords into the spec's own
statement models (so they are checked as a spec's are) and builds a PythonBuilt whose kind is a
PythonKind (qtc.tasks.kinds.python). The models train in this process (`jobs` 1): the factory,
data and loss live here.

Fingerprint (resume refuses a changed experiment, naming what differs): the statements, the
search space's text and the result-changing options as for a .task, plus the sha256 of the
training and test tensors, and for the model factory, the loss and the metric their module and
qualified name with the sha256 of their source text (inspect.getsource; for code without a
file, its bytecode and constants). What a callable calls is not followed: an edited helper
function, a global it reads or another torch version goes unseen. `key="..."` replaces the three
source digests by the names and that key: say `key="v2"` when the code changed in a way that
changes results, keep the key to resume after an edit that does not.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from qtc.dsl.task import PLAIN_NAME, CompareStmt, GeneratorStmt, TaskSpec, TrainStmt, check_seeds
from qtc.errors import QtcError
from qtc.runtime.model import INTEGER_HINT
from qtc.tasks.experiments import sweep
from qtc.tasks.kinds.python import KIND, Metric, PythonBuilt, PythonKind
from qtc.tasks.modulenet import source_digest
from qtc.tasks.runs import runner
from qtc.tasks.runs.rundir import CHECKPOINT, METRICS

__all__ = ["Experiment"]


class Experiment:
    """A model and data from Python, run as `qtc run` runs a .task.

    `name`: the task's name (letters, digits, `_`, `-`: it names folders). `model`: a function or
    class that returns a fresh nn.Module (called under each model's seed, so each starts from
    torch's own initialisation). Its parameters with requires_grad are generated (QT) or
    trained (classical); those without (a frozen pretrained part) and its buffers (BatchNorm's
    running statistics) are each model's own, checkpointed, resumed and exported with it
    (qtc.tasks.modulenet). `train_data`, `test_data`: `(x, y)` tensors or arrays, or a Dataset
    of (x, y) pairs (stacked); float x in the network's dtype (float32, or float64 for a
    `.double()` network), integer x as int64 (token ids for an nn.Embedding), integer y long
    (then the summary shows the majority-class baseline), float y in the network's dtype. For a
    model of several inputs, x is a tuple of them: `((x1, x2), y)` for `forward(x1, x2)`.
    `loss(outputs, targets)` is minimised; `metric(outputs, targets) -> float` is reported as
    train_<name> / test_<name> (name: `metric_name`, else the function's), `higher_is_better`
    ranks models by it.

    `space`: a .qs name, looked up as a task's `generator NAME.qs` (the current folder, the space
    path, the bundled spaces; docs/spec-language.md) or a path to a .qs file. `generator`,
    `train`: the `generator` and `train` statements' options as a dict (e.g. `dict(depth=4)`,
    `dict(optimizer="adam", lr=1e-2, epochs=5, batch=50, select="validation", validation=0.2)`),
    checked as a spec's are. `compare`: the `compare` statement's models ("fixed", "found",
    "classical"). `preprocessing`: Markdown for the exported models' README (what the inputs
    must be). `key`: see the module's docstring (the fingerprint).
    """

    def __init__(self, name: str, model: Callable[[], nn.Module], train_data, test_data, *,
                 loss: Callable, metric: Callable, metric_name: str | None = None,
                 higher_is_better: bool = True, space: str | Path = "hadamard_ent_rot.qs",
                 generator: dict | None = None, train: dict | None = None,
                 compare=("fixed", "classical"), preprocessing: str = "", key: str | None = None):
        if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
            raise QtcError(f"Experiment name {name!r}: use letters, digits, '_' and '-' (it names folders)")
        if isinstance(model, nn.Module) or not callable(model):
            raise QtcError("Experiment model=: give the function or class that builds the network "
                           "(e.g. model=Net), not a module: each model and seed starts from its own "
                           "initialisation")
        for what, fn in (("loss", loss), ("metric", metric)):
            if not callable(fn):
                raise QtcError(f"Experiment {what}=: expected a function (outputs, targets) -> ..., "
                               f"got {type(fn).__name__}")
        metric_name = metric_name or getattr(metric, "__name__", "")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", metric_name or "") or metric_name == "loss":
            raise QtcError(f"Experiment metric name {metric_name!r}: give metric_name= (a word such "
                           "as 'accuracy', not 'loss'; a lambda has no name of its own)")
        (train_x, train_y), (test_x, test_y) = _tensors(train_data, "train_data"), _tensors(test_data, "test_data")
        if _kinds(train_x) != _kinds(test_x):
            raise QtcError(f"train_data's inputs are {_shapes(train_x)} each, test_data's "
                           f"{_shapes(test_x)}: give both the same shapes and kinds (float or integer)")
        classes = not train_y.is_floating_point()
        space_name = Path(space).name
        spec = TaskSpec(name=name, kind=KIND, networks={},
                        generator=_statement(GeneratorStmt, "generator", {"space": space_name, **(generator or {})}),
                        train=_statement(TrainStmt, "train", {"optimizer": "adam", **(train or {})}),
                        compare=_statement(CompareStmt, "compare", {"models": tuple(compare)}))
        self.built = PythonBuilt(spec, {}, factory=model, examples=train_x, space=space)
        net = self.built.main_net                  # the model runs on the data's inputs, located
        self.built.program                         # noqa: B018 - the space compiles for its size
        train_set, test_set = (TensorDataset(net.inputs.pack(x), _targets(y, net.dtype))
                               for x, y in ((train_x, train_y), (test_x, test_y)))
        metric_ = Metric(metric, metric_name, bool(higher_is_better))
        self.built.task_kind = PythonKind(train_set, test_set, loss, metric_, _inputs_words(net) + (
            f"\n- output: shape (N, {', '.join(map(str, net.output_shape))})\n") + (preprocessing or ""), classes)
        code = {"model": model, "loss": loss, "metric": metric}
        self.built.identity = {
            **{f"python.{what}.name": source_digest(fn)["name"] for what, fn in code.items()},
            **({"python.key": key} if key is not None else
               {f"python.{what}.sha256": source_digest(fn)["sha256"] for what, fn in code.items()}),
            "python.metric": [metric_name, bool(higher_is_better)],
            "python.data.train.sha256": _digest(train_set), "python.data.test.sha256": _digest(test_set),
            **({"python.inputs": [list(s) for s in net.inputs.shapes]} if len(train_x) > 1 else {})}
        _check_loss(net, train_set, loss, metric_)
        self.built.spec = spec.model_copy(update={"source": self._description(space, generator, train, compare)})

    @property
    def name(self) -> str:
        return self.built.spec.name

    def run(self, out: str | Path, *, models: str | list[str] | None = None, seeds=None,
            epochs: int | None = None, resume: bool = False, limit: int | None = None,
            max_batches: int | None = None, backend: str | None = None,
            threads: int | None = None, progress: bool = True) -> dict:
        """Train into the run folder `out`, as `qtc run -o OUT` does; return {model: its
        reported metrics row}.

        `models`: "diffqas,fixed,classical" (or a list; default DiffQAS-QT and `compare`).
        `seeds` (a count K or a list; default the `train` options' `seeds`): every model for
        every seed, one run folder each under OUT/<name>/<model>/seed<k>/ and OUT/report/ with
        the statistics over seeds; calling run again with the same arguments resumes it.
        Without seeds, `resume=True` continues an interrupted run in `out` (or extends it to
        more `epochs`), refusing one whose experiment changed (the fingerprint). `limit`,
        `max_batches`: smoke runs (the first N examples, N batches per epoch)."""
        if isinstance(models, (list, tuple)):
            models = ",".join(models)
        if seeds is None:
            seeds = self.built.spec.train.seeds
        if seeds is not None:
            if resume:
                raise QtcError("run(seeds=...) resumes by being called again with the same "
                               "arguments: leave out resume=True")
            return self._run_seeds(Path(out), _seeds(seeds), models,
                                   dict(epochs=epochs, limit=limit, max_batches=max_batches,
                                        backend=backend, threads=threads), progress)
        out = Path(out)
        if resume:
            overrides = {"models": models, "epochs": epochs, "limit": limit, "max_batches": max_batches,
                         "backend": backend, "threads": threads}
            built, options, rundir = runner.reopen(out, overrides=overrides, built=self.built,
                                                   progress=progress)
        else:
            if any((out / name).exists() for name in (CHECKPOINT, METRICS)):
                raise QtcError(f"run folder {out} already holds a run: continue it with "
                               f"run({str(out)!r}, resume=True), or give another folder")
            built = self.built
            options = runner.resolve_options(built, models=models, epochs=epochs, limit=limit,
                                             max_batches=max_batches, backend=backend,
                                             threads=threads, progress=progress, jobs=1)
            rundir = runner.start(built, options, out)
        try:
            return runner.run(built, options, rundir)
        except KeyboardInterrupt:
            print(f"continue in Python: run({str(out)!r}, resume=True) on the same experiment")
            raise

    # --- seeds: one trial per (model, seed), as `qtc run --seeds` ----------------------------
    def _run_seeds(self, out: Path, seeds: list[int], models: str | None, overrides: dict,
                   progress: bool) -> dict:
        built = self.built
        chosen = built.select_models(models) if models else built.models()
        runner.resolve_options(built, models=",".join(chosen), jobs=1, **overrides)   # checked first
        tied = built.twins(chosen)
        trials = [sweep.Trial(f"python:{self.name}", self.name, KIND, m, s, overrides=overrides)
                  for m in chosen if m not in tied for s in seeds]
        settings = {"seeds": seeds, "models": ",".join(chosen), "ties": {self.name: tied},
                    "command": f"qtc.experiment.Experiment({self.name!r}).run(seeds={seeds})",
                    "overrides": {k: v for k, v in overrides.items() if v is not None}}

        def run(trial: dict, folder: str) -> dict:
            return sweep.run_trial(trial, folder, open_trial=self._open_trial)

        status = sweep.run_sweep(trials, out, executor="serial", progress=progress,
                                 settings=settings, run=run)
        if status:
            raise QtcError(f"some trials failed: see {out}/*/*/seed*/trial.json")
        return {t.key: (sweep.read_status(out / t.key) or {}).get("final") for t in trials}

    def _open_trial(self, t: sweep.Trial, folder: Path, resume: bool, _spec):
        """(built, options, rundir) of one trial: its folder reopened with this experiment, or
        started (sweep.run_trial's `open_trial`)."""
        if resume:
            return runner.reopen(folder, progress=False, built=self.built)
        options = runner.resolve_options(self.built, **{**t.overrides, "models": t.model, "seed": t.seed,
                                                        "progress": False, "jobs": 1})
        return self.built, options, runner.start(self.built, options, folder)

    def _description(self, space, generator, train, compare) -> str:
        """spec.task of its run folders: the experiment in the spec language's words, a record
        to read (the network is Python: it is not a .task to run)."""
        built, net = self.built, self.built.main_net
        factory = source_digest(built.factory)["name"]
        x, y = built.kind.train.tensors
        m = built.kind.metric
        words = lambda d: " ".join(f"{k} {_word(v)}" for k, v in (d or {}).items())   # noqa: E731
        return "\n".join([
            f"# A Python experiment (qtc.experiment.Experiment), written {time.strftime('%Y-%m-%d')}: a record, "
            "not a .task to run; resume it from Python.",
            f"# model: {factory} ({net.num_params:,} parameters, {net.inputs_text()} -> "
            f"output {list(net.output_shape)})",
            f"# data: {len(x):,} training and {len(built.kind.test):,} test examples; targets "
            f"{str(y.dtype).removeprefix('torch.')}",
            f"# loss: {source_digest(built.kind.loss)['name']}; metric: {m.name} "
            f"({'higher' if m.higher else 'lower'} is better)",
            f"task {self.name} : python",
            f"generator {Path(space).name} {words(generator)}".rstrip(),
            f"train {(train or {}).get('optimizer', 'adam')} "
            f"{words({k: v for k, v in (train or {}).items() if k != 'optimizer'})}".rstrip(),
            f"compare {' '.join(compare)}".rstrip(), ""])


def _seeds(seeds) -> list[int]:
    """A seed count K (seeds 0..K-1) or a list of distinct seeds, checked as `seeds` in a spec."""
    try:
        return list(check_seeds(tuple(seeds) if isinstance(seeds, (list, tuple)) else seeds))
    except (TypeError, ValueError) as err:
        raise QtcError(f"run(seeds={seeds!r}): {err}") from None


def _word(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_word, value)) + "]"
    return str(value)


def _statement(model, keyword: str, options: dict):
    """A statement model from keywords, checked as the spec's own line would be."""
    try:
        return model(**options)
    except ValidationError as err:
        first = err.errors()[0]
        where = first["loc"][0] if first["loc"] else keyword
        raise QtcError(f"Experiment {keyword} option {where}={first.get('input')!r}: {first['msg']}") from None
    except TypeError as err:
        raise QtcError(f"Experiment {keyword} options: {err}") from None


def _tensors(data, what: str) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """(x, y) as (one tensor per input, the targets), checked: x may be several inputs, a tuple
    or list of tensors or arrays for `forward(x1, x2, ...)` (each (N, ...)). The network decides
    their dtypes (ModuleNet: float inputs in its own, integer ones int64) and packs several side
    by side in one tensor the engine indexes as one (runtime.model.Inputs)."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        x, y = data.tensors
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = _inputs(data[0]), torch.as_tensor(data[1])
    elif isinstance(data, Dataset):
        pairs = [data[i] for i in range(len(data))]
        if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
            raise QtcError(f"{what}: a Dataset of (x, y) pairs is expected")
        first = _inputs(pairs[0][0])
        if isinstance(first, tuple):          # (x1, x2, ...) per example: stacked per input
            x = tuple(torch.stack([torch.as_tensor(p[0][k]) for p in pairs]) for k in range(len(first)))
        else:
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        y = torch.as_tensor([p[1] for p in pairs]) if not torch.is_tensor(pairs[0][1]) or \
            pairs[0][1].dim() == 0 else torch.stack([p[1] for p in pairs])
    elif isinstance(data, DataLoader):
        raise QtcError(f"{what}: a DataLoader; give its Dataset ({what}=loader.dataset): the "
                       "experiment draws its own batches (train=dict(batch=...)), the same order "
                       "for every model of a seed")
    else:
        raise QtcError(f"{what}: expected (x, y) tensors or arrays, or a Dataset of (x, y) pairs; "
                       f"got {type(data).__name__}")
    xs = x if isinstance(x, tuple) else (x,)
    several = " (each input)" if len(xs) > 1 else ""
    for k, part in enumerate(xs):
        name = f"x{k + 1}" if len(xs) > 1 else "x"
        if len(part) != len(y) or len(y) == 0 or part.dim() < 2:
            raise QtcError(f"{what}: {name} has shape {list(part.shape)} and y {list(y.shape)}: "
                           f"expected as many targets as inputs (one or more), {name} of shape "
                           f"(N, ...){several}")
        if not (part.is_floating_point() or part.dtype in INTEGERS):
            raise QtcError(f"{what}: inputs {name} of type {str(part.dtype).removeprefix('torch.')} "
                           f"are not numbers; hint: {INTEGER_HINT}")
    return xs, y


INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _targets(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float targets in the network's dtype (what its outputs meet in the loss), integer ones long."""
    return y.to(dtype) if y.is_floating_point() else y.to(torch.int64)


def _inputs(x):
    """One input as a tensor, or several (a tuple or list of tensors or arrays) as a tuple."""
    if isinstance(x, (tuple, list)) and len(x) > 1 and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in x):
        return tuple(torch.as_tensor(v) for v in x)
    return torch.as_tensor(x)


def _kinds(xs) -> tuple:
    return tuple((tuple(p.shape[1:]), p.is_floating_point()) for p in xs)


def _shapes(xs) -> str:
    return ", ".join(str(list(p.shape[1:])) + ("" if p.is_floating_point() else " integer") for p in xs)


def _inputs_words(net) -> str:
    """The exported README's inputs: their dtype and shapes, and for several the call."""
    inputs = net.inputs
    dtype = [str(d).removeprefix("torch.") for d in inputs.dtypes]
    if len(inputs.shapes) == 1:
        return (f"- input: {dtype[0]}, shape (N, {', '.join(map(str, inputs.shapes[0]))}), as the "
                "experiment's data")
    args = ", ".join(f"x{k + 1}" for k in range(len(inputs.shapes)))
    shapes = "; ".join(f"x{k + 1} (N, {', '.join(map(str, s))})" for k, s in enumerate(inputs.shapes))
    kinds = (f"{dtype[0]} tensors" if len(set(dtype)) == 1 else
             "tensors (" + ", ".join(f"x{k + 1} {d}" for k, d in enumerate(dtype)) + ")")
    return f"- inputs: `net({args})`, {kinds} of shapes {shapes}, as the experiment's data"


def _digest(data: TensorDataset) -> str:
    h = hashlib.sha256()
    for t in data.tensors:
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_loss(net, data: TensorDataset, loss: Callable, metric: Metric) -> None:
    """The loss and the metric on the classical network's outputs for a few training examples:
    one that does not take them (wrong target shape or type) is a clear error here."""
    x, y = (t[:4] for t in data.tensors)
    with torch.no_grad():
        outputs = net.forward(net.initial, x)
    for what, fn in (("loss", loss), ("metric", metric.fn)):
        try:
            value = fn(outputs, y)
            float(value)
        except Exception as err:  # noqa: BLE001 - the user's code: any failure is theirs to see
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise QtcError(f"the {what} ({getattr(fn, '__name__', fn)}) fails on the model's outputs "
                           f"(shape {list(outputs.shape)}) and the targets (shape {list(y.shape)}, "
                           f"{str(y.dtype).removeprefix('torch.')}): {first}") from None
