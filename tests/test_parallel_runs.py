"""`qtc run --jobs N`: models trained N at a time in worker processes, with the books kept by
the driver: the same metrics and exported models as one at a time, merged twins trained once,
Ctrl-C and resume, bad input."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from qtc.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
MODELS = "diffqas,fixed:0,fixed:2,fixed:4,classical"      # fixed:2 is merged with fixed:0


def _run(out, *extra):
    return main(["run", str(SPECS / "damped_shm.task"), "-o", str(out), "--no-progress",
                 "--models", MODELS, *map(str, extra)])


def _rows(folder):
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((Path(folder) / "metrics.json").read_text())]


def _exports(folder):
    return {p.parent.name: torch.load(p) for p in sorted(Path(folder).glob("models/*/model.pt"))}


def _same_exports(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name


def test_two_jobs_give_the_rows_and_models_of_one_and_train_merged_twins_once(tmp_path, capsys):
    assert _run(tmp_path / "one", "--epochs", 2, "--max-batches", 3, "--jobs", 1) == 0
    assert _run(tmp_path / "two", "--epochs", 2, "--max-batches", 3, "--jobs", 2) == 0
    out = capsys.readouterr().out
    assert "training 4 models, 2 at a time (--jobs 2)" in out      # fixed:2 is not trained
    rows = _rows(tmp_path / "two")
    assert rows == _rows(tmp_path / "one")
    assert [(r["model"], r["epoch"]) for r in rows] == [(m, e) for m in MODELS.split(",") for e in (1, 2)]
    twin = [r for r in rows if r["model"] == "fixed:2"]
    first = [r for r in rows if r["model"] == "fixed:0"]
    assert all(t["trained_as"] == f["label"] for t, f in zip(twin, first))
    assert [t["test_mse"] for t in twin] == [f["test_mse"] for f in first]
    _same_exports(_exports(tmp_path / "one"), _exports(tmp_path / "two"))
    assert "fixed_2" in _exports(tmp_path / "two")
    selected = json.loads((tmp_path / "two" / "selection.json").read_text())
    assert list(selected) == MODELS.split(",")
    summary = (tmp_path / "two" / "summary.md").read_text()
    assert "trained once" in summary


def test_ctrl_c_with_two_jobs_checkpoints_every_running_model_and_resumes_to_the_same_rows(tmp_path):
    args = ("--epochs", 6, "--jobs", 2)
    assert _run(tmp_path / "straight", *args) == 0
    broken = tmp_path / "broken"

    def interrupt_after_the_first_row():     # Ctrl-C as soon as a worker has reported an epoch
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            p = broken / "metrics.json"
            if p.is_file() and json.loads(p.read_text()):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=interrupt_after_the_first_row, daemon=True)
    watcher.start()
    assert _run(broken, *args) == 130                  # qtc's exit status after Ctrl-C
    watcher.join()
    state = torch.load(broken / "checkpoint.pt", weights_only=True)
    assert state["running"] and len(_rows(broken)) < len(_rows(tmp_path / "straight"))
    assert main(["run", "--resume", str(broken), "--no-progress", "--jobs", "2"]) == 0
    assert _rows(broken) == _rows(tmp_path / "straight")
    _same_exports(_exports(broken), _exports(tmp_path / "straight"))


@pytest.mark.parametrize("spec, jobs, want", [
    ("damped_shm.task", "0", "--jobs must be a whole number between 1 and 256"),
    ("minigrid_5x5.task", "2", "an a3c task trains its models in turn"),
])
def test_bad_jobs_are_refused_before_any_folder(tmp_path, capsys, spec, jobs, want):
    out = tmp_path / "run"
    assert main(["run", str(SPECS / spec), "-o", str(out), "--jobs", jobs]) == 2
    assert want in capsys.readouterr().err
    assert not out.exists()


def test_qtc_jobs_must_be_a_count(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QTC_JOBS", "two")
    assert _run(tmp_path / "run") == 2
    assert "QTC_JOBS must be a whole number >= 1, got 'two'" in capsys.readouterr().err


def test_a_model_that_diverges_in_a_worker_stops_the_run_with_its_message(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(SPECS / "damped_shm.task"), "-o", str(out), "--no-progress",
                 "--models", "diffqas,classical,fixed:4", "--epochs", "2", "--max-batches", "3",
                 "--jobs", "2", "--set", "train.lr=1e30"]) == 2
    err = capsys.readouterr().err            # whichever worker's model diverged first is named
    assert "training failed: " in err and "training diverged: " in err and ", epoch 1, batch " in err
    assert "Traceback" not in err
