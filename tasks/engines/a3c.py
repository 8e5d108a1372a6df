"""A3C training engine for MiniGrid (paper Figs. 13-14), with worker processes.

Protocol (what the engine receives, so QT generators and classical baselines plug in alike):

- a *parameter source* is an ``nn.Module`` whose ``forward()`` (no arguments) returns a flat 1-D
  float tensor of a target network's parameters (a QT generator, or ``FlatSource`` for the
  classical baseline);
- a *target network* is a picklable object with ``num_params`` and ``forward(flat, x)``
  (functional: its weights come from ``flat``);
- ``make_model() -> (actor_source, critic_source, actor_net, critic_net)`` is a picklable factory
  (top-level function or ``functools.partial``) so every worker builds identical modules.

Layout: global sources live in shared memory with a ``SharedAdam`` whose state is shared too.
Each worker keeps local copies; per update it regenerates the flat weights *once* (a QT forward
costs milliseconds), plays up to ``n_steps`` env steps with those weights fixed, computes the
n-step actor-critic loss in one batched forward, copies its gradients onto the global
parameters and steps the shared optimizer under a lock. The main process is the only writer
of ``episodes.csv`` and ``checkpoint.pt``; it counts episodes, watches the workers (restarting
dead ones up to a limit) and never blocks without a timeout.

Start method: ``fork`` by default on Linux (a worker starts in ~50 ms instead of re-importing
torch for ~2 s); ``spawn`` works too (then ``make_model`` must be importable). Either way each
worker sets ``torch.set_num_threads(1)``: many single-threaded workers beat threads fighting over
2 cores.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.multiprocessing as tmp
import torch.nn.functional as F
from torch import nn

from qtc.errors import QtcError

OBS_SIZE = 147          # the 7x7x3 MiniGrid image, flattened
NUM_ACTIONS = 7
WORKER_NAME = "a3c-worker-{}"   # process names; tests and logs identify a worker by it
CSV_FIELDS = ("episode", "worker", "reward", "length", "time")
CHECKPOINT = "checkpoint.pt"
EPISODES_CSV = "episodes.csv"
POLICY = "policy.pt"


# --------------------------------------------------------------------------------------------
# Classical baseline / stand-in target network
# --------------------------------------------------------------------------------------------

class FlatSource(nn.Module):
    """Parameter source of the classical baseline: one flat trainable vector, returned as is."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.flat = nn.Parameter(init.detach().clone().float().reshape(-1))

    def forward(self) -> torch.Tensor:
        return self.flat


class TanhMLP:
    """Functional MLP with tanh between layers, e.g. ``TanhMLP((147, 32, 32, 7))`` (6,023 params).

    The flat vector is read layer by layer as W (out, in) then b (out), like ``nn.Linear``.
    """

    def __init__(self, sizes: tuple[int, ...]):
        if len(sizes) < 2:
            raise QtcError(f"an MLP needs at least an input and an output size, got {sizes}")
        self.sizes = tuple(int(s) for s in sizes)
        self.num_params = sum(o * i + o for i, o in zip(self.sizes, self.sizes[1:]))

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP with weights sliced from ``flat`` to ``x`` of shape (..., sizes[0])."""
        at, last = 0, len(self.sizes) - 2
        for k, (i, o) in enumerate(zip(self.sizes, self.sizes[1:])):
            w = flat[at:at + o * i].view(o, i)
            b = flat[at + o * i:at + o * i + o]
            at += o * i + o
            x = F.linear(x, w, b)
            if k < last:
                x = torch.tanh(x)
        return x

    __call__ = forward

    def init_flat(self) -> torch.Tensor:
        """A flat vector initialised like ``nn.Linear`` (uniform in +-1/sqrt(fan_in))."""
        parts = []
        for i, o in zip(self.sizes, self.sizes[1:]):
            bound = 1.0 / math.sqrt(i)
            parts += [torch.empty(o * i).uniform_(-bound, bound), torch.empty(o).uniform_(-bound, bound)]
        return torch.cat(parts)

    def __repr__(self) -> str:
        return f"TanhMLP({self.sizes})"

    def record(self) -> dict:
        """Plain data that rebuilds this network (net_from_record): policies are not pickles."""
        return {"mlp": list(self.sizes)}


def net_from_record(record: dict | None):
    """The target network a `record()` describes (TanhMLP or a spec's TargetNet), or None."""
    if not record:
        return None
    if "mlp" in record:
        return TanhMLP(tuple(record["mlp"]))
    from qtc.dsl.task import NetworkSpec
    from qtc.tasks.network import TargetNet
    return TargetNet(NetworkSpec.model_validate(record["network"]))


def make_classical_model(hidden: tuple[int, ...] = (32, 32)):
    """The paper's classical actor-critic: 147->32->32->7 (6,023) and 147->32->32->1 (5,825)."""
    actor = TanhMLP((OBS_SIZE, *hidden, NUM_ACTIONS))
    critic = TanhMLP((OBS_SIZE, *hidden, 1))
    return FlatSource(actor.init_flat()), FlatSource(critic.init_flat()), actor, critic


# --------------------------------------------------------------------------------------------
# Shared optimizer
# --------------------------------------------------------------------------------------------

class SharedAdam(torch.optim.Adam):
    """Adam whose state (step, exp_avg, exp_avg_sq) is created eagerly and kept in shared memory.

    Workers forked or spawned after construction update the same state tensors in place.
    """

    def __init__(self, params, lr: float = 1e-4, betas=(0.92, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        # foreach=False: the per-tensor path updates every state tensor in place (shared).
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         foreach=False)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.share_memory()

    def share_memory(self) -> "SharedAdam":
        """Move every state tensor to shared memory (call again after ``load_state_dict``)."""
        for state in self.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.share_memory_()
        return self


# --------------------------------------------------------------------------------------------
# Environment helpers
# --------------------------------------------------------------------------------------------

def make_env(env_id: str, max_episode_steps: int | None = None):
    """A gymnasium MiniGrid env; ``max_episode_steps`` sets MiniGrid's own ``max_steps``.

    (MiniGrid's reward 1 - 0.9 * steps / max_steps uses that same limit, so it stays consistent.)
    """
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

    kwargs = {} if max_episode_steps is None else {"max_steps": int(max_episode_steps)}
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        known = sorted(k for k in gym.registry if k.startswith("MiniGrid-Empty"))
        raise QtcError(f"unknown environment {env_id!r} ({exc}); "
                       f"hint: MiniGrid empty rooms are {', '.join(known)}") from None


def obs_vector(obs) -> torch.Tensor:
    """The observation's 7x7x3 image flattened to 147 floats (raw integers, as the authors)."""
    return torch.as_tensor(np.asarray(obs["image"]).reshape(-1), dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class A3CConfig:
    """Hyper-parameters a worker needs (plain data: pickled to spawned workers, saved in runs)."""

    env_id: str
    gamma: float = 0.9
    n_steps: int = 5
    lr: float = 1e-4
    betas: tuple[float, float] = (0.92, 0.999)
    entropy: float = 0.0
    seed: int = 0
    max_episode_steps: int | None = None
    fingerprint: str | None = None     # the run's (guard.identity); a resume must match it


@dataclass
class _Rollout:
    obs: list            # observations the actions were taken in
    actions: list
    rewards: list
    last_obs: torch.Tensor
    terminated: bool     # reached a terminal state: bootstrap with 0
    truncated: bool      # time limit: bootstrap with V(last_obs)


def _rollout(env, actor_net, weights, obs, n_steps: int) -> _Rollout:
    """Up to ``n_steps`` env steps with fixed actor weights, sampling from the policy."""
    out = _Rollout([], [], [], obs, False, False)
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


def a3c_loss(actor_net, critic_net, wa, wc, ro: _Rollout, gamma: float, entropy: float):
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


class _Shared:
    """Synchronisation objects shared by the main process and the workers.

    Raw values (no hidden locks): a worker killed while reading them cannot wedge anyone.
    ``owner`` says which worker holds the optimizer lock, so the main process can release it
    if that worker dies inside the critical section.
    """

    def __init__(self, ctx):
        self.lock = ctx.Lock()
        self.owner = ctx.RawValue("i", -1)
        self.stop = ctx.RawValue("b", 0)


def _acquire(shared: _Shared, who: int) -> bool:
    """Take the optimizer lock, giving up (False) once a stop is requested."""
    while not shared.lock.acquire(timeout=0.5):
        if shared.stop.value:
            return False
    shared.owner.value = who
    return True


def _release(shared: _Shared) -> None:
    shared.owner.value = -1
    shared.lock.release()


def _push_grads(local_sources, global_sources, opt, shared: _Shared, slot: int) -> bool:
    """Copy local gradients onto the global parameters and step the shared optimizer."""
    if not _acquire(shared, slot):
        return False
    try:
        for loc, glob in zip(local_sources, global_sources):
            for lp, gp in zip(loc.parameters(), glob.parameters()):
                gp.grad = lp.grad
        opt.step()
    finally:
        _release(shared)
    return True


def _sync(local_sources, global_sources) -> None:
    for loc, glob in zip(local_sources, global_sources):
        loc.load_state_dict(glob.state_dict())


def _worker_loop(slot, seed, make_model, global_sources, opt, shared, conn, cfg: A3CConfig):
    torch.manual_seed(seed)
    actor_src, critic_src, actor_net, critic_net = make_model()
    local = (actor_src, critic_src)
    env = make_env(cfg.env_id, cfg.max_episode_steps)
    obs = obs_vector(env.reset(seed=seed)[0])
    ep_reward, ep_len = 0.0, 0
    parent = os.getppid()
    while not shared.stop.value and os.getppid() == parent:   # an orphan stops by itself
        _sync(local, global_sources)
        wa, wc = actor_src(), critic_src()          # once per update: a QT forward is costly
        ro = _rollout(env, actor_net, wa.detach(), obs, cfg.n_steps)
        loss = a3c_loss(actor_net, critic_net, wa, wc, ro, cfg.gamma, cfg.entropy)
        for src in local:
            src.zero_grad(set_to_none=True)
        loss.backward()
        if not _push_grads(local, global_sources, opt, shared, slot):
            break
        ep_reward += sum(ro.rewards)
        ep_len += len(ro.rewards)
        obs = ro.last_obs
        if ro.terminated or ro.truncated:
            conn.send(("episode", slot, ep_reward, ep_len))
            obs = obs_vector(env.reset()[0])
            ep_reward, ep_len = 0.0, 0


def _worker_main(slot, seed, make_model, global_sources, opt, shared, conn, cfg):
    """Process entry: Ctrl-C is the main process's business; errors go back as tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)      # a forked worker inherits main's handler
    torch.set_num_threads(1)
    try:
        _worker_loop(slot, seed, make_model, global_sources, opt, shared, conn, cfg)
    except BaseException:
        try:
            conn.send(("error", slot, traceback.format_exc()))
        except OSError:
            pass
        sys.exit(1)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Main process: run directory, checkpoints, supervision
# --------------------------------------------------------------------------------------------

def _atomic_save(obj, path: Path) -> None:
    tmp_path = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp_path)
    os.replace(tmp_path, path)


def _atomic_json(obj, path: Path) -> None:
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp_path, path)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def read_episodes(path: Path | str) -> dict[str, np.ndarray]:
    """The episode log as columns (episode, worker, reward, length, time)."""
    path = Path(path)
    if path.is_dir():
        path = path / EPISODES_CSV
    if not path.exists():
        raise QtcError(f"no episode log at {path}; hint: is this an A3C run directory?")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    kinds = {"episode": int, "worker": int, "reward": float, "length": int, "time": float}
    return {k: np.array([t(r[k]) for r in rows], dtype=t) for k, t in kinds.items()}


def _truncate_csv(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` rows (rows logged after the checkpoint go)."""
    with open(path, newline="") as fh:
        lines = fh.readlines()[:rows + 1]
    with open(path, "w", newline="") as fh:
        fh.writelines(lines)


class _Trainer:
    """State of one run in the main process (the only writer of the run directory)."""

    def __init__(self, make_model, cfg: A3CConfig, *, workers: int, episodes: int, out_dir: Path,
                 checkpoint_every_s: float, resume: bool, progress: bool, max_restarts: int,
                 start_method: str, curve_window: int):
        self.make_model, self.cfg, self.n_workers, self.target = make_model, cfg, workers, episodes
        self.out_dir, self.every_s, self.max_restarts = out_dir, checkpoint_every_s, max_restarts
        self.curve_window, self.progress = curve_window, progress
        self.ctx = tmp.get_context(start_method)
        self.shared = _Shared(self.ctx)
        self.procs: dict[int, tuple] = {}        # slot -> (process, connection)
        self.generation = [0] * workers          # restarts per slot, varies the seed
        self.errors: list[str] = []
        self.pending: dict[int, str] = {}        # slot -> traceback sent before it exited
        self.restarts, self.count, self.rows, self.steps, self.elapsed0 = 0, 0, 0, 0, 0.0
        self.recent = deque(maxlen=min(curve_window, 100))
        self._build_globals()
        if resume:
            self._load_checkpoint()
        self._open_csv(resume)

    # -- setup -------------------------------------------------------------------------------
    def _build_globals(self) -> None:
        torch.manual_seed(self.cfg.seed)
        actor_src, critic_src, self.actor_net, self.critic_net = self.make_model()
        self.sources = (actor_src, critic_src)
        _check_model(actor_src, critic_src, self.actor_net, self.critic_net, self.cfg)
        for src in self.sources:
            src.share_memory()
        params = [p for src in self.sources for p in src.parameters()]
        self.opt = SharedAdam(params, lr=self.cfg.lr, betas=self.cfg.betas)

    def _load_checkpoint(self) -> None:
        path = self.out_dir / CHECKPOINT
        if not path.exists():
            raise QtcError(f"cannot resume: no {CHECKPOINT} in {self.out_dir}; "
                           "hint: start without resume")
        try:
            ck = torch.load(path, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - never unpickled, never trusted
            raise QtcError(f"cannot resume from {path}: not a plain-tensor checkpoint "
                           f"({type(exc).__name__}); start without resume") from None
        if ck.get("config", {}).get("fingerprint") != self.cfg.fingerprint:
            raise QtcError(f"cannot resume from {path}: it is another run's checkpoint (its "
                           f"fingerprint differs from this run's); start without resume")
        if ck["env_id"] != self.cfg.env_id:
            raise QtcError(f"cannot resume: the checkpoint is for {ck['env_id']}, "
                           f"this run asks for {self.cfg.env_id}")
        try:
            for src, state in zip(self.sources, (ck["actor_source"], ck["critic_source"])):
                src.load_state_dict(state)
            self.opt.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise QtcError(f"cannot resume from {path}: it does not fit this model ({exc})") from None
        self.opt.share_memory()            # load_state_dict made fresh, unshared state tensors
        self.count, self.rows = int(ck["episodes"]), int(ck["csv_rows"])
        self.steps, self.elapsed0 = int(ck["steps"]), float(ck["elapsed"])

    def _open_csv(self, resume: bool) -> None:
        path = self.out_dir / EPISODES_CSV
        if resume and path.exists():
            _truncate_csv(path, self.rows)
            self.recent.extend(read_episodes(path)["reward"][-self.recent.maxlen:].tolist())
            self.csv_file = open(path, "a", newline="")
        else:
            self.csv_file = open(path, "w", newline="")
            csv.writer(self.csv_file).writerow(CSV_FIELDS)
        self.csv = csv.writer(self.csv_file)

    # -- workers -----------------------------------------------------------------------------
    def start_worker(self, slot: int) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        seed = self.cfg.seed + slot + self.n_workers * self.generation[slot]
        proc = self.ctx.Process(
            target=_worker_main, name=WORKER_NAME.format(slot), daemon=True,
            args=(slot, seed, self.make_model, self.sources, self.opt, self.shared, writer, self.cfg))
        proc.start()
        writer.close()                     # the worker holds the only write end: EOF when it dies
        self.procs[slot] = (proc, reader)

    def poll(self, timeout: float) -> None:
        """Handle messages that arrive within ``timeout`` seconds."""
        conns = {conn: slot for slot, (_, conn) in self.procs.items()}
        for conn in wait_connections(list(conns), timeout=timeout):
            self._drain(conns[conn], conn)

    def _drain(self, slot: int, conn) -> None:
        try:
            while conn.poll(0):
                self._handle(conn.recv())
        except (EOFError, OSError):
            pass                           # the worker is gone; check_workers reports it

    def _handle(self, msg) -> None:
        if msg[0] == "episode":
            _, slot, reward, length = msg
            if self.count < self.target:   # a few episodes finish after the stop: not logged
                self.csv.writerow((self.count + 1, slot, f"{reward:.6g}", length,
                                   f"{self.elapsed():.3f}"))
                self.count, self.rows, self.steps = self.count + 1, self.rows + 1, self.steps + length
                self.recent.append(reward)
                self.bar.update(1)
        elif msg[0] == "error":
            self.pending[msg[1]] = msg[2].rstrip()

    def check_workers(self) -> bool:
        """Report dead workers and restart them; False when the restart budget is spent."""
        for slot, (proc, conn) in list(self.procs.items()):
            if proc.is_alive() or (proc.exitcode == 0 and self.shared.stop.value):
                continue
            self._drain(slot, conn)
            self._bury(slot, proc, conn)
            if self.restarts >= self.max_restarts:
                return False
            self.restarts += 1
            self.generation[slot] += 1
            self._report(f"restarting worker {slot} (restart {self.restarts} of {self.max_restarts})")
            self.start_worker(slot)
        return True

    def _bury(self, slot: int, proc, conn) -> None:
        """Forget a dead worker; free the optimizer lock if it died holding it."""
        proc.join(timeout=1.0)
        conn.close()
        del self.procs[slot]
        note = ""
        if self.shared.owner.value == slot:
            self.shared.owner.value = -1
            self.shared.lock.release()
            note = " while holding the optimizer lock (released; that update may be partial)"
        text = f"worker {slot} died ({_describe_exit(proc.exitcode)}){note}"
        if slot in self.pending:
            text += f"; it raised:\n{self.pending.pop(slot)}"
        self.errors.append(text)
        self._report(text)

    def _report(self, text: str) -> None:
        if self.progress:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)
        with open(self.out_dir / "errors.log", "a") as fh:
            fh.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n")

    def stop_workers(self, grace_s: float = 5.0) -> None:
        """Ask every worker to stop; terminate the ones still running after ``grace_s``."""
        self.shared.stop.value = 1
        deadline = time.monotonic() + grace_s
        for slot, (proc, conn) in list(self.procs.items()):
            while proc.is_alive() and time.monotonic() < deadline:
                self._drain(slot, conn)    # a worker blocked on a full pipe must be able to exit
                proc.join(timeout=0.05)
        for slot, (proc, conn) in list(self.procs.items()):
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2.0)
            self._drain(slot, conn)
            conn.close()
            if self.shared.owner.value == slot:
                self.shared.owner.value = -1
                self.shared.lock.release()
        self.procs.clear()

    # -- saving ------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t0

    def save_checkpoint(self) -> None:
        """Snapshot the global state under the optimizer lock; write it atomically."""
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())
        got = self.shared.lock.acquire(timeout=10.0)   # a wedged lock must not stop the save
        try:
            state = {
                "version": 1, "env_id": self.cfg.env_id, "config": asdict(self.cfg),
                "actor_source": {k: v.clone() for k, v in self.sources[0].state_dict().items()},
                "critic_source": {k: v.clone() for k, v in self.sources[1].state_dict().items()},
                "optimizer": _clone_state(self.opt.state_dict()),
                "episodes": self.count, "csv_rows": self.rows, "steps": self.steps,
                "elapsed": self.elapsed(),
            }
        finally:
            if got:
                self.shared.lock.release()
        _atomic_save(state, self.out_dir / CHECKPOINT)
        self.last_save = time.monotonic()

    def export_policy(self) -> Path:
        """The classical policy: generated flat weights (policy.pt, tensors only) and the target
        networks as plain data (policy.json), so loading it never runs pickled code."""
        with torch.no_grad():
            flats = {"actor_flat": self.sources[0]().detach().clone(),
                     "critic_flat": self.sources[1]().detach().clone()}
        nets = {f"{k}_net": getattr(net, "record", lambda: None)()
                for k, net in (("actor", self.actor_net), ("critic", self.critic_net))}
        path = self.out_dir / POLICY
        _atomic_json({"env_id": self.cfg.env_id, "max_episode_steps": self.cfg.max_episode_steps,
                      **nets}, path.with_suffix(".json"))
        _atomic_save(flats, path)
        return path

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm

        self.t0 = self.last_save = time.monotonic()
        count0, steps0 = self.count, self.steps
        tqdm.monitor_interval = 0          # no monitor thread: later forks (restarts) stay clean
        self.bar = tqdm(total=self.target, initial=self.count, unit="ep", disable=not self.progress,
                        dynamic_ncols=True, mininterval=0.5)
        status = "completed"
        old_term = _sigterm_as_interrupt()
        try:
            for slot in range(self.n_workers):
                self.start_worker(slot)
            status = self._loop()
        except KeyboardInterrupt:
            status = "interrupted"
            self._report("interrupted: stopping workers and saving")
        finally:
            with _signals_held():             # a second Ctrl-C must not cut the save short
                self.stop_workers()
                self.save_checkpoint()
                self.csv_file.close()
                self.bar.close()
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
        return self._summary(status, time.monotonic() - self.t0, count0, steps0)

    def _loop(self) -> str:
        while self.count < self.target:
            self.poll(timeout=0.2)
            if not self.check_workers():
                self._report(f"stopping: more than {self.max_restarts} worker restarts; "
                             f"the checkpoint in {self.out_dir} holds the last good state")
                return "failed"
            self._show()
            if time.monotonic() - self.last_save >= self.every_s:
                self.save_checkpoint()
        return "completed"

    def _show(self) -> None:
        if self.progress and self.recent:
            self.bar.set_postfix(avg_reward=f"{np.mean(self.recent):.3f}",
                                 steps_s=f"{self.steps / max(self.elapsed(), 1e-9):.0f}",
                                 refresh=False)

    def _summary(self, status: str, wall: float, count0: int, steps0: int) -> dict:
        rewards = read_episodes(self.out_dir / EPISODES_CSV)["reward"]
        curve = None
        if len(rewards):
            curve = self.out_dir / "rewards.png"
            plot_rewards({self.out_dir.name: rewards}, self.curve_window, curve)
        summary = {
            "status": status, "episodes": self.count, "steps": self.steps,
            "episodes_this_session": self.count - count0, "seconds": round(wall, 3),
            "episodes_per_s": (self.count - count0) / max(wall, 1e-9),
            "steps_per_s": (self.steps - steps0) / max(wall, 1e-9),
            "final_avg_reward": float(rewards[-self.curve_window:].mean()) if len(rewards) else None,
            "workers": self.n_workers, "restarts": self.restarts, "errors": self.errors,
            "out_dir": str(self.out_dir), "checkpoint": str(self.out_dir / CHECKPOINT),
            "policy": str(self.export_policy()), "curve": None if curve is None else str(curve),
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _sigterm_as_interrupt():
    """Treat SIGTERM (kill, job schedulers) like Ctrl-C: stop, save, return. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


@contextmanager
def _signals_held():
    """Ignore Ctrl-C and SIGTERM for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _clone_state(sd):
    """Deep-copy an optimizer state_dict's tensors (the originals keep changing)."""
    if torch.is_tensor(sd):
        return sd.clone()
    if isinstance(sd, dict):
        return {k: _clone_state(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [_clone_state(v) for v in sd]
    return sd


def _check_model(actor_src, critic_src, actor_net, critic_net, cfg: A3CConfig) -> None:
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


def _validate(env_id, workers, episodes, gamma, n_steps, out_dir: Path, resume: bool) -> int:
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1 or episodes < 1 or n_steps < 1:
        raise QtcError(f"workers, episodes and n_steps must be >= 1 (got {workers}, {episodes}, "
                       f"{n_steps})")
    if not 0.0 < gamma <= 1.0:
        raise QtcError(f"gamma must be in (0, 1], got {gamma}")
    if not resume and ((out_dir / CHECKPOINT).exists() or (out_dir / EPISODES_CSV).exists()):
        raise QtcError(f"{out_dir} already holds an A3C run; hint: resume it, or choose a new "
                       "output directory")
    return workers


def train_a3c(make_model: Callable, *, env_id: str, workers: int | None, episodes: int,
              gamma: float = 0.9, n_steps: int = 5, lr: float = 1e-4,
              betas: tuple[float, float] = (0.92, 0.999), entropy: float = 0.0, seed: int = 0,
              out_dir: Path, checkpoint_every_s: float = 30.0, resume: bool = False,
              max_episode_steps: int | None = None, progress: bool = True, max_restarts: int = 3,
              start_method: str = "fork", curve_window: int = 1000,
              fingerprint: str | None = None) -> dict:
    """Train an actor-critic with A3C until ``episodes`` episodes (in total, across resumes).

    Writes into ``out_dir``: ``episodes.csv`` (episode, worker, reward, length, time),
    ``checkpoint.pt`` (every ``checkpoint_every_s`` and at the end), ``policy.pt`` and
    ``policy.json`` (the exported classical policy: its tensors, and its networks as plain data),
    ``rewards.png`` (moving average +- one std, ``curve_window``), ``summary.json``, and
    ``errors.log`` when something went wrong.

    Returns the summary: ``status`` is "completed", "interrupted" (Ctrl-C) or "failed" (a worker
    kept dying after ``max_restarts`` restarts); ``errors`` lists what the workers reported.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = _validate(env_id, workers, episodes, gamma, n_steps, out_dir, resume)
    cfg = A3CConfig(env_id=env_id, gamma=gamma, n_steps=n_steps, lr=lr, betas=tuple(betas),
                    entropy=entropy, seed=seed, max_episode_steps=max_episode_steps,
                    fingerprint=fingerprint)
    trainer = _Trainer(make_model, cfg, workers=workers, episodes=episodes, out_dir=out_dir,
                       checkpoint_every_s=checkpoint_every_s, resume=resume, progress=progress,
                       max_restarts=max_restarts, start_method=start_method,
                       curve_window=curve_window)
    return trainer.run()


# --------------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------------

def moving_average_band(rewards, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing moving mean and (population) standard deviation, one value per episode.

    Entry i covers episodes max(0, i - window + 1) .. i, so the first window-1 entries use the
    episodes seen so far.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if window < 1:
        raise QtcError(f"the moving-average window must be >= 1, got {window}")
    if r.size == 0:
        return r.copy(), r.copy()
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    hi = np.arange(1, r.size + 1)
    lo = np.maximum(hi - window, 0)
    n = hi - lo
    mean = (c1[hi] - c1[lo]) / n
    var = np.maximum((c2[hi] - c2[lo]) / n - mean * mean, 0.0)
    return mean, np.sqrt(var)


def episodes_to_threshold(rewards, window: int, threshold: float = 0.9) -> int | None:
    """Episodes needed until a *full* window's mean reward reaches ``threshold`` (None if never)."""
    mean, _ = moving_average_band(rewards, window)
    hit = np.nonzero(mean[window - 1:] >= threshold)[0]
    return int(hit[0] + window) if hit.size else None


def plot_rewards(curves: dict, window: int, path: Path | str, title: str | None = None) -> Path:
    """One figure: for each named reward series, the moving mean and a one-std band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rewards in curves.items():
        mean, std = moving_average_band(rewards, window)
        x = np.arange(1, mean.size + 1)
        (line,) = ax.plot(x, mean, label=str(name), lw=1.2)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("episode")
    ax.set_ylabel(f"reward (moving average, window {window})")
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Watching a policy
# --------------------------------------------------------------------------------------------

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
            raw, _ = env.reset(seed=seed + ep)
            total, step, done = 0.0, 0, False
            lines += [f"episode {ep + 1}, start", env.unwrapped.pprint_grid(), ""]
            while not done:
                action = int(torch.argmax(actor_net(flat, obs_vector(raw))))
                raw, reward, terminated, truncated, _ = env.step(action)
                total, step, done = total + float(reward), step + 1, terminated or truncated
                lines += [f"episode {ep + 1}, step {step}: {names[action]}",
                          env.unwrapped.pprint_grid(), ""]
            outcome = "reached the goal" if terminated else "time limit"
            lines.append(f"episode {ep + 1}: reward {total:.3f} in {step} steps ({outcome})")
            rewards.append(total)
        env.close()
    return "\n".join(lines), rewards


def load_policy(run_dir: Path | str) -> dict:
    """The exported policy of a run: env_id, actor_flat, critic_flat, actor_net, critic_net."""
    path = Path(run_dir)
    path = path / POLICY if path.is_dir() else path
    if not path.exists():
        raise QtcError(f"no exported policy at {path}; hint: train first (the engine writes "
                       f"{POLICY} when a run ends)")
    meta = path.with_suffix(".json")
    try:
        flats = torch.load(path, map_location="cpu", weights_only=True)
        info = json.loads(meta.read_text())
    except Exception as exc:  # noqa: BLE001 - an older qtc's pickled policy, or not qtc's
        raise QtcError(f"{path} (with {meta.name}) is not a qtc policy of this version "
                       f"({type(exc).__name__}); it is never unpickled; hint: retrain") from None
    return {**info, **flats, "actor_net": net_from_record(info.get("actor_net")),
            "critic_net": net_from_record(info.get("critic_net"))}


def play_run(run_dir: Path | str, episodes: int = 1, seed: int = 0) -> tuple[str, list[float]]:
    """``play`` for a run directory's exported policy (what ``qtc play RUNDIR`` calls)."""
    pol = load_policy(run_dir)
    return play(pol["actor_flat"], pol["actor_net"], pol["env_id"], episodes=episodes, seed=seed,
                max_episode_steps=pol.get("max_episode_steps"))
