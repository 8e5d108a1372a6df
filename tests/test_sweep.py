"""qtc sweep / qtc report: Ray and the process pool, resuming, failures, the report files."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtc.cli import main
from qtc.tasks.experiments.executors import LOCAL_RAY
from qtc.tasks.experiments.records import collect
from qtc.tasks.experiments.report import summarize, write_report
from qtc.tasks.experiments.sweep import parse_seeds, plan, run_sweep, sweep
from qtc.tasks.experiments.trials import TRIAL_JSON, read_status
from qtc.tasks.runs import guard

# A forecaster small enough that a trial is a few batches: 4-hidden LSTM, 2 layers of the generator.
TINY = """task {name} : forecast
data narma5 window {window} split 0.67
network {{
  input [4, 1]
  lstm 1 -> 4
  linear 4 -> 1
}}
generator hadamard_ent_rot.qs depth 2 mapping linear bits pm1 rescale qt
train rmsprop lr {lr} alpha 0.99 eps 1e-8 batch 10 epochs {epochs} seed 0
compare classical
"""
BUDGET = {"max_batches": 3, "backend": "reference"}   # reference: no kernel compilation


def _spec(folder: Path, name: str = "tiny", *, window: int = 4, epochs: int = 2, lr: float = 0.01) -> str:
    p = folder / f"{name}.task"
    p.write_text(TINY.format(name=name, window=window, epochs=epochs, lr=lr))
    return str(p)


def _finals(out: Path) -> dict[str, float]:
    """trial key -> final test MSE, from the trial.json files."""
    return {str(p.parent.relative_to(out)): json.loads(p.read_text())["final"]["test_mse"]
            for p in sorted(out.glob(f"*/*/seed*/{TRIAL_JSON}"))}


def test_plan_and_seeds(tmp_path):
    spec = _spec(tmp_path)
    trials = plan([spec], parse_seeds("2"), "diffqas,fixed:1,classical", overrides=BUDGET)
    assert [t.key for t in trials] == ["tiny/diffqas/seed0", "tiny/diffqas/seed1", "tiny/fixed_1/seed0",
                                      "tiny/fixed_1/seed1", "tiny/classical/seed0", "tiny/classical/seed1"]
    assert all(t.cpus == 1 and t.gpus == 0 for t in trials)
    assert parse_seeds("0,5,7") == [0, 5, 7]
    from qtc.errors import QtcError
    with pytest.raises(QtcError, match="repeat"):
        parse_seeds("0,5,5")
    with pytest.raises(QtcError):
        parse_seeds("x")
    with pytest.raises(QtcError):
        plan([spec], [0], "quantum")


def test_failing_trial_is_recorded_and_others_go_on(tmp_path, capsys):
    good = _spec(tmp_path, "good")
    bad = _spec(tmp_path, "bad", lr=1e30)    # a valid spec whose training diverges: fails at run time
    trials = plan([bad, good], [0], "classical", overrides=BUDGET)
    assert run_sweep(trials, tmp_path / "out", executor="serial", retries=1, progress=False,
                     report=False) == 1
    st = read_status(tmp_path / "out" / "bad/classical/seed0")
    # qtc refused it (a QtcError): the same input would diverge again, so it is not retried
    assert st["status"] == "failed" and st["attempts"] == 1 and "training diverged" in st["error"]
    # the console shows the whole error, not its first line
    printed = capsys.readouterr()
    assert all(line.strip() in printed.out for line in st["error"].strip().splitlines())
    assert read_status(tmp_path / "out" / "good/classical/seed0")["status"] == "done"
    res = sweep(trials, tmp_path / "out2", executor="serial", retries=1, progress=False)
    assert res.done == ["good/classical/seed0"] and res.failed == ["bad/classical/seed0"]
    assert read_status(tmp_path / "out" / "good/classical/seed0")["status"] == "done"
    rep = write_report(tmp_path / "out")
    text = rep.markdown.read_text()
    assert "## Failed trials" in text and "bad/classical/seed0" in text
    # A second sweep skips the finished trial and retries the failed one (which fails again).
    res2 = sweep(trials, tmp_path / "out", executor="serial", retries=0, progress=False)
    assert res2.skipped == ["good/classical/seed0"] and res2.failed == ["bad/classical/seed0"]


def test_a_sweep_checks_every_grid_point_s_data_before_any_folder(tmp_path, monkeypatch, capsys):
    """As a single qtc run: missing data is found before the first trial, for every task and grid
    point, with the whole message (where it looked, how to fix it); no folder is made."""
    from qtc import specs
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("QTC_DATA", raising=False)
    out = tmp_path / "out"
    code = main(["sweep", str(specs.path("mnist_1v5.task")), "--grid", "train.lr=1e-3,1e-2",
                 "--data-root", str(tmp_path), "-o", str(out), "--executor", "serial", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "MNIST data not found. Looked in:" in err and "To fix:" in err and str(tmp_path) in err


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning(tmp_path):
    spec = _spec(tmp_path, epochs=10)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "qtc", "sweep", spec, "--seeds", "2", "--models", "classical,diffqas",
           "--out", str(out), "--executor", "process", "--workers", "1", "--max-batches", "2",
           "--backend", "reference", "--no-report", "--no-progress"]
    # Sweep 1: interrupt (SIGINT to the whole group, like Ctrl-C) once a trial has finished.
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while not any(   # however long a trial takes on a loaded machine
            (read_status(p.parent) or {}).get("status") == "done" for p in out.glob("*/*/seed*/resolved.json")):
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=600)   # a hang guard, not a timing test
    first = {k: json.loads((out / k / TRIAL_JSON).read_text()) for k in _finals(out)}
    assert first, "no trial finished before the interrupt"
    assert len(first) < 4, "the sweep finished before it could be interrupted"
    # Sweep 2: the finished trials are skipped (their files untouched), the rest complete.
    trials = plan([spec], [0, 1], "classical,diffqas", overrides={"max_batches": 2, "backend": "reference"})
    res = sweep(trials, out, executor="serial", progress=False)
    assert sorted(res.skipped) == sorted(first) and not res.failed
    assert len(_finals(out)) == 4
    for key, status in first.items():
        assert json.loads((out / key / TRIAL_JSON).read_text()) == status
        assert (out / key / "trial.log").read_text().count("run folder") == 1
    for key in res.done:   # an interrupted trial with a checkpoint is continued, not restarted
        st = read_status(out / key)
        assert st["final"]["epoch"] == 10
        if st["resumed"]:
            assert "resuming" in (out / key / "trial.log").read_text()


@pytest.mark.slow
def test_ray_sweep_report_and_pool_give_the_same_numbers(tmp_path):
    ray = pytest.importorskip("ray")
    spec = _spec(tmp_path)
    trials = plan([spec], [0, 1], "diffqas,classical", overrides=BUDGET)
    ray.init(**LOCAL_RAY, num_cpus=2)
    try:
        res = sweep(trials, tmp_path / "ray", executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert res.executor == "ray" and len(res.done) == 4 and not res.failed
    # The report, through the command line, as at the end of a sweep.
    assert main(["report", str(tmp_path / "ray")]) == 0
    report = tmp_path / "ray" / "report"
    for name in ("report.md", "summary.csv", "table2.csv", "weights.csv", "curves.csv", "curves_tiny.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    text = (report / "report.md").read_text()
    assert "| DiffQAS-QT |" in text and "narma5 paper" in text and "favoured candidate" in text
    rows = {s["model"]: s for s in summarize(collect(tmp_path / "ray"))}
    assert rows["diffqas"]["n"] == 2 and rows["classical"]["n"] == 2
    # The process pool, same seeds: the same numbers to the last bit.
    res2 = sweep(trials, tmp_path / "pool", executor="process", workers=2, progress=False)
    assert len(res2.done) == 4
    assert _finals(tmp_path / "ray") == _finals(tmp_path / "pool")


def test_run_resume_on_a_sweep_folder_says_how_a_sweep_resumes(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text("{}")
    assert main(["run", "--resume", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a sweep folder, not a run folder" in err and "qtc sweep command runs again" in err
    assert "Traceback" not in err


def test_a_sweep_publishes_its_trials_and_a_fresh_folder_reads_them_back(tmp_path, capsys):
    """qtc sweep --publish: each finished trial's record goes to the ledger; a sweep into an empty
    folder (another session's clone) reads them back, runs nothing and reports the same numbers;
    a folder another driver holds gets nothing read back into it (the lock comes first);
    --rerun-stale needs --publish."""
    spec = _spec(tmp_path)
    base = ["sweep", spec, "--seeds", "2", "--models", "classical", "--executor", "serial",
            "--max-batches", "3", "--backend", "reference", "--no-progress", "--publish", str(tmp_path / "pub")]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    assert sorted(p.parent.relative_to(tmp_path / "pub").as_posix()
                  for p in (tmp_path / "pub").glob("*/*/*/record.json")) == ["tiny/classical/seed0", "tiny/classical/seed1"]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "b")]) == 0
    said = capsys.readouterr().out
    assert "2 trial(s) read back from" in said and "0 done, 2 skipped (done earlier)" in said
    assert _finals(tmp_path / "b") == _finals(tmp_path / "a")
    assert (tmp_path / "b" / "report" / "summary.csv").read_text() == (tmp_path / "a" / "report" / "summary.csv").read_text()
    assert main(base[:-2] + ["--rerun-stale", "--out", str(tmp_path / "c")]) == 2
    assert "--rerun-stale applies to the trials published with --publish" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    with guard.RunLock(busy):                    # another sweep drives this folder
        assert main(base + ["--out", str(busy)]) == 2
        assert "in use by process" in capsys.readouterr().err
        assert sorted(p.name for p in busy.iterdir()) == [guard.LOCK]
    assert not any(busy.iterdir())
