"""Data safety (issue 17): names, containment, owned folders, what a spec may read or import,
checkpoints that are never unpickled, resume that never mixes runs, one writer per folder, and
sweep workers that stop with their driver."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qtc.cli import main
from qtc.dsl.task import parse_task
from qtc.errors import QtcError, SpecError
from qtc.tasks.engines import a3c
from qtc.tasks.runs import guard

ROOT = Path(__file__).resolve().parents[1]
TINY = """task {name} : forecast
data {data} window 4 split 0.67
network {{
  input [4, 1]
  lstm 1 -> 4
  linear 4 -> 1
}}
train rmsprop lr 0.01 batch 10 epochs {epochs} seed 0
"""
FAST = ["--max-batches", "2", "--backend", "reference", "--no-progress"]


def _spec(folder: Path, name="tiny", data="narma5", epochs=1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name.replace('/', '_')}.task"
    p.write_text(TINY.format(name=name, data=data, epochs=epochs))
    return p


def _run(tmp_path: Path, name="tiny", data="narma5", epochs=1, *extra) -> Path:
    out = tmp_path / f"run-{name}-{data}-{epochs}"
    assert main(["run", str(_spec(tmp_path, name, data, epochs)), "-o", str(out), *FAST, *extra]) == 0
    return out


class Boom:
    """A pickle that, if ever unpickled, leaves a file behind (a stand-in for any code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- names, containment, ownership ------------------------------------------------------------
def test_a_task_name_with_a_path_is_refused_at_parse_time_with_its_location():
    with pytest.raises(SpecError) as err:
        parse_task(TINY.format(name="x/../../victim", data="narma5", epochs=1), file="x.task")
    assert (err.value.line, err.value.column) == (1, 6)
    assert "plain name" in str(err.value) and "x.task:1:6" in str(err.value)


def test_a_sweep_never_deletes_or_writes_beside_its_out_folder(tmp_path, capsys):
    victim = tmp_path / "sw" / "victim" / "classical" / "seed0"
    victim.mkdir(parents=True)
    (victim / "important.txt").write_text("keep me")
    spec = _spec(tmp_path / "sw", "x/../../victim")
    rc = main(["sweep", str(spec), "--models", "classical", "--seeds", "1", "--epochs", "1",
               "--executor", "serial", "--out", str(tmp_path / "sw" / "out"), "--no-report", *FAST])
    assert rc == 2 and "plain name" in capsys.readouterr().err
    assert sorted(p.name for p in victim.iterdir()) == ["important.txt"]


def test_a_sweep_deletes_no_trial_folder_that_qtc_did_not_create(tmp_path):
    spec = _spec(tmp_path, "tiny")
    foreign = tmp_path / "out" / "tiny" / "classical" / "seed0"
    foreign.mkdir(parents=True)
    (foreign / "important.txt").write_text("keep me")
    assert main(["sweep", str(spec), "--models", "classical", "--executor", "serial", "--retries", "0",
                 "--out", str(tmp_path / "out"), "--no-report", *FAST]) == 1
    assert (foreign / "important.txt").read_text() == "keep me"
    status = json.loads((foreign / "trial.json").read_text())
    assert "refusing to delete" in status["error"] and guard.MARKER in status["error"]


def test_a_trial_folder_qtc_made_is_cleared_and_rerun(tmp_path):
    spec = _spec(tmp_path, "tiny")
    out = tmp_path / "out"
    trial = out / "tiny" / "classical" / "seed0"
    guard.make_owned(trial)
    (trial / "trial.log").write_text("a failed start\n")
    assert main(["sweep", str(spec), "--models", "classical", "--executor", "serial",
                 "--out", str(out), "--no-report", *FAST]) == 0
    assert (trial / "resolved.json").is_file() and "a failed start" not in (trial / "trial.log").read_text()


def test_containment_follows_links_and_parents(tmp_path):
    (tmp_path / "owned").mkdir()
    (tmp_path / "owned" / "link").symlink_to(tmp_path)
    assert guard.inside(tmp_path / "owned", tmp_path / "owned" / "a" / "b") == tmp_path / "owned" / "a" / "b"
    for escape in (tmp_path / "owned" / ".." / "x", tmp_path / "owned" / "link" / "x"):
        with pytest.raises(QtcError, match="outside"):
            guard.inside(tmp_path / "owned", escape)
    assert guard.temp_name(tmp_path / "m.csv") != guard.temp_name(tmp_path / "m.csv")
    assert guard.temp_name(tmp_path / "m.csv").parent == tmp_path


# --- what a spec may read and import --------------------------------------------------------
@pytest.mark.parametrize("space", ['"{secret}"', '"../secret.qs"', '"sub/../../secret.qs"', "secret.txt"])
def test_the_generator_names_only_a_relative_qs_file_and_nothing_else_is_echoed(tmp_path, capsys, space):
    (tmp_path / "secret.txt").write_text("TOPSECRET line one\n")
    (tmp_path / "secret.qs").write_text("TOPSECRET line one\n")
    folder = tmp_path / "specs"
    spec = _spec(folder, "tiny")
    spec.write_text(spec.read_text() + f"generator {space.format(secret=tmp_path / 'secret.txt')} depth 2\n")
    assert main(["compile", str(spec), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "TOPSECRET" not in err and "tiny.task:9:11" in err and ".qs file" in err


def test_an_environment_id_with_a_module_part_is_refused_where_it_is_written():
    text = ("task m : a3c\nenv \"os:Env-v0\"\nnetwork actor {\n input [147]\n linear 147 -> 7\n}\n"
            "network critic {\n input [147]\n linear 147 -> 1\n}\ntrain adam\n")
    with pytest.raises(SpecError) as err:
        parse_task(text)
    assert (err.value.line, err.value.column) == (2, 5) and "module" in str(err.value)
    assert parse_task(text.replace("os:Env-v0", "MiniGrid-Empty-5x5-v0")).env.id == "MiniGrid-Empty-5x5-v0"


# --- checkpoints and policies are never unpickled -------------------------------------------
def test_a_crafted_checkpoint_is_never_unpickled(tmp_path, capsys):
    run = _run(tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"done": Boom(marker)}, run / "checkpoint.pt")
    assert main(["run", "--resume", str(run), "--no-progress"]) == 2
    assert not marker.exists() and "never unpickled" in capsys.readouterr().err


def test_a_crafted_policy_is_never_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"actor_net": Boom(marker)}, tmp_path / a3c.POLICY)
    (tmp_path / "policy.json").write_text("{}")
    with pytest.raises(QtcError, match="never unpickled"):
        a3c.load_policy(tmp_path)
    assert not marker.exists()


# --- resume is the same run or a clear refusal ------------------------------------------------
def test_another_tasks_checkpoint_is_refused_on_resume(tmp_path, capsys):
    mine, theirs = _run(tmp_path, "mine"), _run(tmp_path, "theirs", "narma10")
    shutil.copy(theirs / "checkpoint.pt", mine / "checkpoint.pt")
    assert main(["run", "--resume", str(mine), "--no-progress"]) == 2
    assert "is not this run's" in capsys.readouterr().err


def test_an_edited_spec_is_refused_on_resume_naming_what_differs(tmp_path, capsys):
    run = _run(tmp_path)
    (run / "spec.task").write_text((run / "spec.task").read_text().replace("narma5", "narma10"))
    assert main(["run", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "edited" in err and "task.data.dataset: 'narma5' -> 'narma10'" in err


def test_resume_with_another_spec_or_other_settings_is_refused(tmp_path, capsys):
    run = _run(tmp_path)
    other = _spec(tmp_path / "other", "tiny", "narma10")
    assert main(["run", str(other), "--resume", str(run), "--no-progress"]) == 2
    assert "is not the spec it was started with" in capsys.readouterr().err
    for flag, value in (("--seed", "3"), ("--max-batches", "1")):
        assert main(["run", "--resume", str(run), flag, value, "--no-progress"]) == 2, flag
        err = capsys.readouterr().err
        assert f"{flag} " in err and "keeps the settings" in err, err
    for flag, value in (("--limit", "50"), ("--workers", "2")):      # not a forecast's flags at all
        assert main(["run", "--resume", str(run), flag, value, "--no-progress"]) == 2, flag
        assert f"{flag} does not apply to forecast tasks" in capsys.readouterr().err
    assert main(["run", "--resume", str(run), "--epochs", "0", "--no-progress"]) == 2
    assert "not shortened" in capsys.readouterr().err
    # The same spec and the same settings are the same run.
    same = _spec(tmp_path, "tiny")
    assert main(["run", str(same), "--resume", str(run), "--seed", "0", "--max-batches", "2", "--no-progress"]) == 0


def test_epochs_with_resume_extend_the_run_to_exactly_a_longer_straight_run(tmp_path):
    short = _run(tmp_path, "tiny", "narma5", 1)
    assert main(["run", "--resume", str(short), "--epochs", "3", "--no-progress"]) == 0
    straight = _run(tmp_path, "tiny", "narma5", 3)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(json.loads((short / "metrics.json").read_text())) == strip(
        json.loads((straight / "metrics.json").read_text()))
    resolved = json.loads((short / "resolved.json").read_text())
    assert resolved["options"]["epochs"] == 3 and resolved["extended"][0]["epochs"] == [1, 3]


# --- one writer per run folder --------------------------------------------------------------
def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(tmp_path, capsys):
    run = _run(tmp_path)
    assert not (run / guard.LOCK).exists()                     # released when the run ended
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / guard.LOCK).write_text(f"{busy.pid}@{socket.gethostname()}\n")
        assert main(["run", "--resume", str(run), "--no-progress"]) == 2
        assert f"in use by process {busy.pid}" in capsys.readouterr().err
    finally:
        busy.kill()
        busy.wait()
    assert main(["run", "--resume", str(run), "--no-progress"]) == 0   # its writer is dead: stale
    assert not (run / guard.LOCK).exists()


def test_the_lock_is_exclusive_within_and_across_processes(tmp_path):
    with guard.RunLock(tmp_path):
        with pytest.raises(QtcError, match="in use"):
            guard.RunLock(tmp_path).__enter__()
        probe = ("from qtc.tasks.runs.guard import RunLock\nfrom qtc.errors import QtcError\n"
                 f"try:\n    RunLock({str(tmp_path)!r}).__enter__()\nexcept QtcError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert f"in use by process {os.getpid()}" in out.stdout, out.stderr
    assert not (tmp_path / guard.LOCK).exists()


# --- sweep workers stop with their driver -----------------------------------------------------
def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    return guard._alive(f"{pid}@{socket.gethostname()}")


def _start_long_sweep(tmp_path: Path, **popen) -> tuple[subprocess.Popen, Path]:
    spec = _spec(tmp_path, "long", epochs=100000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "qtc", "sweep", str(spec), "--models", "classical",
                             "--executor", "process", "--workers", "1", "--out", str(out), "--no-report",
                             *FAST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    trial = out / "long" / "classical" / "seed0"
    deadline = time.time() + 240
    while not (trial / "checkpoint.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "the trial never checkpointed"
        time.sleep(0.2)
    return proc, trial


def _wait_gone(pids: set[int], seconds: float = 120) -> set[int]:
    deadline = time.time() + seconds
    while {p for p in pids if _alive(p)} and time.time() < deadline:
        time.sleep(0.2)
    return {p for p in pids if _alive(p)}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_killed_sweep_driver_leaves_no_live_workers(tmp_path):
    proc, trial = _start_long_sweep(tmp_path)
    workers = _children(proc.pid)
    assert workers
    proc.kill()
    proc.wait()
    assert not _wait_gone(workers), "pool workers outlived their driver"
    assert not (trial / guard.LOCK).exists()                 # the trial stopped cleanly, unlocked
    assert (trial / "checkpoint.pt").is_file()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigint_stops_a_background_sweep_and_its_trials_checkpoint(tmp_path):
    # Started as with '&' (SIGINT ignored), and SIGINT to the driver alone, not its group.
    proc, trial = _start_long_sweep(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert not _wait_gone(workers)
    assert not (trial / guard.LOCK).exists() and (trial / "checkpoint.pt").is_file()
    assert "interrupted" in (trial / "trial.log").read_text()
