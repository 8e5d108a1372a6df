"""Data safety: what qtc may name, write, delete and resume.

A spec must never make qtc write or delete outside the folder it owns, and a resume must never
mix two runs. Everything that enforces this lives here, so the call sites stay one line each:

(Names that become paths, task names, are plain [A-Za-z0-9_-]: qtc.dsl.task refuses others
at parse time, located.)

    inside            every path written, deleted or read from a run folder or beside a spec lies
                      inside the folder it belongs to, symbolic links followed: the one guard
    make_owned        a folder qtc creates gets a marker; remove_owned deletes only marked ones
    RunLock           one writer per run folder (O_EXCL lock file with the pid; stale if dead)
    temp_name         a temporary name unique to this writer (no two writers share a .tmp)
    identity          what makes two runs the same run; its sha256 is the run's fingerprint
    die_with_parent   every worker stops (checkpointing) when the driver that started it dies
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from qtc.errors import QtcError

MARKER = ".qtc-owned"          # written in every folder qtc creates for a run or a trial
LOCK = ".qtc-lock"             # "pid@host" of the process writing the folder
FINGERPRINT = "fingerprint.json"
# Budget and placement: a resumed run may change them without becoming another run.
NOT_IDENTITY = ("task.train.epochs", "task.train.episodes", "task.generator.backend")


# --- containment ----------------------------------------------------------------------------
def inside(root: Path | str, path: Path | str, action: str = "write") -> Path:
    """`path` as given, after checking that it lies inside `root` (both resolved, links followed).

    The one guard behind every write and delete qtc does in a folder it owns (run folders, trial
    folders, their plots/, tensorboard/, models/, logs and checkpoints) and every read a spec or
    a run folder causes (`generator X.qs` beside the task, a run folder's spec.task and records):
    a symbolic link there that leads elsewhere is refused, naming the link, instead of followed.
    `action` ("write", "read", "delete") is what the message says qtc refused to do."""
    root_r, path_r = Path(root).resolve(), Path(path).resolve()
    if path_r != root_r and root_r not in path_r.parents:
        link = _link_below(Path(root), Path(path))
        how = (f"{link} is a symbolic link to {os.readlink(link)}, which leads" if link else "it lies")
        hint = ("; hint: replace the link with the file or folder itself" if link else "")
        raise QtcError(f"refusing to {action} {path}: {how} outside {root}, the folder it belongs "
                       f"to{hint}")
    return Path(path)


def _link_below(root: Path, path: Path) -> Path | None:
    """The first symbolic link on the way from `root` down to `path` (lexically), or None."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    at = root
    for part in parts:
        at = at / part
        if at.is_symlink():
            return at
    return None


# --- ownership ------------------------------------------------------------------------------
def make_owned(path: Path | str) -> Path:
    """Create the folder `path` (and parents) and mark it as qtc's. A folder that already
    existed is used as it is, unmarked: qtc never deletes what it did not create."""
    path = Path(path)
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return path
    (path / MARKER).write_text("created by qtc; qtc may delete this folder\n")
    return path


def is_owned(path: Path | str) -> bool:
    return (Path(path) / MARKER).is_file()


def remove_owned(path: Path | str, root: Path | str) -> None:
    """Delete the folder `path` inside `root`, only if qtc created it (it holds the marker)."""
    path = inside(root, path, "delete")
    if not is_owned(path):
        raise QtcError(f"refusing to delete {path}: qtc did not create it (no {MARKER} marker); "
                       "move it away or choose another output folder")
    shutil.rmtree(path)


def temp_name(target: Path | str) -> Path:
    """A temporary file beside `target`, unique to this process and call (then os.replace)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


# --- one writer per folder ------------------------------------------------------------------
class RunLock:
    """`with RunLock(folder):` holds the folder's lock file; a second writer gets a QtcError.

    The lock file is made with os.link (atomic, fails if it exists) from a file that already
    holds "pid@host", so nobody ever reads a half-written lock. A lock whose pid is dead on this
    host is stale and is taken over; one from another host is respected.
    """

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.me = f"{os.getpid()}@{socket.gethostname()}"

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> "RunLock":
        """Take the lock (a QtcError if a live writer holds it); `release` gives it back."""
        for _ in range(3):
            if self._try_create():
                return self
            holder = self._holder()
            if holder is not None and _alive(holder):
                raise QtcError(f"{self.folder} is in use by process {holder} (lock file "
                               f"{self.path}); wait for it to finish, or stop it first")
            self.path.unlink(missing_ok=True)      # stale: its writer is gone
        raise QtcError(f"cannot take the lock {self.path}: other processes keep racing for it")

    def release(self) -> None:
        if self._holder() == self.me:
            self.path.unlink(missing_ok=True)

    def _try_create(self) -> bool:
        tmp = temp_name(self.path)
        tmp.write_text(self.me + "\n")
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _holder(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None


def _alive(holder: str) -> bool:
    """Whether the writer "pid@host" may still be running (always true for another host)."""
    pid, _, host = holder.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(int(pid)) != "Z"   # a zombie is dead, only not yet reaped


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


# --- fingerprint ----------------------------------------------------------------------------
def identity(spec: dict, space_text: str | None, options: dict, data_sha256: str | None = None) -> dict:
    """What makes a run this run, as flat "dotted.key": value pairs: the resolved spec (its
    data set included), the search space's text, the sha256 of a data file the spec reads (only
    when it reads one) and the options that change the numbers. Positions, the file names of the
    generator's space and of a data file (where they were found) and the budget (extendable on
    resume) are left out."""
    spec = dict(spec)
    if spec.get("generator"):
        spec["generator"] = {**spec["generator"], "space": Path(spec["generator"]["space"]).name}
    if (spec.get("data") or {}).get("file"):
        spec["data"] = {**spec["data"], "file": Path(spec["data"]["file"]).name}
    flat = {k: v for k, v in _flatten({"task": spec}).items() if k not in NOT_IDENTITY}
    flat["space.sha256"] = hashlib.sha256(space_text.encode()).hexdigest() if space_text else None
    if data_sha256 is not None:
        flat["data.sha256"] = data_sha256
    flat.update(_flatten({"options": options}))
    return flat


def fingerprint(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def differences(recorded: dict, current: dict, defaults: dict | None = None) -> list[str]:
    """`key: recorded -> current` for every entry that differs, in a stable order. A key the
    recorded identity lacks whose current value is its `defaults` entry is no difference: an
    option added to the spec language after the run started, at the default that keeps the
    earlier behaviour (a new option's default never changes an existing spec's numbers)."""
    defaults = defaults or {}
    keys = sorted(set(recorded) | set(current))
    return [f"{k}: {recorded.get(k, '(absent)')!r} -> {current.get(k, '(absent)')!r}"
            for k in keys if _json(recorded.get(k)) != _json(current.get(k))
            and not (k not in recorded and k in defaults and _json(defaults[k]) == _json(current.get(k)))]


def field_defaults(model, prefix: str = "task") -> dict:
    """{"task.generator.index": "bits", ...}: the default of every field of a spec model (nested
    models walked as the identity flattens them), keyed as in `identity`."""
    out = {}
    for name, field in type(model).model_fields.items():
        value, key = getattr(model, name), f"{prefix}.{name}"
        if hasattr(type(value), "model_fields"):
            out.update(field_defaults(value, key))
        elif not field.is_required():
            out[key] = _strip_positions(field.get_default(call_default_factory=True))
    return out


def _json(value) -> str:
    return json.dumps(value, default=str)


def _flatten(value, prefix: str = "") -> dict:
    """Nested dicts -> {"a.b.c": leaf}; spec positions (line, column) dropped everywhere."""
    if not isinstance(value, dict):
        return {prefix: _strip_positions(value)}
    out = {}
    for k, v in value.items():
        if k not in ("line", "column"):
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _strip_positions(value):
    if isinstance(value, dict):
        return {k: _strip_positions(v) for k, v in value.items() if k not in ("line", "column")}
    if isinstance(value, (list, tuple)):
        return [_strip_positions(v) for v in value]
    return value


# --- no worker outlives its driver -----------------------------------------------------------
_PARENT: list[int] = []
PR_SET_PDEATHSIG = 1      # linux/prctl.h


def die_with_parent(driver: int, poll_s: float = 1.0, grace_s: float = 60.0) -> None:
    """The first call of every child process qtc starts (pool, --jobs and A3C workers): when
    `driver` (its pid, passed in by the driver) dies, even by kill -9 and at any moment of the
    worker's life, the worker gets SIGTERM (a running trial turns it into a checkpoint and a
    stop) and exits outright after `grace_s`.

    The driver's pid comes from the driver, never from os.getppid() here: a worker that reads
    its parent after a slow start-up (a spawned one imports torch first) may find init already.
    Linux's parent-death signal delivers the SIGTERM at once; the pid check right after arming
    it closes the race with a driver that died before, and a watch thread covers platforms
    without prctl. (The parent-death signal follows the driver *thread* that started the
    worker: qtc starts workers from the driver's main thread only.)"""
    _PARENT[:] = [driver]
    armed = _parent_death_signal(signal.SIGTERM)
    if orphaned():                       # gone before the signal was armed: nothing to save yet
        os._exit(1)

    def watch():
        while not orphaned():
            time.sleep(poll_s)
        if not armed:
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="qtc-die-with-parent", daemon=True).start()


def run_child(driver: int, target: str, *args) -> None:
    """A spawned worker's entry: die_with_parent(driver) first, then `target` ("module:function")
    imported and called with `args`. A spawned worker imports its target's module before it runs
    a line of it (torch: seconds on a busy machine); starting here, where only the standard
    library is loaded, it watches its driver from its first moment."""
    die_with_parent(driver)
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(*args)


def _parent_death_signal(sig: int) -> bool:
    """prctl(PR_SET_PDEATHSIG, sig) on Linux; False where there is no such call."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def orphaned() -> bool:
    """True in a worker whose driver (given to die_with_parent) is gone."""
    return bool(_PARENT) and os.getppid() != _PARENT[0]
