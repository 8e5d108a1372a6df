"""Build cache for compiled kernels: content-addressed, atomic, self-checking.

An entry is keyed by sha256(source + compiler identity + flags + a tag, the Target's key). The
shared object is written to a temporary file and renamed to `<key>-<sha of the object>.so`;
then a small JSON index
`<key>.json` (size and sha256 of the object) is written the same way. A reader trusts an entry
only when the index parses and the object's size and hash match it; anything else (truncated
file, corrupt index, a half-finished build of another process) is rebuilt, never loaded. Two
processes building the same key at once both succeed: each renames complete files only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from qtc.compiler.render.common import PART   # the kernel source's part separator
from qtc.errors import QtcError, os_error_message
from qtc.settings import settings

CPU_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-std=c++17")
LINK_FLAGS = ("-shared", "-fopenmp")


def user_cache(kind: str) -> Path:
    """qtc's user cache for `kind` (kernels, data): $XDG_CACHE_HOME/qtc/KIND, else ~/.cache/qtc/KIND.

    The one rule for every cache of qtc. A relative $XDG_CACHE_HOME is ignored, as the XDG
    base-directory spec says.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "qtc" / kind


def cache_dir() -> Path:
    """The kernel cache: $QTC_CACHE_DIR (qtc.settings), else `user_cache("kernels")`."""
    return settings().cache_dir or user_cache("kernels")


def find_compiler() -> str | None:
    """The host C++ compiler ($CXX, else g++, else c++), or None. Asked on every step (backend
    resolution): the PATH search is done once per value of $CXX."""
    return _compiler_named(os.environ.get("CXX"))


@lru_cache(maxsize=None)
def _compiler_named(cxx: str | None) -> str | None:
    for name in (cxx, "g++", "c++"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


@lru_cache(maxsize=None)
def compiler_identity(compiler: str) -> str:
    """Compiler version plus the CPU model and flags (-march=native depends on both)."""
    out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    ident = out.stdout.splitlines()[0] if out.stdout else compiler
    try:
        cpu = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines()
               if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        cpu = []
    return "\n".join([ident, *cpu])


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_key(source: str, compiler: str, flags: tuple[str, ...], tag: str = "") -> str:
    h = hashlib.sha256()
    for part in (source, compiler_identity(compiler), " ".join(flags + LINK_FLAGS), tag):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def lookup(directory: Path, key: str) -> Path | None:
    """The cached object for `key` if its index is intact and the object matches it."""
    index = directory / f"{key}.json"
    try:
        meta = json.loads(index.read_text())
        obj = directory / meta["file"]
        if obj.stat().st_size == meta["size"] and _sha256_file(obj) == meta["sha256"]:
            return obj
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def split_units(source: str, jobs: int) -> list[str]:
    """Split a source with PART lines into at most `jobs` translation units of similar size:
    each unit is the text before the first PART line plus a share of the parts."""
    pieces = re.split("^" + re.escape(PART) + ".*$", source, flags=re.M)
    if len(pieces) == 1 or jobs <= 1:
        return [source]
    head, parts = pieces[0], pieces[1:]
    bins: list[list[str]] = [[] for _ in range(min(jobs, len(parts)))]
    sizes = [0] * len(bins)
    for part in sorted(parts, key=len, reverse=True):   # largest first, into the lightest unit
        i = sizes.index(min(sizes))
        bins[i].append(part)
        sizes[i] += len(part)
    return [head + "\n" + "\n".join(b) for b in bins]


@contextmanager
def _cache_errors(directory: Path):
    """An OSError in the cache (a read-only or full disk, a file where the folder should be) as
    a QtcError naming the path and the way out. A read-only cache that already holds the
    entry still works: only a build writes."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(directory)
        raise QtcError(os_error_message(err, f"the kernel cache {directory}: set QTC_CACHE_DIR "
                                             "to a writable folder with free space")) from None


def build_shared(source: str, *, compiler: str | None = None,
                 flags: tuple[str, ...] = CPU_FLAGS, tag: str = "", library: str = "") -> Path:
    """Compile `source` into a shared object (cached under a key that includes `tag`) and
    return its path. A `library` (a source that many programs share) is compiled into an
    object of its own, cached under its own key, and linked in."""
    compiler = compiler or find_compiler()
    if compiler is None:
        raise QtcError("no C++ compiler found (looked for $CXX, g++, c++): install g++ or use "
                       "backend='reference'")
    directory = cache_dir()
    with _cache_errors(directory):
        directory.mkdir(parents=True, exist_ok=True)
        key = entry_key(source + library, compiler, flags, tag)
        found = lookup(directory, key)
        if found is not None:
            return found
        extra = [library_object(library, compiler, flags, directory)] if library else []
        return _build(source, compiler, flags, key, directory, extra)


def library_object(library: str, compiler: str, flags: tuple[str, ...], directory: Path) -> Path:
    """The object file of `library`, compiled once per text, compiler, machine and flags and
    kept in the cache as `<key>-<sha>.o` with its index, like a shared object."""
    key = entry_key(library, compiler, flags, "library")
    found = lookup(directory, key)
    if found is not None:
        return found
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        src = Path(tmp) / "library.cu"
        src.write_text(library)
        proc = subprocess.run([compiler, *flags, "-x", "c++", "-c", str(src), "-o", str(src.with_suffix(".o"))],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise QtcError(f"compiling the kernel library failed ({compiler}, in the kernel cache "
                           f"{directory}):\n{proc.stderr[-4000:]}")
        return _keep(src.with_suffix(".o"), directory, key, "o", library)


def _keep(built: Path, directory: Path, key: str, suffix: str, source: str) -> Path:
    """Move a finished build into the cache under `key` (object, index, source), atomically."""
    digest = _sha256_file(built)
    final = directory / f"{key}-{digest[:16]}.{suffix}"
    if not final.exists() or _sha256_file(final) != digest:
        _write_atomic(final, built.read_bytes())
    meta = {"file": final.name, "size": final.stat().st_size, "sha256": digest}
    _write_atomic(directory / f"{key}.json", json.dumps(meta).encode())
    _write_atomic(directory / f"{key}.cu", source.encode())
    return final


def _build(source: str, compiler: str, flags: tuple[str, ...], key: str, directory: Path,
           extra: list[Path]) -> Path:
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        obj = Path(tmp) / "kernels.so"
        units = split_units(source, os.cpu_count() or 1)
        procs = []
        for i, unit in enumerate(units):
            src = Path(tmp) / f"part{i}.cu"
            src.write_text(unit)
            procs.append(subprocess.Popen([compiler, *flags, "-x", "c++", "-c", str(src), "-o",
                                           str(src.with_suffix(".o"))],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        errors = [p.communicate()[1] for p in procs]
        if any(p.returncode for p in procs):
            raise QtcError(f"compiling the kernels failed ({compiler}, in the kernel cache "
                           f"{directory}: a full or read-only disk fails here too; QTC_CACHE_DIR "
                           "chooses another folder):\n"
                           + "".join(e for e, p in zip(errors, procs) if p.returncode)[-4000:])
        objs = [str(Path(tmp) / f"part{i}.o") for i in range(len(units))] + [str(e) for e in extra]
        proc = subprocess.run([compiler, *LINK_FLAGS, *objs, "-o", str(obj)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise QtcError(f"linking the kernels failed ({compiler}):\n{proc.stderr[-4000:]}")
        return _keep(obj, directory, key, "so", source)
