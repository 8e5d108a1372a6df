"""Watching a trained A3C policy: greedy episodes rendered as MiniGrid's text grids."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qtc.tasks.engines.a3c.algorithm import make_env
from qtc.tasks.engines.a3c.episodes import load_policy
from qtc.tasks.engines.a3c.evaluation import greedy, run_episode


def play(actor, actor_net, env_id: str, episodes: int = 1, seed: int = 0,
         max_episode_steps: int | None = None) -> tuple[str, list[float]]:
    """Greedy (argmax) rollouts rendered as text grids; returns (text, reward per episode).

    ``actor`` is a parameter source (``nn.Module``) or its flat weight vector.
    """
    with torch.no_grad():
        flat = actor() if isinstance(actor, nn.Module) else torch.as_tensor(actor)
    env = make_env(env_id, max_episode_steps)
    names = [a.name for a in env.unwrapped.actions]
    lines, rewards = [], []
    for ep in range(episodes):
        steps = []

        def show(action):                            # None: the start grid
            if action is None:
                lines.append(f"episode {ep + 1}, start")
            else:
                steps.append(action)
                lines.append(f"episode {ep + 1}, step {len(steps)}: {names[action]}")
            lines.extend([env.unwrapped.pprint_grid(), ""])
        total, step, reached = run_episode(env, greedy(actor_net, flat), seed + ep, on_step=show)
        outcome = "reached the goal" if reached else "time limit"
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
