"""Episode seeds, and evaluation episodes on seeds that training never uses.

Every training episode starts from ``env.reset(seed=train_seed(worker_seed, k))`` (k counts the
run's episodes), so the environment's state at an episode boundary is its index: a resumed run
replays exactly the resets an uninterrupted one would. Training seeds lie below ``EVAL_SEED0``;
evaluation episodes use ``EVAL_SEED0, EVAL_SEED0 + 1, ...``, so the evaluation set (the A3C
"validation" of ``select validation``) is never trained on.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from qtc.tasks.engines.a3c.envs import obs_vector

EVAL_SEED0 = 2 ** 31        # training reset seeds are below it, evaluation seeds from it on

Policy = Callable[[torch.Tensor], int]      # observation vector -> action


def train_seed(worker_seed: int, episode: int) -> int:
    """The reset seed of training episode `episode` of a worker seeded `worker_seed`."""
    return int(np.random.SeedSequence([worker_seed, episode]).generate_state(1)[0]) >> 1


def eval_seeds(n: int) -> list[int]:
    """The seeds of the n evaluation episodes (the same for every model and every evaluation)."""
    return [EVAL_SEED0 + i for i in range(n)]


def greedy(actor_net, flat: torch.Tensor) -> Policy:
    """The actor's most probable action (argmax: no random draw)."""
    return lambda obs: int(torch.argmax(actor_net(flat, obs)))


def uniform(n_actions: int, seed: int) -> Policy:
    """Uniformly random actions from a generator of its own (training's RNGs are not touched)."""
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(n_actions))


def run_episode(env, policy: Policy, seed: int, on_step: Callable | None = None) -> tuple[float, int, bool]:
    """One episode from ``reset(seed=seed)``: (total reward, steps, reached a terminal state).

    ``on_step(action, observation)`` is called after the reset (action None) and after every
    step (play shows the episode there).
    """
    raw, _ = env.reset(seed=seed)
    total, steps, terminated, truncated = 0.0, 0, False, False
    if on_step:
        on_step(None, raw)
    with torch.no_grad():
        while not (terminated or truncated):
            action = policy(obs_vector(raw))
            raw, reward, terminated, truncated, _ = env.step(action)
            total, steps = total + float(reward), steps + 1
            if on_step:
                on_step(action, raw)
    return total, steps, bool(terminated)


def evaluate_policy(env, policy: Policy, seeds: list[int]) -> list[float]:
    """The reward of one episode per seed."""
    return [run_episode(env, policy, s)[0] for s in seeds]
