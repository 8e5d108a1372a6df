"""The one run API: `run(built, options, rundir)` trains a task's models into a run folder.

`qtc run`, every sweep trial and the Table II preset come through here, with settings in one
typed, validated `RunOptions` (the spec's defaults with overrides applied by `resolve_options`).
A run folder is started with `start` (which records the specs and settings) or reopened with
`reopen` (which reads them back), so a resumed run uses exactly the settings it began with.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from qtc.dsl import applies
from qtc.dsl.task import RANGES, select_problem
from qtc.errors import QtcError
from qtc.settings import settings as environment   # `settings` here are --set's
from qtc.tasks import naming
from qtc.tasks.build import Built, load_task
from qtc.tasks.data import images, sources
from qtc.tasks.engines import selection
from qtc.tasks.runs import guard, signals, tensorboard
from qtc.tasks.runs.provenance import provenance
from qtc.tasks.runs.rundir import RESOLVED, RunDir, damaged, located

# None, or a whole number in its range: the spec's (dsl.task.RANGES) or LIMITS
_COUNTS = ("epochs", "episodes", "workers", "limit", "max_batches", "threads", "jobs")
# Bounds of the counts no spec sets, stated so that a huge one is refused before any work:
# torch.set_num_threads(100000) and 100000 processes exhaust memory, not the user's patience.
LIMITS = {"threads": (1, 1024), "jobs": (1, 256), "max_batches": (1, 1_000_000_000)}
# resolved.json's options: their JSON types (counts are checked by _check_count)
_TYPES = {"models": list, "seed": int, "data_root": (str, type(None)), "download": bool,
          "backend": (str, type(None)), "progress": bool, "tensorboard": bool, "select": str,
          "validation": (float, int, type(None)), "perturb": (float, int, type(None))}
# --perturb EPS: the largest move of an initial parameter (a rounding-level change, measured)
PERTURB_RANGE = (0.0, 1e-2)
# torch's threads for a run. One: the small target networks (a 1,781-parameter LSTM, 6k-parameter
# MLPs, a CNN at batch 100) spend more time waking threads than computing, and on a small busy
# machine extra threads fight the other processes (measured: 5.4-6.4 s/epoch with torch's default
# threads against 0.2-0.8 s with one, on bessel).
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class RunOptions:
    """Settings of one run, after the spec's defaults and the overrides (frozen, validated)."""
    models: tuple[str, ...] = ()
    epochs: int | None = None
    episodes: int | None = None
    workers: int | None = None
    limit: int | None = None
    max_batches: int | None = None
    seed: int = 0
    data_root: str | None = None
    download: bool = False
    backend: str | None = None
    threads: int = DEFAULT_THREADS
    jobs: int = 1                         # supervised models trained at once, a process each
    progress: bool = True
    tensorboard: bool = False             # event files in RUNDIR/tensorboard/<model> (opt-in)
    select: str = "last"                  # which epoch is reported: last | train | validation
    validation: float | None = None       # the held-out fraction of `select validation F`
    perturb: float | None = None          # move each initial parameter by U(-perturb, perturb)

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        selection.check_rule(self.select, self.validation)
        if self.perturb is not None:
            _check_perturb(self.perturb)
        for name in _COUNTS:
            if getattr(self, name) is not None:
                _check_count(name, getattr(self, name))
        _check_count("seed", self.seed)
        if self.data_root is not None:
            object.__setattr__(self, "data_root", str(self.data_root))

    def to_dict(self) -> dict:
        """Plain JSON data (resolved.json); `from_dict` reads it back."""
        return {**asdict(self), "models": list(self.models)}

    @classmethod
    def from_dict(cls, data: dict) -> "RunOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QtcError(f"unknown run option(s) {', '.join(unknown)} (expected {', '.join(sorted(known))})")
        for name, kind in _TYPES.items():
            if name in data and (not isinstance(data[name], kind) or (
                    kind is int and isinstance(data[name], bool))):
                raise QtcError(f"run option {name} is {data[name]!r}, not a {_type_name(kind)}")
        if not all(isinstance(m, str) for m in data.get("models", ())):
            raise QtcError(f"run option models is {data['models']!r}, not a list of model names")
        return cls(**data)


def _check_perturb(value) -> None:
    """--perturb's value: a number in (0, 1e-2] (0 would be a second copy of the unperturbed run)."""
    lo, hi = PERTURB_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
        raise QtcError(f"--perturb must be a number above {lo:g} and at most {hi:g} (the largest "
                       f"move of an initial parameter, e.g. 1e-7), got {value!r}")


def _type_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({list: "list", int: "whole number", float: "number", str: "string",
                        bool: "true/false", type(None): "null"}[k] for k in kinds)


def _check_count(name: str, value) -> None:
    """`--name`'s value: a whole number in the spec's range for it (>= 1 if the spec has none)."""
    lo, hi = {**RANGES, **LIMITS}.get(name, (1, None))
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        span = f"between {lo} and {hi:,}" if hi is not None else f">= {lo}"
        why = " (torch and numpy seeds are 32-bit)" if name == "seed" else ""
        raise QtcError(f"--{name.replace('_', '-')} must be a whole number {span}{why}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_options(built: Built, *, models: str | None = None, baselines: bool = False,
                    epochs: int | None = None, episodes: int | None = None, workers: int | None = None,
                    limit: int | None = None, max_batches: int | None = None, seed: int | None = None,
                    data_root: str | None = None, download: bool = False, backend: str | None = None,
                    threads: int | None = None, progress: bool = True,
                    select: tuple | None = None, tensorboard: bool = False,
                    jobs: int | None = None, perturb: float | None = None) -> RunOptions:
    """The spec's settings with every override that is not None applied.

    `select` is (rule, fraction or None), e.g. ("validation", 0.2): it replaces the spec's rule and
    fraction together. `jobs` (None: one per core) is how many models of a supervised task
    train at once, each in its own process; A3C models train in turn (their workers are
    `workers`), so an a3c task takes no --jobs. `perturb` (supervised tasks) moves every initial
    parameter by a seeded uniform draw of at most that size: the same seed with a rounding-level
    change, to measure how far such a change moves the results.
    """
    spec = built.spec
    given = {"models": models or baselines, "epochs": epochs, "episodes": episodes, "workers": workers,
             "limit": limit, "max_batches": max_batches, "seed": seed, "data_root": data_root,
             "download": download, "backend": backend, "threads": threads, "select": select,
             "tensorboard": tensorboard, "jobs": jobs, "perturb": perturb}
    rule, fraction = select if select else (spec.train.select, spec.train.validation)
    chosen = built.baseline_models() if baselines else built.models()
    if models is not None:
        chosen = built.select_models(models)
    options = RunOptions(
        models=tuple(chosen),
        epochs=_given(epochs, spec.train.epochs), episodes=_given(episodes, spec.train.episodes),
        workers=_given(workers, spec.a3c.workers),
        limit=_given(limit, spec.data.limit if spec.data else None),
        max_batches=max_batches, seed=_given(seed, spec.train.seed), data_root=data_root,
        download=bool(download or (spec.data and spec.data.download)), backend=backend,
        threads=resolve_threads(threads, DEFAULT_THREADS), progress=progress, select=rule,
        validation=fraction, tensorboard=tensorboard, jobs=resolve_jobs(built, jobs), perturb=perturb)
    # a value out of range first (RunOptions), then a flag this kind would ignore (the one table)
    applies.refuse_flags(spec.kind, [k for k, v in given.items() if v is not None and v is not False],
                         spec.name)
    return options


def resolve_jobs(built: Built, given: int | None) -> int:
    """--jobs if given (dsl.applies refuses it for a3c); else 1 for a3c; else $QTC_JOBS if
    set, else one per core."""
    if given is not None:
        return given
    if built.spec.kind in ("a3c", "python"):   # a3c: its own workers; python: callables live here
        return 1
    return environment().jobs or max(1, os.cpu_count() or 1)


def _given(override, default):
    return default if override is None else override


def resolve_threads(given: int | None, default: int) -> int:
    """--threads if given, else $QTC_THREADS if set, else `default` (checked by RunOptions)."""
    if given is not None:
        return given
    return environment().threads or default


def check(built: Built, options: RunOptions | None = None) -> None:
    """Everything that can be checked before training and was not checked when the spec was
    loaded (load_task checks the kind's needs: data set, classes, networks, env): the backend, the
    selection rule and, with --tensorboard, the tensorboard package. Errors here come before any
    run folder."""
    gen = built.spec.generator
    if options is not None and (options.backend or (gen and gen.backend != "auto")):
        from qtc.runtime.backends import resolve
        try:                                  # an unknown or absent backend fails before training
            resolve(options.backend or gen.backend)
        except QtcError as err:               # the spec's own: at its generator line (or --set)
            raise err if options.backend else built.error(gen, str(err)) from None
    problem = options and select_problem(built.spec.kind, options.select, options.validation)
    if problem:                               # --select's rule for this kind (a spec's is located)
        raise QtcError(problem)
    if options is not None and options.tensorboard:
        tensorboard.require()
    if options is not None and options.jobs > 1 and built.spec.kind == "python":
        raise QtcError(f"jobs={options.jobs}: a Python experiment trains its models in this process "
                       "(its model factory, data and loss live here); leave jobs at 1")


def note_idle_backend(backend: str | None, models) -> None:
    """A note (stderr) when --backend is given and none of `models` runs a circuit (only the
    classical network): the flag picks the simulator of the generator's circuits, so here it
    changes nothing. A note, not dsl.applies' refusal: a sweep's --backend serves its quantum
    trials and rides along with its classical ones, and a script that passes one --backend to
    every model of a loop is not wrong; the user is told, not stopped. (An unknown backend is
    still refused by `check`.)"""
    models = list(models)
    if backend and models and all(m == naming.CLASSICAL for m in models):
        print(f"note: --backend {backend} changes nothing here: no model runs a circuit (models: "
              f"{', '.join(dict.fromkeys(models))}); it picks the simulator of the generator's "
              "circuits (diffqas, found, fixed:K)", file=sys.stderr)


def start(built: Built, options: RunOptions, output: Path | None) -> RunDir:
    """A new run folder (default runs/<task>-<time>) holding the specs and settings as run;
    nothing is created when `check` or the task kind's preflight (missing data, a validation
    block smaller than a batch) fails."""
    check(built, options)
    built.kind.preflight(built, options)
    rundir = RunDir.create(output, built.spec.name)     # locked: `run` releases it
    try:
        record(rundir, built, options)
    except BaseException:
        rundir.release()
        raise
    print(f"run folder {rundir.path}")
    return rundir


def reopen(path: Path, *, spec: Path | str | None = None, overrides: dict | None = None,
           settings: dict[str, str] | None = None, progress: bool | None = None,
           built: Built | None = None) -> tuple[Built, RunOptions, RunDir]:
    """An existing run folder with its spec and recorded settings, checked against its fingerprint.

    `overrides` are the values the user gave again (None = not given): the options that change
    the numbers must match the run's, the budget (epochs, episodes) may only grow (the run is
    extended and the extension recorded), where and how to run (data_root, download, backend)
    may change while the data found is the run's (the identity is checked with the options given
    now: a --data-root that finds other images is refused). `spec`, if given, must be the spec
    the run started with; `settings` (`--set`), if given, must be the run's. `built`: the task
    given again, not read from the folder's spec.task (a Python experiment's, which only its
    Python objects can rebuild), checked against the fingerprint all the same.
    """
    rundir = RunDir.existing(path).hold()      # kept until `run` ends: nobody slips in between
    try:
        resolved = rundir.read_json(RESOLVED)
        options, recorded = _recorded(rundir, resolved)
        if settings and settings != recorded:
            _refuse(rundir, "a resumed run keeps the settings it started with",
                    [f"--set {_shown(settings)} (the run has {_shown(recorded) or 'none'})"])
        if built is None:
            if (resolved.get("task") or {}).get("kind") == "python":
                raise QtcError(f"{rundir.path} is a Python experiment's run: resume it from Python, "
                               "with the same experiment's run(..., resume=True) (qtc.experiment)")
            built = load_task(rundir.file("spec.task"), recorded)
        options, changes = _apply_overrides(rundir, built, options, overrides or {})
        _check_identity(rundir, built, options, spec)    # with the --data-root given now
        if changes:
            print("extending the run: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
            resolved.setdefault("extended", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **changes})
        rundir.write_json(RESOLVED, {**resolved, "options": options.to_dict()})
    except BaseException:
        rundir.release()
        raise
    if progress is not None:
        options = replace(options, progress=progress)
    print(f"resuming {rundir.path}")
    return built, options, rundir


def run(built: Built, options: RunOptions, rundir: RunDir) -> dict:
    """Train every model of `options` into `rundir`; return the task kind's results.

    Ctrl-C and SIGTERM save and raise KeyboardInterrupt (qtc.tasks.runs.signals); the folder
    then continues with `reopen` + `run` (`qtc run --resume`).
    """
    with rundir.held():        # one writer per run folder (taken by start/reopen, released here)
        check(built, options)
        torch.set_num_threads(options.threads)
        print(f"torch threads: {options.threads} (--threads N or QTC_THREADS=N to change)", flush=True)
        with signals.as_interrupt():
            with located(rundir.path):  # a plot or an export on a full disk names the run folder
                return built.kind.run(built, rundir, options)


def record(rundir: RunDir, built: Built, options: RunOptions) -> None:
    """Copy the specs as run and every resolved setting into the run folder."""
    spec = built.spec
    text = spec.source
    task = spec.model_dump(exclude={"source", "file"})
    if spec.generator:
        space = Path(spec.generator.space).name
        rundir.write_text(space, built.space_file().read_text())
        if space != spec.generator.space:
            text = spec.source.replace(spec.generator.space, space)
    if sources.is_file_source(spec):      # the file as found: a resume reads this one, from anywhere
        found = sources.resolve(spec, options.data_root).resolve()
        text = with_data_path(spec, text, found)
        task["data"]["file"] = str(found)  # as spec.task: the same record here and on a sweep's node
    rundir.write_text("spec.task", text)
    rundir.write_text("parameters.txt", built.parameter_report() + "\n")
    ident = identity(built, options)
    rundir.write_json(guard.FINGERPRINT, {"sha256": guard.fingerprint(ident), "identity": ident})
    rundir.write_json(RESOLVED, {
        "task": task,
        "settings": dict(built.settings),     # --set values, applied to spec.task on resume
        "options": options.to_dict(),
        "program": {"qubits": built.program.qubits, "depth": built.program.depth,
                    "candidates": list(built.candidate_labels()),
                    "weights": list(built.program.weight_labels),
                    "weights_norm": built.program.weights.norm} if built.program else None,
        "torch": torch.__version__,
    })
    rundir.write_json(PROVENANCE, provenance(task, options.backend,
                                             spec.generator.backend if spec.generator else None,
                                             options.threads))


PROVENANCE = "provenance.json"


# --- resume: the same run, or a clear refusal ----------------------------------------------
RESULT_OPTIONS = ("models", "seed", "limit", "max_batches", "workers", "select", "validation", "perturb")
# Result options in the identity only when set, so that the fingerprints of the runs made before
# qtc had them stay valid (their resume is not refused for a key they never had).
WHEN_SET = ("perturb",)
BUDGET_OPTIONS = ("epochs", "episodes")                                  # may only grow
PLACE_OPTIONS = ("data_root", "download", "backend", "threads", "tensorboard", "jobs")          # where and how: may change


def identity(built: Built, options: RunOptions) -> dict:
    """guard.identity of this spec (its search space's text and data file's digest too) and
    these options, the images a named image set reads (`data.images`: which MNIST files
    --data-root or $QTC_DATA found, images.identity) and what else the task says fingerprints it
    (a Python experiment's code and data digests).

    `data.images` is absent where no named image set is read, so the fingerprints of every other
    run stay what they were. A run of an image set recorded before qtc had the key lacks it and
    nothing in its record says which files it read: it is another run (refused on resume, stale
    in a ledger), never taken for one on the files found now."""
    spec = built.spec
    space = built.space_file().read_text() if spec.generator else None
    data = spec.data
    read = ({"data.images": images.identity(data.dataset, options.data_root, options.download)}
            if data is not None and data.dataset in images.DATASETS else {})
    return {**guard.identity(spec.model_dump(exclude={"source", "file"}), space,
                             {k: _plain(getattr(options, k)) for k in RESULT_OPTIONS
                              if k not in WHEN_SET or getattr(options, k) is not None},
                             sources.digest(spec, options.data_root)),
            **read, **built.extra_identity()}


def with_data_path(spec, text: str, path: Path) -> str:
    """The spec's text with its data statement's quoted path replaced by `path` (the run folder's
    spec.task; a sweep trial's carried spec, qtc.tasks.experiments.sweep.carried)."""
    lines = text.splitlines(keepends=True)
    line = spec.data.line - 1
    lines[line] = lines[line].replace(f'"{spec.data.file}"', f'"{path}"', 1)
    return "".join(lines)


def _shown(settings: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items())


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _recorded(rundir: RunDir, resolved: dict) -> tuple[RunOptions, dict[str, str]]:
    """resolved.json's options and --set settings, checked: a hand-edited file (no options, a
    wrong type, threads 100000) is a clear error naming it, not a traceback later."""
    path = rundir.path / RESOLVED
    data, settings = resolved.get("options"), resolved.get("settings") or {}
    if not isinstance(data, dict):
        raise damaged(path, 'no "options" object')
    if not isinstance(settings, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in settings.items()):
        raise damaged(path, '"settings" is not an object of --set KEY=VALUE strings')
    try:
        return RunOptions.from_dict(data), settings
    except (QtcError, TypeError, ValueError) as err:
        raise damaged(path, f"its options: {err}") from None


def _check_identity(rundir: RunDir, built: Built, options: RunOptions, spec) -> None:
    if rundir.fingerprint() is None:      # also checks the file's sha256 against its identity
        raise QtcError(f"{rundir.path} has no {guard.FINGERPRINT} (made by an older qtc): it cannot "
                       "be resumed safely; start a new run")
    recorded = rundir.read_json(guard.FINGERPRINT)
    current = identity(built, options)
    was, now = recorded["identity"].get("data.sha256"), current.get("data.sha256")
    if was != now and built.spec.data is not None and built.spec.data.file:
        raise QtcError(f"cannot resume {rundir.path}: its data {built.spec.data.file} changed since the "
                       f"run started (sha256 {str(was)[:12]}... -> {str(now)[:12]}...)\nhint: put the "
                       "run's data back, or start a new run (-o) on the new data")
    was, now = recorded["identity"].get("data.images"), current.get("data.images")
    if was != now:
        why = (f"the images found now are not the ones it started on ({was} -> {now})" if was else
               f"it was started before qtc recorded which image files a run reads, so the ones found "
               f"now ({now}) cannot be told from them")
        raise QtcError(f"cannot resume {rundir.path}: {why}\nhint: give it the data it started on "
                       "(--data-root DIR or $QTC_DATA; resolved.json names the --data-root it had), "
                       "or start a new run (-o) on these images")
    defaults = guard.field_defaults(built.spec)
    _refuse(rundir, "its files were edited since it started",
            guard.differences(recorded["identity"], current, defaults))
    if spec:
        _refuse(rundir, f"{spec} is not the spec it was started with",
                guard.differences(recorded["identity"], identity(load_task(spec, built.settings), options),
                                  defaults))


def _apply_overrides(rundir: RunDir, built: Built, options: RunOptions,
                     overrides: dict) -> tuple[RunOptions, dict]:
    given = {k: v for k, v in overrides.items() if v is not None and v is not False}
    applies.refuse_flags(built.spec.kind, ["models" if k == "baselines" else k for k in given],
                         built.spec.name)
    if given.get("models") or given.get("baselines"):
        fresh = resolve_options(built, models=given.get("models"), baselines=bool(given.get("baselines")))
        given["models"] = fresh.models
    given.pop("baselines", None)
    if "select" in given:
        given["select"], given["validation"] = given["select"]
    _refuse(rundir, "a resumed run keeps the settings it started with",
            [f"--{k.replace('_', '-')} {_plain(given[k])!r} (the run has {_plain(getattr(options, k))!r})"
             for k in RESULT_OPTIONS if k in given and given[k] != getattr(options, k)])
    changes = {}
    for k in BUDGET_OPTIONS:
        want, have = given.get(k), getattr(options, k)
        if want is None or want == have:
            continue
        if have is not None and want < have:
            _refuse(rundir, "a resumed run can be extended, not shortened", [f"--{k} {want} (the run has {have})"])
        if k == "epochs" and built.spec.train.schedule == "cosine":
            _refuse(rundir, "a cosine schedule decays over the run's budget, so extending it would "
                    "change the rates its finished epochs were trained with", [f"--{k} {want} (the run has {have})"])
        changes[k] = [have, want]
    update = {k: b for k, (a, b) in changes.items()}
    update.update({k: given[k] for k in PLACE_OPTIONS if k in given})
    return replace(options, **update), changes


def _refuse(rundir: RunDir, why: str, diffs: list[str]) -> None:
    if diffs:
        raise QtcError(f"cannot resume {rundir.path}: {why}; differs: " + "; ".join(diffs)
                       + "\nhint: start a new run (-o) for other settings")
