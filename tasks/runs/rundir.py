"""A run directory: resolved spec, metrics, checkpoints, exported models. Shared by all tasks.

Layout:
    spec.task, space.qs        the specs as run (copied text)
    resolved.json              every setting after defaults and command-line overrides
    fingerprint.json           what makes this run this run (guard.identity) and its sha256
    .qtc-owned, .qtc-lock      qtc made this folder / the pid writing it now (tasks/runs/guard.py)
    parameters.txt             the parameter-count report
    metrics.csv, metrics.json  one row per (model, epoch)
    examples.json              train/test example counts after --limit, the class filter, windowing
    checkpoint.pt              the last checkpoint
    models/<model>/            model.pt (plain state_dict), model.py (stand-alone loader), README
    a3c/<model>/               the A3C engine's own folder per model (episodes.csv, checkpoint.pt, ...)

<model> is the model's folder name (qtc.tasks.naming.folder: fixed:K -> fixed_K). Every file is
written through `atomic_write` (a temp file beside it, then a rename), so a reader, a resume or a
crash never sees half a file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.runs import guard

CHECKPOINT = "checkpoint.pt"
RESOLVED = "resolved.json"
METRICS = "metrics.json"


@contextmanager
def located(path: Path):
    """Name `path` in an OSError raised while writing it (or, for a folder, anything in it): a
    write() on a full disk says only 'No space left on device', and the command line's message
    must say where."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Let `write(tmp)` fill a temp file beside `path`, then rename it over `path`.

    The temp name keeps the suffix (`x.tmp.png`), so writers that pick a format by the suffix
    (matplotlib) still work. The one helper behind every write of runs, sweeps and reports.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per writer (two processes never share a temp file); the suffix is kept last
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        with located(path):
            write(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_text(path: Path | str, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_json(path: Path | str, data, indent: int = 2) -> Path:
    return atomic_text(path, json.dumps(data, indent=indent, default=str) + "\n")


def atomic_torch(path: Path | str, obj) -> Path:
    data = io.BytesIO()  # serialised first: a full disk is then an OSError naming the file,
    torch.save(obj, data)  # not torch's RuntimeError from inside its zip writer
    return atomic_write(path, lambda tmp: tmp.write_bytes(data.getbuffer()))


def csv_text(rows: list[dict], keys=None) -> str:
    """Rows as CSV text, header = every key in first-seen order (or `keys`)."""
    keys = list(keys or dict.fromkeys(k for r in rows for k in r)) or ["empty"]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=keys, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def damaged(path: Path, why: str) -> QtcError:
    """The error for a file of a run or trial folder that qtc cannot trust, naming it."""
    return QtcError(f"{path} is damaged ({why}); qtc does not continue from a folder edited by "
                    "hand: restore the file or start a new run")


def shaped(path: Path, data, shape: type):
    """`data` read from `path`, if it is a `shape` (dict: a JSON object; list: an array)."""
    if not isinstance(data, shape):
        kinds = {dict: "an object", list: "an array", str: "a string", type(None): "null",
                 bool: "true/false", int: "a number", float: "a number"}
        raise damaged(path, f"it holds {kinds.get(type(data), type(data).__name__)} where "
                      f"{kinds[shape]} is expected")
    return data


def read_json_or_none(path: Path, shape: type = dict):
    """A JSON file's value, or None when it is missing or not JSON (a trial or engine folder may
    be half written: the caller then treats it as not there yet); one of another shape than
    `shape` is a clear error naming it (`shaped`)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return shaped(Path(path), data, shape)


def rows_digest(rows: list[dict]) -> str:
    """sha256 of metrics rows, whatever their order (each row's JSON, sorted)."""
    lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RunDir:
    """A run folder; `create` and `existing` are the two ways to get one for a run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock: guard.RunLock | None = None     # held from start/reopen to the run's end

    @classmethod
    def create(cls, base: Path | None, task_name: str) -> "RunDir":
        """A new run folder, returned locked (`release` or `held` gives the lock back).

        The lock is taken before anything in the folder is read or written: of two runs started
        together on one folder, the refused one writes nothing (issue 29)."""
        default = Path("runs") / f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = Path(base) if base else guard.inside("runs", default)
        guard.make_owned(path)
        rundir = cls(path).hold()
        try:
            if any(p.name not in (guard.MARKER, guard.LOCK) for p in path.iterdir()):
                if any((path / name).exists() for name in (CHECKPOINT, "metrics.json", "models", "a3c")):
                    raise QtcError(f"run folder {path} already holds a run; continue it with "
                                   f"'qtc run --resume {path}' or choose another -o")
                if not (path / RESOLVED).exists():
                    raise QtcError(f"run folder {path} already exists and is not a qtc run folder")
                # a run that stopped before its first checkpoint (e.g. missing data): start afresh
        except BaseException:
            rundir.release()
            raise
        return rundir

    @classmethod
    def existing(cls, path: Path) -> "RunDir":
        path = Path(path)
        if not path.exists():
            raise QtcError(f"no such folder: {path} (give the folder a qtc run wrote)")
        if not path.is_dir():
            raise QtcError(f"{path} is a file, not a qtc run folder")
        if not (path / RESOLVED).is_file():
            if (path / "sweep.json").is_file():   # a sweep resumes by running it again
                raise QtcError(f"{path} is a sweep folder, not a run folder: a sweep resumes when "
                               f"its qtc sweep command runs again with -o {path} (finished trials "
                               "are kept)")
            raise QtcError(f"{path} is not a qtc run folder (no resolved.json)")
        return cls(path)

    # --- one writer -----------------------------------------------------------------------
    def hold(self) -> "RunDir":
        """Take the folder's lock (guard.RunLock) until `release`; a no-op if already held."""
        if self.lock is None:
            self.lock = guard.RunLock(self.path).acquire()
        return self

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @contextmanager
    def held(self):
        """The lock for the block (taken if not held yet, e.g. by `create`), released after it."""
        self.hold()
        try:
            yield self
        finally:
            self.release()

    # --- names --------------------------------------------------------------------------
    def model_dir(self, model: str) -> Path:
        """models/<model>/: the exported classical network(s) of `model`."""
        return guard.inside(self.path, self.path / "models" / naming.folder(model))

    def engine_dir(self, model: str, engine: str = "a3c") -> Path:
        """<engine>/<model>/: an engine's own folder for `model` (its log and checkpoint)."""
        return guard.inside(self.path, self.path / engine / naming.folder(model))

    # --- settings -------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        return atomic_text(self.file(name, "write"), text)

    def write_json(self, name: str, data) -> Path:
        return atomic_json(self.file(name, "write"), data)

    def file(self, name: str, action: str = "read") -> Path:
        """RUNDIR/name through the guard: a link that leads out of the folder is refused."""
        return guard.inside(self.path, self.path / name, action)

    def subfolder(self, name: str) -> Path:
        """RUNDIR/name/ (plots/, tensorboard/...), made if missing, never a link out of the folder."""
        folder = self.file(name, "write")
        folder.mkdir(exist_ok=True)
        return folder

    def read_json(self, name: str, shape: type = dict):
        """RUNDIR/name as JSON of `shape` (dict: an object, list: an array); a missing, damaged
        or hand-edited file is a clear error naming it, never a traceback (issue 29)."""
        path = self.file(name)
        try:
            return shaped(path, json.loads(path.read_text()), shape)
        except FileNotFoundError:
            raise damaged(path, "it is missing") from None
        except (ValueError, UnicodeDecodeError) as err:  # a damaged file must not be trusted
            raise damaged(path, f"not JSON: {err}") from None

    # --- metrics --------------------------------------------------------------------------
    def metrics(self) -> list[dict]:
        """metrics.json's rows (none before the first epoch), each a {"model", "epoch", ...}."""
        if not self.file(METRICS).is_file():
            return []
        rows = self.read_json(METRICS, list)
        bad = next((k for k, r in enumerate(rows) if not isinstance(r, dict)
                    or not isinstance(r.get("model"), str) or not _is_int(r.get("epoch"))), None)
        if bad is not None:
            raise damaged(self.path / METRICS, f"row {bad + 1} is not a {{\"model\", \"epoch\", ...}} "
                          "object")
        return rows

    def log_metrics(self, rows: list[dict]) -> None:
        """Replace the metrics with `rows` (the full history, so a resumed run stays consistent)."""
        self.write_json(METRICS, rows)
        self.write_text("metrics.csv", csv_text(rows))

    # --- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, state: dict, rows: list[dict] | None = None) -> None:
        """Tensors and plain values only (loadable with weights_only=True), with what it must
        agree with on resume: the run's fingerprint and the metrics rows it covers (`rows`:
        their count and digest; `check_rows` compares them with metrics.json)."""
        state = {k: v for k, v in state.items() if k != "rows"}   # never a stale digest
        if rows is not None:
            state["rows"] = {"count": len(rows), "sha256": rows_digest(rows)}
        atomic_torch(self.file(CHECKPOINT, "write"), {**state, "fingerprint": self.fingerprint()})

    def check_rows(self, state: dict, rows: list[dict]) -> None:
        """Refuse a resume whose metrics.json no longer holds the rows its checkpoint covers
        (emptied, cut or edited by hand): training on would silently lose or fake epochs."""
        want = state.get("rows")
        if want is None:                     # no checkpoint yet (a fresh start): nothing to compare
            return
        if not isinstance(want, dict) or (want.get("count"), want.get("sha256")) != (
                len(rows), rows_digest(rows)):
            count = want.get("count") if isinstance(want, dict) else "?"
            raise damaged(self.path / METRICS, f"it does not hold the {count} rows "
                          f"{CHECKPOINT} was saved with (found {len(rows)} that it covers, or "
                          "rows that differ): it was emptied or edited")

    def fingerprint(self) -> str | None:
        """The sha256 recorded in fingerprint.json when the run started (None: there is none),
        checked against the identity recorded beside it: a sha256 copied in by hand is refused."""
        p = self.file(guard.FINGERPRINT)
        if not p.is_file():
            return None
        record = self.read_json(guard.FINGERPRINT)
        sha, ident = record.get("sha256"), record.get("identity")
        if not isinstance(sha, str) or not isinstance(ident, dict):
            raise damaged(p, 'expected {"sha256": ..., "identity": {...}}')
        if sha != guard.fingerprint(ident):
            raise damaged(p, "its sha256 is not the digest of the identity recorded beside it")
        return sha

    def load_checkpoint(self) -> dict | None:
        """The checkpoint, if it is this run's: never unpickles code, refuses a foreign one."""
        p = self.file(CHECKPOINT)
        if not p.is_file():
            return None
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise QtcError(f"checkpoint {p} holds more than tensors and plain values (an older "
                           "qtc's, or not qtc's at all): refused, it is never unpickled; start a "
                           "new run") from None
        except Exception as err:  # a damaged file must not be trusted
            raise QtcError(f"checkpoint {p} cannot be read ({type(err).__name__}: {err}); "
                           "start a new run") from None
        mine = self.fingerprint()
        if not isinstance(state, dict) or state.get("fingerprint") != mine:
            theirs = state.get("fingerprint") if isinstance(state, dict) else None
            raise QtcError(f"checkpoint {p} is not this run's (its fingerprint {str(theirs)[:12]}, "
                           f"this run's {str(mine)[:12]}): refused; restore the run's own "
                           "checkpoint or start a new run")
        return state

    # --- export ---------------------------------------------------------------------------
    def export(self, model: str, nets: dict, flats: dict[str, torch.Tensor], preprocessing: str) -> Path:
        """Write each network of `model` as a plain state_dict plus a stand-alone loader, and a
        README with a loading snippet and `preprocessing` (the kind's markdown: what the inputs
        must be and what the outputs mean)."""
        folder = self.model_dir(model)
        stems = {name: "model" if len(nets) == 1 else name for name in nets}
        for name, net in nets.items():
            atomic_torch(folder / f"{stems[name]}.pt", net.state_dict(flats[name].detach().cpu()))
            atomic_text(folder / f"{stems[name]}.py", net.torch_source().replace(
                "path='model.pt'", f"path='{stems[name]}.pt'"))
        loads = "".join(f"{'net' if stem == 'model' else stem} = load('{stem}')\n" for stem in stems.values())
        files = ", ".join(f"`{stem}.pt` (a plain state_dict) and `{stem}.py`" for stem in stems.values())
        atomic_text(folder / "README.md",
            f"# {model}: the trained classical network(s)\n\nNo qtc and no quantum code needed: "
            f"{files} (the .py rebuilds the network with torch alone). In this folder:\n\n"
            "```python\nimport importlib.util\n\n\ndef load(stem):\n"
            "    spec = importlib.util.spec_from_file_location(stem, f'{stem}.py')\n"
            "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "    return m.load(f'{stem}.pt')\n\n\n"
            f"{loads}```\n\n## Preprocessing\n\n{preprocessing}")
        return folder
