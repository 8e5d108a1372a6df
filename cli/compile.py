"""`qtc compile`: a .qs or .task spec -> report.txt, program.ir and kernels.cu in a folder.

It is part of the CLI, above tasks/, because a .task needs the task side (its target
network's parameter counts, the size it gives the space); the compiler itself reports programs
only (qtc/compiler/report.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtc.compiler.ir import Program
from qtc.compiler.pipeline import compile_space
from qtc.compiler.report import program_outputs
from qtc.compiler.target import Target
from qtc.errors import QtcError
from qtc.settings import settings as environment


@dataclass
class Outputs:
    report: str
    files: list[Path]
    program: Program


def write_outputs(spec: str, *, out_dir: Path | None = None, qubits=None, depth=None,
                  settings: dict[str, str] | None = None, rendering: str | None = None) -> Outputs:
    """Compile a .qs or .task spec; write report.txt, program.ir and kernels.cu.

    `rendering` (auto, unrolled, compact) forces how the kernels are rendered; None: as
    $QTC_RENDERING says, else the cost model chooses (qtc.settings).

    For a .task, `qubits` and `depth` are the settings generator.qubits and generator.depth, so
    they are checked like the spec's own values and the parameter table shows the size compiled.
    """
    header, knobs = "", environment()   # `settings` here are --set's
    if str(spec).endswith(".task"):
        from qtc.tasks.build import load_task
        from qtc.tasks.runs.runner import check
        built = load_task(spec, {**(settings or {}), **_size_settings(settings or {}, qubits, depth)})
        if built.program is None:
            raise QtcError(f"{spec}: the task has no 'generator': nothing to compile")
        check(built)                          # data set, classes, networks: what a run would need
        prog, name = built.program, built.spec.name
        header = built.parameter_report() + "\n\n"
    elif settings:
        raise QtcError(f"--set changes .task specs; a search space ({spec}) takes --qubits and --depth")
    else:
        prog = compile_space(spec, qubits=qubits, depth=depth, channel_memory=knobs.channel_memory)
        name = prog.name
    texts = program_outputs(prog, Target(rendering=rendering or knobs.rendering))
    texts["report.txt"] = header + texts["report.txt"]
    out = Path(out_dir) if out_dir else Path("out") / name
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for fname, text in texts.items():
        files.append(out / fname)
        files[-1].write_text(text)
    return Outputs(texts["report.txt"], files, prog)


def _size_settings(settings: dict[str, str], qubits, depth) -> dict[str, str]:
    """--qubits/--depth as generator settings (given twice, with --set too, is an error)."""
    out = {k: str(v) for k, v in (("generator.qubits", qubits), ("generator.depth", depth)) if v is not None}
    twice = sorted(set(out) & set(settings))
    if twice:
        raise QtcError(f"{', '.join(twice)} given twice (--qubits/--depth and --set): give one")
    return out
