"""The task-kind table (qtc.tasks.kinds.KINDS): one entry per kind the DSL accepts, each with
everything the runner, load_task and the --jobs workers call."""
from __future__ import annotations

import inspect

import pytest

from qtc import specs
from qtc.dsl.task import TASK_KINDS
from qtc.errors import QtcError
from qtc.tasks.build import load_task
from qtc.tasks.kinds import KINDS, SupervisedKind, TaskKind


def _methods(protocol) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")]


def test_every_kind_the_dsl_accepts_has_one_entry_named_after_it():
    assert tuple(KINDS) == TASK_KINDS
    assert all(kind.name == name for name, kind in KINDS.items())


@pytest.mark.parametrize("name", TASK_KINDS)
def test_each_kind_provides_what_its_protocol_names(name):
    kind = KINDS[name]
    assert kind.engine in ("supervised", "a3c")
    wanted = _methods(TaskKind) + (_methods(SupervisedKind) if kind.engine == "supervised" else [])
    assert wanted and all(callable(getattr(kind, m, None)) for m in wanted), wanted
    for m in wanted:           # the same parameters as the protocol's (without self)
        want = list(inspect.signature(getattr(SupervisedKind, m)).parameters)[1:]
        assert list(inspect.signature(getattr(kind, m)).parameters) == want, (name, m)


def test_found_is_refused_where_the_kind_has_no_supervised_engine():
    built = load_task(specs.path("minigrid_5x5.task"))
    with pytest.raises(QtcError, match="'found' runs in classify and forecast tasks, not in a3c"):
        built.select_models("diffqas,found")
