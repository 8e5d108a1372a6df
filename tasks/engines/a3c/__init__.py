"""A3C training engine for MiniGrid (paper Figs. 13-14), with worker processes.

Protocol (what the engine receives, so QT generators and classical baselines plug in alike):

- a *parameter source* is an ``nn.Module`` whose ``forward()`` (no arguments) returns a flat 1-D
  float tensor of a target network's parameters (a QT generator, or the classical parameters);
- a *target network* is a picklable object with ``num_params`` and ``forward(flat, x)``
  (functional: its weights come from ``flat``);
- ``make_model() -> (actor_source, critic_source, actor_net, critic_net)`` is a picklable factory
  (top-level function or ``functools.partial``) so every worker builds identical modules.

The rooms: algorithm.py (rollout, loss, shared optimizer: the A3C itself), driver.py (the
driver: starts, watches, restarts and stops the worker processes; train_a3c), worker.py (one
worker's loop), episodes.py (the engine folder's files), evaluation.py (episode
seeds, greedy evaluation episodes on held-out seeds), play.py (watching a trained policy).

One worker is deterministic (an interrupted and resumed run equals an uninterrupted one bit for
bit); several workers update asynchronously (Hogwild-style) and are not reproducible.
"""
from qtc.tasks.engines.a3c.algorithm import A3CConfig, a3c_loss, shared_optimizer  # noqa: F401
from qtc.tasks.engines.a3c.episodes import (EPISODES_CSV, POLICY, episodes_to_threshold,  # noqa: F401
                                            load_policy, read_episodes)
from qtc.tasks.engines.a3c.play import play, play_policy_folder  # noqa: F401
from qtc.tasks.engines.a3c.driver import Supervision, train_a3c  # noqa: F401
from qtc.tasks.engines.a3c.worker import WORKER_NAME  # noqa: F401
from qtc.tasks.runs.rundir import CHECKPOINT  # noqa: F401
