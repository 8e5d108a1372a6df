"""The one interrupt policy of runs, sweeps and A3C.

Ctrl-C (SIGINT) and SIGTERM (kill, job schedulers) mean the same thing everywhere: stop at the
next safe point, save, and leave a run that `qtc run --resume` (or the same sweep command)
continues. The pieces below say how a piece of code takes part:

- `as_interrupt()`: both signals raise KeyboardInterrupt (the run, the sweep, the A3C driver);
- `deferred()`: both only raise a flag, checked where stopping is safe (between batches);
- `held()`: both are ignored while a save must not be cut short;
- `in_worker()`: a worker process leaves both to its driver (SIGINT ignored, SIGTERM default).

Python delivers signals to the main thread only, so off the main thread the context managers
change nothing (the caller's thread keeps whatever policy its process has).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Flag:
    """Set by a deferred interrupt; read by the loop that decides where to stop."""
    requested = False


@contextmanager
def _handled(handler):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _raise(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def as_interrupt():
    """SIGINT and SIGTERM raise KeyboardInterrupt inside the block."""
    with _handled(_raise):
        yield


@contextmanager
def deferred():
    """SIGINT and SIGTERM set the yielded Flag instead: a step is never cut in half."""
    flag = Flag()

    def request(signum, frame):
        flag.requested = True

    with _handled(request):
        yield flag


@contextmanager
def held():
    """SIGINT and SIGTERM are ignored inside the block (a second Ctrl-C during a save)."""
    with _handled(signal.SIG_IGN):
        yield


def in_worker() -> None:
    """In a worker process: Ctrl-C is the driver's business, SIGTERM ends the worker.

    A forked worker inherits the driver's handlers; these undo them.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
