"""The learning-rate schedule of the `train` statement (`schedule constant | cosine | step N
[gamma G]`, `warmup W`): parsed with its defaults, each step's rate as documented, a constant
schedule leaving the optimizer untouched, the rate recorded per epoch, a resumed run continuing
the schedule to the metrics of a straight run, and a cosine run's budget refused to grow.
(The malformed variants are located errors in tests/specs_bad/task_schedule_*.task.)"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from qtc.cli import main
from qtc.dsl.task import parse_task
from qtc.errors import SpecError
from qtc.tasks.engines.optim import lr_factor, make_optimizer, make_schedule

ROOT = Path(__file__).resolve().parents[1]
SPEC = """task s : forecast
data narma5 window 4 split 0.67 drop_last true
network {
  input [4, 1]
  lstm 1 -> 4
  linear 4 -> 1
}
generator hadamard_ent_rot.qs depth 2
train rmsprop lr 0.01 batch 10 epochs 3 seed 0 order sequential TRAIN
"""


def _spec(tmp_path: Path, train: str) -> Path:
    shutil.copy(ROOT / "specs" / "hadamard_ent_rot.qs", tmp_path)
    path = tmp_path / "s.task"
    path.write_text(SPEC.replace("TRAIN", train))
    return path


def _rows(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((folder / "metrics.json").read_text())]


def test_the_train_statement_parses_each_schedule_with_its_defaults(tmp_path):
    train = parse_task(_spec(tmp_path, "")).train
    assert (train.schedule, train.every, train.gamma, train.warmup) == ("constant", None, 0.1, None)
    train = parse_task(_spec(tmp_path, "schedule step 2 gamma 0.5 warmup 0.5")).train
    assert (train.schedule, train.every, train.gamma, train.warmup) == ("step", 2, 0.5, 0.5)
    assert parse_task(_spec(tmp_path, "schedule cosine")).train.schedule == "cosine"


def test_each_steps_rate_is_the_documented_factor(tmp_path):
    cosine = parse_task(_spec(tmp_path, "schedule cosine")).train
    assert [lr_factor(cosine, s, 4, 2) for s in range(4)] == pytest.approx(
        [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2])
    step = parse_task(_spec(tmp_path, "schedule step 1 gamma 0.5")).train
    assert [lr_factor(step, s, 12, 3) for s in range(0, 12, 3)] == [1.0, 0.5, 0.25, 0.125]
    assert lr_factor(step, 5, 12, 3) == 0.5                       # changes at epoch boundaries only
    warm = parse_task(_spec(tmp_path, "warmup 1")).train          # constant rate after 4 steps
    assert [lr_factor(warm, s, 12, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_a_constant_schedule_leaves_the_optimizer_as_it_was(tmp_path):
    train = parse_task(_spec(tmp_path, "")).train
    optim = make_optimizer(train, [torch.nn.Parameter(torch.zeros(2))])
    assert make_schedule(train, optim, 10, 2) is None
    assert optim.param_groups[0]["lr"] == 0.01 and "initial_lr" not in optim.param_groups[0]


def test_a_run_records_each_epochs_rate_and_a_constant_run_none(tmp_path):
    cosine = tmp_path / "cosine"
    assert main(["run", str(_spec(tmp_path, "schedule cosine warmup 0.5")), "-o", str(cosine),
                 "--max-batches", "4", "--models", "diffqas", "--no-progress"]) == 0
    # 12 steps, 4 an epoch, 2 of warm-up (done by the end of epoch 1): each epoch's last step
    want = [0.01 * (1 + math.cos(math.pi * s / 12)) / 2 for s in (3, 7, 11)]
    assert [r["lr"] for r in _rows(cosine)] == pytest.approx(want, rel=1e-12)
    plain = tmp_path / "plain"
    assert main(["run", str(_spec(tmp_path, "")), "-o", str(plain), "--max-batches", "4",
                 "--models", "diffqas", "--no-progress"]) == 0
    assert all("lr" not in r for r in _rows(plain))


@pytest.mark.parametrize("train", ["schedule cosine warmup 0.5", "schedule step 1 gamma 0.5"])
def test_a_resumed_run_continues_the_schedule_to_the_metrics_of_a_straight_run(tmp_path, monkeypatch, train):
    spec = _spec(tmp_path, train)
    args = ("--max-batches", "3", "--models", "diffqas", "--no-progress")
    assert main(["run", str(spec), "-o", str(tmp_path / "straight"), *args]) == 0
    calls = {"n": 0}
    real = F.mse_loss

    def interrupting(*a, **k):   # steps 1-3 are epoch 1: Ctrl-C in epoch 2's second step
        calls["n"] += torch.is_grad_enabled()      # evaluation runs without grad
        if calls["n"] == 5:                        # the step finishes, then the run checkpoints
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(F, "mse_loss", interrupting)
    assert main(["run", str(spec), "-o", str(tmp_path / "resumed"), *args]) == 130
    monkeypatch.setattr(F, "mse_loss", real)
    assert [r["epoch"] for r in _rows(tmp_path / "resumed")] == [1]
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["running"]["diffqas"]["batch"] == 2                     # mid-epoch
    assert saved["running"]["diffqas"]["schedule"]["last_epoch"] == 5    # 5 steps done
    assert main(["run", "--resume", str(tmp_path / "resumed"), "--no-progress"]) == 0
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    a = torch.load(tmp_path / "straight" / "models" / "diffqas" / "model.pt")
    b = torch.load(tmp_path / "resumed" / "models" / "diffqas" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_cosine_runs_budget_cannot_grow_and_a_step_schedules_can(tmp_path, capsys):
    for train, code in (("schedule cosine", 2), ("schedule step 1", 0)):
        out = tmp_path / train.split()[1]
        assert main(["run", str(_spec(tmp_path, train)), "-o", str(out), "--epochs", "2",
                     "--max-batches", "2", "--models", "diffqas", "--no-progress"]) == 0
        capsys.readouterr()
        assert main(["run", "--resume", str(out), "--epochs", "3", "--no-progress"]) == code
        if code:
            err = capsys.readouterr().err
            assert "a cosine schedule decays over the run's budget" in err and "--epochs 3 (the run has 2)" in err
            assert [r["epoch"] for r in _rows(out)] == [1, 2]
        else:
            assert [r["epoch"] for r in _rows(out)] == [1, 2, 3]


def test_schedule_and_warmup_are_refused_for_an_a3c_task():
    text = (ROOT / "specs" / "minigrid_5x5.task").read_text()
    line = next(t for t in text.splitlines() if t.startswith("train "))
    with pytest.raises(SpecError, match="'schedule' of 'train' does not apply to a3c tasks"):
        parse_task(text.replace(line, line + " schedule cosine"))
