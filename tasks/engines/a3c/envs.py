"""The environments A3C plays: a MiniGrid grid (its 7x7x3 agent view) or any gymnasium
environment whose observation is a Box (its values, flattened), with Discrete actions.

`describe` makes the environment once and reads its spaces, so a task kind can check its
networks against them at load; `make_env` makes the environments the workers play;
`obs_vector` is the one encoding of an observation as the networks' input vector.
Only registered ids are made (the spec's id admits no 'module:' part, so no spec imports code),
and nothing is downloaded: gymnasium's own environments and MiniGrid live in the installed packages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qtc.errors import QtcError, did_you_mean

MINIGRID_THRESHOLD = 0.9    # the paper's "solved" moving-average reward for MiniGrid (no spec value)


class EnvError(QtcError):
    """An environment A3C cannot play; `hint` says what would work (a task kind locates it)."""

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__(message + (f"; hint: {hint}" if hint else ""))


@dataclass(frozen=True)
class EnvInfo:
    """What the networks and the summary need to know of an environment."""

    id: str
    minigrid: bool               # a MiniGrid grid: the observation is its 7x7x3 view
    obs_size: int                # the length of obs_vector(observation)
    obs_text: str                # the observation, in words (errors, the export README)
    actions: tuple[str, ...]     # one name per Discrete action
    threshold: float | None      # the "solved" moving-average reward (None: the env has none)


def _is_minigrid(env) -> bool:
    from minigrid.minigrid_env import MiniGridEnv
    return isinstance(env.unwrapped, MiniGridEnv)


def make_env(env_id: str, max_episode_steps: int | None = None):
    """A gymnasium env; ``max_episode_steps`` sets its time limit (for MiniGrid its own
    ``max_steps``: MiniGrid's reward 1 - 0.9 * steps / max_steps uses that same limit)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

    if env_id not in gym.registry:
        raise EnvError(f"gymnasium has no environment '{env_id}'",
                       did_you_mean(env_id, gym.registry) or
                       "e.g. 'CartPole-v1', 'Acrobot-v1' or 'MiniGrid-Empty-5x5-v0'")
    limit = {}
    if max_episode_steps is not None:
        minigrid_id = gym.registry[env_id].entry_point.startswith("minigrid")
        limit = {"max_steps" if minigrid_id else "max_episode_steps": int(max_episode_steps)}
    try:
        return gym.make(env_id, **limit)
    except Exception as exc:  # noqa: BLE001 - a missing extra (Box2D, MuJoCo), a plugin's own error
        raise EnvError(f"gymnasium could not make '{env_id}': {type(exc).__name__}: {exc}",
                       "install what it names, or choose another environment") from None


def describe(env_id: str) -> EnvInfo:
    """The observation encoding, actions and reward threshold of `env_id`; an EnvError when
    A3C cannot play it (not a Box or MiniGrid observation, or actions that are not Discrete)."""
    from gymnasium import spaces

    env = make_env(env_id)
    try:
        obs, act = env.observation_space, env.action_space
        if isinstance(act, spaces.Box):
            raise EnvError(f"'{env_id}' has continuous actions ({act}); the a3c task's actor picks "
                           "one of a Discrete set of actions", "choose an environment with Discrete "
                           "actions, e.g. 'CartPole-v1' (Pendulum-v1 -> none; MountainCarContinuous-v0 -> MountainCar-v0)")
        if not isinstance(act, spaces.Discrete) or int(act.start) != 0:
            raise EnvError(f"'{env_id}' has actions {act}; the a3c task's actor picks one of a "
                           "Discrete(n) set of actions 0..n-1", "choose an environment with Discrete actions")
        if _is_minigrid(env):
            shape = env.observation_space["image"].shape
            names = tuple(a.name for a in env.unwrapped.actions)
            return EnvInfo(env_id, True, int(np.prod(shape)), f"flattened {'x'.join(map(str, shape))} view",
                           names[:int(act.n)], MINIGRID_THRESHOLD)
        if not isinstance(obs, spaces.Box):
            raise EnvError(f"'{env_id}' observes {obs}; the a3c task reads a Box observation "
                           "(flattened) or MiniGrid's view", "choose an environment with a Box "
                           "observation, e.g. 'CartPole-v1' or 'Acrobot-v1'")
        shape = tuple(obs.shape)
        text = f"{shape[0]} observation values" if len(shape) == 1 else \
            f"flattened {'x'.join(map(str, shape))} observation"
        threshold = env.spec.reward_threshold if env.spec is not None else None
        return EnvInfo(env_id, False, int(np.prod(shape)), text,
                       tuple(f"action {i}" for i in range(int(act.n))),
                       None if threshold is None else float(threshold))
    finally:
        env.close()


def obs_vector(obs) -> torch.Tensor:
    """The networks' input: MiniGrid's image flattened to 147 floats (raw integers, as the
    authors), or a Box observation's values flattened in C order, as float32."""
    raw = obs["image"] if isinstance(obs, dict) else obs
    return torch.as_tensor(np.asarray(raw).reshape(-1), dtype=torch.float32)
