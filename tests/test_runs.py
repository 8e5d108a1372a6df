"""The run API's pieces: typed options, model names, atomic writes, the interrupt policy, imports."""
from __future__ import annotations

import ast
import os
import signal
from pathlib import Path

import pytest

from qtc.cli import main
from qtc.dsl.task import RANGES, STATEMENTS
from qtc.errors import QtcError
from qtc.runtime import backends
from qtc.tasks import naming
from qtc.tasks.build import load_task
from qtc.tasks.runs import runner, signals
from qtc.tasks.runs.rundir import atomic_text, atomic_write

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def built(tiny):
    """conftest's TINY task, loaded."""
    return load_task(tiny)


@pytest.mark.parametrize("field", ["epochs", "episodes", "workers", "limit", "max_batches"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_run_options_reject_counts_that_are_not_whole_numbers_from_one(field, value):
    with pytest.raises(QtcError, match=f"--{field.replace('_', '-')} must be a whole number (>= 1|between 1)"):
        runner.RunOptions(**{field: value})


@pytest.mark.parametrize("name, statement", [("epochs", "train"), ("episodes", "train"), ("seed", "train"),
                                             ("workers", "a3c"), ("limit", "data")])
def test_run_options_accept_exactly_the_range_the_spec_accepts(name, statement):
    """Each count the command line and a spec both set has one range (dsl.task.RANGES), checked by both."""
    lo, hi = RANGES[name]
    base = {"train": {"optimizer": "adam"}, "data": {"dataset": "x"}}.get(statement, {})
    for value in (lo, hi):
        if value is not None:
            STATEMENTS[statement](**base, **{name: value})
            runner.RunOptions(**{name: value})
    for value in (lo - 1, None if hi is None else hi + 1):
        if value is None:
            continue
        with pytest.raises(ValueError):
            STATEMENTS[statement](**base, **{name: value})
        with pytest.raises(QtcError, match=f"--{name} must be a whole number"):
            runner.RunOptions(**{name: value})


def test_run_options_are_frozen_and_round_trip_through_resolved_json():
    opts = runner.RunOptions(models=["diffqas", "fixed:3"], epochs=2, seed=5, data_root=Path("/d"))
    assert opts.models == ("diffqas", "fixed:3") and opts.data_root == "/d"
    with pytest.raises(AttributeError):
        opts.epochs = 3
    assert runner.RunOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(QtcError, match="unknown run option.*epoch\\b"):
        runner.RunOptions.from_dict({"epoch": 2})
    with pytest.raises(QtcError, match="--seed must be a whole number between 0 and"):
        runner.RunOptions(seed=-1)


def test_resolve_options_applies_only_the_overrides_given(built):
    spec = runner.resolve_options(built)
    assert (spec.models, spec.epochs, spec.seed, spec.max_batches) == (("diffqas", "classical"), 3, 0, None)
    over = runner.resolve_options(built, models="fixed:1,classical", epochs=1, seed=4, max_batches=2)
    assert (over.models, over.epochs, over.seed, over.max_batches) == (("fixed:1", "classical"), 1, 4, 2)
    assert runner.resolve_options(built, baselines=True).models == tuple(
        ["diffqas"] + [naming.fixed(k) for k in range(12)] + ["classical"])


def test_bad_limits_on_the_command_line_exit_2_without_a_traceback(built, tmp_path, capsys):
    assert main(["run", built.spec.file, "--epochs", "0", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--epochs must be a whole number between 1 and 1,000,000, got 0" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_model_names_convert_between_code_and_folders_in_one_place():
    for model, folder in (("diffqas", "diffqas"), ("classical", "classical"), ("fixed:11", "fixed_11")):
        assert naming.folder(model) == folder and naming.from_folder(folder) == model
    assert naming.fixed_index("fixed:7") == 7 and naming.fixed_index("fixed:x") is None
    assert sorted(["classical", "fixed:10", "fixed:2", "diffqas"], key=naming.order) == [
        "diffqas", "fixed:2", "fixed:10", "classical"]
    assert naming.label("fixed:1", ["a", "b"]) == "config 2 (b)"
    assert naming.parse_models("fixed, classical,fixed:0", 2, quantum=True) == ["fixed:0", "fixed:1", "classical"]
    with pytest.raises(QtcError, match="unknown model 'fixed:2'.*0 <= K < 2"):
        naming.parse_models("fixed:2", 2, quantum=True)
    with pytest.raises(QtcError, match="unknown model 'diffqas'"):
        naming.parse_models("diffqas", 0, quantum=False)


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path):
    target = atomic_text(tmp_path / "a" / "metrics.csv", "old\n")
    with pytest.raises(ZeroDivisionError):
        atomic_write(target, lambda tmp: (tmp.write_text("half"), 1 / 0))
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["metrics.csv"]


def test_sigterm_is_an_interrupt_and_a_deferred_one_only_raises_the_flag():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with signals.as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10 ** 6):
                pass
    with signals.deferred() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10 ** 6):
            pass
    assert flag.requested
    assert signal.getsignal(signal.SIGTERM) is before     # every policy restores the handlers


def test_the_backend_reaches_the_generator_through_the_options(built, tmp_path, monkeypatch):
    calls = []
    ok, fn = backends.BACKENDS["reference"]
    monkeypatch.setitem(backends.BACKENDS, "reference", (ok, lambda *a: calls.append(1) or fn(*a)))
    monkeypatch.delenv("QTC_BACKEND", raising=False)
    opts = runner.resolve_options(built, models="diffqas", epochs=1, max_batches=1, backend="reference",
                                  progress=False)
    runner.run(built, opts, runner.start(built, opts, tmp_path / "run"))
    assert calls and "QTC_BACKEND" not in os.environ
    with pytest.raises(QtcError, match="unknown backend 'quantum'"):
        runner.run(built, runner.RunOptions(models=("diffqas",), backend="quantum"), runner.start(
            built, opts, tmp_path / "run2"))


def test_dependencies_point_one_way_nothing_in_tasks_imports_the_cli():
    offenders = []
    for path in sorted((ROOT / "tasks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("qtc.cli")]
    assert offenders == []


def test_a_sweep_checks_its_overrides_once_before_any_trial(built):
    from qtc.tasks.experiments.sweep import plan
    with pytest.raises(QtcError, match="--max-batches must be a whole number between 1 and 1,000,000,000, got -2"):
        plan([built.spec.file], [0], overrides={"max_batches": -2})
    assert len(plan([built.spec.file], [0, 1], overrides={"max_batches": 2})) == 4
