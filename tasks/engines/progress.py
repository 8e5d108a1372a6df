"""What a run prints while it trains: a tqdm bar on a terminal, short plain lines everywhere.

A bar redraws itself with carriage returns: in a log file or a pipe that is megabytes of
repeated text (2.9 MB for a 14-model job, issue 13). So a bar is drawn only when stderr is a
terminal and progress is on; the plain lines (one per epoch, or per `episode_every` episodes for
A3C, and one per finished model with the overall time left) are printed whenever no bar is
drawn, with `--no-progress` too: a run is never silent until a model ends.
"""
from __future__ import annotations

import math
import sys
import time


def bars(progress: bool, stream=None) -> bool:
    """Whether to draw tqdm bars: progress on and the stream (stderr) a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(progress) and bool(getattr(stream, "isatty", lambda: False)())


def say(text: str) -> None:
    """One plain progress line on stderr, flushed (a log shows it at once)."""
    print(text, file=sys.stderr, flush=True)


def clock(seconds: float) -> str:
    """Seconds as ``42s``, ``3m05s`` or ``2h07m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def epoch_line(label: str, row: dict, epochs: int, elapsed: float) -> str:
    """``config 2 (H-ent-RY): epoch 3/30, train loss 0.41, test accuracy 0.93, 1.2s/epoch, 4s``."""
    shown = [k for k in ("train_loss", "test_accuracy", "test_mse") if isinstance(row.get(k), float)]
    metrics = ", ".join(f"{k.replace('_', ' ')} {row[k]:.4g}" for k in shown)
    return (f"{label}: epoch {row['epoch']}/{epochs}, {metrics}, {row['seconds']:.1f}s/epoch, "
            f"{clock(elapsed)} elapsed")


def episode_every(target: int) -> int:
    """A3C prints a line every this many episodes: about 20 lines per model."""
    return max(1, math.ceil(target / 20))


def episodes_line(label: str, count: int, target: int, avg_reward: float, elapsed: float) -> str:
    return (f"{label}: episode {count:,}/{target:,}, mean reward {avg_reward:.3f} (recent), "
            f"{clock(elapsed)} elapsed")


def eta_text(done: int, total: int, elapsed: float, trained: int) -> str:
    """``models 3/14 done, 2m10s elapsed, about 7m57s left``: the time left is the time per
    model trained in this session so far times the models still to train."""
    text = f"models {done}/{total} done, {clock(elapsed)} elapsed"
    if done >= total:
        return text
    if trained < 1:
        return text + ", time left: unknown yet"
    return text + f", about {clock(elapsed / trained * (total - done))} left"


class Overall:
    """Models done out of a run's total, and the estimated time left (see `eta_text`)."""

    def __init__(self, total: int, done: int = 0):
        self.total, self.done, self.trained, self.t0 = total, done, 0, time.monotonic()

    def finished(self, *, trained: bool = True) -> str:
        """Count one more model done (`trained`: in this session, not skipped as done before)."""
        self.done += 1
        self.trained += bool(trained)
        return eta_text(self.done, self.total, time.monotonic() - self.t0, self.trained)
