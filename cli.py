"""The `qtc` command line: compile, run, play. Errors print without a traceback, exit code 2."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qtc.errors import QtcError


def _compile(args) -> int:
    from qtc.compile_cmd import write_outputs
    out = write_outputs(args.spec, out_dir=args.output, qubits=args.qubits, depth=args.depth)
    print(out.report, end="")
    print("\n" + _thread_setting(out.program))
    print(f"wrote {', '.join(str(p) for p in out.files)}")
    return 0


def _thread_setting(prog) -> str:
    """What a cpu step of `prog` would use now (depends on the machine: not in report.txt)."""
    import torch

    from qtc.compiler.ir import Circuit
    from qtc.runtime.threads import describe
    circuits = sum(isinstance(c, Circuit) for c in prog.circuits)
    return describe(prog.qubits, circuits, torch.get_num_threads())


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
    parser.add_argument("--epochs", type=int, help="override the spec's epochs")
    parser.add_argument("--episodes", type=int, help="override the spec's episodes (a3c)")
    parser.add_argument("--limit", type=int, help="use only the first N examples of each split")
    parser.add_argument("--max-batches", type=int, help="stop each epoch after N batches (smoke runs)")
    parser.add_argument("--data-root", help="where to look for data sets first")
    parser.add_argument("--download", action="store_true", help="allow downloading missing data sets")
    parser.add_argument("--backend", help="simulator backend: auto, cpu, cuda, reference")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qtc", description="Quantum-Train with differentiable "
                                "quantum architecture search: compile search spaces, run tasks.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a .qs search space or a .task spec; print the report")
    c.add_argument("spec", help="a .qs or .task file")
    c.add_argument("--qubits", type=int, help="override the number of qubits")
    c.add_argument("--depth", type=int, help="override the depth")
    c.add_argument("-o", "--output", type=Path, help="output folder (default out/<name>)")
    c.set_defaults(func=_compile)

    r = sub.add_parser("run", help="train a task (DiffQAS-QT and the requested baselines)")
    r.add_argument("spec", nargs="?", help="a .task file (not needed with --resume)")
    r.add_argument("-o", "--output", type=Path, help="run folder (default runs/<task>-<time>)")
    r.add_argument("--resume", type=Path, metavar="RUNDIR", help="continue an interrupted run")
    r.add_argument("--models", help="comma-separated: diffqas,fixed,classical (default from the spec)")
    r.add_argument("--baselines", action="store_true", help="also run the fixed candidates and "
                   "the classical network, whatever the spec's 'compare' says")
    r.add_argument("--workers", type=int, help="A3C worker processes (default: the spec, else cores)")
    r.add_argument("--seed", type=int, help="override the spec's seed")
    add_budget_args(r)
    r.set_defaults(func=_run)

    t = sub.add_parser("table2", help="reproduce the paper's Table II (5 data sets x 13 models + LSTM)")
    t.add_argument("--epochs", type=int, help="override the specs' epochs (paper: 100)")
    t.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0); ours = mean over seeds")
    t.add_argument("-o", "--output", type=Path, default=Path("runs/table2"), help="output folder "
                   "(default runs/table2; rerun the same command to resume)")
    t.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    t.add_argument("--datasets", help="comma-separated subset of bessel,damped_shm,delayed_qc,narma5,narma10")
    t.add_argument("--models", default="diffqas,fixed,classical", help="as for qtc run --models")
    t.add_argument("--spec-dir", type=Path, help="folder with <dataset>.task specs (default: bundled)")
    t.add_argument("--max-batches", type=int, help="stop each epoch after N batches (smoke runs)")
    t.add_argument("--backend", help="simulator backend: auto, cpu, cuda, reference")
    t.add_argument("--all-candidates", action="store_true", help="also train candidates tied with an "
                   "earlier one (same compiled constant; by default their result is reused)")
    t.set_defaults(func=_table2)

    y = sub.add_parser("play", help="watch a trained A3C policy act (text grid)")
    y.add_argument("rundir", type=Path)
    y.add_argument("--model", default="diffqas")
    y.add_argument("--episodes", type=int, default=1)
    y.add_argument("--seed", type=int, default=0)
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
