"""What a run prints while it trains: a tqdm bar on a terminal, short plain lines everywhere.

A bar redraws itself with carriage returns: in a log file or a pipe that is megabytes of
repeated text (2.9 MB for a 14-model job). So a bar is drawn only when stderr is a
terminal and progress is on; the plain lines (one per epoch, or per `episode_every` episodes for
A3C, and one per finished model with the overall time left) are printed whenever no bar is
drawn, with `--no-progress` too: a run is never silent until a model ends.

A sweep (qtc.tasks.experiments.sweep) shows one status line over its trials instead
(`SweepProgress`), with the same clock.
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


class SweepProgress:
    """The sweep's one status line: trials done / running / failed / pending, and an ETA (on a
    terminal redrawn in place; in a log, a new line only when a count changes)."""

    def __init__(self, total: int, skipped: int, slots: int, *, enabled: bool = True, stream=None):
        self.total, self.skipped, self.slots = total, skipped, max(1, slots)
        self.done, self.failed, self.running = skipped, 0, 0
        self.durations: list[float] = []
        self.t0 = time.perf_counter()
        self.enabled, self.stream = enabled, stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._last = ""

    def eta(self) -> float | None:
        """Seconds left: remaining trials x recent mean trial time / parallel slots."""
        left = self.total - self.done - self.failed
        if not self.durations or left <= 0:
            return None if left > 0 else 0.0
        # The recent trials only: trials come task by task, and tasks differ in cost.
        recent = self.durations[-max(5, 2 * self.slots):]
        mean = sum(recent) / len(recent)
        return left * mean / min(self.slots, max(1, left))

    def line(self) -> str:
        eta = self.eta()
        eta_text = "?" if eta is None else clock(eta)
        pending = self.total - self.done - self.failed - self.running
        return (f"sweep: {self.done}/{self.total} done ({self.skipped} earlier), {self.running} running, "
                f"{self.failed} failed, {pending} pending; elapsed {clock(time.perf_counter() - self.t0)}, "
                f"ETA {eta_text}")

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(len(self._last)))
            self.stream.flush()
        elif text.split("; elapsed")[0] != self._last.split("; elapsed")[0] or (force and text != self._last):
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(("\n" if self.tty else "") + text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
