"""Supervised models trained several at a time, one per worker process (`qtc run --jobs N`).

Each worker is a spawned process with its own torch threads (the run's `threads`, default 1):
it rebuilds the task from the run folder's spec (the kind's `supervised` factory), then trains
the models the driver hands it, one after another, with the engine's own `train_one`. Nothing
is shared between two workers, so neither waits for the other: on a busy machine each degrades
as a single-threaded process does, with no barrier to spin at.

The driver (this process) keeps the books: workers send each epoch's metrics row, checkpoint and
final row as messages and the driver's Ledger writes metrics.json, checkpoint.pt and
selection.json, so the run folder has one writer and a resumed run reads one checkpoint.
Exports (models/<model>/) are written by the worker that trained the model, each to its own
folder. Rows are kept sorted by model and epoch, so the metrics do not depend on which worker
finished first: `--jobs 2` gives the rows `--jobs 1` gives (tests/test_parallel_runs.py).

Ctrl-C or SIGTERM to the driver sets a stop event; each worker checkpoints at its next batch and
reports where it stopped. A worker that dies (killed, out of memory) stops the run with the
checkpoint of its last finished epoch intact; so does one whose training fails (the error is
passed on, e.g. a diverged loss).
"""
from __future__ import annotations

import io
import multiprocessing as mp
import os
import signal
import queue as queues

import torch

from qtc.errors import QtcError, describe_error
from qtc.tasks.runs import guard, signals

POLL_S = 0.2          # how often the driver looks at the stop flag and the workers' health
LAST_WORDS_S = 2.0    # a dead worker's messages still in the pipe get this long to arrive


def _pack(obj) -> bytes:
    """Tensors as torch.save bytes: no shared-memory handles left open between processes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _unpack(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _Messenger:
    """A worker's stand-in for the Ledger: forwards rows and checkpoints to the driver."""

    def __init__(self, out, stop):
        self.out, self.stop = out, stop

    @property
    def requested(self) -> bool:       # the engine's stop flag
        return self.stop.is_set()

    def row(self, model, row):
        self.out.put(("row", model, row))

    def checkpoint(self, model, current):
        self.out.put(("checkpoint", model, _pack(current)))

    def done(self, model, row, final):
        self.out.put(("done", model, row, _pack(final)))


def _worker(wid: int, rundir_path: str, settings: dict, options: dict, jobs, out, stop) -> None:
    """A worker's life (started through guard.run_child, which watches the driver from the
    worker's first moment): build the task once (its kind's `supervised`), then train every job
    handed to it.

    SIGTERM (to the process group: a scheduler's stop, `kill -- -PGID`) is a stop request, as
    it is for the driver: the worker checkpoints at its next batch and reports where it stopped,
    so the run ends as an interruption to resume, not as a failed worker (exit -15). Only a
    worker whose driver is gone exits at once."""
    signals.in_worker()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1) if guard.orphaned() else stop.set())
    from qtc.tasks.build import load_task
    from qtc.tasks.engines import supervised
    from qtc.tasks.kinds import KINDS
    from qtc.tasks.runs.rundir import RunDir
    from qtc.tasks.runs.runner import RunOptions
    try:
        opts = RunOptions.from_dict(options)
        torch.set_num_threads(opts.threads)
        rundir = RunDir.existing(rundir_path)
        built = load_task(rundir.path / "spec.task", settings)
        task = KINDS[built.spec.kind].supervised(built, rundir, opts)
        fit, val = supervised.held_out(task, opts, built.spec.train.batch)
    except BaseException as err:  # noqa: BLE001 - reported to the driver
        out.put(("error", wid, None, describe_error(err)))
        return
    books = _Messenger(out, stop)
    while (packed := jobs.get()) is not None:
        job = supervised.Job(**{**packed, "resume": packed["resume"] and _unpack(packed["resume"])})
        try:
            supervised.train_one(built, rundir, opts, fit, val, job, books, books)
        except supervised.Stopped as where:
            out.put(("stopped", wid, job.model, str(where)))
        except BaseException as err:  # noqa: BLE001 - reported to the driver
            out.put(("error", wid, job.model, describe_error(err)))
            return
        else:
            out.put(("free", wid))


def train_in_workers(ledger, todo: list[str], stop) -> None:
    """Train the models `todo` in min(jobs, len(todo)) workers, `ledger` keeping the books."""
    opts, rundir, built = ledger.opts, ledger.rundir, ledger.built
    ctx = mp.get_context("spawn")
    out, halt = ctx.Queue(), ctx.Event()
    count = min(opts.jobs, len(todo))
    inboxes = [ctx.Queue() for _ in range(count)]
    procs = [ctx.Process(target=guard.run_child, name=f"qtc-train-{w}", daemon=True,
                         args=(os.getpid(), f"{__name__}:_worker", w, str(rundir.path),
                               dict(built.settings), opts.to_dict(), inboxes[w], out, halt))
             for w in range(count)]
    for p in procs:
        p.start()
    pending, busy, idle = list(todo), {}, set(range(count))
    stopped, failures = [], []
    print(f"training {len(todo)} models, {count} at a time (--jobs {opts.jobs}), one process each",
          flush=True)

    def hand_out():
        while idle and not halt.is_set():
            model = next((m for m in pending if ledger.ready(m)), None)
            if model is None:
                return
            w = idle.pop()
            pending.remove(model)
            busy[w] = model
            job = ledger.job(model)
            inboxes[w].put({**job.__dict__, "resume": job.resume and _pack(job.resume)})

    def handle(msg) -> None:
        kind = msg[0]
        if kind == "row":
            ledger.row(msg[1], msg[2])
        elif kind == "checkpoint":
            ledger.checkpoint(msg[1], _unpack(msg[2]))
        elif kind == "done":
            ledger.done(msg[1], msg[2], _unpack(msg[3]))
        elif kind == "free":
            busy.pop(msg[1], None)
            idle.add(msg[1])
        elif kind == "stopped":
            busy.pop(msg[1], None)
            stopped.append(msg[3])
        elif kind == "error":
            model = busy.pop(msg[1], None) or msg[2]
            failures.append(f"{built.model_label(model)}: {msg[3]}" if model else msg[3])
            halt.set()

    try:
        hand_out()
        while busy or (pending and not halt.is_set()):
            if stop.requested or failures:
                halt.set()
            try:
                handle(out.get(timeout=POLL_S))
            except queues.Empty:
                for w, model in list(busy.items()):
                    if not procs[w].is_alive():
                        _last_words(out, handle, busy, w)
                        if w in busy:
                            busy.pop(w)
                            failures.append(f"{built.model_label(model)}: its worker process died "
                                            f"(exit code {procs[w].exitcode}); the checkpoint keeps "
                                            "its last finished epoch")
                            halt.set()
                continue
            hand_out()
            if not busy and pending and not halt.is_set() and not any(ledger.ready(m) for m in pending):
                raise QtcError(f"models {', '.join(pending)} cannot start: 'found' needs diffqas")
    finally:
        halt.set()
        for box in inboxes:
            box.put(None)
        with signals.held():
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
    if failures:
        raise QtcError("training failed: " + "\n".join(failures))
    if stopped or stop.requested:
        from qtc.tasks.engines.supervised import interrupted
        interrupted(rundir, "; ".join(stopped) or "between models")


def _last_words(out, handle, busy, w) -> None:
    """Messages a finished or dead worker sent before it went, until its model is settled."""
    try:
        while w in busy:
            handle(out.get(timeout=LAST_WORDS_S))
    except queues.Empty:
        pass
