"""The task kind of a Python experiment (qtc.experiment.Experiment): a model, data, a loss and a
metric given as Python objects, trained by the same supervised engine, run folder and reports
as a .task.

The spec kinds (classify, forecast, a3c) are modules, one object each, found in KINDS by the
name a .task writes. A Python experiment's kind is an object made per experiment
(`PythonKind`), since it holds that experiment's callables and tensors; its `PythonBuilt` (a
Built) carries it, and the run API asks the Built for its kind (`Built.kind`), so `runner.start`,
`runner.reopen` and `runner.run` are the ones `qtc run` uses. A Python task is never parsed:
`task NAME : python` in a .task file is an unknown kind.

A run folder of an experiment holds what a .task's does (curves.png, structural_weights.png,
summary.md, selection.json, baselines.json, models/<model>/ with README), its spec.task a
description of the experiment (not a file to run: `qtc run --resume` refuses it; the experiment
resumes it from Python).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import TensorDataset

from qtc.dsl import spaces
from qtc.errors import QtcError
from qtc.tasks import plots
from qtc.tasks.build import Built, space_file
from qtc.tasks.engines import selection
from qtc.tasks.engines.baselines import BASELINES, majority_baseline
from qtc.tasks.experiments.records import OWN_METRIC
from qtc.tasks.engines.supervised import (SELECTION, Supervised, held_out, train_all, twins_note,
                                          unmoved_note)
from qtc.tasks.kinds.classify import final_rows, final_table, standing
from qtc.tasks.modulenet import ModuleNet
from qtc.tasks.runs.rundir import RunDir

KIND = "python"      # TaskSpec.kind of an experiment (never in dsl.task.TASK_KINDS: not parsed)


@dataclass
class Metric:
    """The experiment's metric: `fn(outputs, targets) -> float`, its name in the metrics rows
    (train_<name>, test_<name>) and whether higher is better (the standing, the reports)."""
    fn: Callable[[torch.Tensor, torch.Tensor], float]
    name: str
    higher: bool = True


class PythonKind:
    """The TaskKind (qtc.tasks.kinds.TaskKind) of one experiment: its data, loss and metric."""
    name = KIND
    engine = "supervised"

    def __init__(self, train: TensorDataset, test: TensorDataset, loss: Callable, metric: Metric,
                 preprocessing: str, classes: bool):
        self.train, self.test, self.loss, self.metric = train, test, loss, metric
        self.preprocessing, self.classes = preprocessing, classes

    def check(self, built: Built) -> None:
        """Checked when the experiment was built (qtc.experiment): nothing left to check."""

    def preflight(self, built: Built, opts) -> None:
        """A validation block smaller than one batch, before the run folder exists."""
        if opts.select == "validation":
            selection.validation_split(len(self._limited(self.train, opts)), opts.validation,
                                       built.spec.train.batch)

    def supervised(self, built: Built, rundir: RunDir, opts) -> Supervised:
        metric = self.metric

        def scores(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
            return {metric.name: float(metric.fn(outputs, targets))}

        return Supervised(train=self._limited(self.train, opts), test=self._limited(self.test, opts),
                          loss=self.loss, scores=scores, preprocessing=self.preprocessing,
                          on_model=lambda _model: self.report(built, rundir))

    def run(self, built: Built, rundir: RunDir, opts) -> dict:
        task = self.supervised(built, rundir, opts)
        m = self.metric         # what reports over seeds rank by (experiments.records.metric_of)
        rundir.write_json(OWN_METRIC, {"key": f"test_{m.name}", "name": f"test {m.name}", "higher": m.higher})
        if self.classes:       # integer targets: the majority class is the floor to beat
            fit, _ = held_out(task, opts, built.spec.train.batch)
            rundir.write_json(BASELINES, majority_baseline(fit.train.tensors[1], task.test.tensors[1]))
        try:
            return train_all(built, rundir, opts, task)
        finally:
            if rundir.metrics():   # interrupted or failed: still leave figures of what was done
                self.report(built, rundir)

    @staticmethod
    def _limited(data: TensorDataset, opts) -> TensorDataset:
        return TensorDataset(*(t[:opts.limit] for t in data.tensors)) if opts.limit else data

    # --- reports -------------------------------------------------------------------------------
    def report(self, built: Built, rundir: RunDir) -> None:
        """Redraw curves.png and structural_weights.png and rewrite summary.md from the metrics."""
        rows = rundir.metrics()
        if not rows:
            return
        m = self.metric.name
        plots.curves(rows, ("train_loss", "test_loss", f"train_{m}", f"test_{m}"),
                     rundir.path / "curves.png", title=f"{built.spec.name} (Python experiment)",
                     log_keys=("train_loss", "test_loss"))
        plots.diffqas_weights(built.program, rows, rundir.path / "structural_weights.png", built.spec.name)
        rundir.write_text("summary.md", self.summary(built, rows, _optional(rundir, SELECTION),
                                                     _optional(rundir, BASELINES)))

    def summary(self, built: Built, rows: list[dict], selected: dict, baselines: dict) -> str:
        m, final = self.metric.name, final_rows(rows, selected)
        lines = [f"# {built.spec.name} (Python experiment)", ""] + final_table(final, rows, m, m)
        lines += [f"| *baseline:* {name} (class {b['class']}) | - | accuracy {b['train_accuracy']:.4f} | "
                  f"accuracy {b['test_accuracy']:.4f} | - | - | - |" for name, b in baselines.items()]
        rule = next(iter(selected.values()), {}).get("rule", "last")
        lines += ["", f"Reported epoch per model: select {rule} (selection.json); {m}: "
                  f"{'higher' if self.metric.higher else 'lower'} is better."]
        lines += ["", standing(final, f"test_{m}", higher=self.metric.higher)
                  + " One seed: no spread (Experiment.run(seeds=...) reports over seeds)."]
        note = unmoved_note(rows) if built.program is not None and built.program.weights.kind == "candidate" else None
        lines += ["", f"Note: {note}."] if note else []
        merged = twins_note(rows)
        lines += ["", f"Note: {merged}."] if merged else []
        return "\n".join(lines) + "\n"


def _optional(rundir: RunDir, name: str) -> dict:
    return rundir.read_json(name) if (rundir.path / name).is_file() else {}


@dataclass
class PythonBuilt(Built):
    """A Built whose network is a Python module factory and whose kind is a PythonKind.

    `space` is the search space as the experiment gave it: a name looked up as a task's
    `generator NAME.qs` is (the current folder, the space path, the bundled spaces), or a path
    to a .qs file. `identity` is what fingerprints the experiment besides its statements (the
    code and data digests, qtc.experiment). `examples`: the training inputs as given (one
    tensor per input), from which the network learns their shapes and kinds (ModuleNet)."""
    task_kind: PythonKind | None = None
    factory: Callable | None = None
    examples: tuple = ()         # the training data's inputs, one tensor per input of forward (modulenet)
    space: str | Path | None = None
    identity: dict = field(default_factory=dict)

    @property
    def kind(self) -> PythonKind:
        return self.task_kind

    @cached_property
    def nets(self) -> dict[str, ModuleNet]:
        return {"net": ModuleNet(self.factory, self.examples)}

    def space_file(self) -> Path:
        """The .qs file: a path given as one (the caller's own file, read as QTModel reads it),
        else looked up by name as a task's generator is."""
        given = Path(self.space)
        if given.suffix == ".qs" and len(given.parts) > 1:
            if not given.is_file():
                raise QtcError(f"search space file {given} not found")
            return given
        if spaces.find(str(given), Path.cwd()) is None:
            raise QtcError(spaces.not_found(str(given), Path.cwd()))
        return space_file(self.spec)

    def extra_identity(self) -> dict:
        return dict(self.identity)

    def many_classes(self) -> bool:
        """The generator's initial scale also bounds the offsets between outputs, as QTModel's
        does (runtime.generator.output_scale): a network from Python may be anything."""
        return True
