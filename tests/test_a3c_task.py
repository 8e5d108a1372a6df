"""Tests of the MiniGrid A3C task (qtc.tasks.kinds.a3c): `qtc run` on an a3c spec, resume, export,
faults, `qtc play`.

One shared short run (`qtc run specs/minigrid_5x5.task --models classical,diffqas --episodes 20
--workers 2`) serves the run-folder, parameter-update, export, skip-on-resume and play tests.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import multiprocessing
from pathlib import Path

import pytest
import torch

from qtc.cli import main
from qtc.errors import QtcError, SpecError
from qtc.tasks.engines import a3c
from qtc.tasks.engines.a3c import driver
from qtc.tasks.kinds import a3c as a3c_task
from qtc.tasks.build import load_task
from qtc.tasks.runs.rundir import RunDir
from qtc.tasks.runs.runner import RunOptions

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPEC = SPECS / "minigrid_5x5.task"
CLASSICAL_SPEC = """task tiny : a3c
env {env}
network actor {{
  input [147]
  linear 147 -> 8 ; tanh
  linear 8 -> 7
}}
network critic {{
  input [147]
  linear 147 -> 8 ; tanh
  linear 8 -> 1
}}
train adam lr 1e-3 episodes 6 seed 3
a3c gamma 0.9 n_steps 5 window 4
"""


def episodes(out: Path) -> list[dict]:
    with open(out / "episodes.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """The brief's smoke run, through the command line, in this process (imports paid once)."""
    out = tmp_path_factory.mktemp("a3c") / "run"
    rc = main(["run", str(SPEC), "--models", "classical,diffqas", "--episodes", "20",
               "--workers", "2", "-o", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_parameter_counts_match_the_paper():
    built = load_task(SPEC)
    assert built.nets["actor"].num_params == 6023
    assert built.nets["critic"].num_params == 5825
    report = built.parameter_report()
    assert report.count("total trainable       157 = 130 + 12 + 15") == 2
    assert built.models()[0] == "diffqas" and built.models()[-1] == "classical"


def test_make_model_is_picklable_and_seeded():
    import pickle
    built = load_task(SPEC)
    factory = a3c_task.model_factory(built, SPEC, "diffqas", seed=5)
    again = pickle.loads(pickle.dumps(factory))
    a1, c1, an, cn = factory()
    a2, c2, _, _ = again()
    assert an.num_params == 6023 and cn.num_params == 5825
    for x, y in ((a1, a2), (c1, c2)):
        for (k, p), q in zip(x.state_dict().items(), y.state_dict().values()):
            torch.testing.assert_close(p, q, msg=k)
    other = a3c_task.model_factory(built, SPEC, "diffqas", seed=6)()[0]
    assert not torch.equal(other.theta, a1.theta)


@pytest.mark.slow
def test_run_folder_holds_every_model_figure_and_summary(short_run):
    for model in ("classical", "diffqas"):
        out = short_run / "a3c" / model
        rows = episodes(out)
        assert [int(r["episode"]) for r in rows] == list(range(1, 21))
        assert {r["worker"] for r in rows} <= {"0", "1"}
        assert json.loads((out / "summary.json").read_text())["status"] == "completed"
        for name in ("actor.pt", "actor.py", "critic.pt", "critic.py"):
            assert (short_run / "models" / model / name).is_file()
    assert (short_run / "rewards.png").stat().st_size > 5000
    summary = (short_run / "summary.md").read_text()
    lines = [ln for ln in summary.splitlines() if ln.startswith(("| classical", "| DiffQAS-QT"))]
    assert len(lines) == 2 and all("| completed | 20 |" in ln for ln in lines)
    assert "DiffQAS-QT" in summary and "not reached" in summary


@pytest.mark.slow
def test_training_moved_the_global_parameters(short_run):
    built = load_task(short_run / "spec.task")
    for model in ("classical", "diffqas"):
        ck = torch.load(short_run / "a3c" / model / "checkpoint.pt", weights_only=True)
        assert ck["episodes"] == 20 and ck["steps"] > 20
        init = a3c_task.model_factory(built, short_run / "spec.task", model, seed=0)()
        for src, key in ((init[0], "actor_source"), (init[1], "critic_source")):
            moved = [float((ck[key][k] - v).abs().max()) for k, v in src.state_dict().items()]
            assert max(moved) > 1e-6, (model, key, moved)
        step = max(float(s["step"]) for s in ck["optimizer"]["state"].values())
        assert step > 20                       # many shared-Adam updates from both workers


@pytest.mark.slow
def test_exported_networks_run_without_qtc_and_match_the_policy(short_run):
    pol = a3c.load_policy(short_run / "a3c" / "diffqas")
    x = torch.rand(3, 147) * 10
    for name in ("actor", "critic"):
        folder = short_run / "models" / "diffqas"
        spec = importlib.util.spec_from_file_location(f"exported_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        net = module.load(str(folder / f"{name}.pt"))
        with torch.no_grad():
            torch.testing.assert_close(net(x), pol[f"{name}_net"](pol[f"{name}_flat"], x))


@pytest.mark.slow
def test_resume_of_a_finished_run_skips_every_model(short_run, capsys):
    before = {m: (short_run / "a3c" / m / "episodes.csv").read_text() for m in ("classical", "diffqas")}
    assert main(["run", "--resume", str(short_run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "classical: already completed (20 episodes), skipping" in out
    assert "DiffQAS-QT: already completed (20 episodes), skipping" in out
    for m, text in before.items():
        assert (short_run / "a3c" / m / "episodes.csv").read_text() == text


@pytest.mark.slow
def test_play_prints_grids_and_rewards(short_run, capsys):
    assert main(["play", str(short_run), "--model", "diffqas", "--episodes", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "episode 1, start" in out and "episode 2, step 1:" in out
    assert out.count("reward") >= 3 and "diffqas on MiniGrid-Empty-5x5-v0: mean reward" in out
    # the engine's own directory plays too
    assert main(["play", str(short_run / "a3c" / "classical")]) == 0
    assert "mean reward" in capsys.readouterr().out


@pytest.mark.slow
def test_play_of_an_untrained_model_is_a_clean_error(short_run, capsys):
    assert main(["play", str(short_run), "--model", "fixed:3"]) == 2
    err = capsys.readouterr().err
    assert "no trained model 'fixed:3'" in err and "classical, diffqas" in err
    assert main(["play", str(short_run / "models")]) == 2
    assert "not an A3C run folder" in capsys.readouterr().err


def _interrupt_after(monkeypatch, episodes_seen: int):
    """Ctrl-C in the main process once `episodes_seen` episodes were logged (deterministic)."""
    original = driver.Trainer._handle

    def handle(self, msg):
        original(self, msg)
        if self.count >= episodes_seen:
            raise KeyboardInterrupt
    monkeypatch.setattr(driver.Trainer, "_handle", handle)


@pytest.mark.slow
def test_ctrl_c_stops_the_model_loop_and_resume_continues(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _interrupt_after(monkeypatch, 3)
    rc = main(["run", str(SPEC), "--models", "classical,fixed:0", "--episodes", "8",
               "--workers", "2", "-o", str(run), "--no-progress"])
    assert rc == 130
    err = capsys.readouterr().err
    assert f"qtc run --resume {run}" in err
    assert not (run / "a3c" / "fixed_0").exists()          # the second model never started
    assert "| classical | interrupted |" in (run / "summary.md").read_text()
    assert len(episodes(run / "a3c" / "classical")) == 3
    monkeypatch.undo()
    assert main(["run", "--resume", str(run), "--no-progress"]) == 0
    assert "classical: resuming 8 episodes" in capsys.readouterr().out
    for model in ("classical", "fixed_0"):
        rows = episodes(run / "a3c" / model)
        assert [int(r["episode"]) for r in rows] == list(range(1, 9))
    summary = (run / "summary.md").read_text()
    assert summary.count("| completed | 8 |") == 2 and "config 1" in summary
    assert (run / "models" / "fixed_0" / "actor.pt").is_file()


def _write_spec(tmp_path, env="MiniGrid-Empty-5x5-v0") -> Path:
    path = tmp_path / "tiny.task"
    path.write_text(CLASSICAL_SPEC.format(env=env))
    return path


def _options(**kw) -> RunOptions:
    return RunOptions(**{"models": ["classical"], "episodes": 6, "workers": 2, "seed": 3,
                         "progress": False, **kw})


def test_the_spec_optimizer_trains_the_a3c_models(tmp_path):
    spec = tmp_path / "tiny.task"
    spec.write_text(CLASSICAL_SPEC.format(env="MiniGrid-Empty-5x5-v0").replace(
        "train adam lr 1e-3", "train rmsprop lr 1e-3 alpha 0.9"))
    rundir = RunDir(tmp_path / "run")
    rundir.path.mkdir()
    a3c_task.run(load_task(spec), rundir, _options(episodes=3))
    ck = torch.load(rundir.engine_dir("classical") / "checkpoint.pt", weights_only=True)
    state = next(iter(ck["optimizer"]["state"].values()))
    assert "square_avg" in state and "exp_avg" not in state           # RMSprop, not Adam
    assert ck["optimizer"]["param_groups"][0]["alpha"] == 0.9


def test_dying_workers_give_a_failed_status_and_a_clean_error(tmp_path, monkeypatch):
    spec = _write_spec(tmp_path)
    built = load_task(spec)
    monkeypatch.setattr(a3c_task, "make_model", _FailingFactory(a3c_task.make_model))
    rundir = RunDir(tmp_path / "run")
    rundir.path.mkdir()
    with pytest.raises(QtcError, match="A3C training failed for classical.*--resume"):
        a3c_task.run(built, rundir, _options())
    assert "| classical | failed |" in (rundir.path / "summary.md").read_text()
    log = (rundir.path / "a3c" / "classical" / "errors.log").read_text()
    assert "injected fault" in log
    assert not (rundir.path / "models" / "classical").exists()     # nothing exported


class _FailingFactory:
    """Wraps make_model: raises in worker processes only (fork: the instance is inherited)."""

    def __init__(self, real):
        self.real = real

    def __call__(self, *args):
        if multiprocessing.current_process().name.startswith("a3c-worker"):
            raise RuntimeError("injected fault")
        return self.real(*args)


def test_bad_environment_and_missing_networks_are_located_errors_at_load(tmp_path):
    with pytest.raises(SpecError, match="gymnasium has no environment 'MiniGrid-Nowhere-v0'") as err:
        load_task(_write_spec(tmp_path, env="MiniGrid-Nowhere-v0"))
    assert err.value.line is not None
    text = CLASSICAL_SPEC.format(env="MiniGrid-Empty-5x5-v0").replace("network critic", "network value")
    (tmp_path / "renamed.task").write_text(text)
    with pytest.raises(SpecError, match="networks named actor and critic; missing critic"):
        load_task(tmp_path / "renamed.task")


def test_model_stats_reads_threshold_final_average_and_rate():
    import numpy as np
    rewards = np.array([0.0] * 4 + [0.95] * 6)
    stats = a3c_task.model_stats(rewards, np.linspace(0.5, 5.0, 10), window=4, threshold=0.9)
    assert stats["episodes"] == 10 and stats["to_threshold"] == 8
    assert stats["final_avg"] == pytest.approx(0.95) and stats["episodes_per_s"] == pytest.approx(2.0)
    short = a3c_task.model_stats(rewards[:3], np.array([1.0, 2.0, 3.0]), window=4, threshold=0.9)
    assert short["to_threshold"] is None and short["final_avg"] == 0.0


# -- model selection by evaluation episodes, the random-policy baseline, background Ctrl-C ----

TINY = CLASSICAL_SPEC.format(env="MiniGrid-Empty-5x5-v0")
SELECT_SPEC = TINY.replace("episodes 6 seed 3", "episodes 6 seed 3 select validation").replace(
    "window 4", "window 4 eval_every 2 eval_episodes 3")


def test_select_validation_picks_the_best_evaluation_and_records_it(tmp_path):
    spec = tmp_path / "sel.task"
    spec.write_text(SELECT_SPEC)
    run = tmp_path / "run"
    assert main(["run", str(spec), "--workers", "1", "-o", str(run), "--no-progress"]) == 0
    evals = json.loads((run / "a3c" / "classical" / "summary.json").read_text())["evaluations"]
    assert [e["episode"] for e in evals] == [2, 4, 6]
    best = max(evals, key=lambda e: e["reward"])
    chosen = json.loads((run / "selection.json").read_text())["classical"]
    assert chosen == {"rule": "validation", "episode": best["episode"], "criterion": "eval_reward",
                      "value": best["reward"], "eval_every": 2, "eval_episodes": 3}
    base = json.loads((run / "baselines.json").read_text())["random policy"]
    assert base["episodes"] == 3 and 0 <= base["eval_reward"] < 1
    text = (run / "summary.md").read_text()
    assert "| *baseline:* random policy (uniform random actions) |" in text
    assert f"episode {best['episode']} (select validation" in text


def test_select_last_records_the_last_episode_and_the_baseline(tmp_path):
    rundir = RunDir(tmp_path / "run")
    rundir.path.mkdir()
    a3c_task.run(load_task(_write_spec(tmp_path)), rundir, _options(episodes=3, workers=1))
    chosen = json.loads((rundir.path / "selection.json").read_text())["classical"]
    assert (chosen["rule"], chosen["episode"]) == ("last", 3)
    assert json.loads((rundir.path / "baselines.json").read_text())["random policy"]["episodes"] == 10


@pytest.mark.parametrize("old, new, line, message", [
    ("seed 3", "seed 3 select validation 0.2", 13, "takes no fraction"),
    ("seed 3", "seed 3 select train", 13, "'select train' is not defined for a3c"),
    ("window 4", "window 4 eval_every 0", 14, "eval_every"),
])
def test_bad_a3c_selection_is_a_located_spec_error(old, new, line, message):
    from qtc.dsl.task import parse_task
    with pytest.raises(SpecError, match=message) as err:
        parse_task(TINY.replace(old, new))
    assert err.value.line == line


@pytest.mark.parametrize("args, message", [
    (["--select", "validation", "0.2"], "takes no fraction"),
    (["--select", "train"], "'select train' is not defined for a3c"),
])
def test_bad_a3c_select_flag_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["run", str(_write_spec(tmp_path)), "-o", str(out), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigint_stops_a_background_a3c_run_at_an_episode_boundary(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    run = tmp_path / "run"
    # Started as with '&' (SIGINT ignored at start), then SIGINT to the driver alone.
    proc = subprocess.Popen([sys.executable, "-m", "qtc", "run", str(_write_spec(tmp_path)), "--episodes",
                             "1000000", "--workers", "1", "-o", str(run), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    log, deadline = run / "a3c" / "classical" / "episodes.csv", time.time() + 240
    while not (log.is_file() and len(log.read_text().splitlines()) > 2):
        assert proc.poll() is None and time.time() < deadline, "the run never logged an episode"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    ck = torch.load(run / "a3c" / "classical" / "checkpoint.pt", weights_only=True)
    assert ck["episodes"] == len(episodes(run / "a3c" / "classical")) >= 2
    assert ck["worker_state"]["episode"] == ck["episodes"]     # cut at a boundary: resumable exactly


def _same_models(a: Path, b: Path) -> None:
    for run in (a, b):
        assert (run / "models" / "classical" / "actor.pt").is_file()
    log = [[(r["reward"], r["length"]) for r in episodes(d / "a3c" / "classical")] for d in (a, b)]
    assert log[0] == log[1]
    for name in ("actor.pt", "critic.pt"):
        sa, sb = (torch.load(d / "models" / "classical" / name, weights_only=True) for d in (a, b))
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_one_worker_qtc_run_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, monkeypatch):
    spec = _write_spec(tmp_path)
    args = ["--workers", "1", "--no-progress"]
    assert main(["run", str(spec), "-o", str(tmp_path / "whole"), *args]) == 0
    _interrupt_after(monkeypatch, 2)                       # Ctrl-C once 2 of 6 episodes are logged
    assert main(["run", str(spec), "-o", str(tmp_path / "cut"), *args]) == 130
    monkeypatch.undo()
    assert main(["run", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    _same_models(tmp_path / "whole", tmp_path / "cut")
    # an episode budget cut, extended on resume
    assert main(["run", str(spec), "-o", str(tmp_path / "short"), "--episodes", "4", *args]) == 0
    assert main(["run", "--resume", str(tmp_path / "short"), "--episodes", "6", "--no-progress"]) == 0
    _same_models(tmp_path / "whole", tmp_path / "short")
