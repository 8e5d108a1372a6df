"""Issue 11: model selection without test leakage, batch order, seeds, naive baselines, paired
statistics, provenance, bit-identical reruns and the bad-input errors."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from qtc.cli import main
from qtc.dsl.task import parse_task
from qtc.errors import QtcError, SpecError
from qtc.runtime.kernels import step_target
from qtc.tasks.build import load_task
from qtc.tasks.data import series as S
from qtc.tasks.engines import selection
from qtc.tasks.engines.baselines import forecast_baselines, majority_baseline, random_policy_baseline
from qtc.tasks.engines.supervised import Supervised, train_all
from qtc.tasks.experiments import paired
from qtc.tasks.kinds import forecast as FC
from qtc.tasks.runs import runner

SPECS = Path(__file__).resolve().parent.parent / "specs"
TRAIN = "train rmsprop lr 0.01 batch 10 epochs 2 seed 0"


def _spec_text(train: str = TRAIN) -> str:
    text = (SPECS / "damped_shm.task").read_text()
    lines = [train if line.startswith("train ") else line for line in text.splitlines()
             if not line.startswith("report ")]     # its report epochs lie beyond 2 epochs
    return "\n".join(lines) + "\n"


def _write_spec(tmp_path, train: str = TRAIN) -> Path:
    p = tmp_path / "t.task"
    p.write_text(_spec_text(train))
    return p


def _series_task(built, poison: float = 0.0) -> Supervised:
    _, wins, _ = FC.load_series(built)
    y_test = wins.y_test + poison * torch.randn(wins.y_test.shape, generator=torch.Generator().manual_seed(1))
    return Supervised(train=torch.utils.data.TensorDataset(wins.x_train, wins.y_train),
                      test=torch.utils.data.TensorDataset(wins.x_test, y_test),
                      loss=F.mse_loss, scores=FC.mse_scores)


def _train(tmp_path, name, select, poison=0.0, models="classical,fixed:4"):
    built = load_task(SPECS / "damped_shm.task")
    opts = runner.resolve_options(built, models=models, epochs=5, max_batches=4, select=select,
                                  progress=False)
    rundir = runner.start(built, opts, tmp_path / name)
    return train_all(built, rundir, opts, _series_task(built, poison)), rundir


@pytest.mark.parametrize("select", [("train", None), ("validation", 0.2)])
def test_poisoning_the_test_set_never_moves_the_chosen_epoch(tmp_path, select, one_torch_thread):
    clean, _ = _train(tmp_path, "clean", select)
    poisoned, rundir = _train(tmp_path, "poisoned", select, poison=100.0)
    for model in clean:
        assert clean[model]["epoch"] == poisoned[model]["epoch"]
        assert clean[model]["test_mse"] != poisoned[model]["test_mse"]      # the poison did arrive
        for key in ("train_loss", "val_loss"):
            assert clean[model].get(key) == poisoned[model].get(key)
    recorded = json.loads((rundir.path / "selection.json").read_text())
    assert {m: r["epoch"] for m, r in recorded.items()} == {m: r["epoch"] for m, r in poisoned.items()}
    assert all(r["rule"] == select[0] for r in recorded.values())


def test_train_rule_picks_the_lowest_training_loss_and_exports_that_epoch(tmp_path, one_torch_thread):
    done, rundir = _train(tmp_path, "r", ("train", None), models="classical")
    rows = [r for r in rundir.metrics() if r["model"] == "classical"]
    best = min(rows, key=lambda r: r["train_loss"])
    assert done["classical"]["epoch"] == best["epoch"]
    built = load_task(SPECS / "damped_shm.task")
    net = built.nets["net"]
    state = torch.load(rundir.path / "models" / "classical" / "model.pt", weights_only=True)
    module = net.module()
    module.load_state_dict(state)
    _, wins, _ = FC.load_series(built)
    with torch.no_grad():
        mse = float(F.mse_loss(module(wins.x_train), wins.y_train))
    assert mse == pytest.approx(best["train_mse"], rel=1e-5)


def test_sequential_order_is_the_time_order_and_shuffle_depends_on_seed_and_epoch_only():
    assert torch.equal(selection.batch_order(7, 3, 5, "sequential"), torch.arange(7))
    a = selection.batch_order(50, 1, 2, "shuffle")
    assert torch.equal(a, selection.batch_order(50, 1, 2, "shuffle"))
    assert not torch.equal(a, selection.batch_order(50, 1, 3, "shuffle"))
    assert not torch.equal(a, selection.batch_order(50, 2, 2, "shuffle"))
    wins = S.windows(S.generate("damped_shm"), window=4, drop_last=True)
    x = wins.x_train[selection.batch_order(len(wins.x_train), 0, 0, "sequential")]
    assert torch.equal(x[1:, :-1], x[:-1, 1:])     # each window is the previous one moved by one step


def test_every_model_of_a_seed_sees_the_same_batch_order(tmp_path, monkeypatch, one_torch_thread):
    seen = {}
    real = selection.batch_order

    def spy(n, seed, epoch, order):
        out = real(n, seed, epoch, order)
        seen.setdefault(spy.model, []).append(out.tolist())
        return out
    built = load_task(SPECS / "damped_shm.task")
    opts = runner.resolve_options(built, models="classical,diffqas", epochs=2, max_batches=2, progress=False)
    rundir = runner.start(built, opts, tmp_path / "r")
    monkeypatch.setattr(selection, "batch_order", spy)
    for model in opts.models:
        spy.model = model
        train_all(built, rundir, replace(opts, models=(model,)), _series_task(built))
    assert len(seen) == 2 and seen["classical"] == seen["diffqas"]


def test_naive_forecast_baselines_match_hand_computed_values():
    # Windows of 2 over 1, 2, 4, 8, 16: targets 4, 8 (train) and 16 (test).
    x_train = torch.tensor([[[1.], [2.]], [[2.], [4.]]])
    y_train = torch.tensor([[4.], [8.]])
    x_test, y_test = torch.tensor([[[4.], [8.]]]), torch.tensor([[16.]])
    b = forecast_baselines(x_train, y_train, x_test, y_test)
    assert b["mean of training targets"]["train_mse"] == pytest.approx(4.0)        # (4-6)^2, (8-6)^2
    assert b["mean of training targets"]["test_mse"] == pytest.approx(100.0)       # (16-6)^2
    assert b["last value"]["train_mse"] == pytest.approx(10.0)                     # (2-4)^2, (4-8)^2
    assert b["last value"]["test_mse"] == pytest.approx(64.0)                      # (8-16)^2
    # Two examples, three coefficients: least squares fits the training set exactly (minimum norm).
    assert b["linear AR (least squares)"]["train_mse"] == pytest.approx(0.0, abs=1e-12)


def test_linear_ar_recovers_an_exact_linear_recurrence():
    t = torch.arange(30, dtype=torch.float64)
    values = (0.5 * t + 1.0).float()             # y[t] = 2 y[t-1] - y[t-2]: linear in the window
    x = torch.stack([values[i:i + 3] for i in range(26)])[:, :, None]
    y = values[3:29, None]
    b = forecast_baselines(x[:20], y[:20], x[20:], y[20:])
    assert b["linear AR (least squares)"]["test_mse"] == pytest.approx(0.0, abs=1e-8)


def test_majority_class_baseline():
    b = majority_baseline(torch.tensor([1, 1, 0, 1]), torch.tensor([0, 1, 0, 0, 1]))
    assert b["majority class"] == {"train_accuracy": 0.75, "test_accuracy": 0.4, "class": 1}


A = [0.010, 0.020, 0.012, 0.030, 0.008, 0.015]
B = [0.020, 0.018, 0.030, 0.045, 0.016, 0.030]


def test_random_policy_baseline_plays_the_evaluation_episodes():
    from qtc.tasks.engines.a3c.evaluation import EVAL_SEED0
    env = "MiniGrid-Empty-5x5-v0"
    one_step = random_policy_baseline(env, 1, episodes=3)     # the goal is 3 steps away: never reached
    assert one_step == {"random policy": {"eval_reward": 0.0, "episodes": 3, "first_seed": EVAL_SEED0}}
    long = random_policy_baseline(env, 100, episodes=20)
    assert long == random_policy_baseline(env, 100, episodes=20)          # fixed seeds, fixed actions
    assert 0 < long["random policy"]["eval_reward"] < 1


def test_paired_statistics_against_scipy_on_fixed_numbers():
    v = paired.versus(dict(enumerate(A)), dict(enumerate(B)), higher_better=False)
    assert v["wilcoxon_p"] == pytest.approx(stats.wilcoxon(A, B).pvalue)
    assert v["win_rate"] == pytest.approx(5 / 6)
    ratios = np.array(A) / np.array(B)
    assert v["median_ratio"] == pytest.approx(float(np.median(ratios)))
    boot = stats.bootstrap((ratios,), np.median, n_resamples=20_000, method="percentile",
                           random_state=np.random.default_rng(3))
    assert v["ratio_low"] == pytest.approx(boot.confidence_interval.low, abs=0.03)
    assert v["ratio_high"] == pytest.approx(boot.confidence_interval.high, abs=0.03)


def test_rank_and_the_median_claim():
    mine = {0: 1.0, 1: 1.0, 2: 1.0}
    fixed = {"a": {0: 2.0, 1: 2.0, 2: 3.0}, "b": {0: 0.5, 1: 3.0, 2: 2.0}, "c": {0: 4.0, 1: 5.0, 2: 6.0}}
    st = paired.against_fixed(mine, fixed, higher_better=False)
    assert st["ranks"] == {0: 2, 1: 1, 2: 1} and st["of"] == 4
    assert st["better_than_median"] == "yes"      # the ratio to the median circuit is 0.5 every seed
    assert paired.verdict(0.8, 1.2, False) == "undecided" and paired.verdict(1.1, 1.5, False) == "no"
    assert paired.verdict(1.1, 1.5, True) == "yes"
    assert paired.wilcoxon_p([1, 2], [1, 2]) == 1.0


def _metrics_without_time(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((folder / "metrics.json").read_text())]


def test_reruns_are_bit_identical_and_record_their_provenance(tmp_path, one_torch_thread):
    args = ["--models", "classical,fixed:4", "--epochs", "2", "--max-batches", "3", "--backend", "cpu",
            "--select", "validation", "0.2", "--no-progress"]
    for name in ("a", "b"):
        assert main(["run", str(SPECS / "damped_shm.task"), "-o", str(tmp_path / name), *args]) == 0
    assert _metrics_without_time(tmp_path / "a") == _metrics_without_time(tmp_path / "b")
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert prov["backend"] == "cpu" and prov["torch"] == torch.__version__ and prov["dtype"] == "float32"
    assert prov["threads"] >= 1 and prov["spec"]["name"] == "damped_shm" and prov["commit"]
    assert prov["rendering"] == "auto" and prov["target"] == step_target("cpu", torch.float32).key
    assert prov["target"].startswith("cpu/float32/") and prov["target"].endswith("/auto")
    assert json.loads((tmp_path / "a" / "baselines.json").read_text())["last value"]["test_mse"] > 0


def test_provenance_records_the_threads_the_run_trains_with_not_the_process_default(tmp_path):
    """The record is written before the run sets torch's thread count: a fresh pool worker's
    first trial (torch's default: every core) once recorded 2 threads for a 1-thread trial."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["run", str(SPECS / "damped_shm.task"), "-o", str(tmp_path / "a"), "--models", "classical",
                     "--epochs", "1", "--max-batches", "1", "--threads", "1", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(before)
    assert json.loads((tmp_path / "a" / "provenance.json").read_text())["threads"] == 1
    assert json.loads((tmp_path / "a" / "resolved.json").read_text())["options"]["threads"] == 1


@pytest.mark.parametrize("train, message", [
    (TRAIN + " select best", "expected 'last', 'train' or 'validation'"),
    (TRAIN + " select validation 1.5", "between 0 and 1"),
    (TRAIN + " select validation 0", "between 0 and 1"),
    (TRAIN + " select validation", "needs the fraction"),
    (TRAIN + " seeds [0, 1, 1]", "repeat"),
    (TRAIN + " order random", "expected 'shuffle' or 'sequential'"),
])
def test_bad_selection_order_and_seeds_are_located_spec_errors(train, message):
    with pytest.raises(SpecError, match=message) as err:
        parse_task(_spec_text(train))
    assert err.value.line == 10


@pytest.mark.parametrize("args, message", [
    (["--select", "best"], "unknown selection rule"),
    (["--select", "validation", "2"], "between 0 and 1"),
    (["--select", "validation", "0.05"], "fewer than one batch"),     # 8 of 158 windows, batch 10
    (["--select", "validation"], "needs the fraction"),
    (["--set", "train.select=validation"], "needs the fraction"),
    (["--seeds", "0,1,1"], "repeat"),
    (["--seeds", "2", "--seed", "1"], "without --seed"),
])
def test_bad_cli_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", str(SPECS / "damped_shm.task"), "-o", str(out), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_spec_seeds_and_order_parse():
    train = TRAIN.replace(" seed 0", "")          # 'seed' beside 'seeds' is refused
    spec = parse_task(_spec_text(train + " seeds 3 order sequential select validation 0.25"))
    assert spec.train.seeds == (0, 1, 2) and spec.train.order == "sequential"
    assert (spec.train.select, spec.train.validation) == ("validation", 0.25)
    assert parse_task(_spec_text(train + " seeds [4, 2]")).train.seeds == (4, 2)


def test_validation_split_holds_out_the_end():
    assert selection.validation_split(100, 0.2, 10) == (80, 20)
    with pytest.raises(QtcError, match="fewer than one batch"):
        selection.validation_split(100, 0.05, 10)
