"""What produced a run's numbers: qtc, its commit, torch, backend, compile target, threads, the spec.

Written into every run folder as provenance.json, so a figure can be traced to the code and the
machine set-up behind it (a kernel's summation order, the thread count or the backend can move
a run's metrics; the same values reproduce them bit for bit).
"""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import qtc

NOT_A_CHECKOUT = "not a checkout"


def git_commit(folder: Path | None = None, *, short: bool = False) -> str:
    """The commit checked out in `folder` (default: qtc's own, when it runs from a checkout; +
    '-dirty' with uncommitted changes), or NOT_A_CHECKOUT. `short`: the abbreviated hash that
    `qtc --version` shows. Torch is imported only by `provenance`, so `--version` stays quick."""
    folder = folder or Path(qtc.__file__).resolve().parent
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        if git("rev-parse", "--show-toplevel") != str(folder.resolve()):
            return NOT_A_CHECKOUT           # a folder inside someone else's repository
        head = git("rev-parse", *(["--short"] if short else []), "HEAD")
        return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return NOT_A_CHECKOUT


def provenance(spec_dump: dict, backend: str | None, generator_backend: str | None, threads: int) -> dict:
    """The provenance record of a run with this resolved spec, backend choice and torch thread
    count (`threads`: the run's, which `runner.run` sets before training; the record is written
    before that, when torch's count is still the process's, e.g. a fresh pool worker's default
    of every core, so it is not read back from torch here). `target` is the
    key of the compile Target its generators' kernels are built for (device, dtype, vector lanes,
    register ranks, rendering: runtime.kernels.step_target; None on the reference backend). Under
    the rendering "auto" the cost model then picks unrolled or compact per program, for the
    training steps the run takes (they move the last bits of every sum)."""
    import torch

    from qtc.compiler.target import DEVICES
    from qtc.runtime.backends import resolve
    from qtc.runtime.generator import DTYPE
    from qtc.runtime.kernels import step_target
    from qtc.settings import settings
    chosen = backend or generator_backend
    device = resolve(chosen) if chosen else None
    return {"qtc": qtc.__version__, "commit": git_commit(),
            "torch": torch.__version__, "python": platform.python_version(),
            "backend": device, "backend_requested": chosen,
            "target": step_target(device, DTYPE).key if device in DEVICES else None,
            "threads": threads, "rendering": settings().rendering,
            "dtype": str(torch.get_default_dtype()).removeprefix("torch."),
            "machine": platform.machine(), "spec": spec_dump}
