"""A spec's own data file (`data csv "x.csv" ...`, npz, folder, cifar10, npy): where it is, what
it holds, and its digest for the run's fingerprint.

Where: an absolute path is itself; a relative one is looked for beside the spec, then under
`--data-root DIR`, then under `$QTC_DATA` (qtc.settings), the first that exists. A run folder's
copy of the spec names the path that was read (runner.record), so a resumed run reads the same
file wherever it was found. A user's data may live anywhere: only run folders and the files
beside a spec are held to qtc.tasks.runs.guard.

What: qtc.tasks.data.files reads it (a malformed file is a located error in that file); here it
becomes what the task kinds train on: classes as TensorDatasets (`classes`), a series
(`series`). Reads are cached per process by path, size and modification time, so a run's
preflight, fingerprint and training read a large file once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from qtc.dsl.data import FILE_SOURCES, scale_of
from qtc.dsl.task import TaskSpec
from qtc.errors import QtcError, SpecError
from qtc.settings import settings
from qtc.tasks.data import files
from qtc.tasks.data.series import Series, min_max

READERS = {"npz": files.read_npz, "folder": files.read_folder, "cifar10": files.read_cifar10}
SPLIT_SEED = 0      # the fixed shuffle before an npz or folder is split (not the run's seed)
_CACHE: dict[tuple, object] = {}


def is_file_source(spec: TaskSpec) -> bool:
    return spec.data is not None and spec.data.dataset in FILE_SOURCES


def _error(spec: TaskSpec, message: str, hint: str | None = None, *, at_file: bool = True) -> SpecError:
    """`message` located at the data statement's quoted path (or at the statement)."""
    data = spec.data
    line, column = data.line, data.column
    lines = (spec.source or "").splitlines()
    if at_file and line and 0 < line <= len(lines):
        found = lines[line - 1].find(f'"{data.file}"', (column or 1) - 1)
        column = found + 1 if found >= 0 else column
    return SpecError(message, file=spec.file, source=spec.source, line=line, column=column, hint=hint)


def resolve(spec: TaskSpec, data_root: str | os.PathLike | None = None) -> Path:
    """The data file (or folder) the spec names: absolute as written; relative beside the spec,
    under --data-root, then under $QTC_DATA. Not found: a located error naming every place."""
    data = spec.data
    written = Path(data.file).expanduser()
    folder = data.dataset in ("folder", "cifar10")
    if written.is_absolute():
        places = [("as written", written)]
    else:
        env = settings().data
        places = [("beside the spec", spec.folder.resolve() / written),
                  ("--data-root", Path(data_root).expanduser() / written if data_root else None),
                  ("$QTC_DATA", env / written if env else None)]
    for _, path in places:
        if path is not None and (path.is_dir() if folder else path.exists()):
            return path
    looked = "; ".join(f"{label}: {path if path else 'not set'}" for label, path in places)
    what = "folder" if folder else "file"
    raise _error(spec, f"data {what} '{data.file}' not found ({looked})",
                 "relative paths are looked for beside the spec, then under --data-root DIR, "
                 "then under $QTC_DATA; or write an absolute path")


def _stamp(path: Path) -> tuple:
    """What changes when the data changes: size and mtime of the file, or of every file below a
    folder (two levels: a class folder's images, cifar-10-batches-py's batches)."""
    if path.is_file():
        st = path.stat()
        return ((str(path), st.st_size, st.st_mtime_ns),)
    out = []
    for top, dirs, names in os.walk(path):
        if Path(top) != path:
            dirs[:] = []
        out += [(os.path.join(top, n), *_size_time(os.path.join(top, n))) for n in sorted(names)]
    return tuple(out)


def _size_time(name: str) -> tuple:
    try:
        st = os.stat(name)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


def read(spec: TaskSpec, data_root: str | os.PathLike | None = None):
    """The spec's data file read (files.Labelled or files.Table), cached while it is unchanged."""
    data = spec.data
    path = resolve(spec, data_root)
    key = (data.dataset, data.column_name, data.columns, data.target, _stamp(path))
    if key not in _CACHE:
        if data.dataset == "csv":
            got = files.read_csv(path, column=data.column_name, columns=data.columns, target=data.target)
        elif data.dataset == "npy":
            got = files.read_npy(path, target=data.target)
        else:
            got = READERS[data.dataset](path)
        _CACHE.clear()          # one file at a time: a sweep's many specs do not pile up arrays
        _CACHE[key] = got
    return _CACHE[key]


def digest(spec: TaskSpec, data_root: str | os.PathLike | None = None) -> str | None:
    """The sha256 of the spec's data file (of a folder's images), None for a built-in data set."""
    return read(spec, data_root).digest if is_file_source(spec) else None


# --------------------------------------------------------------------------- classes

@dataclass(frozen=True, eq=False)
class Classes:
    """A file source's classes as the classifier trains on them: images or arrays as float32,
    labels 0..K-1 (output k is `labels[k]` of the file, named `names[k]`)."""
    train: TensorDataset
    test: TensorDataset
    labels: tuple[int, ...]
    names: tuple[str, ...]
    scaling: str                  # how the stored values became the network's inputs, in words


def labels_of(spec: TaskSpec, got: files.Labelled) -> tuple[int, ...]:
    """The file's labels the spec's `classes` picks, in output order (`all` or none: every label)."""
    present = sorted(set(got.y.tolist()) | set(() if got.y_test is None else got.y_test.tolist()))
    every = tuple(range(len(got.classes))) if got.classes else tuple(present)
    chosen = every if spec.data.classes in (None, "all") else tuple(spec.data.classes)
    absent = [c for c in chosen if c not in present]
    if absent:
        shown = ", ".join(map(str, present))
        raise _error(spec, f"class {absent[0]} is not a label of {spec.data.file} (labels: {shown})",
                     at_file=False)
    if len(chosen) < 2:
        raise _error(spec, f"{spec.data.file} holds one class ({chosen[0]}): a classifier needs two "
                     "or more")
    return chosen


def classes(spec: TaskSpec, data_root=None, limit: int | None = None) -> Classes:
    """Train and test sets of the spec's classes from its file (split when the file has no test
    examples: a fixed shuffle, then the first `split` fraction trains)."""
    data, got = spec.data, read(spec, data_root)
    chosen = labels_of(spec, got)
    x, y, x_test, y_test = got.x, got.y, got.x_test, got.y_test
    if x_test is None:
        order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
        n_train = int(data.split * len(y))
        if not 0 < n_train < len(y):
            raise _error(spec, f"split {data.split} of {len(y)} examples leaves {n_train} to train "
                         f"and {len(y) - n_train} to test: both must be non-empty", at_file=False)
        x, y, x_test, y_test = x[order[:n_train]], y[order[:n_train]], x[order[n_train:]], y[order[n_train:]]
    images = x.dtype == np.uint8
    mean, std = data.normalize
    parts = [_kept(x, y, chosen, limit, images, mean, std), _kept(x_test, y_test, chosen, limit, images, mean, std)]
    names = tuple(got.classes[c] if got.classes else str(c) for c in chosen)
    scaling = (f"each pixel x (0..255) as `(x / 255 - {mean:g}) / {std:g}` (the spec's `normalize "
               f"[{mean:g}, {std:g}]`)" if images else "the file's values as stored (float32)")
    return Classes(parts[0], parts[1], chosen, names, scaling)


def _kept(x: np.ndarray, y: np.ndarray, chosen, limit, images: bool, mean: float, std: float) -> TensorDataset:
    # Output k is chosen[k]: labels are mapped by a search in the sorted chosen labels, not by a
    # table as long as the largest label (a file's labels may be ids such as 10**9).
    order = np.argsort(chosen)
    ranked = np.asarray(chosen, dtype=np.int64)[order]
    keep = np.isin(y, ranked)
    x, y = x[keep][:limit], order[np.searchsorted(ranked, y[keep])][:limit].astype(np.int64)
    xs = torch.from_numpy(np.ascontiguousarray(x))
    xs = xs.to(torch.float32).div_(255.0).sub_(mean).div_(std) if images else xs.to(torch.float32)
    return TensorDataset(xs, torch.from_numpy(y))


# --------------------------------------------------------------------------- series

def series(spec: TaskSpec, data_root=None) -> tuple[Series, str]:
    """The spec's series from its file, min-max scaled to [-1, 1] unless `scale false` (each input
    column and the target on their own), and a one-line description."""
    data, got = spec.data, read(spec, data_root)
    name = Path(data.file).name
    scale = scale_of(data)
    inputs, targets = got.inputs, got.targets
    several = inputs.ndim == 2
    what = (f"columns {', '.join(got.names)} -> target {got.target}" if several else
            f"column {got.target}" if data.dataset == "csv" else "the array")
    ranges: dict[str, tuple[float, float]] = {}
    try:
        if scale and several:
            cols = []
            for k, col in enumerate(got.names):
                scaled, ranges[f"input {col}"] = min_max(inputs[:, k])
                cols.append(scaled)
            inputs = np.stack(cols, axis=1)
            targets, ranges[f"target {got.target}"] = min_max(targets)
        elif scale:
            targets, ranges["series"] = min_max(targets)
            inputs = targets
    except QtcError as err:        # a constant column: say which file
        raise _error(spec, f"{name}: {err}", "a constant series has nothing to forecast; "
                     "'scale false' keeps the raw values") from None
    series_ = Series(name, inputs, targets, np.arange(len(targets), dtype=np.float64), ranges)
    return series_, (f"{name}: {what}, {len(targets)} steps"
                     + ("; min-max to [-1, 1]" if scale else "; unscaled"))
