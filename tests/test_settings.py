"""qtc.settings: every QTC_* environment variable is read there and nowhere else, its docstring's
table names every knob, bad values are clear errors, and what decides the kernels arrives as a
parameter (the channel form's memory budget, the training steps), not through a global."""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import torch

import qtc
from qtc import settings as settings_module
from qtc.errors import QtcError, SpecError
from qtc.settings import CHANNEL_MEMORY, Settings, setting, settings

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("__init__.py", "errors.py", "cli", "dsl", "compiler", "runtime", "tasks", "specs")


def _product_files():
    for entry in PRODUCT:
        path = ROOT / entry
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


def _environment_reads(path: Path, root: Path = ROOT) -> list[str]:
    """`os.environ` / `os.getenv` uses in a file whose line names a QTC_ variable."""
    lines = path.read_text().splitlines()
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        is_env = (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                  and isinstance(node.value, ast.Name) and node.value.id == "os")
        if is_env and "QTC_" in lines[node.lineno - 1]:
            out.append(f"{path.relative_to(root)}:{node.lineno}")
    return out


def test_no_product_module_but_settings_reads_a_qtc_variable(tmp_path):
    reads = [r for path in _product_files() for r in _environment_reads(path)]
    assert reads == []
    (tmp_path / "bad.py").write_text('import os\nX = os.environ.get("QTC_BACKEND", "auto")\n')
    assert _environment_reads(tmp_path / "bad.py", tmp_path) == ["bad.py:2"]   # the check can fail


def test_the_docstring_table_names_every_knob_and_its_variable():
    rows = re.findall(r"^\| (QTC_\w+) +\| (\w+) +\|", settings_module.__doc__, re.M)
    assert [field for _, field in rows] == [f.name for f in dataclasses.fields(Settings)]
    assert all(var == "QTC_" + field.upper() for var, field in rows)
    source = (ROOT / "settings.py").read_text()
    assert all(f'"{var}"' in source for var, _ in rows)


def test_unset_variables_give_the_defaults_and_set_ones_are_read():
    assert settings({}) == Settings()
    got = settings({"QTC_BACKEND": "cpu", "QTC_RENDERING": "compact", "QTC_THREADS": "3", "QTC_CPU_MODE": "0",
                    "QTC_JOBS": "2", "QTC_CACHE_DIR": "/tmp/k", "QTC_CHANNEL_MEMORY": "1024",
                    "QTC_CUDA_GRAPHS": "1", "QTC_RAY_TIMEOUT": "2.5", "QTC_DATA": "/data", "QTC_SCRATCH": "/s"})
    assert got == Settings("cpu", "compact", 3, 0, 2, Path("/tmp/k"), 1024, True, 2.5, Path("/data"), Path("/s"))


@pytest.mark.parametrize("name, value", [("QTC_RENDERING", "fast"), ("QTC_THREADS", "0"), ("QTC_THREADS", "two"),
                                         ("QTC_CPU_MODE", "2"), ("QTC_JOBS", "-1"), ("QTC_CHANNEL_MEMORY", "4G"),
                                         ("QTC_STATE_MEMORY", "8 GiB"),
                                         ("QTC_CUDA_GRAPHS", "yes"), ("QTC_RAY_TIMEOUT", "soon"),
                                         ("QTC_RAY_TIMEOUT", "0"), ("QTC_RAY_TIMEOUT", "inf")])
def test_a_bad_value_is_an_error_naming_the_variable_never_a_default(name, value):
    with pytest.raises(QtcError, match=f"{name} must be .*got {value!r}"):
        settings({name: value})


def test_setting_reads_one_field_as_settings_does_and_only_its_own_variable():
    env = {"QTC_BACKEND": "cpu", "QTC_RENDERING": "compact", "QTC_THREADS": "3", "QTC_CPU_MODE": "1",
           "QTC_SPACE_PATH": str(ROOT / "specs")}
    whole = settings(env)
    assert {f.name: setting(f.name, env) for f in dataclasses.fields(Settings)} == dataclasses.asdict(whole)
    assert setting("rendering", {}) == "auto" and setting("threads", {}) is None
    # a step reads the few fields it needs: another variable's bad value is left for its own use
    assert setting("rendering", {"QTC_JOBS": "two"}) == "auto"
    with pytest.raises(QtcError, match="QTC_JOBS must be a whole number >= 1, got 'two'"):
        settings({"QTC_JOBS": "two"})
    with pytest.raises(QtcError, match="QTC_CPU_MODE must be one of 0, 1, got '2'"):
        setting("cpu_mode", {"QTC_CPU_MODE": "2"})


PER_LAYER = ROOT / "specs" / "hadamard_ent_rot_per_layer.qs"


def test_the_channel_memory_budget_is_a_parameter_of_the_compiler_that_qtc_compile_reads(monkeypatch):
    """(11, 10) fits only the channel form, in 1,792 MiB: a smaller budget is the located
    'too large' error, from the parameter and from $QTC_CHANNEL_MEMORY through qtc.compile."""
    from qtc.compiler.pipeline import compile_space
    assert compile_space(PER_LAYER, qubits=11, depth=10).form == "channel"
    with pytest.raises(SpecError, match=r"needs 1\.75 GiB of density matrices \(budget 1 GiB\)"):
        compile_space(PER_LAYER, qubits=11, depth=10, channel_memory=1 << 30)
    assert CHANNEL_MEMORY == 4 << 30
    monkeypatch.setenv("QTC_CHANNEL_MEMORY", str(1 << 20))
    with pytest.raises(SpecError, match=r"budget 0\.000977 GiB"):
        qtc.compile(PER_LAYER, qubits=11, depth=10)


def test_a_generator_beyond_the_state_memory_is_refused_at_load_at_its_qubits(monkeypatch, tmp_path):
    """`qubits 30` for bessel's 1,781 parameters would allocate gigabytes at the first step: the
    spec is refused when loaded (before any run folder), at 'qubits 30', naming the bound; the
    bound is QTC_STATE_MEMORY, and the spec's own 11 qubits fit far below it."""
    from qtc.runtime.generator import state_bytes
    from qtc.tasks.build import load_task
    spec = tmp_path / "b.task"
    spec.write_text((ROOT / "specs" / "bessel.task").read_text().replace("depth 10", "depth 2 qubits 30"))
    (tmp_path / "hadamard_ent_rot.qs").write_text((ROOT / "specs" / "hadamard_ent_rot.qs").read_text())
    with pytest.raises(SpecError, match=r"30 qubits holds at least .* GiB .*more than the 8 GiB allowed "
                       r"\(QTC_STATE_MEMORY\)") as err:
        load_task(spec)
    assert (err.value.line, err.value.column) == (9, 39) and "needs 11 qubits" in err.value.hint
    small = load_task(ROOT / "specs" / "bessel.task")
    assert state_bytes(small.program) < 64 << 20
    monkeypatch.setenv("QTC_STATE_MEMORY", str(state_bytes(small.program) - 1))
    with pytest.raises(SpecError, match="more than the"):
        load_task(ROOT / "specs" / "bessel.task")


def test_the_training_steps_reach_the_target_through_the_generator(monkeypatch):
    """QTGenerator(steps=...) -> probabilities(steps=...) -> Target(steps=...): no global."""
    from qtc.runtime import kernels
    from qtc.runtime.generator import GeneratorOptions, QTGenerator
    seen = []
    monkeypatch.setattr(kernels, "compiled", lambda prog, target: seen.append(target) or 1 / 0)
    prog = qtc.compile(ROOT / "specs" / "hadamard_ent_rot.qs", qubits=3, depth=1)
    for steps in (40, None, 40):
        gen = QTGenerator(prog, 8, GeneratorOptions.given(backend="cpu"), dtype=torch.float64, steps=steps)
        with pytest.raises(ZeroDivisionError):
            gen()
    assert [t.steps for t in seen] == [40, None, 40]
    assert not hasattr(kernels, "expect_steps") and not hasattr(kernels, "_expected")
