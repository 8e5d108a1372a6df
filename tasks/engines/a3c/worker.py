"""One A3C worker process: its loop reads like CleanRL's, apart from the driver (driver.py).

Global sources live in shared memory with an optimizer whose state is shared too (see
algorithm.py). Each worker keeps local copies; per update it regenerates the flat weights
*once* (a QT forward costs milliseconds), plays up to ``n_steps`` env steps with those weights
fixed, computes the loss, copies its gradients onto the global parameters and steps the shared
optimizer under a lock (`Worker.train_episode` is that loop; `Worker.run` the episodes around
it). What the worker shares with the driver is `Shared` (raw values and one lock) and a pipe.

Determinism: every training episode resets its environment with a seed from its index
(evaluation.train_seed). With one worker a stop (Ctrl-C, SIGTERM, the episode budget) waits for
the episode's end and the worker reports its torch RNG state, so the checkpoint is the exact state
between two episodes and a resumed run continues bit for bit. Several workers step the shared
weights asynchronously (Hogwild-style): their update order depends on timing, not reproducible.
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass

import torch

from qtc.tasks.engines.a3c import evaluation
from qtc.tasks.engines.a3c.algorithm import A3CConfig, a3c_loss, rollout
from qtc.tasks.engines.a3c.envs import make_env, obs_vector
from qtc.tasks.runs import guard, signals

WORKER_NAME = "a3c-worker-{}"   # process names; tests and logs identify a worker by it


class Shared:
    """Synchronisation objects shared by the main process and the workers.

    Raw values (no hidden locks): a worker killed while reading them cannot wedge anyone.
    ``owner`` says which worker holds the optimizer lock, so the main process can release it
    if that worker dies inside the critical section.
    """

    def __init__(self, ctx):
        self.lock = ctx.Lock()
        self.owner = ctx.RawValue("i", -1)
        self.stop = ctx.RawValue("b", 0)
        self.episodes = ctx.RawValue("q", 0)      # the run's finished episodes (under the lock)


def acquire(shared: Shared, who: int) -> bool:
    """Take the optimizer lock, giving up (False) once a stop is requested."""
    while not shared.lock.acquire(timeout=0.5):
        if shared.stop.value:
            return False
    shared.owner.value = who
    return True


def release(shared: Shared) -> None:
    shared.owner.value = -1
    shared.lock.release()


def push_grads(local_sources, global_sources, opt, shared: Shared, slot: int) -> bool:
    """Copy local gradients onto the global parameters and step the shared optimizer."""
    if not acquire(shared, slot):
        return False
    try:
        for loc, glob in zip(local_sources, global_sources):
            for lp, gp in zip(loc.parameters(), glob.parameters()):
                gp.grad = lp.grad
        opt.step()
    finally:
        release(shared)
    return True


def _sync(local_sources, global_sources) -> None:
    for loc, glob in zip(local_sources, global_sources):
        loc.load_state_dict(glob.state_dict())


@dataclass(frozen=True)
class Session:
    """Where the run stands when a worker starts (plain data, pickled to spawned workers)."""

    target: int                         # the episode budget: a worker stops after the episode reaching it
    exact: bool                         # one worker: stop only between episodes, report the RNG there
    rng: torch.Tensor | None = None     # the torch RNG state to continue from (an exact resume)
    driver: int = 0                     # the driver's pid: the worker exits when it is gone


class Worker:
    """One worker process's loop: episodes of n-step updates to the global sources."""

    def __init__(self, slot, seed, make_model, global_sources, opt, shared, cfg: A3CConfig, exact):
        torch.manual_seed(seed)
        actor_src, critic_src, self.actor_net, self.critic_net = make_model()
        self.slot, self.seed, self.cfg, self.exact = slot, seed, cfg, exact
        self.local, self.global_sources, self.opt, self.shared = (actor_src, critic_src), global_sources, opt, shared
        self.env = make_env(cfg.env_id, cfg.max_episode_steps)
        self.eval_env = make_env(cfg.env_id, cfg.max_episode_steps) if cfg.eval_every else None

    def stopped(self, inside_episode: bool) -> bool:
        """A stop request (an exact worker waits for the episode's end) or an orphaned worker."""
        asked = self.shared.stop.value and not (self.exact and inside_episode)
        return bool(asked) or guard.orphaned()

    def train_episode(self, episode: int) -> tuple[float, int] | None:
        """Play episode `episode`, updating the global sources every n_steps steps: its
        (reward, length), or None when stopped inside it."""
        actor_src, critic_src = self.local
        obs = obs_vector(self.env.reset(seed=evaluation.train_seed(self.seed, episode))[0])
        reward, length = 0.0, 0
        while not self.stopped(inside_episode=True):
            _sync(self.local, self.global_sources)
            wa, wc = actor_src(), critic_src()          # once per update: a QT forward is costly
            ro = rollout(self.env, self.actor_net, wa.detach(), obs, self.cfg.n_steps)
            loss = a3c_loss(self.actor_net, self.critic_net, wa, wc, ro, self.cfg.gamma, self.cfg.entropy)
            for src in self.local:
                src.zero_grad(set_to_none=True)
            loss.backward()
            if not push_grads(self.local, self.global_sources, self.opt, self.shared, self.slot):
                return None
            reward, length, obs = reward + sum(ro.rewards), length + len(ro.rewards), ro.last_obs
            if ro.terminated or ro.truncated:
                return reward, length
        return None

    def count_episode(self) -> int | None:
        """The run's episode count after this one (None when stopped waiting for the lock)."""
        if not acquire(self.shared, self.slot):
            return None
        try:
            self.shared.episodes.value += 1
            return int(self.shared.episodes.value)
        finally:
            release(self.shared)

    def evaluate(self) -> tuple[list[float], torch.Tensor, torch.Tensor] | None:
        """Greedy episodes of the global policy on the evaluation seeds: (rewards, flats)."""
        if not acquire(self.shared, self.slot):
            return None
        try:
            _sync(self.local, self.global_sources)      # a consistent snapshot, under the lock
        finally:
            release(self.shared)
        with torch.no_grad():
            wa, wc = (src().detach().clone() for src in self.local)
        return evaluation.evaluate_policy(self.eval_env, evaluation.greedy(self.actor_net, wa),
                                   evaluation.eval_seeds(self.cfg.eval_episodes)), wa, wc

    def run(self, conn, session: Session) -> None:
        """Train until the budget, a stop or the driver's death. Tensors go to the driver as
        numpy arrays (by value: torch would send a shared-memory handle that dies with us)."""
        if session.rng is not None:
            torch.set_rng_state(session.rng)
        episode = int(self.shared.episodes.value)
        while not self.stopped(inside_episode=False):
            ended = self.train_episode(episode)
            if ended is None:
                return                                   # cut inside an episode: no exact state
            conn.send(("episode", self.slot, *ended))
            episode, done = episode + 1, self.count_episode()
            if done is None:
                return
            every = self.cfg.eval_every
            if every and done <= session.target and (done % every == 0 or done == session.target):
                result = self.evaluate()
                if result is not None:
                    rewards, wa, wc = result
                    conn.send(("eval", done, rewards, wa.numpy(), wc.numpy()))
            if done >= session.target:
                break
        if self.exact:
            conn.send(("state", self.slot, episode, torch.get_rng_state().numpy()))


def worker_main(slot, seed, make_model, global_sources, opt, shared, conn, cfg, session):
    """Process entry: Ctrl-C is the main process's business; errors go back as tracebacks."""
    guard.die_with_parent(session.driver)
    signals.in_worker()
    torch.set_num_threads(1)
    try:
        Worker(slot, seed, make_model, global_sources, opt, shared, cfg, session.exact).run(conn, session)
    except BaseException:
        try:
            conn.send(("error", slot, traceback.format_exc()))
        except OSError:
            pass
        sys.exit(1)
    finally:
        conn.close()
