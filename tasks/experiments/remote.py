"""A sweep trial on a node of a Ray cluster, which shares no disk with the driver.

The trial carries what it needs (its spec's text and every .qs the spec names, its settings,
its data set by name), so the node reads nothing of the driver's. It runs in a scratch folder of
its own node ($QTC_SCRATCH, else the system's temporary folder, deleted afterwards):

1. its last snapshot is fetched from the store (qtc.tasks.experiments.storage), if there is one,
   and the trial resumes from it, as `qtc run --resume` would;
2. while it trains, a thread (`Mirror`) sends a snapshot of the run folder to the store after
   every checkpoint (at most one every `SYNC_SECONDS`), so a trial whose node dies resumes on
   another node from its last checkpoint, and a driver killed and rerun finds it;
3. the finished run folder comes back to the driver in the return value (Ray's object store),
   and the driver writes it into its own --out.

`check_node` is what every node must have before any training starts: the driver's qtc version,
each data set the sweep reads (`--data-root` applies on every node, at the same path) and each
data file its specs read (`data csv "x.csv"`, ...: the driver's file at the same absolute path,
with the driver's digest; a node without it, or with other data, would fail late or, worse,
train on other numbers).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path

from qtc.errors import QtcError, describe_error
from qtc.tasks.experiments import storage
from qtc.tasks.runs import guard

SYNC_SECONDS = 1.0    # least time between two snapshots of one trial
POLL_SECONDS = 0.2    # how often a running trial's checkpoints are looked at
SETTLE_SECONDS = 0.1  # a checkpoint is followed by metrics, selection.json: let them land


class NodeUnfit(QtcError):
    """This node lacks what the trial needs (qtc's version, a data set); another node may not."""


def node_name() -> str:
    """This node as messages name it: host, IP and the start of Ray's node id."""
    try:
        import ray
        ctx = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()
        return f"{socket.gethostname()} ({ip}, node {ctx.get_node_id()[:8]})"
    except Exception:  # noqa: BLE001 - outside Ray (a test calling this directly)
        return socket.gethostname()


def check_node(version: str, datasets: list[tuple[str, str | None]],
               data_files: list[tuple[str, str, str]] = ()) -> dict:
    """What this node lacks to run the sweep's trials: {"node", "qtc", "problems": [...]}.

    `version` is the driver's qtc version (trials of two versions would not give the same
    numbers); `datasets` the (image data set, --data-root) pairs the trials read; `data_files`
    the (source, absolute path, sha256) of each data file they read, as the driver found it."""
    import qtc
    from qtc.tasks.data.images import DATASETS, find_root
    problems = []
    if qtc.__version__ != version:
        problems.append(f"qtc {qtc.__version__} is installed here, the driver runs qtc {version}; "
                        "hint: install the driver's version on every node (pip install "
                        f"'qtc[distributed]=={version}')")
    for dataset, data_root in datasets:
        try:
            find_root(dataset, data_root)
        except QtcError as err:
            problems.append(f"no usable {DATASETS.get(dataset, dataset)} data set: "
                            + str(err).replace("\n", "\n    "))
    problems += [p for p in (data_file_problem(*f) for f in data_files) if p]
    return {"node": node_name(), "qtc": qtc.__version__, "problems": problems}


def data_file_problem(source: str, path: str, sha256: str) -> str | None:
    """Why this node cannot read the driver's data file `path` (missing, unreadable, other
    data: a digest other than the driver's `sha256`), or None."""
    from qtc.tasks.data import files
    folder = source in ("folder", "cifar10")
    where = Path(path)
    hint = (f"hint: copy the driver's {'folder' if folder else 'file'} to {path} on every node, or "
            "keep the data on a file system every node mounts at that path")
    if not (where.is_dir() if folder else where.is_file()):
        return f"no data {'folder' if folder else 'file'} {path} (the driver's, read at the same path); {hint}"
    try:
        got = files.digest_of(source, where)
    except QtcError as err:
        return f"data file {path} cannot be read here ({str(err).splitlines()[0]}); {hint}"
    if got != sha256:
        return (f"data file {path} differs from the driver's (sha256 {got[:12]}... here, "
                f"{sha256[:12]}... on the driver); {hint}")
    return None


class Mirror(threading.Thread):
    """Sends a snapshot of `folder` to `store` under `key` whenever a checkpoint in it changes."""

    def __init__(self, folder: Path, store, key: str, every: float = SYNC_SECONDS):
        super().__init__(daemon=True, name="qtc-mirror")
        self.folder, self.store, self.key, self.every = folder, store, key, every
        self.stopping = threading.Event()
        self.snapshots, self.bytes, self.error, self.last = 0, 0, None, ()

    def _stamp(self) -> tuple:
        found = []
        for p in self.folder.rglob("checkpoint*.pt"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            found.append((p.as_posix(), st.st_mtime_ns, st.st_size))
        return tuple(sorted(found))

    def run(self) -> None:
        self.last, sent = self._stamp(), 0.0     # a fetched snapshot is in the store already
        while not self.stopping.wait(POLL_SECONDS):
            if time.monotonic() - sent >= self.every and self._send():
                sent = time.monotonic()

    def _send(self) -> bool:
        """A snapshot, if a checkpoint changed since the last one sent; whether one was sent."""
        stamp = self._stamp()
        if not stamp or stamp == self.last:
            return False
        time.sleep(SETTLE_SECONDS)
        try:
            files = storage.pack(self.folder)
            self.store.put(self.key, files)
        except Exception as err:  # noqa: BLE001 - training goes on; the driver is told
            self.error = self.error or describe_error(err)
            return False
        self.last = stamp
        self.snapshots += 1
        self.bytes += storage.size(files)
        return True

    def stop(self, flush: bool) -> None:
        """Stop watching; with `flush`, send the last checkpoint if it is not stored yet (a
        trial stopped by Ctrl-C or a failure: a finished one comes back whole)."""
        self.stopping.set()
        self.join()
        if flush:
            self._send()


def run_on_node(run, trial: dict, store, version: str) -> dict:
    """Run one trial in this node's scratch folder (see the module's docstring); return its
    summary with the finished run folder's files ("files"), the node ("node") and what moved
    ("moved": bytes carried in, fetched from the store, sent to it, returned)."""
    import pickle

    from qtc.tasks.experiments.trials import Trial
    node = node_name()
    t = Trial(**trial)
    data_file = [(t.data_file["source"], t.data_file["path"], t.data_file["sha256"])] if t.data_file else []
    checked = check_node(version, [(t.dataset, t.overrides.get("data_root"))] if t.dataset else [],
                         data_file)
    if checked["problems"]:
        raise NodeUnfit(f"node {node} cannot run trial {t.key}: " + "; ".join(checked["problems"]))
    scratch = guard.make_owned(storage.scratch_root() / f"{os.getpid()}-{secrets.token_hex(4)}")
    try:
        inputs, runs = scratch / "input", scratch / "runs"
        for name, text in t.files.items():
            path = guard.inside(inputs, inputs / name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        folder = runs / t.key
        fetched = store.get(t.key)
        if fetched:
            storage.unpack(fetched, folder, runs)
        mirror = Mirror(folder, store, t.key)
        mirror.start()
        finished = False
        try:
            summary = run(trial, str(runs), spec=str(inputs / Path(t.spec).name))
            finished = True
        finally:
            mirror.stop(flush=not finished)
        files = storage.pack(folder)
        moved = {"carried": len(pickle.dumps(trial)), "fetched": storage.size(fetched),
                 "snapshots": mirror.snapshots, "sent": mirror.bytes, "returned": storage.size(files)}
        if mirror.error:
            moved["sync_error"] = mirror.error
        return {**summary, "files": files, "node": node, "scratch": str(scratch), "moved": moved}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
