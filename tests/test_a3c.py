"""Tests of the A3C engine (qtc.tasks.engines.a3c): shared optimizers, loss, worker runs, faults, curves, play.

Runs use the 'fork' start method (the engine's default on Linux) except one 'spawn' check, and
the classical stand-in (tests/a3c_models.py: flat-Parameter sources, tanh MLPs 147->32->32->7 / ->1).
"""
from __future__ import annotations

import _thread
import contextlib
import csv
import functools
import math
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from a3c_models import init_flat, make_classical_model
from a3c_models import tanh_mlp as TanhMLP
from qtc.errors import QtcError
from qtc.runtime.generator import ClassicalParams as FlatSource
from qtc.tasks.engines import a3c
from qtc.tasks.engines.a3c import (episodes_to_threshold, play, play_policy_folder, read_episodes,
                                   shared_optimizer, train_a3c)
from qtc.tasks.engines.a3c import algorithm, driver, evaluation, worker
from qtc.tasks.plots import moving_average_band, plot_rewards
from qtc.dsl.task import A3CStmt, EnvStmt
from qtc.tasks.engines.a3c.driver import Supervision

ENV = "MiniGrid-Empty-5x5-v0"


@contextlib.contextmanager
def hang_guard(seconds: int = 600):
    """Fail (instead of hanging) when the block takes longer than ``seconds``: a guard far
    beyond any load, not a timing test."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(tmp_path, name="run", **kw):
    """train_a3c with the spec's statements made from `kw` (env_id, max_episode_steps,
    eval_every, eval_episodes) and the driver's settings (max_restarts, start_method)."""
    env = EnvStmt(id=kw.pop("env_id", ENV), max_steps=kw.pop("max_episode_steps", 40))
    evaluate = "eval_every" in kw
    a3c_stmt = A3CStmt(**{k: kw.pop(k) for k in ("eval_every", "eval_episodes") if k in kw})
    supervision = Supervision(checkpoint_every_s=0.5,
                              **{k: kw.pop(k) for k in ("max_restarts", "start_method") if k in kw})
    args = dict(workers=2, episodes=8, progress=False, out_dir=tmp_path / name, evaluate=evaluate,
                supervision=supervision)
    model = kw.pop("make_model", make_classical_model)
    args.update(kw)
    with hang_guard():
        return train_a3c(model, env, a3c_stmt, **args)


def csv_rows(out_dir):
    with open(out_dir / "episodes.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# -- fault-injecting factories (the worker is named a3c-worker-<slot>) ----------------------------

def _is_worker(slot: int) -> bool:
    return multiprocessing.current_process().name == a3c.WORKER_NAME.format(slot)


def _first_time(marker) -> bool:
    """True once per marker file: the fault fires in the first incarnation only."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def raising_model(marker=None):
    if _is_worker(1) and (marker is None or _first_time(marker)):
        raise RuntimeError("injected fault in worker 1")
    return make_classical_model()


def self_killing_model(marker, after_s=0.3):
    if _is_worker(1) and _first_time(marker):
        threading.Timer(after_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return make_classical_model()


# -- shared Adam ------------------------------------------------------------------------------

def test_shared_adam_matches_torch_adam_and_lives_in_shared_memory():
    torch.manual_seed(0)
    init = [torch.randn(5, 3), torch.randn(7)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    opt = shared_optimizer(functools.partial(torch.optim.Adam, lr=1e-2, betas=(0.92, 0.999)), ours)
    ref_opt = torch.optim.Adam(ref, lr=1e-2, betas=(0.92, 0.999))
    for _ in range(6):
        grads = [torch.randn_like(t) for t in init]
        for p, q, g in zip(ours, ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    for p, q, p0 in zip(ours, ref, init):
        assert (p - p0).abs().max() > 1e-2         # the parameters moved
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    for p in ours:
        state = opt.state[p]
        assert float(state["step"]) == 6
        assert all(t.is_shared() for t in state.values())


def test_shared_adam_state_is_updated_by_a_forked_child():
    p = torch.nn.Parameter(torch.zeros(4))
    p.share_memory_()
    opt = shared_optimizer(functools.partial(torch.optim.Adam, lr=0.1), [p])

    def child():
        p.grad = torch.ones(4)
        opt.step()

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(timeout=20)
    assert proc.exitcode == 0
    assert float(opt.state[p]["step"]) == 1
    torch.testing.assert_close(p.detach(), torch.full((4,), -0.1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("make", [
    functools.partial(torch.optim.RMSprop, lr=1e-2, alpha=0.9, momentum=0.5, centered=True),
    functools.partial(torch.optim.SGD, lr=1e-2, momentum=0.9),
], ids=["rmsprop", "sgd"])
def test_every_spec_optimizer_shares_its_state_and_matches_torch(make):
    torch.manual_seed(0)
    init = [torch.randn(5, 3), torch.randn(7)]
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    opt, ref_opt = shared_optimizer(make, ours), make(ref)
    assert all(t.is_shared() for p in ours for t in opt.state[p].values())   # before any step
    for _ in range(4):
        for p, q in zip(ours, ref):
            p.grad = q.grad = torch.randn_like(p)
        opt.step()
        ref_opt.step()
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


# -- networks and loss ------------------------------------------------------------------------

def test_tanh_mlp_reads_the_flat_vector_like_nn_linear_layers():
    net = TanhMLP((147, 32, 32, 7))
    assert net.num_params == 6023 and TanhMLP((147, 32, 32, 1)).num_params == 5825
    torch.manual_seed(1)
    seq = torch.nn.Sequential(torch.nn.Linear(147, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32),
                              torch.nn.Tanh(), torch.nn.Linear(32, 7))
    flat = torch.cat([t.detach().reshape(-1) for t in seq.parameters()])   # W, b per layer
    x = torch.randn(4, 147)
    torch.testing.assert_close(net(flat, x), seq(x))


def _constant_nets(value_bias: float):
    """Actor with all-zero weights (uniform policy), critic outputting ``value_bias`` everywhere."""
    actor, critic = TanhMLP((147, 4, 7)), TanhMLP((147, 4, 1))
    wa = torch.zeros(actor.num_params, requires_grad=True)
    wc = torch.zeros(critic.num_params)
    wc[-1] = value_bias
    return actor, critic, wa, wc.requires_grad_()


def loss_value(*args) -> float:
    return a3c.a3c_loss(*args).item()


def test_a3c_loss_by_hand_terminal_and_truncated():
    actor, critic, wa, wc = _constant_nets(0.0)
    obs = [torch.full((147,), float(k)) for k in range(4)]
    ro = algorithm.Rollout(obs[:3], [0, 2, 6], [0.0, 0.0, 1.0], obs[3], terminated=True, truncated=False)
    td = np.array([0.81, 0.9, 1.0])                 # returns 0.9^2, 0.9, 1; V = 0
    want = np.mean(td ** 2 + math.log(7) * td)      # -log pi = log 7 under a uniform policy
    assert loss_value(actor, critic, wa, wc, ro, 0.9, 0.0) == pytest.approx(want, rel=1e-6)

    actor, critic, wa, wc = _constant_nets(2.0)     # V = 2 everywhere; time limit bootstraps
    ro = algorithm.Rollout(obs[:3], [1, 1, 1], [0.0, 0.0, 0.0], obs[3], terminated=False, truncated=True)
    td = np.array([0.9 ** 3, 0.9 ** 2, 0.9]) * 2.0 - 2.0
    want = np.mean(td ** 2 + math.log(7) * td)
    assert loss_value(actor, critic, wa, wc, ro, 0.9, 0.0) == pytest.approx(want, rel=1e-6)
    # an entropy bonus lowers the loss by coef * log 7 under a uniform policy
    with_bonus = loss_value(actor, critic, wa, wc, ro, 0.9, 0.5)
    assert with_bonus == pytest.approx(want - 0.5 * math.log(7), rel=1e-6)


# -- training runs ----------------------------------------------------------------------------

def test_two_workers_change_the_global_parameters_and_log_valid_episodes(tmp_path):
    s = run(tmp_path, episodes=16, max_episode_steps=40)
    out = tmp_path / "run"
    assert s["status"] == "completed" and s["episodes"] == 16 and s["errors"] == []
    rows = csv_rows(out)
    assert [int(r["episode"]) for r in rows] == list(range(1, 17))
    assert {int(r["worker"]) for r in rows} == {0, 1}
    for r in rows:
        length, reward = int(r["length"]), float(r["reward"])
        assert 1 <= length <= 40
        # MiniGrid: 1 - 0.9 * steps / max_steps on reaching the goal, else 0 at the time limit
        want = 0.0 if length == 40 and reward == 0 else 1 - 0.9 * length / 40
        assert reward == pytest.approx(want, abs=1e-5)
    assert s["steps"] == sum(int(r["length"]) for r in rows)
    torch.manual_seed(0)
    initial = make_classical_model()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    moved = (ck["actor_source"]["flat"] - initial[0].flat).abs().max()
    assert 0 < moved < 0.1                          # Adam steps of ~lr each, not a blow-up
    assert not torch.equal(ck["critic_source"]["flat"], initial[1].flat)
    steps = {float(st["step"]) for st in ck["optimizer"]["state"].values()}
    assert len(steps) == 1 and steps.pop() >= s["steps"] / 5   # one shared step per update
    assert ck["episodes"] == ck["csv_rows"] == 16
    for name in ("policy.pt", "rewards.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    text, rewards = play_policy_folder(out, episodes=1)
    assert "episode 1, start" in text and "WG" in text and len(rewards) == 1
    assert not multiprocessing.active_children()


def test_resume_continues_the_episode_count_and_the_optimizer(tmp_path):
    first = run(tmp_path, episodes=6)
    out = tmp_path / "run"
    step1 = float(next(iter(torch.load(out / "checkpoint.pt")["optimizer"]["state"].values()))["step"])
    with pytest.raises(QtcError, match="already holds an A3C run"):
        run(tmp_path, episodes=10)
    second = run(tmp_path, episodes=10, resume=True)
    assert first["episodes"] == 6 and second["episodes"] == 10
    assert second["episodes_this_session"] == 4
    assert [int(r["episode"]) for r in csv_rows(out)] == list(range(1, 11))
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["episodes"] == 10 and ck["steps"] == second["steps"] > first["steps"]
    step2 = float(next(iter(ck["optimizer"]["state"].values()))["step"])
    assert step2 > step1


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(QtcError, match="no checkpoint.pt"):
        run(tmp_path, resume=True)


def test_a_worker_that_raises_is_reported_and_restarted(tmp_path):
    model = functools.partial(raising_model, str(tmp_path / "fault-once"))
    s = run(tmp_path, make_model=model, episodes=8)
    assert s["status"] == "completed" and s["restarts"] == 1
    assert len(s["errors"]) == 1
    err = s["errors"][0]
    assert err.startswith("worker 1 died (exit code 1)") and "RuntimeError: injected fault" in err
    assert "injected fault" in (tmp_path / "run" / "errors.log").read_text()


def test_a_worker_that_keeps_failing_stops_the_run_cleanly_with_a_checkpoint(tmp_path):
    s = run(tmp_path, make_model=raising_model, episodes=10 ** 6, max_restarts=2)
    assert s["status"] == "failed" and s["restarts"] == 2 and len(s["errors"]) == 3
    assert all("injected fault" in e for e in s["errors"])
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["episodes"] == ck["csv_rows"] == len(csv_rows(tmp_path / "run"))
    assert not multiprocessing.active_children()


def test_a_killed_worker_is_reported_and_replaced(tmp_path):
    model = functools.partial(self_killing_model, str(tmp_path / "kill-once"))
    s = run(tmp_path, make_model=model, episodes=60, max_episode_steps=60)
    assert s["status"] == "completed" and s["episodes"] == 60 and s["restarts"] == 1
    assert s["errors"][0].startswith("worker 1 died (killed by signal SIGKILL)")


def test_a_worker_killed_inside_the_optimizer_lock_does_not_wedge_the_others(tmp_path, monkeypatch):
    original, marker = worker.push_grads, str(tmp_path / "die-in-lock")

    def die_holding_the_lock(local, glob, opt, shared, slot):
        if slot == 1 and _first_time(marker):
            worker.acquire(shared, slot)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(local, glob, opt, shared, slot)

    monkeypatch.setattr(worker, "push_grads", die_holding_the_lock)   # inherited by forked workers
    s = run(tmp_path, episodes=12)
    assert s["status"] == "completed" and s["episodes"] == 12 and s["restarts"] == 1
    assert "killed by signal SIGKILL" in s["errors"][0]
    assert "while holding the optimizer lock" in s["errors"][0]


def _interrupt_after_first_episode(log: Path, stop: threading.Event, limit_s: float = 300) -> None:
    """Ctrl-C the main thread once `log` holds an episode (not after a fixed time: on a busy
    machine no episode may have finished by then, and the verdict would depend on the load)."""
    deadline = time.monotonic() + limit_s
    while not stop.is_set() and time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) > 1:
            break
        time.sleep(0.05)
    if not stop.is_set():
        _thread.interrupt_main()


def test_ctrl_c_stops_all_workers_and_saves(tmp_path):
    stop = threading.Event()
    watcher = threading.Thread(target=_interrupt_after_first_episode,
                               args=(tmp_path / "run" / "episodes.csv", stop), daemon=True)
    watcher.start()
    try:
        s = run(tmp_path, episodes=10 ** 6)
    finally:
        stop.set()
    assert s["status"] == "interrupted" and 0 < s["episodes"] < 10 ** 6
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["episodes"] == s["episodes"] == len(csv_rows(tmp_path / "run"))
    assert not multiprocessing.active_children()


def test_spawned_workers_train_too(tmp_path):
    s = run(tmp_path, episodes=4, start_method="spawn")
    assert s["status"] == "completed" and s["episodes"] == 4 and s["errors"] == []


def test_bad_environment_and_mismatched_network_are_clear_errors(tmp_path):
    with pytest.raises(QtcError, match="gymnasium has no environment"):
        run(tmp_path, env_id="MiniGrid-Empty-7x7-v9")

    def wrong_size():
        actor, critic = TanhMLP((147, 8, 7)), TanhMLP((147, 8, 1))
        return FlatSource(torch.zeros(10)), FlatSource(init_flat(critic)), actor, critic
    with pytest.raises(QtcError, match="actor source gives \\(10,\\) numbers"):
        run(tmp_path, make_model=wrong_size)


# -- curves and play --------------------------------------------------------------------------

def test_moving_average_band_by_hand():
    mean, std = moving_average_band([0, 1, 1, 0, 1], window=2)
    np.testing.assert_allclose(mean, [0, 0.5, 1, 0.5, 0.5])
    np.testing.assert_allclose(std, [0, 0.5, 0, 0.5, 0.5])
    mean, std = moving_average_band([1, 2, 3, 4], window=3)
    np.testing.assert_allclose(mean, [1, 1.5, 2, 3])
    np.testing.assert_allclose(std, [0, 0.5, math.sqrt(2 / 3), math.sqrt(2 / 3)])


def test_episodes_to_threshold_needs_a_full_window():
    assert episodes_to_threshold([1, 0, 1, 1, 1], window=2, threshold=0.9) == 4
    assert episodes_to_threshold([1, 1, 0.5], window=3, threshold=0.9) is None
    assert episodes_to_threshold([1], window=2) is None


def test_plot_rewards_draws_several_models_in_one_png(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_rewards({"qt": rng.random(300), "classical": rng.random(200)}, 50, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_play_renders_greedy_rollouts_as_text():
    actor = TanhMLP((147, 4, 7))
    flat = torch.zeros(actor.num_params)
    flat[-7 + 1] = 1.0                              # last-layer bias: always "right" (turn)
    text, rewards = play(flat, actor, ENV, episodes=2, max_episode_steps=3)
    assert rewards == [0.0, 0.0]
    assert text.count("step 3: right") == 2 and "time limit" in text
    grids = [b for b in text.split("\n\n") if "WG" in b]
    assert len(grids) == 2 * 4                      # start + 3 steps, per episode
    assert all(g.count("\n") >= 4 for g in grids)   # 5 rows of the 5x5 room


def test_read_episodes_reports_a_missing_log(tmp_path):
    with pytest.raises(QtcError, match="no episode log"):
        read_episodes(tmp_path)


# -- one worker: bit-identical resume; evaluation episodes and model selection ----------------

def _same_run(a, b) -> None:
    """Same episode log (reward, length per episode), final policy and shared optimizer state."""
    assert [(r["reward"], r["length"]) for r in csv_rows(a)] == \
        [(r["reward"], r["length"]) for r in csv_rows(b)]
    ck_a, ck_b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (a, b))
    for key in ("actor_source", "critic_source"):
        for name, tensor in ck_a[key].items():
            assert torch.equal(tensor, ck_b[key][name]), (key, name)
    for pa, pb in zip(ck_a["optimizer"]["state"].values(), ck_b["optimizer"]["state"].values()):
        for name, tensor in pa.items():
            assert torch.equal(tensor, pb[name]), name
    pol_a, pol_b = (torch.load(d / "policy.pt", weights_only=True) for d in (a, b))
    assert all(torch.equal(pol_a[k], pol_b[k]) for k in pol_a)


ONE = dict(workers=1, max_episode_steps=20, optimizer=lambda p, **kw: torch.optim.Adam(p, lr=1e-2, **kw))


def test_one_worker_resume_after_episode_budget_cuts_is_bit_identical(tmp_path):
    run(tmp_path, "whole", episodes=7, **ONE)
    for budget in (2, 5):
        run(tmp_path, "cut", episodes=budget, resume=budget > 2, **ONE)
    s = run(tmp_path, "cut", episodes=7, resume=True, **ONE)
    assert s["episodes_this_session"] == 2
    _same_run(tmp_path / "whole", tmp_path / "cut")


def test_one_worker_resume_after_ctrl_c_is_bit_identical(tmp_path, monkeypatch):
    run(tmp_path, "whole", episodes=7, **ONE)
    original = driver.Trainer._handle

    def interrupt_after_two(self, msg):          # Ctrl-C once 2 episodes are logged: no timing
        original(self, msg)
        if msg[0] == "episode" and self.count == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(driver.Trainer, "_handle", interrupt_after_two)
    s = run(tmp_path, "cut", episodes=7, **ONE)
    assert s["status"] == "interrupted" and 2 <= s["episodes"] < 7
    monkeypatch.undo()
    assert run(tmp_path, "cut", episodes=7, resume=True, **ONE)["status"] == "completed"
    _same_run(tmp_path / "whole", tmp_path / "cut")


def test_training_resets_never_use_the_evaluation_seeds():
    train = {evaluation.train_seed(s, e) for s in (0, 1, 2 ** 32 - 1) for e in range(500)}
    assert len(train) == 1500 and max(train) < evaluation.EVAL_SEED0
    assert evaluation.eval_seeds(3) == [evaluation.EVAL_SEED0 + i for i in range(3)]


class _SeedLog:
    """make_env whose envs append every reset seed to a file (forked workers inherit it)."""

    def __init__(self, path):
        self.path, self.real = path, worker.make_env

    def __call__(self, *args):
        env, path = self.real(*args), self.path
        reset = env.reset

        def logged(*, seed=None, **kw):
            with open(path, "a") as fh:
                fh.write(f"{seed}\n")
            return reset(seed=seed, **kw)
        env.reset = logged
        return env


def test_evaluation_episodes_select_the_best_policy_on_held_out_seeds(tmp_path, monkeypatch):
    log = tmp_path / "seeds.txt"
    logged = _SeedLog(log)
    monkeypatch.setattr(worker, "make_env", logged)          # the workers' envs
    monkeypatch.setattr(algorithm, "make_env", logged)       # the driver's model check
    s = run(tmp_path, episodes=7, eval_every=3, eval_episodes=2, **ONE)
    evals = s["evaluations"]
    assert [e["episode"] for e in evals] == [3, 6, 7]           # every 3, and the last episode
    best = max(evals, key=lambda e: e["reward"])                 # ties: the earliest
    assert s["selected"] == {"episode": best["episode"], "reward": best["reward"]}
    check, *seeds = [int(x) for x in log.read_text().split()]
    assert check == 0                                            # the driver's model check: the run seed
    held_out = [x for x in seeds if x >= evaluation.EVAL_SEED0]
    assert held_out == evaluation.eval_seeds(2) * 3              # 2 evaluation episodes, 3 times
    assert len(set(seeds) - set(held_out)) == 7                  # one fresh seed per training episode
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    pol = a3c.load_policy(tmp_path / "run")
    assert torch.equal(pol["actor_flat"], ck["best"]["actor_flat"])    # the selected one is exported
    env = algorithm.make_env(ENV, 20)
    rewards = evaluation.evaluate_policy(env, evaluation.greedy(pol["actor_net"], pol["actor_flat"]),
                                  evaluation.eval_seeds(2))
    assert float(np.mean(rewards)) == pytest.approx(best["reward"])
