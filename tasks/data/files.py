"""A user's own data files, read into arrays: pure readers, no spec wiring.

Classification
    read_npz(path)        arrays x (N, ...) and y (N,) integer labels, optionally x_test and
                          y_test (both or neither); no other names
    read_folder(path)     one sub-folder per class (sorted names are labels 0, 1, ...), images of
                          one size, grey or RGB (PIL); hidden files are skipped
    read_cifar10(path)    CIFAR-10 as torchvision keeps it: cifar-10-batches-py/ with
                          data_batch_1..5, test_batch and batches.meta (python pickles, read by
                          an unpickler that builds only dicts, lists, strings and numpy arrays)
Forecasting
    read_csv(path, column=NAME | columns=[...], target=NAME)
                          a header row of names, then rows of numbers; only the columns used
                          must be numbers (a date column may stand beside them)
    read_npy(path)        a 1-D series (or (N, 1)); (N, k) with target=INDEX for k inputs

A malformed file is a located `SpecError` in that file: file:line:col for text
(`sine.csv:17:3: error: 'abc' is not a number`), the file and the array's name for arrays, the
image's path for a folder; never a traceback. Every reader returns its data with `digest`, the
sha256 of the bytes it read (of a folder: of each image's relative path and bytes, in order),
for the run's fingerprint: a resumed run can refuse changed data.
"""
from __future__ import annotations

import hashlib
import io
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qtc.errors import SpecError, did_you_mean

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
NPZ_ARRAYS = ("x", "y", "x_test", "y_test")
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{k}" for k in range(1, 6))
CIFAR_SIDE = 32


@dataclass(frozen=True, eq=False)
class Labelled:
    """Classification data read from files.

    `x` (N, ...) as stored: uint8 (N, C, H, W) images for a folder or CIFAR-10 (C = 1 grey,
    3 RGB), float32 for an npz file; `y` (N,) int64 labels. `x_test`/`y_test` when the source
    has a test split (else None: the task splits). `classes` names the labels 0, 1, ... where
    the source names them (folder names, CIFAR's label names); None for npz (labels are numbers).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: tuple[str, ...] | None
    digest: str


@dataclass(frozen=True, eq=False)
class Table:
    """A forecasting series read from a file: `inputs` (N,) for one column, (N, k) for several;
    `targets` (N,) the series to predict; `names` the input columns' names (a CSV's header,
    else their indices as text) and `target` the target's; float64."""

    inputs: np.ndarray
    targets: np.ndarray
    names: tuple[str, ...]
    target: str
    digest: str


def _error(path, message: str, *, line: int | None = None, column: int | None = None,
           source: str | None = None, hint: str | None = None) -> SpecError:
    return SpecError(message, file=str(path), line=line, column=column, source=source, hint=hint)


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise _error(path, "is a folder, not a file") from None
    except OSError as err:
        raise _error(path, f"cannot read the file: {err.strerror or err}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(source: str, path) -> str:
    """The `digest` its reader gives the data at `path` (source: csv, npy, npz, folder, cifar10),
    without parsing a file: what a sweep's node checks against the driver's copy."""
    if source in ("folder", "cifar10"):
        return (read_folder if source == "folder" else read_cifar10)(path).digest
    return _sha256(_read_bytes(path))


# --------------------------------------------------------------------------- CSV

def _text(path, data: bytes) -> str:
    """UTF-8 text (a byte-order mark dropped); a byte that is not UTF-8 is located."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[:err.start]
        line = before.count(b"\n") + 1
        column = err.start - (before.rfind(b"\n") + 1) + 1
        raise _error(path, "the file is not UTF-8 text", line=line, column=column,
                     hint="save it as UTF-8 (plain comma-separated text)") from None


def _fields(line: str, where, lineno: int, source: str) -> list[tuple[str, int]]:
    """The comma-separated fields of one line with the 1-based column each starts at; a field
    may be double-quoted ("" inside is a quote). Leading and trailing blanks are dropped."""
    out, i, n = [], 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        start = i
        if i < n and line[i] == '"':
            value, i = [], i + 1
            while True:
                if i >= n:
                    raise _error(where, "a quoted field is not closed", line=lineno,
                                 column=start + 1, source=source)
                if line[i] == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        value.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                value.append(line[i])
                i += 1
            while i < n and line[i] in " \t":
                i += 1
            if i < n and line[i] != ",":
                raise _error(where, "text after a quoted field", line=lineno, column=i + 1,
                             source=source, hint="put a comma between fields")
            text = "".join(value)
        else:
            end = line.find(",", i)
            end = n if end < 0 else end
            text, i = line[i:end].rstrip(" \t"), end
        out.append((text, start + 1))
        if i >= n:
            return out
        i += 1                          # the comma


def read_csv(path, *, column: str | None = None, columns=None, target: str | None = None) -> Table:
    """A series from a CSV file with a header row. `column NAME` (or the file's only column)
    is a univariate series; `columns [...]` with `target NAME` are several inputs per time step
    and the series to predict (the target may be one of the inputs)."""
    data = _read_bytes(path)
    text = _text(path, data)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()                     # blank lines at the end
    if not lines:
        raise _error(path, "the file is empty: expected a header row of column names, then rows "
                     "of numbers", hint="e.g. 't,value' then '0,0.5'")
    header = _fields(lines[0], path, 1, text)
    names = [name for name, _ in header]
    _check_header(path, header, text)
    used, target_name = _chosen(path, names, column, columns, target, text)
    if len(lines) == 1:
        raise _error(path, "the file has a header but no rows of data", line=1,
                     column=len(lines[0]) + 1, source=text)
    index = {name: k for k, name in enumerate(names)}
    wanted = sorted({index[name] for name in (*used, target_name)})
    values = np.empty((len(lines) - 1, len(names)), dtype=np.float64)
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise _error(path, "an empty row (a missing time step?)", line=lineno, column=1,
                         source=text, hint="remove the blank line or fill in the row")
        fields = _fields(line, path, lineno, text)
        if len(fields) != len(names):
            at = fields[len(names)][1] if len(fields) > len(names) else len(line) + 1
            raise _error(path, f"this row has {len(fields)} field{'s' * (len(fields) != 1)}, the "
                         f"header {len(names)}", line=lineno, column=at, source=text)
        for k in wanted:
            raw, col = fields[k]
            values[lineno - 2, k] = _number(path, raw, lineno, col, text, names[k])
    inputs = values[:, [index[name] for name in used]]
    return Table(inputs[:, 0] if len(used) == 1 and columns is None else inputs,
                 values[:, index[target_name]], tuple(used), target_name, _sha256(data))


def _check_header(path, header: list[tuple[str, int]], text: str) -> None:
    seen: dict[str, int] = {}
    for name, col in header:
        if not name:
            raise _error(path, "an empty column name in the header", line=1, column=col,
                         source=text, hint="the first row names every column, e.g. 't,value'")
        if _is_number(name):
            raise _error(path, f"the header row holds the number {name!r}: the first row must name "
                         "the columns", line=1, column=col, source=text,
                         hint="add a header row, e.g. 't,value'")
        if name in seen:
            raise _error(path, f"column {name!r} is named twice in the header (first at column "
                         f"{seen[name]})", line=1, column=col, source=text)
        seen[name] = col


def _chosen(path, names: list[str], column, columns, target, text: str) -> tuple[list[str], str]:
    """The input columns and the target column the options name, each checked against the header."""
    def known(name) -> str:
        if name not in names:
            hint = did_you_mean(str(name), names)
            raise _error(path, f"no column {name!r} in the header (columns: {', '.join(names)})",
                         line=1, column=1, source=text, hint=hint)
        return name
    if column is not None and columns is not None:
        raise _error(path, "give `column NAME` or `columns [...]` with a `target`, not both")
    if columns is not None:
        used = [known(c) for c in columns]
        if not used:
            raise _error(path, "`columns` names no column")
        if len(set(used)) != len(used):
            raise _error(path, f"`columns` names a column twice: {used}")
        if target is None:
            raise _error(path, "several input `columns` need a `target` column to predict",
                         hint=f"e.g. target {used[0]}")
        return used, known(target)
    if column is None:
        if len(names) != 1:
            raise _error(path, f"the file has {len(names)} columns ({', '.join(names)}): say which "
                         "to forecast", hint=f"column {names[-1]}")
        column = names[0]
    column = known(column)
    if target is not None and known(target) != column:
        raise _error(path, f"`target {target}` differs from `column {column}`: a univariate series "
                     "predicts its own next value", hint="use `columns [...]` with `target` for inputs "
                     "other than the target")
    return [column], column


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(path, raw: str, line: int, column: int, text: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        shown = repr(raw) if raw else "an empty field"
        raise _error(path, f"{shown} is not a number (column {name!r})", line=line, column=column,
                     source=text) from None
    if not math.isfinite(value):
        raise _error(path, f"{raw!r} is not a finite number (column {name!r})", line=line,
                     column=column, source=text)
    return value


# --------------------------------------------------------------------------- npy / npz

def _numeric(path, name: str, array: np.ndarray) -> np.ndarray:
    """A real-valued array with finite values, as float64; anything else is located by name."""
    what = f"array {name!r}" if name else "the array"
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) \
            or np.issubdtype(array.dtype, np.complexfloating):
        raise _error(path, f"{what} holds {array.dtype} values, not real numbers")
    out = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        at = np.unravel_index(bad[0], array.shape)
        raise _error(path, f"{what} holds {out[at]} at index {list(map(int, at))} (and "
                     f"{bad.size - 1} more): values must be finite numbers")
    return out


def read_npy(path, *, target: int | None = None) -> Table:
    """A series from a .npy array: 1-D (or (N, 1)); (N, k) inputs with `target` the index of
    the column to predict."""
    data = _read_bytes(path)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise _error(path, f"not a NumPy .npy array file ({_first_line(err)})",
                     hint="write it with numpy.save") from None
    if isinstance(array, np.lib.npyio.NpzFile):
        raise _error(path, "is an .npz archive, not one .npy array", hint="use `data npy` on an array "
                     "written by numpy.save")
    if array.ndim == 0 or array.ndim > 2 or array.size == 0:
        raise _error(path, f"the array has shape {array.shape}: expected a series (N,), (N, 1), or "
                     "(N, k) with a target column")
    values = _numeric(path, "", array)
    if values.ndim == 1 or values.shape[1] == 1 and target in (None, 0):
        series = values.reshape(-1)
        return Table(series, series, ("0",), "0", _sha256(data))
    k = values.shape[1]
    if target is None:
        raise _error(path, f"the array has {k} columns (shape {array.shape}): say which is the "
                     "target", hint="target INDEX (from 0)")
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < k:
        raise _error(path, f"target {target!r} is not a column of the array: give 0 to {k - 1}")
    return Table(values, values[:, target], tuple(str(i) for i in range(k)), str(target), _sha256(data))


def read_npz(path) -> Labelled:
    """Classification data from an .npz archive (numpy.savez): x (N, ...) and y (N,) integer
    labels, optionally x_test and y_test with the same example shape."""
    data = _read_bytes(path)
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise _error(path, f"not a NumPy .npz archive ({_first_line(err)})",
                     hint="write it with numpy.savez(path, x=..., y=...)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _error(path, "is one .npy array, not an .npz archive of x and y",
                     hint="numpy.savez(path, x=..., y=...)")
    with archive:
        names = list(archive.files)
        for name in names:
            if name not in NPZ_ARRAYS:
                hint = f"did you mean {name.lower()!r}?" if name.lower() in NPZ_ARRAYS \
                    else did_you_mean(name, NPZ_ARRAYS)
                raise _error(path, f"unexpected array {name!r} (arrays: {', '.join(names)}); "
                             "expected x and y, optionally x_test and y_test", hint=hint)
        for name in ("x", "y"):
            if name not in names:
                raise _error(path, f"no array {name!r} (arrays: {', '.join(names) or 'none'}); "
                             "expected x and y, optionally x_test and y_test")
        if ("x_test" in names) != ("y_test" in names):
            have, lack = ("x_test", "y_test") if "x_test" in names else ("y_test", "x_test")
            raise _error(path, f"array {have!r} without {lack!r}: give both or neither")
        try:
            arrays = {name: archive[name] for name in names}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise _error(path, f"an array cannot be read ({_first_line(err)})") from None
    x, y = _examples(path, "x", arrays["x"]), _labels(path, "y", arrays["y"])
    _same_count(path, ("x", x), ("y", y))
    if "x_test" not in arrays:
        return Labelled(x, y, None, None, None, _sha256(data))
    x_test, y_test = _examples(path, "x_test", arrays["x_test"]), _labels(path, "y_test", arrays["y_test"])
    _same_count(path, ("x_test", x_test), ("y_test", y_test))
    if x_test.shape[1:] != x.shape[1:]:
        raise _error(path, f"array 'x_test' holds examples of shape {x_test.shape[1:]}, 'x' of "
                     f"shape {x.shape[1:]}: they must match")
    return Labelled(x, y, x_test, y_test, None, _sha256(data))


def _examples(path, name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim < 2 or array.shape[0] == 0 or array.size == 0:
        raise _error(path, f"array {name!r} has shape {array.shape}: expected (examples, ...) with at "
                     "least one example of at least one value, e.g. (N, 784) or (N, 1, 28, 28)")
    return _numeric(path, name, array).astype(np.float32)


def _labels(path, name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        raise _error(path, f"array {name!r} has shape {array.shape}: expected (examples,) class labels")
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        values = array.astype(np.int64)
    else:
        values = _numeric(path, name, array)
        bad = np.flatnonzero(values != np.round(values))
        if bad.size:
            raise _error(path, f"array {name!r} holds {values[bad[0]]} at index {int(bad[0])}: class "
                         "labels are integers")
    # A spec names classes 0 or more (`classes [0, 1]`): a -1 label cannot be chosen, and
    # mapping -1/+1 to outputs silently would be a guess.
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise _error(path, f"array {name!r} holds {int(values[bad[0]])} at index {int(bad[0])}: class "
                     "labels are integers 0 or more", hint="e.g. labels -1/+1 as 0/1: y = (y > 0)")
    return values.astype(np.int64)


def _same_count(path, a: tuple[str, np.ndarray], b: tuple[str, np.ndarray]) -> None:
    if len(a[1]) != len(b[1]):
        raise _error(path, f"array {a[0]!r} has {len(a[1])} examples, {b[0]!r} {len(b[1])}: one "
                     "label per example")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------- image folder

def read_folder(path) -> Labelled:
    """One sub-folder per class (labels in sorted name order), images of one size in each; all
    grey images give (N, 1, H, W), any colour image makes every image RGB (N, 3, H, W)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise _error(path, "is not a folder" if root.exists() else "no such folder",
                     hint="one sub-folder per class, e.g. digits/0/*.png, digits/1/*.png")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise _error(path, f"{len(folders)} class folder{'s' * (len(folders) != 1)}: expected one "
                     "sub-folder per class, at least two", hint="e.g. digits/0/*.png, digits/1/*.png")
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        images = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise _error(folder, "the class folder has no images (" + ", ".join(IMAGE_SUFFIXES) + ")")
        files += [(p, label) for p in images]
    digest, pictures, first = hashlib.sha256(), [], None
    for p, _ in files:
        data = _read_bytes(p)
        digest.update(p.relative_to(root).as_posix().encode() + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                picture = im.copy()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
            why = re.sub(r" <[^>]* at 0x[0-9a-f]+>", "", _first_line(err))   # PIL names its buffer
            raise _error(p, f"not an image PIL can read ({why})") from None
        if first is None:
            first = (p, picture.size)
        elif picture.size != first[1]:
            raise _error(p, f"the image is {_size(picture.size)}, {first[0].relative_to(root)} is "
                         f"{_size(first[1])}: every image must have one size",
                         hint="resize them to one size first")
        pictures.append(picture)
    grey = all(im.mode in ("1", "L", "I;16", "I", "F") for im in pictures)
    mode = "L" if grey else "RGB"
    x = np.stack([_pixels(im, mode) for im in pictures])
    y = np.array([label for _, label in files], dtype=np.int64)
    return Labelled(x, y, None, None, tuple(f.name for f in folders), digest.hexdigest())


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _pixels(im, mode: str) -> np.ndarray:
    """(C, H, W) uint8: 8-bit grey or RGB (16-bit and float grey scaled to 0..255, palettes
    expanded, an alpha channel dropped)."""
    from PIL import Image

    if im.mode in ("I;16", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode == "I;16" else max(float(a.max()), 1.0)
        im = Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8))
    a = np.asarray(im.convert(mode), dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


# --------------------------------------------------------------------------- CIFAR-10

class _ArraysOnly(pickle.Unpickler):
    """Builds what CIFAR's python files hold (dicts, lists, bytes, strings, numpy arrays) and
    nothing else: a pickle can run any callable it names, so any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            if module == "numpy.core.multiarray" and hasattr(np, "_core"):
                module = "numpy._core.multiarray"   # numpy 2's name: no deprecation warning
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 file never holds")


def _unpickle(path) -> tuple[dict, bytes]:
    data = _read_bytes(path)
    try:
        out = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:    # noqa: BLE001 - any failure of a hostile or truncated pickle is its file's error
        raise _error(path, f"not a CIFAR-10 python batch ({_first_line(err)})",
                     hint="the files of cifar-10-python.tar.gz, unpacked as they are") from None
    if not isinstance(out, dict):
        raise _error(path, f"holds a {type(out).__name__}, not a CIFAR-10 batch (a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in out.items()}, data


def cifar10_dir(path) -> Path:
    """The folder holding the batches: `path` itself or its cifar-10-batches-py/ sub-folder."""
    root = Path(path)
    inner = root / CIFAR_DIR
    return inner if inner.is_dir() else root


def read_cifar10(path) -> Labelled:
    """CIFAR-10 from torchvision's python files under `path` (or `path`/cifar-10-batches-py):
    the five training batches in order, then test_batch; x uint8 (N, 3, 32, 32)."""
    folder = cifar10_dir(path)
    needed = (*CIFAR_TRAIN, "test_batch", "batches.meta")
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise _error(folder, f"no CIFAR-10 file{'s' * (len(missing) > 1)} {', '.join(missing)} here",
                     hint=f"unpack cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) "
                     f"so that {CIFAR_DIR}/ holds data_batch_1..5, test_batch and batches.meta")
    digest = hashlib.sha256()
    meta, data = _unpickle(folder / "batches.meta")
    digest.update(data)
    names = [n.decode("latin1") if isinstance(n, bytes) else n for n in meta.get("label_names") or ()]
    if not (len(names) == 10 and all(isinstance(n, str) for n in names)):
        raise _error(folder / "batches.meta", "no 'label_names' list of the 10 class names")
    parts = []
    for name in needed[:-1]:
        batch, data = _unpickle(folder / name)
        digest.update(data)
        parts.append(_cifar_batch(folder / name, batch))
    x = np.concatenate([p[0] for p in parts[:-1]])
    y = np.concatenate([p[1] for p in parts[:-1]])
    return Labelled(x, y, parts[-1][0], parts[-1][1], tuple(names), digest.hexdigest())


def _cifar_batch(path, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    for key in ("data", "labels"):
        if key not in batch:
            raise _error(path, f"no {key!r} in the batch (keys: {', '.join(map(str, batch))})")
    data, labels = batch["data"], batch["labels"]
    side = CIFAR_SIDE * CIFAR_SIDE * 3
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == side and len(data)):
        shape = getattr(data, "shape", type(data).__name__)
        raise _error(path, f"'data' is {shape} ({getattr(data, 'dtype', '')}): expected uint8 "
                     f"(images, {side}), one row of 3 x 32 x 32 pixels per image")
    y = np.asarray(labels)
    if y.shape != (len(data),) or not np.issubdtype(y.dtype, np.integer):
        raise _error(path, f"'labels' is not one integer label per image ({len(data)} images)")
    if y.min() < 0 or y.max() > 9:
        raise _error(path, f"'labels' holds {int(y.min() if y.min() < 0 else y.max())}: CIFAR-10's "
                     "labels are 0 to 9")
    return data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), y.astype(np.int64)
