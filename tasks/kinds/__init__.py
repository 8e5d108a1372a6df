"""The task kinds a .task names (classify, forecast, a3c): their checks, runs and reports.

A kind is one module of this folder, and the module itself is the kind's object: it defines
the names `TaskKind` lists (a module satisfies a Protocol, PEP 544, so a type checker says
when one is missing). `KINDS` is the one table from the name in `task NAME : KIND` to it:

    load_task        built.kind.check(built)              the spec's data, networks, env, located
    runner.start     built.kind.preflight(built, opts)    missing data etc., before a run folder
    runner.run       built.kind.run(built, rundir, opts)  train the models, write the reports
    --jobs workers   KINDS[kind].supervised(...)          the supervised engine's task, rebuilt

(`built.kind` is KINDS[kind] for a .task; a Python experiment's Built carries its own kind
object, kinds/python.py, which holds its callables and is never in KINDS.)

A fourth kind is one module here and one entry in `KINDS` (and its name in dsl.task.TASK_KINDS,
which tests/test_kinds.py keeps equal).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from qtc.tasks.kinds import a3c, classify, forecast

if TYPE_CHECKING:
    from qtc.tasks.build import Built
    from qtc.tasks.engines.supervised import Supervised
    from qtc.tasks.runs.rundir import RunDir
    from qtc.tasks.runs.runner import RunOptions


class TaskKind(Protocol):
    """What `qtc run` needs of a task kind."""
    name: str                                  # as in `task NAME : KIND`
    engine: Literal["supervised", "a3c"]       # which training engine its `run` uses

    def check(self, built: Built) -> None:
        """Raise a located SpecError for the first thing the spec decided that cannot work
        (called by load_task: before any data is made or run folder written)."""

    def preflight(self, built: Built, opts: RunOptions) -> None:
        """Raise the errors the run would meet that need the run's options (missing data, a
        validation block smaller than a batch), before its folder exists."""

    def run(self, built: Built, rundir: RunDir, opts: RunOptions) -> dict:
        """Train every model of `opts` into `rundir`; return {model: its reported result}."""


class SupervisedKind(TaskKind, Protocol):
    """A kind trained by the supervised engine (qtc.tasks.engines.supervised)."""

    def supervised(self, built: Built, rundir: RunDir, opts: RunOptions) -> Supervised:
        """The task the engine trains on; `--jobs N` workers rebuild it with this."""


KINDS: dict[str, TaskKind] = {"classify": classify, "forecast": forecast, "a3c": a3c}
