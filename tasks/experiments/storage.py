"""Where a cluster trial's folder lives between nodes: snapshots of run folders, by trial key.

On a Ray cluster no node sees another's disk (the driver's included), so a trial runs in a
scratch folder of its own node (qtc.tasks.experiments.remote) and its run folder travels as a
*snapshot*: the folder's files as {relative path: bytes}. A snapshot is taken after each
checkpoint and kept in a store that every node can reach, so that a trial whose node dies
resumes elsewhere from its last checkpoint, and a driver killed and rerun finds it:

- `FolderStore(path)`: trial folders under a directory: `--storage PATH` (a path every node
  mounts), and the default store, the driver's own `--out`, written by a Ray actor on the
  driver's node (qtc.tasks.experiments.executors), so that a stored snapshot there is exactly
  the interrupted trial folder a local sweep would have left;
- `ArrowStore(uri, sweep)`: `--storage s3://...`, `gs://...` or any URI pyarrow's file systems open
  (`pyarrow.fs.FileSystem.from_uri`, what Ray Train and Tune use for their storage path), one
  archive per trial (`<uri>/<sweep>/<key>/snapshot.tar`, written whole: an object store's PUT
  and a local rename are both atomic).

A snapshot never holds the run folder's lock or ownership marker (they belong to the machine
that writes the folder).
"""
from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from qtc.errors import QtcError
from qtc.settings import settings
from qtc.tasks.runs import guard

SNAPSHOT = "snapshot.tar"
LOCAL_ONLY = (guard.LOCK, guard.MARKER)      # per machine: never copied
Files = dict  # {relative POSIX path: bytes}
_TEMP = re.compile(r"\..*\.tmp(\.[^.]*)?")      # rundir.atomic_write's temp files, half written


def _checkpoints_first(path: str) -> tuple:
    # A checkpoint is read before the files written after it (metrics rows newer than the
    # checkpoint are dropped on resume; older ones would be missing).
    return (0 if PurePosixPath(path).name.startswith("checkpoint") else 1, path)


def pack(folder: Path) -> Files:
    """Every file of `folder` (recursively), checkpoints read first."""
    folder = Path(folder)
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
             if p.is_file() and not p.is_symlink() and p.name not in LOCAL_ONLY
             and not _TEMP.fullmatch(p.name)]
    files = {}
    for name in sorted(names, key=_checkpoints_first):
        try:
            files[name] = (folder / name).read_bytes()
        except FileNotFoundError:     # replaced or removed while the run goes on
            pass
    return files


def unpack(files: Files, folder: Path, root: Path) -> None:
    """Write `files` into `folder` (inside `root`, which qtc owns); files of `folder` absent from
    `files` are removed, so the folder becomes the snapshot. Each file is written atomically."""
    from qtc.tasks.runs.rundir import atomic_write
    folder = guard.inside(root, Path(folder))
    guard.make_owned(folder)
    for name, data in files.items():
        target = guard.inside(folder, folder / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp, data=data: tmp.write_bytes(data))
    for p in sorted(folder.rglob("*"), reverse=True):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and p.name not in LOCAL_ONLY and rel not in files:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def size(files: Files | None) -> int:
    return sum(len(b) for b in (files or {}).values())


def to_tar(files: Files) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def from_tar(data: bytes, where: str) -> Files:
    """The files of a snapshot archive; a damaged one is an error naming it (never half-used)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            out = {}
            for m in tar.getmembers():
                p = PurePosixPath(m.name)
                if not m.isfile() or p.is_absolute() or ".." in p.parts:
                    raise QtcError(f"snapshot {where} holds '{m.name}', which is not a run folder file")
                out[m.name] = tar.extractfile(m).read()
            return out
    except tarfile.TarError as err:
        raise QtcError(f"snapshot {where} cannot be read ({err}); delete it to start that trial "
                       "afresh") from None


class FolderStore:
    """Snapshots as the trial folders themselves under a directory (`root/<key>/`)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return str(self.root)

    def put(self, key: str, files: Files) -> None:
        unpack(files, self.root / key, self.root)

    def get(self, key: str) -> Files | None:
        """The folder's files when it holds a run (resolved.json), else None."""
        folder = guard.inside(self.root, self.root / key, "read")
        return pack(folder) if (folder / "resolved.json").is_file() else None


class ArrowStore:
    """Snapshots as one archive per trial under a URI that pyarrow's file systems open."""

    def __init__(self, given: str, sweep_name: str):
        uri = f"{given.rstrip('/')}/{sweep_name}"
        try:
            import pyarrow.fs as pafs
        except ImportError:
            raise QtcError(f"--storage {given}: a URI store needs the 'pyarrow' package (as Ray "
                           "Tune's storage_path does): pip install pyarrow; a path every node "
                           "mounts needs nothing") from None
        try:
            self.fs, self.base = pafs.FileSystem.from_uri(uri)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a bad URI
            raise QtcError(f"--storage {given}: cannot open it ({type(err).__name__}: {err})") from None
        self.given, self.sweep_name, self.uri, self._pafs = given, sweep_name, uri, pafs

    def __repr__(self) -> str:
        return self.uri

    def __reduce__(self):      # a file system object may hold credentials and sockets: reopen
        return (ArrowStore, (self.given, self.sweep_name))

    def _path(self, key: str) -> str:
        return f"{self.base.rstrip('/')}/{key}/{SNAPSHOT}"

    def put(self, key: str, files: Files) -> None:
        path = self._path(key)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        data = to_tar(files)
        if isinstance(self.fs, self._pafs.LocalFileSystem):      # a rename is atomic on a disk
            tmp = f"{path}.{os.getpid()}.tmp"
            with self.fs.open_output_stream(tmp) as fh:
                fh.write(data)
            self.fs.move(tmp, path)
        else:                                                     # an object PUT is atomic
            with self.fs.open_output_stream(path) as fh:
                fh.write(data)

    def get(self, key: str) -> Files | None:
        path = self._path(key)
        if self.fs.get_file_info(path).type != self._pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as fh:
            return from_tar(fh.read(), f"{self.uri}/{key}/{SNAPSHOT}")


def open_storage(text: str, sweep_name: str):
    """The store `--storage TEXT` names, for the sweep folder called `sweep_name`: a path (every
    node must mount it at that path) or a URI; snapshots go under TEXT/<sweep_name>/."""
    if "://" in text:
        return ArrowStore(text, sweep_name)
    root = Path(text).expanduser().resolve() / sweep_name
    try:
        guard.make_owned(root)
    except OSError as err:
        raise QtcError(f"--storage {text}: cannot create {root} ({err.strerror or err})") from None
    return FolderStore(root)


def scratch_root() -> Path:
    """This node's scratch folder for trials: $QTC_SCRATCH (qtc.settings), else the system's
    temporary folder."""
    return (settings().scratch or Path(tempfile.gettempdir())) / "qtc-trials"
