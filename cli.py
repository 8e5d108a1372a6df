"""The `qtc` command line: compile, run, play. Errors print without a traceback, exit code 2."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qtc.errors import QtcError, os_error_message

BACKENDS = ("auto", "cpu", "cuda", "reference")


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
seed_value = int_in(0, 2 ** 32 - 1, what="a seed")           # torch and numpy seeds are 32-bit
qubit_count = int_in(1, 30, what="a number of qubits")
circuit_depth = int_in(1, 10_000, what="a depth")


def _compile(args) -> int:
    from qtc.compiler.report import write_outputs
    out = write_outputs(args.spec, out_dir=args.output, qubits=args.qubits, depth=args.depth)
    print(out.report, end="")
    print(f"\nwrote {', '.join(str(p) for p in out.files)}")
    return 0


def _run(args) -> int:
    from qtc.tasks.runs.runner import run_task
    return run_task(args)


def _table2(args) -> int:
    from qtc.tasks.experiments.table2 import main
    return main(args)


def _play(args) -> int:
    from qtc.tasks.kinds.minigrid import play_run
    return play_run(args)


def add_budget_args(parser) -> None:
    """The overrides `qtc run` and `qtc sweep` share: budget, data and backend."""
    parser.add_argument("--epochs", type=positive, help="override the spec's epochs")
    parser.add_argument("--episodes", type=positive, help="override the spec's episodes (a3c)")
    parser.add_argument("--limit", type=positive, help="use only the first N examples of each split")
    parser.add_argument("--max-batches", type=positive, help="stop each epoch after N batches (smoke runs)")
    parser.add_argument("--data-root", help="where to look for data sets first")
    parser.add_argument("--download", action="store_true", help="allow downloading missing data sets")
    parser.add_argument("--backend", choices=BACKENDS, help="simulator backend")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qtc", description="Quantum-Train with differentiable "
                                "quantum architecture search: compile search spaces, run tasks.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a .qs search space or a .task spec; print the report")
    c.add_argument("spec", type=spec_file(".qs", ".task"), help="a .qs or .task file")
    c.add_argument("--qubits", type=qubit_count, help="override the number of qubits")
    c.add_argument("--depth", type=circuit_depth, help="override the depth")
    c.add_argument("-o", "--output", type=Path, help="output folder (default out/<name>)")
    c.set_defaults(func=_compile)

    r = sub.add_parser("run", help="train a task (DiffQAS-QT and the requested baselines)")
    r.add_argument("spec", nargs="?", type=spec_file(".task"), help="a .task file (not needed with --resume)")
    r.add_argument("-o", "--output", type=Path, help="run folder (default runs/<task>-<time>)")
    r.add_argument("--resume", type=Path, metavar="RUNDIR", help="continue an interrupted run")
    r.add_argument("--models", help="comma-separated: diffqas,fixed,classical (default from the spec)")
    r.add_argument("--baselines", action="store_true", help="also run the fixed candidates and "
                   "the classical network, whatever the spec's 'compare' says")
    r.add_argument("--workers", type=int_in(1, 256, "a worker count"),
                   help="A3C worker processes (default: the spec, else cores)")
    r.add_argument("--seed", type=seed_value, help="override the spec's seed")
    add_budget_args(r)
    r.set_defaults(func=_run)

    t = sub.add_parser("table2", help="reproduce the paper's Table II (5 data sets x 13 models + LSTM)")
    t.add_argument("--epochs", type=positive, help="override the specs' epochs (paper: 100)")
    t.add_argument("--seeds", type=seed_value, nargs="+", help="seeds (default 0); ours = mean over seeds")
    t.add_argument("-o", "--output", type=Path, default=Path("runs/table2"), help="output folder "
                   "(default runs/table2; rerun the same command to resume)")
    t.add_argument("--jobs", type=positive, default=os.cpu_count() or 1,
                   help="worker processes (default: cores)")
    t.add_argument("--datasets", help="comma-separated subset of bessel,damped_shm,delayed_qc,narma5,narma10")
    t.add_argument("--models", default="diffqas,fixed,classical", help="as for qtc run --models")
    t.add_argument("--spec-dir", type=Path, help="folder with <dataset>.task specs (default: bundled)")
    t.add_argument("--max-batches", type=positive, help="stop each epoch after N batches (smoke runs)")
    t.add_argument("--backend", choices=BACKENDS, help="simulator backend")
    t.add_argument("--all-candidates", action="store_true", help="also train candidates tied with an "
                   "earlier one (same compiled constant; by default their result is reused)")
    t.set_defaults(func=_table2)

    y = sub.add_parser("play", help="watch a trained A3C policy act (text grid)")
    y.add_argument("rundir", type=Path)
    y.add_argument("--model", default="diffqas")
    y.add_argument("--episodes", type=positive, default=1)
    y.add_argument("--seed", type=seed_value, default=0)
    y.set_defaults(func=_play)

    from qtc.tasks.experiments.sweep import add_parsers  # qtc sweep, qtc report
    add_parsers(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except QtcError as err:
        print(str(err), file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a full disk, a read-only folder, a file where a folder must be
        print(os_error_message(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
