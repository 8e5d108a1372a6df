"""`qtc sweep`: every (task, model, seed) trial of a set of specs, on Ray or a local process pool.

Each trial is one run through the one run API (`qtc.tasks.runs.runner.run`, as `qtc run`) of a
single model with a single seed, into its own run folder::

    OUT/sweep.json                         the sweep's settings (specs, seeds, models, overrides)
    OUT/<task>/<model>/seed<k>/            a normal qtc run folder (metrics.json, checkpoint.pt, ...)
    OUT/<task>@<setting>/<model>/seed<k>/  the same, for one point of a `--grid` (e.g. bessel@train.lr=1e-3)
    OUT/<task>/<model>/seed<k>/trial.json  status: done | failed, attempts, error, seconds
    OUT/<task>/<model>/seed<k>/trial.log   what the run printed
    OUT/report/                            `qtc report OUT` (written at the end of a sweep)

`<model>` is `diffqas`, `classical` or `fixed_K` (colons are not portable in folder names).

Resuming: running the same command again skips the trials whose trial.json says "done"; a
trial folder that holds a run (resolved.json) is continued with `qtc run --resume`, so an
interrupted trial picks up from its last checkpoint. A failing trial is retried `retries` times,
then recorded as failed with its whole error; the other trials go on. A trial that qtc refused
(a QtcError: bad data, a diverged training, a spec a trial cannot run) is not retried: the same
input fails the same way. `plan` checks every task and grid point first, data included, as a
single `qtc run` does before it makes a folder.

This module is the sweeper (Hydra's split): it plans the trials and drives the loop; one trial
and running it are qtc.tasks.experiments.trials (`Trial`, `run_trial`), where the trials run
an executor's business (qtc.tasks.experiments.executors: "ray", "process" or "serial"). Every trial sets torch's thread count to its CPU count (or
--threads / QTC_THREADS), so all executors compute the same numbers.
"""
from __future__ import annotations

import itertools
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.engines.progress import SweepProgress, clock
from qtc.tasks.experiments.executors import make_executor
from qtc.tasks.experiments.trials import TRIAL_JSON, Trial, is_done, read_status, run_trial
from qtc.tasks.runs import guard, signals
from qtc.tasks.runs.rundir import atomic_json, read_json_or_none

SWEEP_JSON = "sweep.json"


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------

def parse_seeds(text: str | int | None) -> list[int]:
    """`3` -> seeds 0, 1, 2; `0,5,7` -> those seeds (each once: a repeat is an error)."""
    from qtc.dsl.task import check_seeds
    if text is None:
        return [0]
    text = str(text).strip()
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else int(text)
    except ValueError:
        raise QtcError(f"--seeds expects a count (3 = seeds 0, 1, 2) or a comma list (0,5,7), got '{text}'") from None
    try:
        return list(check_seeds(seeds))
    except ValueError as err:
        raise QtcError(f"--seeds {text}: {err}") from None


def trial_resources(built, cpus_per_trial: int | None = None) -> tuple[int, float]:
    """(CPUs, GPUs) a trial of this spec needs: from the spec, unless overridden.

    A supervised trial is one process (1 CPU); an A3C trial runs `a3c workers N` worker
    processes and asks for N CPUs, at most this machine's (2 when the spec leaves it open: the
    paper's 16 workers still run as 16 processes on fewer cores, and a trial asking for more
    CPUs than a node has would never be scheduled); a generator on the cuda backend asks for
    one GPU. The CPUs a trial asks for never change its worker count (the spec's, or --set
    a3c.workers=N).
    """
    spec = built.spec
    cpus = 1
    if spec.kind == "a3c":
        cpus = min(spec.a3c.workers, os.cpu_count() or 1) if spec.a3c and spec.a3c.workers else 2
    gpus = 1.0 if spec.generator is not None and spec.generator.backend == "cuda" else 0.0
    if cpus_per_trial:
        cpus = cpus_per_trial
    return max(1, int(cpus)), gpus


MAX_GRID = 10_000     # grid points of one sweep (each is trials x seeds x models)


def parse_grid(texts) -> dict[str, list[str]]:
    """`--grid train.lr=1e-3,1e-2` (repeatable) -> {"train.lr": ["1e-3", "1e-2"]}.

    Values are split at commas outside brackets, so a list value stays whole (`data.classes=[1, 5],[3, 7]`).
    """
    from qtc.dsl.settings import parse_setting
    grid: dict[str, list[str]] = {}
    for text in texts or ():
        path, values = parse_setting(text)
        if path in grid:
            raise QtcError(f"--grid {path} given twice: list all its values in one --grid")
        grid[path] = [v.strip() for v in re.split(r",(?![^\[]*\])", values)]
        if "" in grid[path] or len(set(grid[path])) < len(grid[path]):
            raise QtcError(f"--grid {text}: expected distinct, comma-separated values")
    points = math.prod(len(v) for v in grid.values())
    if points > MAX_GRID:     # bounded before the product is enumerated or a trial planned
        raise QtcError(f"--grid gives {points:,} points (" + " x ".join(str(len(v)) for v in grid.values())
                       + f"): at most {MAX_GRID:,}; hint: sweep fewer values, or in several sweeps")
    return grid


def grid_points(settings: dict[str, str], grid: dict[str, list[str]]) -> list[tuple[dict, str]]:
    """(settings, folder label) of every point of the cartesian product of `grid`, on top of the
    fixed `settings`; no grid gives the one point (settings, "")."""
    both = sorted(set(settings) & set(grid))
    if both:
        raise QtcError(f"{', '.join(both)} given with both --set and --grid: give one")
    points, labels = [], {}
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        label = ",".join(f"{k}={re.sub(r'[^A-Za-z0-9._+=-]', '_', v)}" for k, v in point.items())
        if label in labels:
            raise QtcError(f"grid points {labels[label]} and {point} would share the folder '{label}'")
        labels[label] = point
        points.append(({**settings, **point}, label))
    return points


def _load_point(path: Path, point: dict[str, str], grid: dict[str, list[str]]):
    """The task at one grid point; a value the spec refuses is named as the --grid value it is
    (the settings code words every setting as --set)."""
    from qtc.errors import SpecError
    from qtc.tasks.build import load_task
    try:
        return load_task(path, point)
    except SpecError as err:
        for k in grid:
            shown = f"--set {k}={point[k]}"
            if err.message.startswith(shown):
                raise SpecError(f"--grid {k}={','.join(grid[k])}: the value {point[k]!r}"
                                + err.message[len(shown):], file=err.file, line=err.line,
                                column=err.column, source=err.source, hint=err.hint) from None
        raise


def plan(specs: list[str], seeds: list[int], models: str | None = None, *,
         overrides: dict | None = None, cpus_per_trial: int | None = None,
         skip=lambda built, model: False, settings: dict[str, str] | None = None,
         grid: dict[str, list[str]] | None = None, merge_twins: bool = False) -> list[Trial]:
    """Every (task, grid point, model, seed) trial, in that order of nesting.

    `overrides` are run settings for every trial (keywords of `resolve_options`); `settings`
    (`--set`) change every trial's spec, each point of `grid` (`--grid`) is a variant of every
    task; `skip(built, model)` leaves a model out (a preset's choice, e.g. Table II's ties).
    `found` is no trial of its own: it needs the structural weights of DiffQAS-QT's run of the
    same seed, so it trains in that trial's run, after it (`Trial.companions`).
    `merge_twins`: fixed candidates the compiler merged into one node (Built.twins) are trained
    once, by the first member's trial, which names the others (`Trial.twins`, recorded as the
    sweep's `ties`) so the report gives them its results.
    """
    from qtc.tasks.kinds import KINDS
    from qtc.tasks.runs.runner import check, resolve_options
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None and v is not False}
    trials, names = [], {}
    for spec in specs:
        path = Path(spec).resolve()
        if not path.is_file():
            raise QtcError(f"spec file {spec} not found (qtc sweep takes .task files)")
        for point, variant in grid_points(settings or {}, grid or {}):
            built = _load_point(path, point, grid or {})   # a bad setting fails here, not in every trial
            name = built.spec.name
            if names.setdefault(name, path) != path:
                raise QtcError(f"two specs define task '{name}' ({names[name]} and {path}): "
                               "a sweep folder holds one task of each name")
            chosen = built.select_models(models) if models else built.models()
            options = resolve_options(built, **overrides)   # bad overrides fail here, not in every trial
            check(built)          # and a bad spec (the backend is checked where the trial runs)
            KINDS[built.spec.kind].preflight(built, options)   # and missing data: as qtc run does,
            # for every task and grid point before the first trial starts or any folder is made
            cpus, gpus = trial_resources(built, cpus_per_trial)
            files, dataset, data_file = carried(path, built, overrides.get("data_root"))
            tied = built.twins(chosen) if merge_twins else {}
            companions = {naming.DIFFQAS: (naming.FOUND,)} if naming.FOUND in chosen else {}
            for model in (m for m in chosen if not skip(built, m) and m not in tied and m != naming.FOUND):
                twins = tuple(m for m, first in tied.items() if first == model)
                for seed in seeds:
                    trials.append(Trial(str(path), name, built.spec.kind, model, seed, cpus, gpus,
                                        dict(overrides), tuple(point.items()), variant, files, dataset,
                                        twins, data_file, companions.get(model, ())))
    return list(dict.fromkeys(trials))


def carried(path: Path, built, data_root=None) -> tuple[dict[str, str], str, dict]:
    """What a trial of this spec carries to another machine: {file name: text} of the spec and
    its search space (named as the spec names it), the image data set it reads by name ("" if
    none), and the data file it reads ({} if none; Trial.data_file): its path as found here,
    absolute (the carried spec names it, so a node's scratch copy of the spec does not look for
    it beside itself), and its digest, which each node checks before training
    (remote.check_node)."""
    from qtc.tasks.build import space_file
    from qtc.tasks.data import sources
    from qtc.tasks.runs.runner import with_data_path
    spec = built.spec
    text, data_file = path.read_text(), {}
    if sources.is_file_source(spec):
        found = sources.resolve(spec, data_root).resolve()
        data_file = {"source": spec.data.dataset, "path": str(found),
                     "sha256": sources.digest(spec, data_root)}
        text = with_data_path(spec, text, found)
    files = {path.name: text}
    if spec.generator is not None:
        files[spec.generator.space] = space_file(spec).read_text()   # found as a run finds it
    dataset = (spec.data.dataset if spec.kind == "classify" and spec.data is not None
               and not data_file else "")
    return files, dataset, data_file


# --------------------------------------------------------------------------------------------
# The sweep loop
# --------------------------------------------------------------------------------------------

@dataclass
class SweepResult:
    """What a sweep did: trial keys by outcome, and timings."""
    out: Path
    done: list[str]
    failed: list[str]
    skipped: list[str]
    seconds: float
    startup_seconds: float = 0.0
    executor: str = ""


def sweep(trials: list[Trial], out: Path | str, *, executor: str = "auto", address: str | None = None,
          workers: int | None = None, retries: int = 1, progress: bool = True,
          settings: dict | None = None, storage: str | None = None, run=run_trial,
          on_done=None) -> SweepResult:
    """Run every trial not yet done in `out`; retry failures `retries` times; record each outcome.

    On Ray, trials run in scratch folders of their nodes and their run folders come back into
    `out`; their checkpoints are kept in `storage` (a path or URI every node reaches), else in
    `out` through the driver's node (qtc.tasks.experiments.remote). A trial whose node died is
    run again (from its last checkpoint) without counting as a failed attempt, `LOST_LIMIT`
    times at most. Ctrl-C and SIGTERM stop the sweep (qtc.tasks.runs.signals); trials in flight
    keep their checkpoints, and the same call later resumes them. `run(trial_dict, out)` runs
    one trial (default `run_trial`); `on_done(trial)` is called as each trial is recorded done
    (qtc regenerate publishes it there, so a cut-off sweep loses no finished trial).
    """
    with signals.as_interrupt():
        return _sweep(trials, out, executor=executor, address=address, workers=workers,
                      retries=retries, progress=progress, settings=settings, storage=storage, run=run,
                      on_done=on_done)


def _sweep(trials, out, **options) -> SweepResult:
    with driving(out) as out:
        return _drive(trials, out, **options)


_DRIVEN: set[Path] = set()       # the sweep folders whose lock this process holds


@contextmanager
def driving(out: Path | str):
    """`with driving(OUT) as out:` one driver per sweep folder: OUT's lock (guard.RunLock), held
    for everything a driver writes there, the published trials read back into it
    (qtc.tasks.experiments.ledger.sync) before the first trial as much as the trials and the
    report, so that two sweeps into one folder never interleave; a second is refused before it
    writes a byte. Taken once per process: `run_sweep` and `regenerate` hold it around `sweep`."""
    out = Path(out).resolve()
    if out in _DRIVEN:
        yield out
        return
    out.mkdir(parents=True, exist_ok=True)
    with guard.RunLock(out):
        _DRIVEN.add(out)
        try:
            yield out
        finally:
            _DRIVEN.discard(out)


LOST_LIMIT = 3   # reruns of one trial whose node (or worker process) died under it


def _drive(trials: list[Trial], out: Path, *, executor, address, workers, retries, progress,
           settings, storage, run, on_done) -> SweepResult:
    _record_settings(out, trials, settings or {})
    todo = [t for t in trials if not is_done(out / t.key)]
    skipped = [t.key for t in trials if t not in todo]
    t0 = time.perf_counter()
    ex = make_executor(executor, run, str(out), address=address, workers=workers, storage=storage,
                       trials=todo) if todo else None
    startup = getattr(ex, "startup_seconds", 0.0)
    bar = SweepProgress(len(trials), len(skipped), ex.slots if ex else 1, enabled=progress)
    attempts = {t: 0 for t in todo}
    lost = {t: 0 for t in todo}
    started: dict[Trial, float] = {}
    done, failed = [], []
    queue = list(todo)
    try:
        # Submit no more than the executor can run at once, so that the retry of a failed trial
        # comes back after the trials already queued and the ETA sees real start times.
        while queue or (ex and ex.running()):
            while queue and len(started) < ex.slots * 2:
                t = queue.pop(0)
                attempts[t] += 1
                started[t] = time.time()
                ex.submit(t)
            bar.running = min(len(started), ex.slots)
            bar.show()
            for t, outcome in ex.wait(timeout=1.0):
                began = started.pop(t)
                status_file = guard.inside(out, out / t.key / TRIAL_JSON)
                if outcome.get("ok"):
                    atomic_json(status_file, _status(t, "done", attempts[t], began, outcome))
                    bar.done += 1
                    bar.durations.append(outcome.get("seconds", time.time() - began))
                    done.append(t.key)
                    if on_done:
                        on_done(t)
                elif outcome.get("lost") and lost[t] < LOST_LIMIT:
                    lost[t] += 1
                    attempts[t] -= 1
                    bar.note(f"trial {t.key} lost its worker ({_first_line(outcome)}); running it "
                             "again from its last checkpoint")
                    queue.insert(0, t)
                elif attempts[t] <= retries and not outcome.get("permanent"):
                    bar.note(f"trial {t.key} failed (attempt {attempts[t]} of {retries + 1}); retrying: "
                             f"{_first_line(outcome)}")
                    queue.append(t)
                else:
                    atomic_json(status_file, _status(t, "failed", attempts[t], began, outcome))
                    bar.failed += 1
                    failed.append(t.key)
                    why = ("not retried: qtc refused its input, which a retry would not change"
                           if outcome.get("permanent") else f"after {attempts[t]} attempt(s)")
                    bar.note(f"trial {t.key} failed ({why}):\n{_indented(outcome.get('error') or '?')}")
                bar.running = min(len(started), ex.slots)
                bar.show()
    except KeyboardInterrupt:
        bar.note(f"interrupted: {ex.running() if ex else 0} trial(s) in flight keep their checkpoints; "
                 f"run the same command again to resume")
        raise
    finally:
        bar.show(force=True)
        bar.close()
        if ex:
            ex.shutdown()
    return SweepResult(out, done, failed, skipped, time.perf_counter() - t0, startup,
                       ex.name if ex else "none")


def _indented(text: str, indent: str = "  ") -> str:
    """A whole (multi-line) error, indented under the line that names its trial."""
    return "\n".join(indent + line for line in text.strip().splitlines())


def _first_line(outcome: dict) -> str:
    return (outcome.get("error") or "").splitlines()[0] if outcome.get("error") else ""


def _status(t: Trial, status: str, attempts: int, began: float, outcome: dict) -> dict:
    where = {k: outcome[k] for k in ("node", "scratch", "moved") if k in outcome}   # a cluster trial's
    return {"status": status, "task": t.group, "model": t.model, "seed": t.seed, "spec": t.spec,
            "settings": dict(t.settings),
            "kind": t.kind, "attempts": attempts, "cpus": t.cpus, "gpus": t.gpus, "twins": list(t.twins),
            "companions": list(t.companions),
            "error": outcome.get("error"), "seconds": outcome.get("seconds"),
            "resumed": outcome.get("resumed"), "final": outcome.get("final"),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(began)), **where}


def _record_settings(out: Path, trials: list[Trial], settings: dict) -> None:
    """sweep.json: the union of every sweep run into this folder (a resumed sweep may add trials);
    `ties` ({task: {merged candidate: the model trained for it}}) also from the trials' twins."""
    path = out / SWEEP_JSON
    old = read_json_or_none(path) or {}
    keys = list(dict.fromkeys(old.get("trials", []) + [t.key for t in trials]))
    specs = list(dict.fromkeys(old.get("specs", []) + [t.spec for t in trials]))
    ties = {task: dict(v) for task, v in {**old.get("ties", {}), **settings.get("ties", {})}.items()}
    for t in (t for t in trials if t.twins):
        ties.setdefault(t.group, {}).update({twin: t.model for twin in t.twins})
    atomic_json(path, {**old, **settings, "specs": specs, "trials": keys, **({"ties": ties} if ties else {})})


def run_sweep(trials: list[Trial], out: Path | str, *, report: bool = True, publish: Path | None = None,
              rerun_stale: bool = False, **options) -> int:
    """`sweep` with a summary printed and (unless `report` is False) OUT/report written. With
    `publish` (a ledger folder, qtc.tasks.experiments.ledger), the trials published there are
    read back first and each trial is published as it finishes.

    Returns the command's exit status: 1 when a trial failed, else 0.
    """
    print(f"sweep {out}: {len(trials)} trials")
    with driving(out):
        if publish:
            from qtc.tasks.experiments import ledger
            ledger.sync(trials, Path(out), Path(publish), rerun_stale=rerun_stale, label=f"sweep {out}")
            options["on_done"] = ledger.publisher(Path(out), Path(publish))
        res = sweep(trials, out, **options)
        print(f"sweep finished in {clock(res.seconds)} on {res.executor}"
              + (f" (start-up {res.startup_seconds:.1f} s)" if res.startup_seconds else "")
              + f": {len(res.done)} done, {len(res.skipped)} skipped (done earlier), {len(res.failed)} failed")
        for key in res.failed:
            err = (read_status(res.out / key) or {}).get("error") or "?"
            print(f"  failed: {key}:\n{_indented(err, '    ')}")
        if report:
            from qtc.tasks.experiments.report import write_report
            print(f"report: {write_report(res.out).markdown}")
    return 1 if res.failed else 0
