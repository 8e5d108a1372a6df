"""Every QTC_* environment variable qtc reads, read here and nowhere else.

One frozen Settings value says how this process was told to run; `settings()` reads it from the
environment, checks every variable (a bad value is a QtcError naming it, wherever it is first
needed) and the rest of qtc takes the fields it needs, as parameters where they decide what a
computation gives. Reading is not cached: the CLI, the tests and a sweep's workers set
variables while the process runs; what every training step needs it reads field by field with
`setting(name)`, one variable each.

| variable              | field          | what it decides                                          | unset          |
|-----------------------|----------------|----------------------------------------------------------|----------------|
| QTC_BACKEND           | backend        | the backend "auto" means (runtime/backends.py)           | auto: cuda, cpu, reference |
| QTC_RENDERING         | rendering      | how kernels are rendered: auto, unrolled, compact        | auto (the cost model) |
| QTC_THREADS           | threads        | threads of a CPU step, and a run's torch threads         | chosen per step / per run |
| QTC_CPU_MODE          | cpu_mode       | 0: whole circuits per thread, 1: passes split            | chosen per step |
| QTC_JOBS              | jobs           | models trained at once by `qtc run`                      | one per core   |
| QTC_CACHE_DIR         | cache_dir      | the kernel cache folder (runtime/cache.py)               | user cache     |
| QTC_CHANNEL_MEMORY    | channel_memory | bytes of density matrices the channel form may hold      | 4 GiB          |
| QTC_CUDA_GRAPHS       | cuda_graphs    | 1: replay a CUDA step as a graph (runtime/cuda.py)       | 0              |
| QTC_RAY_TIMEOUT       | ray_timeout    | seconds to wait for an existing Ray cluster              | 30             |
| QTC_DATA              | data           | a folder searched for data sets (tasks/data/images.py)   | not searched   |
| QTC_SCRATCH           | scratch        | a node's scratch folder for sweep trials (experiments/storage.py) | the system's temporary folder |
| QTC_SPACE_PATH        | space_path     | folders searched for `generator NAME.qs` after the task's own (dsl/spaces.py; `--space-path` puts its folders first) | not searched |
| QTC_STATE_MEMORY      | state_memory   | bytes of state vectors a task's generator may hold       | 8 GiB          |
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qtc.errors import QtcError

RENDERINGS = ("auto", "unrolled", "compact")
CHANNEL_MEMORY = 4 << 30        # bytes of density matrices the channel form may hold
STATE_MEMORY = 8 << 30          # bytes of state vectors a task's generator may hold (checked at load)
RAY_TIMEOUT = 30.0              # seconds to wait for an existing Ray cluster


@dataclass(frozen=True)
class Settings:
    backend: str = "auto"
    rendering: str = "auto"
    threads: int | None = None
    cpu_mode: int | None = None
    jobs: int | None = None
    cache_dir: Path | None = None
    channel_memory: int = CHANNEL_MEMORY
    cuda_graphs: bool = False
    ray_timeout: float = RAY_TIMEOUT
    data: Path | None = None
    scratch: Path | None = None
    space_path: tuple[Path, ...] = ()
    state_memory: int = STATE_MEMORY


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The Settings the environment (`env`, default os.environ) gives."""
    env = os.environ if env is None else env
    return Settings(**{name: read(env) for name, read in _READERS.items()})


def setting(name: str, env: Mapping[str, str] | None = None):
    """One field of settings(env), reading only its own variable: what a training step reads
    (the backend, the rendering, the threads and mode) every step. os.environ lookups cost ~1 us
    each, and reading all of them four times per generator step was a tenth of an A3C update's
    overhead; a bad value of another variable is left for where that variable is needed."""
    return _READERS[name](os.environ if env is None else env)


def _text(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _cpu_mode(env: Mapping[str, str]) -> int | None:
    value = _text(env, "QTC_CPU_MODE")
    return None if not value else int(_choice(value, "QTC_CPU_MODE", ("0", "1")))


def _path(env: Mapping[str, str], name: str, expand: bool = False) -> Path | None:
    value = _text(env, name)
    if not value:
        return None
    return Path(value).expanduser() if expand else Path(value)


# field -> its reader from the environment, in the order settings() checks them (the first bad
# value is the one it reports)
_READERS = {
    "backend": lambda env: _text(env, "QTC_BACKEND") or "auto",
    "rendering": lambda env: _choice(_text(env, "QTC_RENDERING") or "auto", "QTC_RENDERING", RENDERINGS),
    "threads": lambda env: _whole(_text(env, "QTC_THREADS"), "QTC_THREADS"),
    "cpu_mode": _cpu_mode,
    "jobs": lambda env: _whole(_text(env, "QTC_JOBS"), "QTC_JOBS"),
    "cache_dir": lambda env: _path(env, "QTC_CACHE_DIR"),
    "channel_memory": lambda env: _bytes(_text(env, "QTC_CHANNEL_MEMORY"), "QTC_CHANNEL_MEMORY", CHANNEL_MEMORY),
    "state_memory": lambda env: _bytes(_text(env, "QTC_STATE_MEMORY"), "QTC_STATE_MEMORY", STATE_MEMORY),
    "cuda_graphs": lambda env: _choice(_text(env, "QTC_CUDA_GRAPHS") or "0", "QTC_CUDA_GRAPHS", ("0", "1")) == "1",
    "ray_timeout": lambda env: _seconds(_text(env, "QTC_RAY_TIMEOUT")),
    "data": lambda env: _path(env, "QTC_DATA", expand=True),
    "scratch": lambda env: _path(env, "QTC_SCRATCH"),
    "space_path": lambda env: _folders(_text(env, "QTC_SPACE_PATH"), "QTC_SPACE_PATH"),
}


def _choice(value: str, name: str, allowed) -> str:
    if value not in allowed:
        raise QtcError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _whole(value: str, name: str) -> int | None:
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise QtcError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _folders(value: str, name: str) -> tuple[Path, ...]:
    """Folders separated by os.pathsep (empty entries skipped), each an existing folder: a
    misspelt one is an error, not a folder silently never searched."""
    folders = tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p.strip())
    for folder in folders:
        if not folder.is_dir():
            raise QtcError(f"{name}: {folder} is not a folder (give folders separated by "
                           f"'{os.pathsep}')")
    return folders


def _bytes(value: str, name: str, default: int) -> int:
    if not value:
        return default
    if not value.isdigit():
        raise QtcError(f"{name} must be a whole number of bytes, got {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    if not value:
        return RAY_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise QtcError(f"QTC_RAY_TIMEOUT must be a number of seconds > 0, got {value!r}")
    return seconds
