"""`qtc run`: set up (or reopen) a run folder, resolve settings, hand over to the task kind."""
from __future__ import annotations

import importlib
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from qtc.errors import QtcError
from qtc.tasks.build import Built, load_task
from qtc.tasks.runs import guard
from qtc.tasks.runs.guard import RunLock
from qtc.tasks.runs.rundir import RunDir

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
    """`qtc run`: a new run, or `--resume` of one; one writer per run folder (guard.RunLock)."""
    if args.resume:
        rundir = RunDir.existing(args.resume)
        with RunLock(rundir.path):
            built, opts = _reopen(rundir, args)
            print(f"resuming {rundir.path}")
            return _train(built, rundir, opts)
    if not args.spec:
        raise QtcError("qtc run needs a .task file (or --resume RUNDIR)")
    built = load_task(args.spec)
    opts = resolve_options(built, args)
    rundir = RunDir.create(args.output, built.spec.name)
    with RunLock(rundir.path):
        _record(rundir, built, opts)
        print(f"run folder {rundir.path}")
        return _train(built, rundir, opts)


def _train(built: Built, rundir: RunDir, opts: RunOptions) -> int:
    if opts.backend:
        import os
        os.environ["QTC_BACKEND"] = opts.backend
    torch.set_num_threads(max(1, torch.get_num_threads()))
    module = importlib.import_module(RUNNERS[built.spec.kind])
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None  # saves like Ctrl-C
    try:
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
    ident = identity(built, opts)
    rundir.write_json(guard.FINGERPRINT, {"sha256": guard.fingerprint(ident), "identity": ident})
    rundir.write_json("resolved.json", {
        "task": spec.model_dump(exclude={"source", "file"}),
        "options": asdict(opts),
        "program": {"qubits": built.program.qubits, "depth": built.program.depth,
                    "candidates": built.program.candidates} if built.program else None,
        "torch": torch.__version__,
    })


# --- resume: the same run, or a clear refusal ----------------------------------------------
RESULT_OPTIONS = ("models", "seed", "limit", "max_batches", "workers")   # change the numbers
BUDGET_OPTIONS = ("epochs", "episodes")                                  # may only grow


def identity(built: Built, opts: RunOptions) -> dict:
    """guard.identity of this spec (its search space's text too) and these options."""
    spec = built.spec
    space = spec.space_path().read_text() if spec.generator else None
    return guard.identity(spec.model_dump(exclude={"source", "file"}), space,
                          {k: getattr(opts, k) for k in RESULT_OPTIONS})


def _reopen(rundir: RunDir, args) -> tuple[Built, RunOptions]:
    """The run's own spec and settings, checked against its fingerprint and the command line."""
    resolved = rundir.read_json("resolved.json")
    opts = RunOptions(**resolved["options"])
    built = load_task(rundir.path / "spec.task")
    recorded = rundir.read_json(guard.FINGERPRINT) if (rundir.path / guard.FINGERPRINT).is_file() else None
    if recorded is None:
        raise QtcError(f"{rundir.path} has no {guard.FINGERPRINT} (made by an older qtc): it cannot "
                       "be resumed safely; start a new run")
    _refuse(rundir, "its files were edited since it started",
            guard.differences(recorded["identity"], identity(built, opts)))
    if getattr(args, "spec", None):
        _refuse(rundir, f"{args.spec} is not the spec it was started with",
                guard.differences(recorded["identity"], identity(load_task(args.spec), opts)))
    fresh = resolve_options(built, args)
    given = {"models": bool(args.models or getattr(args, "baselines", False)),
             **{k: getattr(args, k, None) is not None for k in RESULT_OPTIONS if k != "models"}}
    _refuse(rundir, "a resumed run keeps the settings it started with",
            [f"--{k.replace('_', '-')} {getattr(fresh, k)!r} (the run has {getattr(opts, k)!r})"
             for k in RESULT_OPTIONS if given[k] and getattr(fresh, k) != getattr(opts, k)])
    changes = _extend(rundir, args, opts)
    for k in ("data_root", "download", "backend"):    # where and how, not what: may change
        if getattr(args, k, None):
            setattr(opts, k, getattr(args, k))
    if changes:
        resolved.setdefault("extended", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **changes})
    rundir.write_json("resolved.json", {**resolved, "options": asdict(opts)})
    if args.no_progress:
        opts.progress = False
    return built, opts


def _extend(rundir: RunDir, args, opts: RunOptions) -> dict:
    """--epochs/--episodes N with --resume: train on to N (never fewer than the run has)."""
    changes = {}
    for k in BUDGET_OPTIONS:
        want, have = getattr(args, k, None), getattr(opts, k)
        if want is None or want == have:
            continue
        if have is not None and want < have:
            _refuse(rundir, "a resumed run can be extended, not shortened",
                    [f"--{k} {want} (the run has {have})"])
        changes[k] = [have, want]
        setattr(opts, k, want)
    if changes:
        print("extending the run: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
    return changes


def _refuse(rundir: RunDir, why: str, diffs: list[str]) -> None:
    if diffs:
        raise QtcError(f"cannot resume {rundir.path}: {why}; differs: " + "; ".join(diffs)
                       + "\nhint: start a new run (-o) for other settings")
