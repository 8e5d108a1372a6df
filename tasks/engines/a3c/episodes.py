"""The A3C engine's files: the episode log, the checkpoint's counters, the exported policy.

The driver process is the only writer. ``episodes.csv`` grows one row per finished episode
(episode, worker, reward, length, time); the checkpoint records how many rows it covers, so a
resumed run first cuts the log back to that many (rows logged after the last save go).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from qtc.errors import QtcError
from qtc.tasks.plots import moving_average_band
from qtc.tasks.runs import guard
from qtc.tasks.runs.rundir import atomic_json, atomic_text, atomic_torch

CSV_FIELDS = ("episode", "worker", "reward", "length", "time")
EPISODES_CSV = "episodes.csv"
POLICY = "policy.pt"


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


class EpisodeLog:
    """episodes.csv of one engine folder, opened fresh or cut back to a checkpoint's rows."""

    def __init__(self, out_dir: Path, keep_rows: int | None):
        """`keep_rows` None starts a new log; a number resumes one, keeping that many rows."""
        self.path = guard.inside(out_dir, Path(out_dir) / EPISODES_CSV)
        if keep_rows is not None and self.path.exists():
            with open(self.path, newline="") as fh:
                atomic_text(self.path, "".join(fh.readlines()[:keep_rows + 1]))
            self.file = open(self.path, "a", newline="")
        else:
            self.file = open(self.path, "w", newline="")
            csv.writer(self.file).writerow(CSV_FIELDS)
        self.writer = csv.writer(self.file)

    def rewards(self) -> np.ndarray:
        self.file.flush()
        return read_episodes(self.path)["reward"]

    def append(self, episode: int, worker: int, reward: float, length: int, seconds: float) -> None:
        self.writer.writerow((episode, worker, f"{reward:.6g}", length, f"{seconds:.3f}"))

    def sync(self) -> None:
        """On disk before a checkpoint that counts these rows is written."""
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def episodes_to_threshold(rewards, window: int, threshold: float = 0.9) -> int | None:
    """Episodes needed until a *full* window's mean reward reaches ``threshold`` (None if never)."""
    mean, _ = moving_average_band(rewards, window)
    hit = np.nonzero(mean[window - 1:] >= threshold)[0]
    return int(hit[0] + window) if hit.size else None


def save_policy(out_dir: Path, env_id: str, max_episode_steps: int | None, flats, nets) -> Path:
    """The classical policy: generated flat weights (policy.pt, tensors only) and the target
    networks as plain data (policy.json), so loading it never runs pickled code."""
    flats = {"actor_flat": flats[0], "critic_flat": flats[1]}
    path = Path(out_dir) / POLICY
    atomic_json(path.with_suffix(".json"), {"env_id": env_id, "max_episode_steps": max_episode_steps,
                                            "actor_net": nets[0].record(), "critic_net": nets[1].record()})
    return atomic_torch(path, flats)


def net_from_record(record: dict | None):
    """The target network a `TargetNet.record()` describes, or None."""
    if not record:
        return None
    from qtc.dsl.task import NetworkSpec
    from qtc.tasks.network import TargetNet
    return TargetNet(NetworkSpec.model_validate(record["network"]))


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
