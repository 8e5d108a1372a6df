"""A3C on gymnasium environments other than MiniGrid (qtc.tasks.engines.a3c.envs): a Box
observation flattened, Discrete actions, the networks checked against the spaces at load, the
reward threshold from the env spec, `qtc play` as text, resume; every refusal a located error.
"""
from __future__ import annotations

import csv
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from qtc.cli import main
from qtc.errors import SpecError
from qtc.tasks.build import load_task
from qtc.tasks.engines.a3c import driver
from qtc.tasks.engines.a3c.envs import describe, obs_vector
from qtc.tasks.kinds import a3c as a3c_task

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPEC = """task tiny : a3c
env {env}
network actor {{
  input [{obs}]
  linear {obs} -> 8 ; tanh
  linear 8 -> {actions}
}}
network critic {{
  input [{obs}]
  linear {obs} -> 8 ; tanh
  linear 8 -> 1
}}
train adam lr 1e-3 episodes 6 seed 3
a3c gamma 0.99 n_steps 10 window 4
"""


def write(tmp_path, env="CartPole-v1", obs=4, actions=2, name="tiny.task") -> Path:
    path = tmp_path / name
    path.write_text(SPEC.format(env=env, obs=obs, actions=actions))
    return path


def rows(folder: Path) -> list[dict]:
    with open(folder / "episodes.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_box_environments_are_described_from_their_spaces():
    cart, acro, grid = describe("CartPole-v1"), describe("Acrobot-v1"), describe("MiniGrid-Empty-5x5-v0")
    assert (cart.obs_size, len(cart.actions), cart.threshold, cart.minigrid) == (4, 2, 475.0, False)
    assert (acro.obs_size, len(acro.actions), acro.threshold) == (6, 3, -100.0)
    assert (grid.obs_size, len(grid.actions), grid.threshold, grid.minigrid) == (147, 7, 0.9, True)
    obs, _ = gymnasium.make("CartPole-v1").reset(seed=0)
    vec = obs_vector(obs)
    assert vec.dtype == torch.float32 and torch.equal(vec, torch.as_tensor(obs))


def test_acrobot_loads_and_its_summary_uses_its_threshold(tmp_path):
    built = load_task(write(tmp_path, env="Acrobot-v1", obs=6, actions=3))
    assert built.nets["actor"].output_shape == (3,)
    text = a3c_task.summary_text(built, [("classical", "completed", a3c_task.model_stats(
        np.array([-500.0] * 4 + [-90.0] * 4), np.arange(1.0, 9.0), 4, -100.0))])
    assert "'to -100' = episodes until the mean reward of a full window first reaches -100." in text
    assert "| classical | completed | 8 | -90.000 | 8 |" in text


def _register_multidiscrete() -> str:
    """A registered env with MultiDiscrete actions (gymnasium ships none)."""
    env_id = "QtcTest/MultiDiscrete-v0"
    if env_id not in gymnasium.registry:
        class MultiActions(gymnasium.Env):
            observation_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
            action_space = gymnasium.spaces.MultiDiscrete([2, 2])
        gymnasium.register(env_id, entry_point=MultiActions)
    return env_id


@pytest.mark.parametrize("env, obs, actions, message, hint", [
    ("CartPole-v9", 4, 2, "gymnasium has no environment 'CartPole-v9'", "did you mean 'CartPole-v1'?"),
    ("Pendulum-v1", 3, 1, "'Pendulum-v1' has continuous actions (Box(", "choose an environment with Discrete"),
    ("MultiDiscrete", 4, 2, "has actions MultiDiscrete([2 2]); the a3c task's actor picks one of a "
     "Discrete(n) set", "choose an environment with Discrete actions"),
    ("FrozenLake-v1", 16, 4, "'FrozenLake-v1' observes Discrete(16); the a3c task reads a Box "
     "observation (flattened) or MiniGrid's view", "e.g. 'CartPole-v1'"),
])
def test_environments_a3c_cannot_play_are_located_errors(tmp_path, capsys, env, obs, actions, message, hint):
    env = _register_multidiscrete() if env == "MultiDiscrete" else env
    spec = write(tmp_path, env=env, obs=obs, actions=actions)
    with pytest.raises(SpecError) as err:
        load_task(spec)
    assert message in err.value.message and hint in err.value.hint
    assert (err.value.file, err.value.line, err.value.column) == (str(spec), 2, 1)
    if env != "QtcTest/MultiDiscrete-v0":       # a fresh process knows no test registration
        out = tmp_path / "run"
        assert main(["run", str(spec), "-o", str(out), "--no-progress"]) == 2
        printed = capsys.readouterr().err
        assert f"{spec}:2:1: error:" in printed and "Traceback" not in printed and not out.exists()


@pytest.mark.parametrize("obs, actions, line, message", [
    (147, 2, 4, "network 'actor' takes input [147] but CartPole-v1's 4 observation values and its 2 "
     "actions gives [4]"),
    (4, 3, 6, "network 'actor' gives output [3] but CartPole-v1's 4 observation values and its 2 "
     "actions needs [2]"),
])
def test_networks_are_checked_against_the_spaces_at_load(tmp_path, obs, actions, line, message):
    spec = write(tmp_path, obs=obs, actions=actions)
    with pytest.raises(SpecError) as err:
        load_task(spec)
    assert err.value.message == message and err.value.line == line


def test_the_shipped_cartpole_spec_loads():
    built = load_task(SPECS / "cartpole.task")
    assert (built.nets["actor"].num_params, built.nets["critic"].num_params) == (226, 193)
    assert built.models() == ["diffqas", "classical"]
    assert a3c_task.env_info(built).threshold == 475.0


@pytest.mark.slow
def test_cartpole_end_to_end_on_a_tiny_budget(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", str(SPECS / "cartpole.task"), "--models", "diffqas,classical", "--episodes", "4",
                 "--workers", "1", "-o", str(run), "--no-progress"]) == 0
    for model in ("diffqas", "classical"):
        assert [int(r["episode"]) for r in rows(run / "a3c" / model)] == [1, 2, 3, 4]
        assert all(8 <= int(r["length"]) <= 500 for r in rows(run / "a3c" / model))
    summary = (run / "summary.md").read_text()
    assert "| to 475 |" in summary and summary.count("| completed | 4 |") == 2
    assert "mean eval reward" in summary                     # the random policy's row
    readme = (run / "models" / "classical" / "README.md").read_text()
    assert "the observation (4 observation values) flattened in C order" in readme
    assert "2 logits over the actions 0 action 0, 1 action 1" in readme
    capsys.readouterr()
    assert main(["play", str(run), "--model", "classical", "--episodes", "2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "episode 1, start: observation [" in out and "episode 2, step 1: action " in out
    assert "classical on CartPole-v1: mean reward" in out


def _interrupt_after(monkeypatch, seen: int) -> None:
    original = driver.Trainer._handle

    def handle(self, msg):
        original(self, msg)
        if self.count >= seen:
            raise KeyboardInterrupt
    monkeypatch.setattr(driver.Trainer, "_handle", handle)


def test_one_worker_resume_of_a_box_env_is_bit_identical(tmp_path, monkeypatch):
    spec = write(tmp_path)
    args = ["--workers", "1", "--no-progress"]
    assert main(["run", str(spec), "-o", str(tmp_path / "whole"), *args]) == 0
    _interrupt_after(monkeypatch, 2)
    assert main(["run", str(spec), "-o", str(tmp_path / "cut"), *args]) == 130
    monkeypatch.undo()
    assert main(["run", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    logs = [[(r["reward"], r["length"]) for r in rows(d / "a3c" / "classical")] for d in
            (tmp_path / "whole", tmp_path / "cut")]
    assert len(logs[0]) == 6 and logs[0] == logs[1]
    for name in ("actor.pt", "critic.pt"):
        a, b = (torch.load(d / "models" / "classical" / name, weights_only=True)
                for d in (tmp_path / "whole", tmp_path / "cut"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
