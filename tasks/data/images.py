"""Image-classification data: MNIST / FashionMNIST, filtered to the spec's classes.

Data is read through torchvision's dataset classes, which want *uncompressed* IDX files in
``ROOT/<Name>/raw/`` (Name = ``MNIST`` or ``FashionMNIST``) and otherwise try to download. We
look for the files ourselves, in this order:

1. ``--data-root DIR`` (the ``data_root`` argument),
2. ``$QTC_DATA``,
3. the user cache, ``$XDG_CACHE_HOME/qtc/data`` or ``~/.cache/qtc/data``,
4. for FashionMNIST, Debian's ``/usr/share/datasets/fashion-mnist/`` (package
   ``dataset-fashion-mnist``).

In each place the four IDX files (plain or ``.gz``) may sit under ``<Name>/raw/``, ``<Name>/``,
a folder named after the data set (``mnist``, ``fashion-mnist``, ``fashion_mnist``) or directly
in the place itself. A set already in torchvision's layout, uncompressed, is used where it is;
anything else is decompressed (or copied) into the cache under a folder keyed by the source's
path, sizes and times, atomically and only after its IDX headers check out, so that a corrupt or
truncated source never leaves a file a later run would trust. Download happens only when asked.
``identity`` says which images were read (counts and a sha256), for a run's fingerprint.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from qtc.errors import QtcError
from qtc.runtime.cache import user_cache
from qtc.settings import settings

DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CLASSES = range(10)           # both sets: labels 0..9 (digits; FashionMNIST's ten garments)
# Other folder names a person is likely to have used for each data set.
ALIASES = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist", "fashionmnist")}
DEBIAN_DIRS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
DEBIAN_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGE_SIDE = 28
_CHUNK = 1 << 20


class DataNotFound(QtcError):
    """No copy of the data set in any place searched (as opposed to a corrupt copy)."""


@dataclass(frozen=True)
class _Place:
    """One place we search: a label for messages and a directory (None when unset)."""

    label: str
    path: Path | None
    why_unset: str = ""


# --------------------------------------------------------------------------- search order

def cache_dir() -> Path:
    """The user cache for data: ``$XDG_CACHE_HOME/qtc/data``, else ``~/.cache/qtc/data``."""
    return user_cache("data")


def _places(dataset: str, data_root: str | os.PathLike | None) -> list[_Place]:
    env = settings().data
    places = [
        _Place("--data-root", Path(data_root).expanduser() if data_root else None, "not given"),
        _Place("$QTC_DATA", env, "not set"),
        _Place("user cache", cache_dir()),
    ]
    if dataset in DEBIAN_DIRS:
        places.append(_Place(f"Debian package {DEBIAN_PACKAGES[dataset]}", DEBIAN_DIRS[dataset]))
    return places


def _candidate_dirs(dataset: str, place: Path) -> list[Path]:
    """Directories inside one place that may hold the four files, most specific first."""
    name = DATASETS[dataset]
    subdirs = [place / name / "raw", place / name] + [place / a for a in ALIASES[dataset]]
    return [d for d in subdirs if d.is_dir()] + [place]


def _files_in(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (each plain, else ``.gz``), or None if any is missing."""
    found = {}
    for stem in FILES:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
    return found if len(found) == len(FILES) else None


def _partial_note(directory: Path) -> str | None:
    """A note when a directory holds some of the files but not all (a likely user mistake)."""
    present = [s for s in FILES if (directory / s).is_file() or (directory / f"{s}.gz").is_file()]
    if not present or len(present) == len(FILES):
        return None
    missing = ", ".join(f"{s}[.gz]" for s in FILES if s not in present)
    return f"{directory} has only some of the files (missing {missing})"


def find_root(dataset: str, data_root: str | os.PathLike | None = None) -> Path:
    """The root directory to give torchvision for ``dataset`` (``"mnist"`` or ``"fashion_mnist"``).

    The returned root holds ``<Name>/raw/`` with the four uncompressed, header-checked IDX files.
    Searches ``data_root``, ``$QTC_DATA``, the user cache and (FashionMNIST) Debian's package
    directory, in that order; ``.gz`` files are decompressed into the cache. Raises ``QtcError``
    naming every place looked and how to fix it when nothing is found, or when the files found
    are corrupt.
    """
    dataset = _check_dataset(dataset)
    notes = []
    for place in _places(dataset, data_root):
        if place.path is None:
            notes.append(f"  {place.label}: {place.why_unset}")
            continue
        if not place.path.is_dir():
            notes.append(f"  {place.label}: {place.path} (no such directory)")
            continue
        partial = []
        for directory in _candidate_dirs(dataset, place.path):
            files = _files_in(directory)
            other = files and directory == place.path and _looks_like_the_other(dataset, files)
            if other:               # the same four file names: a bare place may hold either set
                partial.append(other)
            elif files is not None:
                return _usable_root(dataset, files)
            else:
                partial += filter(None, [_partial_note(directory)])
        notes += [f"  {place.label}: {p}" for p in partial] or \
            [f"  {place.label}: {place.path} (no {DATASETS[dataset]} files)"]
    raise DataNotFound(_not_found_message(dataset, notes))


# Mean pixel (0..1) of the training images: MNIST 0.1307, FashionMNIST 0.2860 (the normalisation
# constants torchvision's users quote). Files placed directly in a searched folder carry no name
# that tells the two sets apart, so the first images are looked at; a mistaken set would train
# and report on the wrong pictures without an error.
MEAN_PIXEL = {"mnist": 0.1307, "fashion_mnist": 0.2860}
_SAMPLE_IMAGES = 1000


def _looks_like_the_other(dataset: str, files: dict[str, Path]) -> str | None:
    """A note when the training images' mean pixel is nearer the other data set's, else None."""
    path = files["train-images-idx3-ubyte"]
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            f.read(16)
            pixels = f.read(_SAMPLE_IMAGES * IMAGE_SIDE * IMAGE_SIDE)
    except (OSError, EOFError, zlib.error):
        return None                    # unreadable: the checks of _usable_root say how
    if not pixels:
        return None
    mean = sum(pixels) / len(pixels) / 255
    nearest = min(MEAN_PIXEL, key=lambda d: abs(MEAN_PIXEL[d] - mean))
    if nearest == dataset:
        return None
    return (f"{path.parent} holds the four files directly and they look like {DATASETS[nearest]} "
            f"(mean pixel {mean:.3f} over the first training images; {DATASETS[nearest]} "
            f"{MEAN_PIXEL[nearest]}, {DATASETS[dataset]} {MEAN_PIXEL[dataset]}): not used as "
            f"{DATASETS[dataset]}; put {DATASETS[dataset]}'s files under "
            f"{path.parent / DATASETS[dataset] / 'raw'}")


def _not_found_message(dataset: str, notes: list[str]) -> str:
    name = DATASETS[dataset]
    fixes = ["pass --data-root DIR", "set QTC_DATA=DIR"]
    if dataset in DEBIAN_PACKAGES:
        fixes.append(f"run `apt-get install {DEBIAN_PACKAGES[dataset]}` (as root)")
    fixes.append("allow download (the spec's download option or the --download flag) "
                 "on a machine with internet access")
    return "\n".join(
        [f"{name} data not found. Looked in:", *notes,
         f"Each place may hold the four IDX files ({', '.join(FILES)}; plain or .gz) directly, "
         f"or under {name}/raw/.",
         "To fix: " + "; or ".join(fixes) + "."])


def _root(dataset: str, data_root, download: bool) -> Path:
    """Where the data set's files are: found locally, else (``download``) fetched into the cache."""
    try:
        return find_root(dataset, data_root)
    except DataNotFound:
        if not download:
            raise
        return download_to_cache(dataset)


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise QtcError(f"unknown image data set '{dataset}'; expected one of: {', '.join(DATASETS)}")
    return dataset


# --------------------------------------------------------------------------- IDX checks

def _idx_header(path: Path, head: bytes, size: int, *, images: bool) -> int:
    """Check an IDX header against the file size; return the number of items."""
    ndim = 3 if images else 1
    what = "images" if images else "labels"
    if len(head) < 4 + 4 * ndim:
        raise QtcError(f"{path}: too short to be an IDX {what} file ({size} bytes); "
                       "the file is truncated or corrupt — delete it or fetch it again")
    zero, dtype, nd = struct.unpack(">HBB", head[:4])
    if zero != 0 or dtype != 0x08 or nd != ndim:
        raise QtcError(f"{path}: not an IDX {what} file (magic {head[:4].hex()}, expected "
                       f"0000080{ndim}); the file is corrupt or is not {what}")
    dims = struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim])
    if images and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise QtcError(f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    expected = 4 + 4 * ndim + dims[0] * (IMAGE_SIDE * IMAGE_SIDE if images else 1)
    if size != expected:
        raise QtcError(f"{path}: header says {dims[0]} {what} ({expected} bytes) but the data has "
                       f"{size} bytes; the file is truncated or corrupt — delete it or fetch it again")
    return dims[0]


def _check_idx_file(path: Path, *, shown_as: Path | None = None) -> int:
    """Header-check one uncompressed IDX file on disk; return its item count."""
    with open(path, "rb") as f:
        head = f.read(16)
    return _idx_header(shown_as or path, head, path.stat().st_size, images="images" in path.name)


def _check_set(files: dict[str, Path], shown: dict[str, Path] | None = None) -> None:
    """Check the four uncompressed files and that images and labels agree in number."""
    shown = shown or files
    counts = {s: _check_idx_file(files[s], shown_as=shown[s]) for s in FILES}
    for split in ("train", "t10k"):
        n_img, n_lab = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if n_img != n_lab:
            raise QtcError(f"{shown[f'{split}-images-idx3-ubyte']} has {n_img} images but "
                           f"{shown[f'{split}-labels-idx1-ubyte']} has {n_lab} labels; "
                           "the files do not belong together")


# --------------------------------------------------------------------------- into the cache

def _usable_root(dataset: str, files: dict[str, Path]) -> Path:
    """A root torchvision can read for these files: in place if possible, else a cache copy."""
    name = DATASETS[dataset]
    directory = files[FILES[0]].parent
    in_layout = directory.name == "raw" and directory.parent.name == name
    if in_layout and all(p.name == s for s, p in files.items()):
        _check_set(files)
        return directory.parent.parent
    return _materialize(dataset, files)


def _source_key(files: dict[str, Path]) -> str:
    """A cache key: the sources' real paths, sizes and mtimes (a changed source is re-read)."""
    h = hashlib.sha256()
    for stem in FILES:
        st = files[stem].stat()
        h.update(f"{files[stem].resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _materialize(dataset: str, files: dict[str, Path]) -> Path:
    """Decompress (or copy) the files into ``cache/src-<key>/<Name>/raw/``; return that root."""
    root = cache_dir() / f"src-{_source_key(files)}"
    raw = root / DATASETS[dataset] / "raw"
    final = {s: raw / s for s in FILES}
    if all(p.is_file() for p in final.values()):
        try:
            _check_set(final)
            return root
        except QtcError:
            pass  # a damaged cache copy (e.g. edited by hand): rebuild it from the source
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QtcError(f"cannot create the data cache {raw}: {e.strerror}; "
                       "set XDG_CACHE_HOME to a writable directory") from None
    temps: dict[str, Path] = {}
    try:
        for stem in FILES:
            temps[stem] = _unpack_to_temp(files[stem], raw)
        _check_set(temps, shown=files)
        for stem in FILES:  # every file checked: only now do they become visible
            os.replace(temps.pop(stem), final[stem])
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return root


def _unpack_to_temp(source: Path, directory: Path) -> Path:
    """Copy ``source`` (gunzipping ``.gz``) into a new temp file in ``directory``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    opener = gzip.open if source.suffix == ".gz" else open
    try:
        with os.fdopen(fd, "wb") as out, opener(source, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
    except (OSError, EOFError, zlib.error) as e:
        tmp.unlink(missing_ok=True)
        raise QtcError(f"{source}: cannot read ({type(e).__name__}: {e}); the file is truncated "
                       "or corrupt — delete it or fetch it again") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


# --------------------------------------------------------------------------- identity

_IDENTITIES: dict[tuple, str] = {}


def identity(dataset: str, data_root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Which images a run of ``dataset`` reads, for its fingerprint (qtc.tasks.runs.runner.identity):
    ``"MNIST: 8000 train + 2000 test images, sha256 <hex>"``, the sha256 over the four uncompressed
    IDX files torchvision reads (found as ``load_classes`` finds them; downloaded as it would be
    when ``download``). The data set's name alone does not say which files a run read: MNIST's
    10k sample and the full set, or two people's folders, must never pass for one another, while
    a ``.gz`` and its plain copy are the same data. The counts make a difference readable at a
    glance. Cached per process by the files' paths, sizes and modification times: a sweep's plan
    fingerprints every trial, and hashing the full set takes a fraction of a second."""
    dataset = _check_dataset(dataset)
    root = _root(dataset, data_root, download)
    raw = root / DATASETS[dataset] / "raw"
    paths = [raw / stem for stem in FILES]
    stamp = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if stamp not in _IDENTITIES:
        h = hashlib.sha256()
        for path in paths:
            h.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda f=f: f.read(_CHUNK), b""):
                    h.update(chunk)
        n_train, n_test = _check_idx_file(paths[0]), _check_idx_file(paths[2])
        _IDENTITIES[stamp] = (f"{DATASETS[dataset]}: {n_train} train + {n_test} test images, "
                              f"sha256 {h.hexdigest()}")
    return _IDENTITIES[stamp]


# --------------------------------------------------------------------------- download

def torchvision_class(dataset: str):
    """torchvision's dataset class of `dataset` (its downloader, and its class names)."""
    import torchvision.datasets as tvd  # imported late: it is slow and only needed here
    return getattr(tvd, DATASETS[dataset])


def download_to_cache(dataset: str) -> Path:
    """Download ``dataset`` into the user cache (``cache/<Name>/raw/``); return the root.

    Downloads into a temporary folder, checks the files, then moves them into place, so an
    interrupted download never leaves files that look complete. ``QtcError`` when offline.
    """
    dataset = _check_dataset(dataset)
    name, cache = DATASETS[dataset], cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    except OSError as e:
        raise QtcError(f"cannot create the data cache {cache}: {e.strerror}; "
                       "set XDG_CACHE_HOME to a writable directory") from None
    try:
        try:
            torchvision_class(dataset)(str(staging), train=True, download=True)
        except Exception as e:  # torchvision reports network failures as several error types
            first = str(e).strip().splitlines()[:3]
            raise QtcError(f"downloading {name} failed ({type(e).__name__}: {' '.join(first)}); "
                           "is the network reachable? Otherwise put the IDX files in a folder and "
                           "pass --data-root DIR or set QTC_DATA=DIR") from None
        got = {s: staging / name / "raw" / s for s in FILES}
        _check_set(got)
        raw = cache / name / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for stem in FILES:
            os.replace(got[stem], raw / stem)
        return cache
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- loading

def chosen_classes(classes) -> tuple[int, ...]:
    """The labels a spec's `classes` names, in output order: a list as given, `all` every label."""
    return tuple(CLASSES) if classes == "all" else tuple(classes)


def _check_args(classes, normalize, limit) -> tuple[tuple[int, ...], float, float]:
    try:
        chosen = tuple(int(c) for c in classes)
    except (TypeError, ValueError):
        raise QtcError(f"classes must be two or more integers, got {classes!r}") from None
    if len(chosen) < 2:
        raise QtcError(f"classes must be two or more integers, got {list(chosen)}")
    if len(set(chosen)) != len(chosen):
        raise QtcError(f"the classes must differ, got {list(chosen)}")
    mean, std = (float(v) for v in normalize)
    if not std > 0:
        raise QtcError(f"normalize std must be positive, got {std}")
    if limit is not None and int(limit) < 1:
        raise QtcError(f"limit must be a positive number of images, got {limit}")
    return chosen, mean, std


def _class_split(data: torch.Tensor, targets: torch.Tensor, classes: tuple[int, ...],
                 mean: float, std: float, limit: int | None, where: str) -> TensorDataset:
    """Keep the chosen classes, relabel classes[k] as k, scale to float32 (N, 1, 28, 28)."""
    found = sorted(int(c) for c in torch.unique(targets))
    absent = [c for c in classes if c not in found]
    if absent:
        raise QtcError(f"class{'es' if len(absent) > 1 else ''} {absent} not in the {where}; "
                       f"classes found: {found}")
    index = torch.full((max(found) + 1,), -1, dtype=torch.int64)
    index[list(classes)] = torch.arange(len(classes))
    keep = index[targets.long()] >= 0
    x, y = data[keep], targets[keep]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    images = x.to(torch.float32).div_(255.0).sub_(mean).div_(std).unsqueeze(1).contiguous()
    return TensorDataset(images, index[y.long()])


def load_classes(dataset: str, classes, *, data_root: str | os.PathLike | None = None,
                 normalize=(0.5, 0.5), download: bool = False, limit: int | None = None
                 ) -> tuple[TensorDataset, TensorDataset]:
    """Train and test sets of ``dataset`` restricted to ``classes`` (classes[k] -> label k).

    Images are float32 tensors of shape (N, 1, 28, 28) scaled as ``(x/255 - mean) / std`` with
    ``(mean, std) = normalize``; labels are int64 0..K-1 (K = len(classes)). Everything is
    converted once, up front, so iterating costs nothing beyond indexing. ``limit`` keeps the first k images of each
    split. ``download=True`` allows fetching into the user cache when no local copy is found.
    """
    dataset = _check_dataset(dataset)
    classes, mean, std = _check_args(classes, normalize, limit)
    root = _root(dataset, data_root, download)
    cls = torchvision_class(dataset)
    splits = []
    for train, where in ((True, "training data"), (False, "test data")):
        try:
            ds = cls(str(root), train=train, download=False)
        except (RuntimeError, AssertionError, ValueError, OSError) as e:
            raise QtcError(f"torchvision could not read {DATASETS[dataset]} under {root}: {e}") from None
        where = f"{DATASETS[dataset]} {where} ({root / DATASETS[dataset] / 'raw'})"
        splits.append(_class_split(ds.data, ds.targets, classes, mean, std, limit, where))
    return splits[0], splits[1]
