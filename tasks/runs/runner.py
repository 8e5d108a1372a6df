"""`qtc run`: set up (or reopen) a run folder, resolve settings, hand over to the task kind."""
from __future__ import annotations

import importlib
import shutil
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from qtc.errors import QtcError
from qtc.tasks.build import Built, load_task
from qtc.tasks.runs.rundir import RunDir, naming

RUNNERS = {"classify": "qtc.tasks.kinds.classify", "forecast": "qtc.tasks.kinds.forecast", "a3c": "qtc.tasks.kinds.minigrid"}


@dataclass
class RunOptions:
    """Settings after the spec's defaults and the command line's overrides."""
    models: list[str] = field(default_factory=list)
    epochs: int | None = None
    episodes: int | None = None
    workers: int | None = None
    limit: int | None = None
    max_batches: int | None = None
    seed: int = 0
    data_root: str | None = None
    download: bool = False
    backend: str | None = None
    progress: bool = True


def resolve_options(built: Built, args) -> RunOptions:
    spec = built.spec
    models = built.models()
    if getattr(args, "baselines", False):
        models = Built(spec.model_copy(update={"compare": spec.compare.model_copy(
            update={"models": ("fixed", "classical")})})).models() if spec.generator else models
    if getattr(args, "models", None):
        models = _select_models(built, args.models)
    return RunOptions(
        models=models,
        epochs=args.epochs or spec.train.epochs,
        episodes=getattr(args, "episodes", None) or spec.train.episodes,
        workers=getattr(args, "workers", None) or spec.a3c.workers,
        limit=getattr(args, "limit", None) or (spec.data.limit if spec.data else None),
        max_batches=getattr(args, "max_batches", None),
        seed=spec.train.seed if getattr(args, "seed", None) is None else args.seed,
        data_root=getattr(args, "data_root", None),
        download=bool(getattr(args, "download", False) or (spec.data and spec.data.download)),
        backend=getattr(args, "backend", None),
        progress=not getattr(args, "no_progress", False),
    )


def _select_models(built: Built, text: str) -> list[str]:
    wanted, out = [w.strip() for w in text.split(",") if w.strip()], []
    if not wanted:
        raise QtcError(f"--models {text!r} names no model: expected diffqas, fixed, fixed:K or classical")
    n = len(built.program.labels) if built.program else 0
    for w in wanted:
        if w == "diffqas" and built.program:
            out.append("diffqas")
        elif w == "fixed" and built.program:
            out += [f"fixed:{k}" for k in range(n)]
        elif w.startswith("fixed:") and w[6:].isdigit() and int(w[6:]) < n:
            out.append(w)
        elif w == "classical":
            out.append("classical")
        else:
            raise QtcError(f"unknown model '{w}' in --models: expected diffqas, fixed, fixed:K "
                           f"(0 <= K < {n}) or classical")
    return list(dict.fromkeys(out))


def run_task(args) -> int:
    if args.resume:
        rundir = RunDir.existing(args.resume)
        built = load_task(rundir.path / "spec.task")
        opts = RunOptions(**rundir.read_json("resolved.json")["options"])
        if args.no_progress:
            opts.progress = False
        print(f"resuming {rundir.path}")
    else:
        if not args.spec:
            raise QtcError("qtc run needs a .task file (or --resume RUNDIR)")
        built = load_task(args.spec)
        opts = resolve_options(built, args)
        rundir = RunDir.create(args.output, built.spec.name)
        _record(rundir, built, opts)
        print(f"run folder {rundir.path}")
    if opts.backend:
        import os
        os.environ["QTC_BACKEND"] = opts.backend
    torch.set_num_threads(max(1, torch.get_num_threads()))
    module = importlib.import_module(RUNNERS[built.spec.kind])
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None  # saves like Ctrl-C
    try:
        with naming(rundir.path):  # a plot or an export on a full disk names the run folder
            module.run(built, rundir, opts)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    print(f"done: results in {rundir.path}")
    return 0


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _record(rundir: RunDir, built: Built, opts: RunOptions) -> None:
    """Copy the specs as run and every resolved setting into the run folder."""
    spec = built.spec
    rundir.write_text("spec.task", spec.source)
    if spec.generator:
        shutil.copyfile(spec.space_path(), rundir.path / Path(spec.generator.space).name)
        if Path(spec.generator.space).name != spec.generator.space:
            text = spec.source.replace(spec.generator.space, Path(spec.generator.space).name)
            rundir.write_text("spec.task", text)
    rundir.write_text("parameters.txt", built.parameter_report() + "\n")
    rundir.write_json("resolved.json", {
        "task": spec.model_dump(exclude={"source", "file"}),
        "options": asdict(opts),
        "program": {"qubits": built.program.qubits, "depth": built.program.depth,
                    "candidates": built.program.candidates} if built.program else None,
        "torch": torch.__version__,
    })
