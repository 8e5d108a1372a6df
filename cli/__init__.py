"""The `qtc` command line: compile, run, play, sweep, report, table2, regenerate (`parser`, `main`).

`qtc compile`'s output files are written by qtc.cli.compile. The CLI defines every subcommand's
arguments and turns them into the library's typed settings (`_run_options`, `_budget`); nothing
below it imports this module. Errors print without a traceback, exit code 2.
"""
from __future__ import annotations

import argparse
import difflib
import errno
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from qtc.compiler.target import RENDERINGS
from qtc.dsl.space import MAX_DEPTH, MAX_QUBITS
from qtc.dsl.spaces import SPACE_PATH_VARIABLE
from qtc.dsl.task import BACKENDS, RANGES
from qtc.dsl.values import backend_hint
from qtc.errors import QtcError, os_error_message

def int_in(lo: int, hi: int | None = None, what: str = "an integer"):
    """An argparse type: an integer in [lo, hi]; anything else is a usage error (exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"between {lo} and {hi:,}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    parse.__name__ = what  # argparse names the type in "invalid ... value" messages
    return parse


def spec_file(*suffixes: str):
    """An argparse type: an existing file ending in one of `suffixes` (a spec's kind is its
    suffix; a directory or a stray file is a usage error, not spec text to parse)."""
    def parse(text: str) -> str:
        if Path(text).suffix not in suffixes:
            raise argparse.ArgumentTypeError(f"{text} is not a {' or '.join(suffixes)} file")
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"no such spec file: {text}")
        return text
    parse.__name__ = "spec file"
    return parse


positive = int_in(1, what="a positive integer")
seed_value = int_in(*RANGES["seed"], what="a seed")
qubit_count = int_in(1, MAX_QUBITS, what="a number of qubits")
circuit_depth = int_in(1, MAX_DEPTH, what="a depth")


def backend_name(text: str) -> str:
    """An argparse type: a backend's name (dsl.task.BACKENDS; qtc.runtime.backends would load
    torch for every `qtc --help`): a misspelt one is a usage error with the alias hint."""
    if text in BACKENDS:
        return text
    hint = backend_hint(text)
    raise argparse.ArgumentTypeError(f"unknown backend '{text}'" + (f": {hint}" if hint else ""))


def _compile(args) -> int:
    from qtc.cli.compile import write_outputs
    from qtc.runtime.threads import describe
    out = write_outputs(args.spec, out_dir=args.output, qubits=args.qubits, depth=args.depth,
                        settings=_settings(args), rendering=args.rendering)
    print(out.report, end="")
    print("\n" + describe(out.program))
    print(f"wrote {', '.join(str(p) for p in out.files)}")
    return 0


def _settings(args) -> dict[str, str]:
    """`--set statement.option=value`s, in order; each option at most once (none is replaced)."""
    from qtc.dsl.settings import parse_setting
    out: dict[str, str] = {}
    for text in args.set or ():
        path, value = parse_setting(text)
        if path in out:
            raise QtcError(f"--set {path} given twice ({out[path]} and {value}): give it once")
        out[path] = value
    return out


def _budget(args) -> dict:
    """The budget, data and backend overrides `qtc run`, `qtc sweep` and `qtc table2` share."""
    from qtc.tasks.engines.selection import parse_select
    names = ("epochs", "episodes", "limit", "max_batches", "data_root", "download", "backend", "threads",
             "tensorboard", "perturb")
    out = {k: getattr(args, k, None) for k in names}
    out["download"], out["tensorboard"] = bool(out["download"]), bool(out["tensorboard"])
    out["select"] = parse_select(getattr(args, "select", None))
    return out


def _run_options(built, args):
    """`qtc run`'s arguments as RunOptions: the one place argparse becomes run settings."""
    from qtc.tasks.runs.runner import note_idle_backend, resolve_options
    options = resolve_options(built, models=args.models, baselines=args.baselines, workers=args.workers,
                              seed=args.seed, progress=not args.no_progress, jobs=args.jobs, **_budget(args))
    note_idle_backend(args.backend, options.models)
    return options


def _run(args) -> int:
    from qtc.tasks.build import load_task
    from qtc.tasks.runs import runner
    if args.seeds is not None and (args.resume or args.seed is not None):
        raise QtcError("--seeds runs a folder per (model, seed): it goes without --seed and --resume "
                       "(rerun the same command to resume)")
    if args.spec and not args.resume:
        built = load_task(args.spec, _settings(args))
        seeds = _seeds(args.seeds) if args.seeds is not None else built.spec.train.seeds
        if seeds and args.seed is not None:     # (with --seeds: refused above)
            raise QtcError(f"--seed {args.seed}: the spec's 'seeds' runs seeds {_listed(seeds)}, so "
                           "--seed would be ignored\nhint: choose the seeds with --seeds (e.g. "
                           f"--seeds {args.seed}) or --set train.seeds=[{args.seed}]")
        if seeds:
            return _run_seeds(args, built, seeds)
    if args.resume:
        overrides = {"models": args.models, "baselines": args.baselines, "workers": args.workers,
                     "seed": args.seed, "jobs": args.jobs, **_budget(args),
                     "threads": runner.resolve_threads(args.threads, None)}   # QTC_THREADS too
        built, options, rundir = runner.reopen(args.resume, spec=args.spec, overrides=overrides,
                                               settings=_settings(args),
                                               progress=False if args.no_progress else None)
        runner.note_idle_backend(args.backend, options.models)
    elif not args.spec:
        raise QtcError("qtc run needs a .task file (or --resume RUNDIR)")
    else:
        options = _run_options(built, args)
        rundir = runner.start(built, options, args.output)
    runner.run(built, options, rundir)
    print(f"done: results in {rundir.path}")
    return 0


def _listed(seeds) -> str:
    seeds = list(seeds)
    return ", ".join(map(str, seeds)) if len(seeds) <= 5 else f"{seeds[0]}, {seeds[1]}, ..., {seeds[-1]}"


def _seeds(text: str) -> list[int]:
    from qtc.tasks.experiments.sweep import parse_seeds
    return parse_seeds(text)


def _run_seeds(args, built, seeds) -> int:
    """`qtc run SPEC --seeds ...`: every model for every seed, one resumable folder each."""
    from qtc.tasks.experiments.seeded import run_seeds
    options = _run_options(built, args)  # bad overrides fail before any folder is made
    return run_seeds(built, list(seeds), models=args.models, baselines=args.baselines, out=args.output,
                     overrides=_budget(args), command="qtc " + " ".join(sys.argv[1:]),
                     progress=not args.no_progress, jobs=options.jobs)


def _sweep(args) -> int:
    from qtc.tasks.experiments import sweep
    from qtc.tasks.runs.runner import note_idle_backend
    seeds = sweep.parse_seeds(args.seeds)
    overrides = _budget(args)
    if overrides["data_root"]:
        overrides["data_root"] = str(Path(overrides["data_root"]).resolve())
    if args.rerun_stale and not args.publish:
        raise QtcError("--rerun-stale applies to the trials published with --publish DIR: give --publish")
    fixed, grid = _settings(args), sweep.parse_grid(args.grid)
    trials = sweep.plan(args.specs, seeds, args.models, overrides=overrides,
                        cpus_per_trial=args.cpus_per_trial, settings=fixed, grid=grid,
                        merge_twins=not args.all_candidates)
    note_idle_backend(args.backend, [m for t in trials for m in (t.model, *t.companions)])
    settings = {"seeds": seeds, "models": args.models, "set": fixed, "grid": grid,
                "overrides": {k: v for k, v in overrides.items() if v is not None and v is not False},
                "command": " ".join(sys.argv)}
    return sweep.run_sweep(trials, args.out, executor=args.executor, address=args.address,
                           storage=args.storage, workers=args.workers, retries=args.retries, progress=not args.no_progress,
                           settings=settings, report=not args.no_report, publish=args.publish,
                           rerun_stale=args.rerun_stale)


def _report(args) -> int:
    from qtc.tasks.experiments.report import write_report
    from qtc.tasks.experiments.paired import parse_pairs
    rep = write_report(args.dirs, args.output, parse_pairs(args.pair))
    print(f"report: {rep.markdown}")
    for p in rep.files:
        print(f"  {p}")
    return 0


def _table2(args) -> int:
    from qtc.tasks.experiments.table2 import run_table2
    datasets = tuple(d.strip() for d in args.datasets.split(",")) if args.datasets is not None else None
    executor = args.executor or ("serial" if args.jobs <= 1 else "process")
    return run_table2(args.output, seeds=tuple(args.seeds or (0,)), datasets=datasets, models=args.models,
                      spec_dir=args.spec_dir, all_candidates=args.all_candidates, executor=executor,
                      workers=args.jobs, overrides=_budget(args),
                      command="qtc " + " ".join(sys.argv[1:]))


def _regenerate(args) -> int:
    from qtc.tasks.experiments import regenerate as regen
    from qtc.tasks.experiments.sweep import parse_seeds
    manifest = regen.load_manifest(args.manifest)
    parts = regen.choose(manifest, args.only)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if args.no_perturb and args.perturb is not None:
        raise QtcError("--perturb and --no-perturb together: give one")
    perturb = False if args.no_perturb else args.perturb
    if args.rerun_stale and not args.publish:
        raise QtcError("--rerun-stale applies to the trials published with --publish DIR: give --publish")
    overrides = {k: getattr(args, k) for k in ("epochs", "max_batches", "limit", "backend", "threads")}
    overrides["data_root"] = str(Path(args.data_root).resolve()) if args.data_root else None
    if args.plan:
        print(f"regenerate: manifest {manifest.path}, {len(parts)} of {len(manifest.parts)} part(s)")
        print("\n".join(regen.plan(parts, args.output, seeds=seeds, perturb=perturb, overrides=overrides,
                                   publish=args.publish)))
        return 0
    executor = args.executor or ("serial" if args.jobs <= 1 else "process")
    return regen.regenerate(parts, args.output, seeds=seeds, perturb=perturb, overrides=overrides,
                            executor=executor, workers=args.jobs, publish=args.publish,
                            command="qtc " + " ".join(sys.argv[1:]), progress=not args.no_progress,
                            rerun_stale=args.rerun_stale)


def _play(args) -> int:
    from qtc.tasks.kinds.a3c import play_model
    return play_model(args.rundir, args.model, episodes=args.episodes, seed=args.seed)


def _perturb_arg(parser) -> None:
    parser.add_argument("--perturb", type=number, metavar="EPS", help="move every initial parameter "
                        "by a seeded uniform draw in [-EPS, EPS] (e.g. 1e-7: what a rounding change "
                        "does to the results; recorded in the run's settings and fingerprint)")


def number(text: str) -> float:
    """An argparse type: a finite number (its range is checked by RunOptions, for every caller)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _threads_arg(parser) -> None:
    parser.add_argument("--threads", type=int, help="torch threads per run (default 1, in a sweep "
                        "the trial's CPUs; QTC_THREADS=N overrides the default)")


def folder(text: str) -> str:
    """An argparse type: an existing folder (a misspelt --space-path is a usage error, not a
    folder silently never searched)."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    return text


def _space_path_arg(parser) -> None:
    parser.add_argument("--space-path", action="append", type=folder, metavar="DIR",
                        help="a folder of .qs search spaces a task's 'generator NAME.qs' is looked "
                        "for in after the task's own folder, before $QTC_SPACE_PATH and the "
                        "bundled spaces; repeatable")


@contextmanager
def _space_path(args):
    """--space-path's folders put before $QTC_SPACE_PATH's for the command, so that every
    lookup (qtc.dsl.spaces, through qtc.settings) and every process the command starts (a
    sweep's trials, --jobs workers) sees the same path; the variable is restored after."""
    given = getattr(args, "space_path", None)
    if not given:
        yield
        return
    old = os.environ.get(SPACE_PATH_VARIABLE)
    os.environ[SPACE_PATH_VARIABLE] = os.pathsep.join([*given, *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SPACE_PATH_VARIABLE, None)
        else:
            os.environ[SPACE_PATH_VARIABLE] = old


def _set_arg(parser) -> None:
    parser.add_argument("--set", action="append", metavar="STATEMENT.OPTION=VALUE",
                        help="change one option of the .task, checked like the spec's own (e.g. "
                        "--set train.lr=3e-4 --set generator.depth=12); repeatable")


def _budget_args(parser) -> None:
    """The overrides `qtc run` and `qtc sweep` share: budget, data and backend. The counts are
    plain integers here: their ranges are checked once, by RunOptions, for every caller."""
    parser.add_argument("--epochs", type=int, help="override the spec's epochs")
    parser.add_argument("--episodes", type=int, help="override the spec's episodes (a3c)")
    parser.add_argument("--limit", type=int, help="use only the first N examples of each split")
    parser.add_argument("--max-batches", type=int, help="stop each epoch after N batches (smoke runs)")
    parser.add_argument("--data-root", help="where to look for data sets first")
    parser.add_argument("--download", action="store_true", help="allow downloading missing data sets")
    parser.add_argument("--backend", type=backend_name,
                        help="simulator backend (default: the spec's, else auto)")
    _select_arg(parser)
    _perturb_arg(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (a plain line per epoch is printed all the same)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files into RUNDIR/tensorboard/<model> "
                        "(needs the tensorboard package: pip install tensorboard)")
    _threads_arg(parser)
    _set_arg(parser)
    _space_path_arg(parser)


def version_text() -> str:
    """`qtc X.Y.Z`, plus the git commit (and `-dirty`) when qtc runs from a checkout, so a result
    can be traced to the exact code that made it."""
    import qtc
    from qtc.tasks.runs.provenance import NOT_A_CHECKOUT, git_commit
    commit = git_commit(short=True)
    text = f"qtc {qtc.__version__}"
    return text if commit == NOT_A_CHECKOUT else f"{text} (git {commit})"


class _Version(argparse.Action):
    """`--version`, computed only when asked (it may run git)."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, help="print the version (and git commit) and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def _select_arg(parser) -> None:
    parser.add_argument("--select", nargs="+", metavar="RULE", help="which epoch is reported and "
                        "exported: last, train (lowest training loss) or validation F (lowest loss "
                        "on the last fraction F of the training data, held out; an a3c task: "
                        "validation with no F, the best evaluation episodes); default: the spec")


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviated options (`--epoch` is not taken for `--epochs`: a script's
    words keep their meaning when an option is added) and with a hint for a misspelt one. The
    subcommands' parsers are of this class too (add_subparsers makes them of the parent's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):
            known = {o for a in self._all_actions() for o in a.option_strings}
            words = [w.split("=")[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            close = [c[0] for w in words if (c := difflib.get_close_matches(w, sorted(known), n=1))]
            if close:
                message += ("\nhint: did you mean " + ", ".join(f"'{c}'" for c in close)
                            + "? (options are spelt out in full)")
        super().error(message)

    def _all_actions(self):
        for action in self._actions:
            yield action
            if isinstance(action.choices, dict):        # the subcommands: {name: parser}
                for sub in action.choices.values():
                    yield from sub._all_actions()


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qtc", description="Quantum-Train with differentiable "
                                "quantum architecture search: compile search spaces, run tasks.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a .qs search space or a .task spec; print the report")
    c.add_argument("spec", type=spec_file(".qs", ".task"), help="a .qs or .task file")
    c.add_argument("--qubits", type=qubit_count, help="override the number of qubits")
    c.add_argument("--depth", type=circuit_depth, help="override the depth")
    c.add_argument("-o", "--output", type=Path, help="output folder (default out/<name>)")
    c.add_argument("--rendering", choices=RENDERINGS,
                   help="how the kernels are written: unrolled code per op, or compact loops over "
                        "tables (default: $QTC_RENDERING, else the cost model chooses by size)")
    _set_arg(c)
    _space_path_arg(c)
    c.set_defaults(func=_compile)

    r = sub.add_parser("run", help="train a task (DiffQAS-QT and the requested baselines)")
    r.add_argument("spec", nargs="?", type=spec_file(".task"), help="a .task file (not needed with --resume)")
    r.add_argument("-o", "--output", type=Path, help="run folder (default runs/<task>-<time>)")
    r.add_argument("--resume", type=Path, metavar="RUNDIR", help="continue an interrupted run")
    r.add_argument("--models", help="comma-separated: diffqas,fixed,classical (default from the spec)")
    r.add_argument("--baselines", action="store_true", help="also run the fixed candidates and "
                   "the classical network, whatever the spec's 'compare' says")
    r.add_argument("--workers", type=int, help="A3C worker processes (default: the spec, else cores)")
    r.add_argument("--seed", type=int, help="override the spec's seed")
    r.add_argument("--seeds", help="a count K (seeds 0..K-1) or a list 0,1,2: every model for every "
                   "seed, a folder per (model, seed) under -o, a report over seeds (default: the spec)")
    r.add_argument("--jobs", type=int, help="models (with --seeds: runs) trained at once, each in "
                   "its own process (default: one per core; classify and forecast tasks)")
    _budget_args(r)
    r.set_defaults(func=_run)

    t = sub.add_parser("table2", help="reproduce the paper's Table II (5 data sets x 13 models + LSTM)")
    t.add_argument("--epochs", type=int, help="override the specs' epochs (paper: 100)")
    t.add_argument("--seeds", type=seed_value, nargs="+", help="seeds (default 0); ours = mean over seeds")
    t.add_argument("-o", "--output", type=Path, default=Path("runs/table2"), help="output folder "
                   "(default runs/table2; rerun the same command to resume)")
    t.add_argument("--jobs", type=positive, default=os.cpu_count() or 1,
                   help="worker processes (default: cores)")
    t.add_argument("--executor", choices=("auto", "ray", "process", "serial"),
                   help="as for qtc sweep (default: serial with --jobs 1, else process)")
    t.add_argument("--datasets", help="comma-separated subset of bessel,damped_shm,delayed_qc,narma5,narma10")
    t.add_argument("--models", default="diffqas,fixed,classical", help="as for qtc run --models")
    t.add_argument("--spec-dir", type=Path, help="folder with <dataset>.task specs (default: bundled)")
    t.add_argument("--max-batches", type=int, help="stop each epoch after N batches (smoke runs)")
    t.add_argument("--backend", type=backend_name, help="simulator backend (default: the spec's, else auto)")
    _threads_arg(t)
    _select_arg(t)
    _perturb_arg(t)
    t.add_argument("--all-candidates", action="store_true", help="also train candidates tied with an "
                   "earlier one (same compiled constant; by default their result is reused)")
    t.set_defaults(func=_table2)

    e = sub.add_parser("regenerate", help="rerun every published result part by part from the "
                       "manifest (specs/regenerate.toml): seeds, perturbed twins, reports")
    e.add_argument("--manifest", type=Path, help="the manifest (default: the bundled specs/regenerate.toml)")
    e.add_argument("--only", metavar="PART,...", help="run only these parts (names in the manifest)")
    e.add_argument("--seeds", help="a count K (seeds 0..K-1) or a list 0,5,7 for every part "
                   "(default: each part's, in the manifest)")
    e.add_argument("--perturb", type=number, metavar="EPS", help="the perturbation of the perturbed "
                   "twins (default: the manifest's, 1e-7); parts that take none (a3c) run without")
    e.add_argument("--no-perturb", action="store_true", help="run no perturbed twins")
    e.add_argument("-o", "--output", type=Path, default=Path("runs/regen"), help="where the runs go, "
                   "a folder per part (default runs/regen; rerun the same command to resume)")
    e.add_argument("--publish", type=Path, metavar="DIR", help="copy each finished part's report "
                   "into DIR/<outputs> (e.g. docs/results), and each finished trial's small outputs "
                   "into DIR/<outputs>/trials as it finishes, to be committed; a later run (a fresh "
                   "clone, an empty -o) reads those back instead of running them again")
    e.add_argument("--rerun-stale", action="store_true", help="a trial published (or done in -o) "
                   "for another fingerprint than the plan's (a spec, its data, the budget or a "
                   "setting changed) is refused; with this, its record is deleted and it runs again")
    e.add_argument("--plan", action="store_true", help="print what would run (parts, trials, done "
                   "already here or published under --publish, a CPU-time estimate) and exit")
    e.add_argument("--jobs", type=positive, default=os.cpu_count() or 1, help="trials at once (default: cores)")
    e.add_argument("--executor", choices=("auto", "ray", "process", "serial"),
                   help="as for qtc sweep (default: serial with --jobs 1, else process)")
    e.add_argument("--epochs", type=int, help="override every part's epochs (smoke runs)")
    e.add_argument("--max-batches", type=int, help="stop each epoch after N batches (smoke runs)")
    e.add_argument("--limit", type=int, help="use only the first N examples (classify parts)")
    e.add_argument("--data-root", help="where to look for data sets first (MNIST's 10k sample), for "
                   "the parts that read one (the series and the A3C environments are generated)")
    e.add_argument("--backend", type=backend_name, help="simulator backend (default: the spec's, else auto)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    _threads_arg(e)
    e.set_defaults(func=_regenerate)

    y = sub.add_parser("play", help="watch a trained A3C policy act (text grid)")
    y.add_argument("rundir", type=Path)
    y.add_argument("--model", default="diffqas")
    y.add_argument("--episodes", type=positive, default=1)
    y.add_argument("--seed", type=seed_value, default=0)
    y.set_defaults(func=_play)

    s = sub.add_parser("sweep", help="run every (task, model, seed) trial on Ray or a process pool")
    s.add_argument("specs", nargs="+", metavar="SPEC", help=".task files")
    s.add_argument("--seeds", default="1", help="a count K (seeds 0..K-1) or a list 0,5,7 (default 1)")
    s.add_argument("--models", help="comma-separated: diffqas,fixed,fixed:K,classical (default: each spec's)")
    s.add_argument("--out", "-o", type=Path, default=Path("sweeps/sweep"), help="sweep folder")
    s.add_argument("--address", help="join an existing Ray cluster (e.g. auto or HOST:6379); gives up "
                   "when it does not answer in time ($QTC_RAY_TIMEOUT seconds sets the wait)")
    s.add_argument("--storage", metavar="PATH|URI",
                   help="where trials on Ray keep their checkpoints: a path every node mounts, or "
                   "s3://, gs://, ... (pyarrow); default: the --out folder, through the driver's node")
    s.add_argument("--executor", default="auto", choices=("auto", "ray", "process", "serial"),
                   help="auto = Ray if installed, else a local process pool")
    s.add_argument("--workers", type=positive, help="CPUs for a local Ray / pool processes (default: all cores)")
    s.add_argument("--cpus-per-trial", type=positive, help="override the CPUs each trial asks for")
    s.add_argument("--retries", type=int_in(0, 100, "a retry count"), default=1,
                   help="retries of a failing trial (default 1)")
    _budget_args(s)
    s.add_argument("--grid", action="append", metavar="STATEMENT.OPTION=V1,V2,...",
                   help="run every task at each value (several --grid: every combination), each "
                   "point in its own folder <task>@<option>=<value>; repeatable")
    s.add_argument("--all-candidates", action="store_true", help="also train fixed candidates the "
                   "compiler merged with an earlier one (by default each merged group is trained once "
                   "and reported for every member)")
    s.add_argument("--no-report", action="store_true", help="do not write OUT/report at the end")
    s.add_argument("--publish", type=Path, metavar="DIR", help="publish each finished trial's small "
                   "outputs into DIR/<task>/<model>/seed<k> as it finishes, to be committed; a later "
                   "sweep (a fresh clone, an empty --out) reads them back instead of running them")
    s.add_argument("--rerun-stale", action="store_true", help="with --publish: rerun a trial published "
                   "for another fingerprint than the plan's (refused without this)")
    s.set_defaults(func=_sweep)

    g = sub.add_parser("report", help="aggregate sweep or run folders: tables, variants side by side, "
                       "Table II, curves (md/csv/png)")
    g.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                   help="a sweep folder, qtc run folders, or a folder of run folders")
    g.add_argument("-o", "--output", type=Path, help="report folder (default DIR/report; needed "
                   "with several DIRs)")
    g.add_argument("--pair", action="append", metavar="TASK=REFERENCE",
                   help="also compare every model of TASK with REFERENCE's DiffQAS-QT, seed by seed "
                   "(e.g. narma5_sampled=narma5: the untied search against the tied one; the tasks "
                   "may come from different DIRs); repeatable")
    g.set_defaults(func=_report)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:   # started with '&': Ctrl-C/kill -INT
        signal.signal(signal.SIGINT, signal.default_int_handler)   # must still stop and save
    try:
        with _space_path(args):
            return args.func(args)
    except QtcError as err:
        if _from_closed_pipe(err):      # a worker or a trial met the closed pipe first
            return _closed_pipe()
        print(str(err), file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # an OSError too: before the general case
        return _closed_pipe()
    except OSError as err:  # a full disk, a read-only folder, a file where a folder must be
        if err.errno == errno.EPIPE:
            return _closed_pipe()
        print(os_error_message(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _from_closed_pipe(err: BaseException) -> bool:
    """Whether `err` comes of our stdout's reader going away (`qtc run X.task | head -1`): a
    BrokenPipeError in its chain, or one reported as text by another process (a --jobs worker
    shares our stdout) while our stdout is indeed a pipe nobody reads."""
    seen = err
    while seen is not None:
        if isinstance(seen, BrokenPipeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "BrokenPipeError" in str(err) and stdout_closed()


def stdout_closed() -> bool:
    """Whether stdout (file descriptor 1, which workers share) is a pipe whose reading end is
    closed: poll reports an error on it."""
    import select
    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (AttributeError, OSError):   # no poll (Windows), no stdout
        return False


def _closed_pipe() -> int:
    """The reader of our stdout went away (`qtc compile X.task | head`): stop quietly.

    stdout is pointed at /dev/null so that the interpreter's final flush cannot raise again;
    141 (128 + SIGPIPE) is what a Unix tool stopped by the closed pipe reports.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141
