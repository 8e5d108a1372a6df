"""Watching a trained A3C policy: greedy episodes as text, on any display or none.

MiniGrid episodes are drawn as MiniGrid's text grids; other environments (a Box observation)
as one line per step: the action taken and the observation it led to.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from qtc.tasks.engines.a3c.envs import describe, make_env
from qtc.tasks.engines.a3c.episodes import load_policy
from qtc.tasks.engines.a3c.evaluation import greedy, run_episode


def _values(obs) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in np.asarray(obs, dtype=float).reshape(-1)) + "]"


def play(actor, actor_net, env_id: str, episodes: int = 1, seed: int = 0,
         max_episode_steps: int | None = None) -> tuple[str, list[float]]:
    """Greedy (argmax) rollouts as text; returns (text, reward per episode).

    ``actor`` is a parameter source (``nn.Module``) or its flat weight vector.
    """
    with torch.no_grad():
        flat = actor() if isinstance(actor, nn.Module) else torch.as_tensor(actor)
    info = describe(env_id)
    env = make_env(env_id, max_episode_steps)
    lines, rewards = [], []
    for ep in range(episodes):
        steps = []

        def show(action, obs):                       # action None: the start
            if action is None:
                lines.append(f"episode {ep + 1}, start" + ("" if info.minigrid else f": observation {_values(obs)}"))
            else:
                steps.append(action)
                head = f"episode {ep + 1}, step {len(steps)}: {info.actions[action]}"
                lines.append(head if info.minigrid else f"{head} -> {_values(obs)}")
            if info.minigrid:
                lines.extend([env.unwrapped.pprint_grid(), ""])
        total, step, terminated = run_episode(env, greedy(actor_net, flat), seed + ep, on_step=show)
        outcome = ("reached the goal" if info.minigrid else "terminated") if terminated else "time limit"
        lines.append(f"episode {ep + 1}: reward {total:.3f} in {step} steps ({outcome})")
        rewards.append(total)
    env.close()
    return "\n".join(lines), rewards


def play_policy_folder(run_dir: Path | str, episodes: int = 1,
                       seed: int = 0) -> tuple[str, list[float]]:
    """``play`` for the policy an engine folder saved (policy.pt: its flat actor weights,
    network and environment)."""
    pol = load_policy(run_dir)
    return play(pol["actor_flat"], pol["actor_net"], pol["env_id"], episodes=episodes, seed=seed,
                max_episode_steps=pol.get("max_episode_steps"))
