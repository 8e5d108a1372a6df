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
