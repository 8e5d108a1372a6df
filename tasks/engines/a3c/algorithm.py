"""The A3C algorithm: environment steps, the n-step actor-critic loss, the shared optimizer.

This is all of A3C that is not a worker's loop (worker.py), process supervision (driver.py)
or files (episodes.py) or environments (envs.py): a worker plays up to ``n_steps`` steps with fixed actor weights (`rollout`), computes the n-step
actor-critic loss in one batched forward (`a3c_loss`) and steps an optimizer whose state lives
in shared memory (`shared_optimizer`), so every worker updates the same moments. `check_model`
is the driver's early check that a model fits the environment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from qtc.errors import QtcError
from qtc.tasks.engines.a3c.envs import make_env, obs_vector


@dataclass(frozen=True)
class A3CConfig:
    """Hyper-parameters a worker needs (plain data: pickled to spawned workers, saved in runs)."""

    env_id: str
    gamma: float = 0.9
    n_steps: int = 5
    entropy: float = 0.0
    seed: int = 0
    max_episode_steps: int | None = None
    fingerprint: str | None = None     # the run's (guard.identity); a resume must match it
    eval_every: int | None = None      # evaluate every this many episodes (None: never)
    eval_episodes: int = 10            # greedy episodes per evaluation, on evaluation.eval_seeds


@dataclass
class Rollout:
    obs: list            # observations the actions were taken in
    actions: list
    rewards: list
    last_obs: torch.Tensor
    terminated: bool     # reached a terminal state: bootstrap with 0
    truncated: bool      # time limit: bootstrap with V(last_obs)


def rollout(env, actor_net, weights, obs, n_steps: int) -> Rollout:
    """Up to ``n_steps`` env steps with fixed actor weights, sampling from the policy."""
    out = Rollout([], [], [], obs, False, False)
    with torch.no_grad():
        for _ in range(n_steps):
            probs = torch.softmax(actor_net(weights, obs), dim=-1)
            action = int(torch.multinomial(probs, 1))
            raw, reward, terminated, truncated, _ = env.step(action)
            out.obs.append(obs)
            out.actions.append(action)
            out.rewards.append(float(reward))
            obs = obs_vector(raw)
            out.last_obs, out.terminated, out.truncated = obs, bool(terminated), bool(truncated)
            if terminated or truncated:
                break
    return out


def a3c_loss(actor_net, critic_net, wa, wc, ro: Rollout, gamma: float, entropy: float):
    """n-step actor-critic loss: squared TD error + policy gradient (- entropy bonus), mean over steps.

    One batched forward over the rollout's observations plus the bootstrap observation.
    """
    x = torch.stack(ro.obs + [ro.last_obs])
    values = critic_net(wc, x).reshape(-1)
    logits = actor_net(wa, x[:-1])
    ret = torch.zeros(()) if ro.terminated else values[-1].detach()
    returns = []
    for r in reversed(ro.rewards):
        ret = r + gamma * ret
        returns.append(ret)
    returns = torch.stack(returns[::-1])
    td = returns - values[:-1]
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp[torch.arange(len(ro.actions)), torch.tensor(ro.actions)]
    loss = td.pow(2) - chosen * td.detach()
    if entropy:
        loss = loss + entropy * (logp.exp() * logp).sum(-1)      # minus entropy
    return loss.mean()


def shared_optimizer(make: Callable[..., torch.optim.Optimizer], params) -> torch.optim.Optimizer:
    """``make(params, foreach=False)`` with its state created now and moved to shared memory.

    foreach=False: the per-tensor path updates every state tensor in place, so workers forked
    or spawned afterwards step the same (shared) state. Eager state equals torch's lazy one
    (zeros; SGD's first momentum buffer is the gradient either way, dampening being 0).
    """
    opt = make(params, foreach=False)
    for group in opt.param_groups:
        for p in group["params"]:
            opt.state[p].update(_zero_state(opt, group, p))
    return share_state(opt)


def _zero_state(opt, group, p) -> dict:
    def zeros():
        return torch.zeros_like(p, memory_format=torch.preserve_format)
    if isinstance(opt, torch.optim.Adam):
        return {"step": torch.zeros((), dtype=torch.float32), "exp_avg": zeros(), "exp_avg_sq": zeros()}
    if isinstance(opt, torch.optim.RMSprop):
        state = {"step": torch.zeros((), dtype=torch.float32), "square_avg": zeros()}
        if group["momentum"] > 0:
            state["momentum_buffer"] = zeros()
        if group["centered"]:
            state["grad_avg"] = zeros()
        return state
    if isinstance(opt, torch.optim.SGD):
        return {"momentum_buffer": zeros()} if group["momentum"] else {}
    raise QtcError(f"A3C cannot share the state of {type(opt).__name__}")


def share_state(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Move every state tensor to shared memory (again after ``load_state_dict``)."""
    for state in opt.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                value.share_memory_()
    return opt


def clone_state(sd):
    """Deep-copy an optimizer state_dict's tensors (the originals keep changing)."""
    if torch.is_tensor(sd):
        return sd.clone()
    if isinstance(sd, dict):
        return {k: clone_state(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [clone_state(v) for v in sd]
    return sd


def check_model(actor_src, critic_src, actor_net, critic_net, cfg: A3CConfig) -> None:
    """Fail early, in the main process, with a clear message when the model does not fit."""
    env = make_env(cfg.env_id, cfg.max_episode_steps)
    obs = obs_vector(env.reset(seed=cfg.seed)[0])
    n_actions = int(env.action_space.n)
    env.close()
    for name, src, net, width in (("actor", actor_src, actor_net, n_actions),
                                  ("critic", critic_src, critic_net, 1)):
        with torch.no_grad():
            flat = src()
            if flat.dim() != 1 or flat.numel() != net.num_params:
                raise QtcError(f"the {name} source gives {tuple(flat.shape)} numbers but its "
                               f"network needs a flat vector of {net.num_params}")
            try:
                out = net.forward(flat, obs)
            except RuntimeError as exc:
                raise QtcError(f"the {name} network cannot read a {obs.numel()}-value "
                               f"{cfg.env_id} observation: {exc}") from None
        if out.shape[-1:] != (width,):
            raise QtcError(f"the {name} network gives {tuple(out.shape)} outputs per observation, "
                           f"{cfg.env_id} needs {width}")
        if not list(src.parameters()):
            raise QtcError(f"the {name} source has no trainable parameters")
