"""The per-step thread choice (runtime/threads.py): pure decisions, the env overrides, how
waiting threads wait, and `qtc compile` showing the setting."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qtc.errors import QtcError
from qtc.runtime.threads import SERIAL_BELOW, choose, idle_cores
from qtc.settings import Settings, settings

ROOT = Path(__file__).resolve().parents[1]


def test_small_states_run_on_one_thread_whatever_is_allowed():
    s = choose(SERIAL_BELOW - 1, 1, 8, 8, knobs=Settings())
    assert (s.threads, s.mode) == (1, 0)


def test_a_busy_machine_gets_fewer_threads_down_to_one():
    assert choose(17, 1, 2, 2, knobs=Settings()).threads == 2
    assert choose(17, 1, 4, 1, knobs=Settings()).threads == 1
    assert choose(17, 1, 2, 0, knobs=Settings()).threads == 1


def test_mode_is_whole_circuits_when_there_are_two_per_thread_else_split_passes():
    assert choose(17, 4, 2, 2, knobs=Settings()).mode == 0
    assert choose(17, 3, 2, 2, knobs=Settings()).mode == 1
    assert choose(17, 1, 2, 0, knobs=Settings()).mode == 0   # one thread: nothing to split


def test_env_overrides_threads_and_mode_and_bad_values_are_clear_errors():
    s = choose(10, 1, 2, 0, knobs=settings({"QTC_THREADS": "2", "QTC_CPU_MODE": "1"}))
    assert (s.threads, s.mode) == (2, 1) and "QTC_CPU_MODE" in str(s)
    with pytest.raises(QtcError, match="QTC_THREADS"):
        settings({"QTC_THREADS": "two"})
    with pytest.raises(QtcError, match="QTC_CPU_MODE"):
        settings({"QTC_CPU_MODE": "3"})


def test_idle_cores_counts_other_runnable_tasks():
    cores = len(os.sched_getaffinity(0))
    assert idle_cores("0.5 0.5 0.5 1/300 123") == cores          # only the caller runs
    assert idle_cores(f"9 9 9 {cores + 1}/300 123") == 0          # every core taken by others
    # this process's own runnable threads (autograd's handing a backward over) are not others
    assert idle_cores("0.5 0.5 0.5 2/300 123", own=2) == cores
    assert idle_cores("0.5 0.5 0.5 2/300 123", own=1) == cores - 1
    assert idle_cores("garbage") == cores


def _env_after(code: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_importing_qtc_first_makes_waiting_threads_sleep_unless_the_user_chose():
    show = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert _env_after("import qtc; " + show) == "passive"
    assert _env_after("import torch, qtc; " + show) == "None"            # too late: left alone
    assert _env_after("import qtc; " + show, OMP_WAIT_POLICY="active") == "active"
    assert _env_after("import qtc; " + show, GOMP_SPINCOUNT="5") == "None"


def test_qtc_compile_prints_the_thread_setting(tmp_path):
    out = subprocess.run([sys.executable, "-m", "qtc", "compile", str(ROOT / "specs" / "hadamard_ent_rot.qs"),
                          "--qubits", "4", "--depth", "1", "-o", str(tmp_path)],
                         capture_output=True, text=True, check=True, env=os.environ | {"QTC_THREADS": "1"}).stdout
    assert "cpu threads now: 1 thread, mode 0" in out and "waiting threads:" in out


def test_the_cpu_launcher_records_the_setting_its_last_pass_ran_with(monkeypatch):
    import torch
    import qtc
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled, cpu_available
    if not cpu_available():
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("QTC_THREADS", "2")
    prog = qtc.compile(str(ROOT / "specs" / "hadamard_ent_rot.qs"), qubits=4, depth=1)
    comp = compiled(prog, Target(device="cpu", dtype="float64"))
    assert comp.launcher.last_setting is None
    theta = torch.rand(prog.angle_shape, dtype=torch.float64, requires_grad=True)
    prog.probabilities(theta, torch.ones(len(prog.labels)), backend="cpu").sum().backward()
    assert comp.launcher.last_setting == choose(4, comp.ncirc, 1, 0)
    assert comp.launcher.last_setting.threads == 2


def test_a_step_on_the_threads_openmp_has_makes_no_thread_calls_and_one_that_needs_others_does(monkeypatch):
    """Setting OpenMP's count to what it is and back cost two ctypes calls per pass (a tenth of
    a 13-qubit step's kernels): they are made only when the step needs another count."""
    import torch
    import qtc
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled, cpu_available
    if not cpu_available():
        pytest.skip("no C++ compiler")
    prog = qtc.compile(str(ROOT / "specs" / "hadamard_ent_rot.qs"), qubits=4, depth=1)
    lib = compiled(prog, Target(device="cpu", dtype="float64")).launcher.lib
    calls = []
    real = type(lib).call
    monkeypatch.setattr(type(lib), "call", lambda self, name, **kw: (self is lib and calls.append(name),
                                                                     real(self, name, **kw)))
    theta = torch.rand(prog.angle_shape, dtype=torch.float64, requires_grad=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        prog.probabilities(theta, torch.ones(len(prog.labels)), backend="cpu").sum().backward()
        assert calls == ["qtc_forward", "qtc_backward"]
        calls.clear()
        monkeypatch.setenv("QTC_THREADS", "2")
        prog.probabilities(theta, torch.ones(len(prog.labels)), backend="cpu").sum().backward()
        assert calls == \
            ["qtc_threads", "qtc_forward", "qtc_threads", "qtc_threads", "qtc_backward", "qtc_threads"]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_step_leaves_torchs_thread_count_as_it_found_it(monkeypatch):
    """The kernels set OpenMP's thread count, which torch shares and reads back: a step that ran
    on one thread must not leave torch (and every later step's choice) at one thread."""
    import torch
    import qtc
    from qtc.runtime.kernels import cpu_available
    if not cpu_available():
        pytest.skip("no C++ compiler")
    prog = qtc.compile(str(ROOT / "specs" / "hadamard_ent_rot.qs"), qubits=4, depth=1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("QTC_THREADS", "1")
        theta = torch.rand(prog.angle_shape, dtype=torch.float64, requires_grad=True)
        prog.probabilities(theta, torch.ones(len(prog.labels)), backend="cpu").sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
