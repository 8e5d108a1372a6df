"""Fault contracts of issue 29: a run's identity is never lost to a racing writer, no worker
outlives its driver, no symbolic link leads a read or a write out of the folder it belongs to,
and a resume checks what it finds in the folder instead of trusting it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtc.cli import main
from qtc.tasks.runs import guard

ROOT = Path(__file__).resolve().parents[1]
TINY = """task tiny : forecast
data narma5 window 4 split 0.67
network {{
  input [4, 1]
  lstm 1 -> 4
  linear 4 -> 1
}}
train rmsprop lr {lr} batch 10 epochs {epochs} seed 0
"""
FAST = ["--max-batches", "2", "--backend", "reference", "--no-progress"]


def _spec(folder: Path, lr="0.01", epochs=1, name="tiny.task") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(TINY.format(lr=lr, epochs=epochs))
    return p


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((run / "metrics.json").read_text())]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "QTC_JOBS": "1"}


# --- identity: the lock comes before the first byte ------------------------------------------
def test_a_run_refused_by_the_lock_writes_nothing_in_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with guard.RunLock(out):                       # another writer holds the folder
        assert main(["run", str(_spec(tmp_path)), "-o", str(out), *FAST]) == 2
        assert "in use by process" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [guard.LOCK]
    assert not any(out.iterdir())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_two_fresh_runs_on_one_folder_one_runs_and_the_folder_records_its_settings(tmp_path):
    """Two `qtc run` started together on one folder (specs differing only in lr): one runs, the
    other is refused, and the folder's records are the winner's, matching its metrics."""
    specs = {lr: _spec(tmp_path / f"lr{lr}", lr=lr, epochs=3) for lr in ("0.01", "0.02")}
    out = tmp_path / "shared"
    procs = {lr: subprocess.Popen([sys.executable, "-m", "qtc", "run", str(s), "-o", str(out), *FAST],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for lr, s in specs.items()}
    results = {lr: (p.wait(timeout=600), p.stderr.read()) for lr, p in procs.items()}
    for p in procs.values():
        p.stdout.close()
        p.stderr.close()
    won = [lr for lr, (code, _) in results.items() if code == 0]
    lost = [lr for lr, (code, _) in results.items() if code != 0]
    assert len(won) == 1 and len(lost) == 1, results
    code, err = results[lost[0]]
    assert code == 2 and ("in use by process" in err or "already holds a run" in err), err
    assert "Traceback" not in err
    resolved = json.loads((out / "resolved.json").read_text())
    assert str(resolved["task"]["train"]["lr"]) == won[0]
    assert (out / "spec.task").read_text() == specs[won[0]].read_text()
    ident = json.loads((out / guard.FINGERPRINT).read_text())
    assert str(ident["identity"]["task.train.lr"]) == won[0]
    # The metrics are the winner's: the same spec alone gives the same rows.
    alone = tmp_path / "alone"
    assert main(["run", str(specs[won[0]]), "-o", str(alone), *FAST]) == 0
    assert _rows(out) == _rows(alone)


# --- no worker outlives its driver --------------------------------------------------------------
def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren...)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _live(pids: set[int]) -> set[int]:
    return {p for p in pids if guard._alive(f"{p}@{guard.socket.gethostname()}")}


JOBS = (["specs/damped_shm.task", "--models", "classical,fixed:0", "--jobs", "2", "--epochs", "1000",
         *FAST], b"spawn_main")                       # spawned --jobs workers (they import torch)
A3C = (["specs/minigrid_5x5.task", "--models", "classical", "--workers", "2", "--episodes", "100000",
        "--no-progress"], b"qtc")                    # forked A3C workers (the driver's command line)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("argv, mark", [JOBS, A3C], ids=["jobs", "a3c"])
def test_kill_9_of_the_driver_while_its_workers_start_leaves_no_live_worker(tmp_path, argv, mark):
    """The driver killed with SIGKILL as soon as its two workers exist (spawned ones still import
    torch): the workers learn the driver's pid from the driver and arm the parent-death signal,
    so they exit (before, a spawned one recorded init as its parent and lived on, ~780 MB)."""
    proc = subprocess.Popen([sys.executable, "-m", "qtc", "run", *argv, "-o", str(tmp_path / "r")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**_env(), "QTC_JOBS": "2"})
    deadline, workers = time.time() + 300, set()
    while len(workers) < 2:                       # the two workers exist: kill at once
        assert proc.poll() is None and time.time() < deadline, "the workers never started"
        workers = {p for p in _descendants(proc.pid) if mark in _cmdline(p)}
        time.sleep(0.01)
    everyone = _descendants(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while _live(everyone) and time.time() < deadline:
        time.sleep(0.1)
    assert not _live(everyone), f"processes outlived their driver: {sorted(_live(everyone))}"


# --- symbolic links never lead a read or a write out of their folder ----------------------------
SECRET = "TOPSECRET first line\n"


def _outside(tmp_path: Path) -> Path:
    """A folder outside every run folder, holding a file a link may point at."""
    away = tmp_path / "elsewhere"
    away.mkdir(exist_ok=True)
    (away / "secret.qs").write_text(SECRET)
    return away


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_generator_file_linked_out_of_the_tasks_folder_is_refused_unread(tmp_path, capsys):
    away = _outside(tmp_path)
    folder = tmp_path / "specs"
    spec = _spec(folder)
    (folder / "link.qs").symlink_to(away / "secret.qs")
    spec.write_text(spec.read_text() + "generator link.qs depth 2\n")
    assert main(["compile", str(spec), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "TOPSECRET" not in err and "tiny.task:9:11" in err, err
    assert "symbolic link" in err and "link.qs" in err and "Traceback" not in err
    # A link that stays in the folder is only another name for a file there: it is read.
    (folder / "real.qs").write_text((ROOT / "specs" / "hadamard_ent_rot.qs").read_text())
    (folder / "link.qs").unlink()
    (folder / "link.qs").symlink_to(folder / "real.qs")
    assert main(["compile", str(spec), "-o", str(tmp_path / "c")]) == 0


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished one-epoch run (with its plots/), copied by each test that edits it."""
    base = tmp_path_factory.mktemp("finished")
    spec = _spec(base)
    spec.write_text(spec.read_text() + "report epochs [1]\n")
    assert main(["run", str(spec), "-o", str(base / "run"), *FAST]) == 0
    assert (base / "run" / "plots").is_dir()
    return base / "run"


def _copy(finished: Path, tmp_path: Path) -> Path:
    import shutil
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


@pytest.mark.parametrize("name", ["spec.task", "resolved.json", "fingerprint.json", "metrics.json",
                                  "checkpoint.pt"])
def test_a_run_folder_file_linked_elsewhere_is_refused_on_resume(finished, tmp_path, capsys, name):
    run = _copy(finished, tmp_path)
    away = _outside(tmp_path)
    (away / name).write_bytes((run / name).read_bytes())      # the same bytes, elsewhere
    (run / name).unlink()
    (run / name).symlink_to(away / name)
    before = _snapshot(away)
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and name in err and "Traceback" not in err, err
    assert _snapshot(away) == before


@pytest.mark.parametrize("name", ["plots", "models", "tensorboard"])
def test_a_run_folder_subfolder_linked_elsewhere_gets_no_write(finished, tmp_path, capsys, name):
    if name == "tensorboard":
        pytest.importorskip("torch.utils.tensorboard")
    run = _copy(finished, tmp_path)
    away = _outside(tmp_path)
    if (run / name).exists():
        import shutil
        shutil.rmtree(run / name)
    (run / name).symlink_to(away, target_is_directory=True)
    before = _snapshot(away)
    extra = ["--tensorboard"] if name == "tensorboard" else []
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and name in err and "Traceback" not in err, err
    assert _snapshot(away) == before


def test_a_sweep_trial_log_linked_elsewhere_gets_no_write(tmp_path):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    argv = ["sweep", str(spec), "--models", "classical", "--executor", "serial", "--retries", "0",
            "--out", str(out), "--no-report", *FAST]
    assert main([*argv, "--epochs", "1"]) == 0
    trial = out / "tiny" / "classical" / "seed0"
    away = _outside(tmp_path)
    (away / "trial.log").write_text("not qtc's\n")
    (trial / "trial.log").unlink()
    (trial / "trial.log").symlink_to(away / "trial.log")
    (trial / "trial.json").unlink()                            # not done: the trial is rerun
    assert main([*argv, "--epochs", "2"]) == 1
    assert (away / "trial.log").read_text() == "not qtc's\n"
    status = json.loads((trial / "trial.json").read_text())
    assert "symbolic link" in status["error"] and "trial.log" in status["error"]


# --- resume checks what it finds in the folder ------------------------------------------------
def _edit_json(path: Path, edit) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


EDITS = {   # (file, its new text or an edit of its JSON)
    "resolved {}": ("resolved.json", "{}"),
    "resolved []": ("resolved.json", "[]"),
    "resolved null": ("resolved.json", "null"),
    "resolved no options": ("resolved.json", lambda d: {k: v for k, v in d.items() if k != "options"}),
    "resolved threads 100000": ("resolved.json", lambda d: {**d, "options": {**d["options"], "threads": 100000}}),
    "resolved models a string": ("resolved.json", lambda d: {**d, "options": {**d["options"], "models": "classical"}}),
    "resolved settings a list": ("resolved.json", lambda d: {**d, "settings": ["a=1"]}),
    "fingerprint {}": ("fingerprint.json", "{}"),
    "fingerprint not JSON": ("fingerprint.json", '{"sha256": '),
    "metrics emptied": ("metrics.json", "[]"),
    "metrics damaged": ("metrics.json", '[{"model": "classical", "epo'),
    "metrics an object": ("metrics.json", "{}"),
    "metrics row edited": ("metrics.json", lambda rows: [{**r, "test_mse": 0.0} for r in rows]),
    "metrics row without epoch": ("metrics.json", lambda rows: [{"model": r["model"]} for r in rows]),
}


@pytest.mark.parametrize("case", EDITS, ids=list(EDITS))
def test_a_hand_edited_run_folder_file_is_a_clear_error_naming_it(finished, tmp_path, capsys, case):
    run = _copy(finished, tmp_path)
    name, edit = EDITS[case]
    if callable(edit):
        _edit_json(run / name, edit)
    else:
        (run / name).write_text(edit)
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err, err


def test_a_foreign_checkpoint_is_refused_even_with_its_sha256_copied_into_fingerprint_json(
        finished, tmp_path, capsys):
    mine = _copy(finished, tmp_path)
    theirs = tmp_path / "theirs"
    assert main(["run", str(_spec(tmp_path / "other", lr="0.02")), "-o", str(theirs), *FAST]) == 0
    import shutil
    shutil.copy(theirs / "checkpoint.pt", mine / "checkpoint.pt")
    sha = json.loads((theirs / guard.FINGERPRINT).read_text())["sha256"]
    _edit_json(mine / guard.FINGERPRINT, lambda d: {**d, "sha256": sha})
    assert main(["run", "--resume", str(mine), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert guard.FINGERPRINT in err and "sha256" in err, err
    # ... and with the whole fingerprint.json copied too, the identity no longer matches the spec.
    shutil.copy(theirs / guard.FINGERPRINT, mine / guard.FINGERPRINT)
    assert main(["run", "--resume", str(mine), "--epochs", "2", "--no-progress"]) == 2
    assert "task.train.lr: 0.02 -> 0.01" in capsys.readouterr().err


def test_an_untouched_folder_resumes_and_its_checkpoint_covers_its_rows(finished, tmp_path):
    run = _copy(finished, tmp_path)
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    import torch
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["rows"]["count"] == len(_rows(run)) == 2


def _drop_from_identity(run: Path, keys) -> None:
    """fingerprint.json as an older qtc, whose spec language lacked `keys`, would have written it."""
    import torch
    record = json.loads((run / guard.FINGERPRINT).read_text())
    ident = {k: v for k, v in record["identity"].items() if k not in keys}
    _edit_json(run / guard.FINGERPRINT, lambda d: {"sha256": guard.fingerprint(ident), "identity": ident})
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "fingerprint": guard.fingerprint(ident)}, run / "checkpoint.pt")


def test_a_run_started_before_an_option_existed_resumes_when_the_option_is_at_its_default(
        finished, tmp_path):
    """An option added to the spec language since the run started (here order, at its default
    "shuffle") is no edit of the run: the resume goes on (the MiniGrid sweep of issue 27 was
    refused after `index` and `search` joined the generator statement)."""
    run = _copy(finished, tmp_path)
    _drop_from_identity(run, {"task.train.order"})
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert len(_rows(run)) == 2


def test_a_run_started_before_an_option_existed_is_refused_when_the_option_is_not_its_default(
        finished, tmp_path, capsys):
    """batch 10 is not the default batch (100): an older run cannot have had it, so its absence
    from the record is a difference."""
    run = _copy(finished, tmp_path)
    _drop_from_identity(run, {"task.train.batch"})
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    assert "task.train.batch: '(absent)' -> 10" in capsys.readouterr().err


def test_report_on_a_sweep_whose_trial_json_holds_a_list_names_the_file(tmp_path, capsys):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--models", "classical", "--executor", "serial", "--epochs", "1",
                 "--out", str(out), "--no-report", *FAST]) == 0
    (out / "tiny" / "classical" / "seed0" / "trial.json").write_text("[1, 2]")
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trial.json" in err and "an array" in err and "Traceback" not in err, err


# --- SIGTERM to the process group is an interruption ----------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigterm_to_the_process_group_of_a_jobs_run_is_an_interruption_to_resume(tmp_path):
    """A scheduler's stop reaches the driver and its --jobs workers together: the workers stop at
    their next batch like the driver (they died with exit -15 and the run said 'training
    failed'), and the run ends as an interruption, resumable."""
    import signal
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "qtc", "run", "specs/damped_shm.task", "-o", str(out),
                             "--models", "classical,fixed:0", "--jobs", "2", "--epochs", "1000", *FAST],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)
    deadline = time.time() + 300
    while not ((out / "metrics.json").is_file() and json.loads((out / "metrics.json").read_text())):
        assert proc.poll() is None and time.time() < deadline, "no epoch was ever reported"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, text
    assert "interrupted" in text and "--resume" in text and "failed" not in text, text
    assert (out / "checkpoint.pt").is_file() and not (out / guard.LOCK).exists()
