"""A3C process supervision: the driver starts, watches, restarts and stops the workers.

The driver (`Trainer`, started by `train_a3c`) is the only writer of the engine folder
(episodes.py): it counts the episodes the workers report, restarts dead workers up to a limit,
checkpoints the shared state under the optimizer lock, and never blocks without a timeout. The
workers' own loop is worker.py.

Start method: ``fork`` by default on Linux (a worker starts in ~50 ms instead of re-importing
torch for ~2 s); ``spawn`` works too (then ``make_model`` must be importable). Either way each
worker sets ``torch.set_num_threads(1)``: many single-threaded workers beat threads fighting over
2 cores.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.multiprocessing as tmp

from qtc.dsl.task import A3CStmt, EnvStmt
from qtc.errors import QtcError
from qtc.tasks.engines.a3c.algorithm import (A3CConfig, check_model, clone_state, share_state,
                                             shared_optimizer)
from qtc.tasks.engines.a3c.episodes import EPISODES_CSV, EpisodeLog, read_episodes, save_policy
from qtc.tasks.engines.a3c.worker import WORKER_NAME, Session, Shared, worker_main
from qtc.tasks import naming
from qtc.tasks.engines import progress as prog   # `progress` is train_a3c's flag
from qtc.tasks.plots import plot_rewards
from qtc.tasks.runs import guard, signals
from qtc.tasks.runs.rundir import CHECKPOINT, atomic_json, atomic_torch


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Trainer:
    """State of one run in the driver process (the only writer of the engine folder)."""

    def __init__(self, make_model, cfg: A3CConfig, *, workers: int, episodes: int, out_dir: Path,
                 resume: bool, progress: bool, curve_window: int, optimizer: Callable, label: str,
                 board: Callable | None, supervision: Supervision):
        self.make_model, self.cfg, self.n_workers, self.target = make_model, cfg, workers, episodes
        self.out_dir, self.every_s = out_dir, supervision.checkpoint_every_s
        self.max_restarts = supervision.max_restarts
        self.curve_window, self.label = curve_window, label
        self.open_board, self.board = board, None
        self.bars = prog.bars(progress)
        self.line_every = prog.episode_every(episodes)
        self.ctx = tmp.get_context(supervision.start_method)
        self.shared = Shared(self.ctx)
        self.procs: dict[int, tuple] = {}        # slot -> (process, connection)
        self.generation = [0] * workers          # restarts per slot, varies the seed
        self.errors: list[str] = []
        self.pending: dict[int, str] = {}        # slot -> traceback sent before it exited
        self.restarts, self.count, self.rows, self.steps, self.elapsed0 = 0, 0, 0, 0, 0.0
        self.evaluations: list[dict] = []        # {episode, reward}: one per evaluation
        self.best: dict | None = None            # the best evaluation, with its policy's flats
        self.worker_state: dict | None = None    # one worker stopped between episodes: its RNG
        self.recent = deque(maxlen=min(curve_window, 100))
        self._build_globals(optimizer)
        if resume:
            self._load_checkpoint()
        self.shared.episodes.value = self.count
        self.log = EpisodeLog(out_dir, self.rows if resume else None)
        self.recent.extend(self.log.rewards()[-self.recent.maxlen:].tolist())

    # -- setup -------------------------------------------------------------------------------
    def _build_globals(self, optimizer: Callable) -> None:
        torch.manual_seed(self.cfg.seed)
        actor_src, critic_src, self.actor_net, self.critic_net = self.make_model()
        self.sources = (actor_src, critic_src)
        check_model(actor_src, critic_src, self.actor_net, self.critic_net, self.cfg)
        for src in self.sources:
            src.share_memory()
        params = [p for src in self.sources for p in src.parameters()]
        self.opt = shared_optimizer(optimizer, params)

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
        share_state(self.opt)              # load_state_dict made fresh, unshared state tensors
        self.count, self.rows = int(ck["episodes"]), int(ck["csv_rows"])
        self.steps, self.elapsed0 = int(ck["steps"]), float(ck["elapsed"])
        self.evaluations, self.best = ck.get("evaluations", []), ck.get("best")
        self.worker_state = ck.get("worker_state")

    # -- workers -----------------------------------------------------------------------------
    def start_worker(self, slot: int) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        seed = self.cfg.seed + slot + self.n_workers * self.generation[slot]
        state, self.worker_state = self.worker_state, None      # used once: by the first start
        exact = self.n_workers == 1
        rng = state["rng"] if exact and state and state["episode"] == self.count else None
        proc = self.ctx.Process(
            target=worker_main, name=WORKER_NAME.format(slot), daemon=True,
            args=(slot, seed, self.make_model, self.sources, self.opt, self.shared, writer, self.cfg,
                  Session(self.target, exact, rng, os.getpid())))
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
                self.log.append(self.count + 1, slot, reward, length, self.elapsed())
                self.count, self.rows, self.steps = self.count + 1, self.rows + 1, self.steps + length
                self.recent.append(reward)
                self.bar.update(1)
                if self.board:
                    self.board.add_scalar("episode/reward", reward, self.count)
                    self.board.add_scalar("episode/length", length, self.count)
                if not self.bars and (self.count % self.line_every == 0 or self.count == self.target):
                    prog.say(prog.episodes_line(self.label, self.count, self.target,
                                                float(np.mean(self.recent)), self.elapsed()))
        elif msg[0] == "eval":
            _, episode, rewards, actor_flat, critic_flat = msg
            mean = float(np.mean(rewards))
            self.evaluations.append({"episode": episode, "reward": mean})
            if self.best is None or mean > self.best["reward"]:      # ties keep the earlier
                self.best = {"episode": episode, "reward": mean, "actor_flat": torch.from_numpy(actor_flat),
                             "critic_flat": torch.from_numpy(critic_flat)}
        elif msg[0] == "state":
            self.worker_state = {"episode": msg[2], "rng": torch.from_numpy(msg[3])}
        elif msg[0] == "error":
            self.pending[msg[1]] = msg[2].rstrip()

    def check_workers(self) -> bool:
        """Report dead workers and restart them; False when the restart budget is spent."""
        for slot, (proc, conn) in list(self.procs.items()):
            finished = self.shared.stop.value or self.shared.episodes.value >= self.target
            if proc.is_alive() or (proc.exitcode == 0 and finished):
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
        if self.bars:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)
        with open(guard.inside(self.out_dir, self.out_dir / "errors.log"), "a") as fh:
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
        self.log.sync()
        got = self.shared.lock.acquire(timeout=10.0)   # a wedged lock must not stop the save
        try:
            state = {
                "version": 1, "env_id": self.cfg.env_id, "config": asdict(self.cfg),
                "actor_source": {k: v.clone() for k, v in self.sources[0].state_dict().items()},
                "critic_source": {k: v.clone() for k, v in self.sources[1].state_dict().items()},
                "optimizer": clone_state(self.opt.state_dict()),
                "episodes": self.count, "csv_rows": self.rows, "steps": self.steps,
                "elapsed": self.elapsed(), "evaluations": self.evaluations, "best": self.best,
                "worker_state": self.worker_state,
            }
        finally:
            if got:
                self.shared.lock.release()
        atomic_torch(self.out_dir / CHECKPOINT, state)
        self.last_save = time.monotonic()

    def export_policy(self) -> Path:
        """The selected policy (best evaluation) when there are evaluations, else the last."""
        if self.best is not None:
            flats = (self.best["actor_flat"], self.best["critic_flat"])
        else:
            with torch.no_grad():
                flats = tuple(src().detach().clone() for src in self.sources)
        return save_policy(self.out_dir, self.cfg.env_id, self.cfg.max_episode_steps, flats,
                           (self.actor_net, self.critic_net))

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm

        self.t0 = self.last_save = time.monotonic()
        count0, steps0 = self.count, self.steps
        tqdm.monitor_interval = 0          # no monitor thread: later forks (restarts) stay clean
        self.bar = tqdm(total=self.target, initial=self.count, unit="ep", disable=not self.bars,
                        dynamic_ncols=True, mininterval=0.5)
        status = "completed"
        with signals.as_interrupt():
            try:
                for slot in range(self.n_workers):
                    self.start_worker(slot)
                self.board = self.open_board() if self.open_board else None   # after the forks
                status = self._loop()
            except KeyboardInterrupt:
                status = "interrupted"
                self._report("interrupted: stopping workers and saving")
            finally:
                with signals.held():          # a second Ctrl-C must not cut the save short
                    self.stop_workers()
                    self.save_checkpoint()
                    self.log.close()
                    self.bar.close()
                    if self.board:
                        self.board.close()
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
        if self.bars and self.recent:
            self.bar.set_postfix(avg_reward=f"{np.mean(self.recent):.3f}",
                                 steps_s=f"{self.steps / max(self.elapsed(), 1e-9):.0f}",
                                 refresh=False)

    def _summary(self, status: str, wall: float, count0: int, steps0: int) -> dict:
        rewards = read_episodes(self.out_dir / EPISODES_CSV)["reward"]
        curve = None
        if len(rewards):
            curve = self.out_dir / "rewards.png"
            model = naming.from_folder(self.out_dir.name)
            plot_rewards({model: rewards}, self.curve_window, curve, labels={model: self.label})
        summary = {
            "status": status, "episodes": self.count, "steps": self.steps,
            "episodes_this_session": self.count - count0, "seconds": round(wall, 3),
            "episodes_per_s": (self.count - count0) / max(wall, 1e-9),
            "steps_per_s": (self.steps - steps0) / max(wall, 1e-9),
            "final_avg_reward": float(rewards[-self.curve_window:].mean()) if len(rewards) else None,
            "workers": self.n_workers, "restarts": self.restarts, "errors": self.errors,
            "out_dir": str(self.out_dir), "checkpoint": str(self.out_dir / CHECKPOINT),
            "policy": str(self.export_policy()), "curve": None if curve is None else str(curve),
            "evaluations": self.evaluations,
            "selected": self.best and {"episode": self.best["episode"], "reward": self.best["reward"]},
        }
        atomic_json(self.out_dir / "summary.json", summary)
        return summary
def _workers(workers: int | None, episodes: int, out_dir: Path, resume: bool) -> int:
    """The worker count (default: one per CPU), after the checks the statements cannot make."""
    workers = workers or os.cpu_count() or 1
    if min(workers, episodes) < 1:
        raise QtcError(f"workers and episodes must be >= 1 (got {workers}, {episodes})")
    if not resume and ((out_dir / CHECKPOINT).exists() or (out_dir / EPISODES_CSV).exists()):
        raise QtcError(f"{out_dir} already holds an A3C run; hint: resume it, or choose a new "
                       "output directory")
    return workers


@dataclass(frozen=True)
class Supervision:
    """How the driver supervises its workers (the engine's settings, not the spec's)."""
    checkpoint_every_s: float = 30.0   # a checkpoint at least this often, and at the end
    max_restarts: int = 3              # dead workers restarted before the run is "failed"
    start_method: str = "fork"         # the workers' multiprocessing start method


def train_a3c(make_model: Callable, env: EnvStmt, a3c: A3CStmt, *, episodes: int, out_dir: Path,
              workers: int | None = None, evaluate: bool = False, seed: int = 0,
              optimizer: Callable | None = None, resume: bool = False, progress: bool = True,
              fingerprint: str | None = None, label: str | None = None,
              board: Callable | None = None, supervision: Supervision = Supervision()) -> dict:
    """Train an actor-critic with A3C on `env` until ``episodes`` episodes (in total, across
    resumes), with the hyper-parameters of the spec's `a3c` statement (gamma, n_steps, entropy,
    window, eval_every, eval_episodes; its `workers` unless `workers` is given).

    Writes into ``out_dir``: ``episodes.csv`` (episode, worker, reward, length, time),
    ``checkpoint.pt`` (every ``supervision.checkpoint_every_s`` and at the end), ``policy.pt``
    and ``policy.json`` (the exported classical policy: its tensors, and its networks as plain
    data), ``rewards.png`` (moving average +- one std over the statement's ``window``),
    ``summary.json``, and ``errors.log`` when something went wrong.

    ``label`` names the model in the progress lines and the plot (default: the folder's name).
    Without a terminal (or with ``progress`` off) a plain line every ``episode_every`` episodes
    says how far it is (qtc.tasks.engines.progress); on a terminal a tqdm bar does.

    ``board()``, if given, opens a TensorBoard SummaryWriter (in the driver, after the workers
    fork): every episode's reward and length are logged to it.

    ``optimizer(params, foreach=False)`` builds the optimizer (the spec's ``train`` statement;
    default Adam, lr 1e-4, betas (0.92, 0.999)); its state is shared by all workers.

    ``evaluate``: after every ``eval_every``-th episode (and the last) the worker that finished
    it plays ``eval_episodes`` greedy episodes of the global policy on the evaluation seeds
    (never trained on); the policy with the best mean evaluation reward is the one exported
    (model selection, `select validation`).

    With one worker the run is deterministic: a run cut by its episode budget or by Ctrl-C /
    SIGTERM stops between episodes, and resuming it gives bit for bit what an uninterrupted run
    gives. Several workers update asynchronously (Hogwild-style) and are not reproducible.

    Returns the summary: ``status`` is "completed", "interrupted" (Ctrl-C) or "failed" (a worker
    kept dying after ``supervision.max_restarts`` restarts); ``errors`` lists what the workers
    reported; ``evaluations`` and ``selected`` the evaluations and the one exported.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = _workers(workers or a3c.workers, episodes, out_dir, resume)
    cfg = A3CConfig(env_id=env.id, gamma=a3c.gamma, n_steps=a3c.n_steps, entropy=a3c.entropy,
                    seed=seed, max_episode_steps=env.max_steps, fingerprint=fingerprint,
                    eval_every=a3c.eval_every if evaluate else None, eval_episodes=a3c.eval_episodes)
    trainer = Trainer(make_model, cfg, workers=workers, episodes=episodes, out_dir=out_dir,
                      resume=resume, progress=progress, curve_window=a3c.window,
                      optimizer=optimizer or _default_adam, label=label or out_dir.name,
                      board=board, supervision=supervision)
    return trainer.run()


def _default_adam(params, **extra) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-4, betas=(0.92, 0.999), **extra)
