"""One trial of a sweep: what it is (`Trial`: a task, a model, a seed and the resources it asks
for), its status file and running it (`run_trial`: one run through the run API into its own
folder, which an executor calls in a Ray worker, a pool process or the driver's process).

    OUT/<task>/<model>/seed<k>/            a normal qtc run folder (metrics.json, checkpoint.pt, ...)
    OUT/<task>/<model>/seed<k>/trial.json  status: done | failed, attempts, error, seconds (the sweep writes it)
    OUT/<task>/<model>/seed<k>/trial.log   what the run printed

The sweeper that plans trials and drives them is qtc.tasks.experiments.sweep.
"""
from __future__ import annotations

import io
import os
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qtc.tasks import naming
from qtc.tasks.runs import guard
from qtc.tasks.runs.rundir import RESOLVED, read_json_or_none

TRIAL_JSON = "trial.json"
TRIAL_LOG = "trial.log"


@dataclass(frozen=True)
class Trial:
    """One (task, model, seed) run and the resources it asks for."""
    spec: str                     # absolute path of the .task file
    task: str                     # the spec's task name
    kind: str                     # classify | forecast | a3c
    model: str                    # diffqas | fixed:K | classical (the trial's folder is named after it)
    seed: int
    cpus: int = 1
    gpus: float = 0.0
    overrides: dict = field(default_factory=dict, hash=False, compare=False)  # resolve_options keywords
    settings: tuple[tuple[str, str], ...] = ()   # --set and this trial's --grid point, applied to the spec
    variant: str = ""                            # the grid point as a folder-name part ("" = no grid)
    # What a trial carries to a node that shares no disk with the driver (qtc.tasks.experiments
    # .remote): the spec's text and every .qs it names, by name relative to the spec's folder,
    # and the image data set it reads, by name ("" for none: series are generated).
    files: dict = field(default_factory=dict, hash=False, compare=False)
    dataset: str = ""
    # The merged fixed candidates this trial is trained for besides its own model (Built.twins:
    # their generated weights are provably the model's), reported for each of them.
    twins: tuple[str, ...] = field(default=(), hash=False, compare=False)
    # A data file the spec reads (`data csv "x.csv"`, npz, npy, folder, cifar10): {"source",
    # "path": absolute, as the driver found it, "sha256": its digest there}. The carried spec
    # names that path; each node must hold the same data there (remote.check_node).
    data_file: dict = field(default_factory=dict, hash=False, compare=False)
    # Models that need this trial's result and so train in its run, after its own model: `found`
    # retrains the architecture DiffQAS-QT's search found (its weights are in this run only).
    # Each is reported as a trial of its own, from this trial's folder (records.collect).
    companions: tuple[str, ...] = field(default=(), hash=False, compare=False)

    def __post_init__(self):     # from JSON (to_dict) the pairs come back as lists
        object.__setattr__(self, "settings", tuple(tuple(p) for p in self.settings))
        object.__setattr__(self, "twins", tuple(self.twins))
        object.__setattr__(self, "companions", tuple(self.companions))

    @property
    def group(self) -> str:
        """What the report groups by: the task, or the task at one grid point."""
        return f"{self.task}@{self.variant}" if self.variant else self.task

    @property
    def key(self) -> str:
        """The trial's folder relative to the sweep folder: <task>[@<grid point>]/<model>/seed<k>."""
        return f"{self.group}/{naming.folder(self.model)}/seed{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


def read_status(folder: Path) -> dict | None:
    """The trial.json of a trial folder, or None (never run, or unreadable)."""
    return read_json_or_none(Path(folder) / TRIAL_JSON)


def is_done(folder: Path) -> bool:
    status = read_status(folder)
    return bool(status) and status.get("status") == "done"


def run_trial(trial: dict, out: str, spec: str | None = None, open_trial=None) -> dict:
    """Run one trial through the run API into OUT/<key>; return its summary. Raises on failure.

    A folder with resolved.json is resumed (from its checkpoint, if any); anything else in the
    folder (a run that died before it recorded its settings) is cleared first, if qtc made it.
    `spec` is the spec file to start from when it is not the trial's own path (a node's copy);
    `open_trial(trial, folder, resume, spec) -> (built, options, rundir)` replaces reading the
    spec (a Python experiment's trials, qtc.experiment).
    """
    from qtc.tasks.runs.rundir import RunDir
    from qtc.tasks.runs.runner import run
    t = Trial(**trial)
    folder = guard.inside(out, Path(out) / t.key)
    trial_log = guard.inside(folder, folder / TRIAL_LOG)     # a link out of the folder: refused
    resume = (folder / RESOLVED).is_file()
    if folder.exists() and not resume:
        guard.remove_owned(folder, out)
    log = io.StringIO()
    t0 = time.perf_counter()
    try:
        with redirect_stdout(log), redirect_stderr(log):
            run(*(open_trial or _open_trial)(t, folder, resume, spec or t.spec))
    finally:
        guard.make_owned(folder)
        with open(trial_log, "a") as fh:
            fh.write(log.getvalue())
    rows = [r for r in RunDir(folder).metrics() if r.get("model") == t.model]
    return {"seconds": round(time.perf_counter() - t0, 3), "resumed": resume,
            "final": rows[-1] if rows else None, "pid": os.getpid()}


def _open_trial(t: Trial, folder: Path, resume: bool, spec: str):
    """(built, options, rundir) of a trial: its folder reopened, or started from the spec."""
    from qtc.tasks.runs import runner
    if resume:
        return runner.reopen(folder, progress=False)
    built, options = trial_options(t, spec)
    return built, options, runner.start(built, options, folder)


def trial_options(t: Trial, spec: str | None = None, built=None):
    """(built, options) a trial starts from: its spec (or the node's copy `spec`) with its
    settings (or `built`, that spec loaded already), and the run options of its model and seed
    (also what its published record's fingerprint is checked against, qtc.tasks.experiments.ledger)."""
    from qtc.tasks.build import load_task
    from qtc.tasks.runs import runner
    built = built or load_task(spec or t.spec, dict(t.settings))
    workers = t.overrides.get("workers")       # None: the spec's (an A3C trial's CPUs do not set it)
    threads = runner.resolve_threads(t.overrides.get("threads"), t.cpus)   # default: its CPUs
    models = ",".join((t.model,) + t.companions)
    options = runner.resolve_options(built, **{**t.overrides, "models": models, "seed": t.seed,
                                               "workers": workers, "threads": threads,
                                               "progress": False})
    return built, options
