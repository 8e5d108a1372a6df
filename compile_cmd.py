"""`qtc compile`: a .qs or .task spec -> report.txt, program.ir and kernels.cu in a folder.

It sits beside the CLI, above tasks/, because a .task needs the task side (its target
network's parameter counts, the size it gives the space); the compiler itself reports programs
only (qtc/compiler/report.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtc.compiler.ir import Program
from qtc.compiler.pipeline import compile_space
from qtc.compiler.report import program_outputs
from qtc.errors import QtcError


@dataclass
class Outputs:
    report: str
    files: list[Path]
    program: Program


def write_outputs(spec: str, *, out_dir: Path | None = None, qubits=None, depth=None) -> Outputs:
    """Compile a .qs or .task spec; write report.txt, program.ir and kernels.cu."""
    header = ""
    if str(spec).endswith(".task"):
        from qtc.tasks.build import load_task
        built = load_task(spec)
        if built.program is None:
            raise QtcError(f"{spec}: the task has no 'generator': nothing to compile")
        prog, name = built.program, built.spec.name
        biggest = max(net.num_params for net in built.nets.values())
        if qubits and 2 ** qubits < biggest:
            raise QtcError(f"--qubits {qubits} gives only {2 ** qubits:,} weights but {spec} needs "
                           f"{biggest:,}: use at least {prog.qubits} (or leave --qubits out)")
        if qubits or depth:
            prog = compile_space(prog.space, qubits=qubits or prog.qubits, depth=depth or prog.depth)
        header = built.parameter_report() + "\n\n"
    else:
        prog = compile_space(spec, qubits=qubits, depth=depth)
        name = prog.name
    texts = program_outputs(prog)
    texts["report.txt"] = header + texts["report.txt"]
    out = Path(out_dir) if out_dir else Path("out") / name
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for fname, text in texts.items():
        files.append(out / fname)
        files[-1].write_text(text)
    return Outputs(texts["report.txt"], files, prog)
