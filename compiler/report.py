"""What `qtc compile` prints and writes: the report, the IR text and the kernel source."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtc.compiler.ir import Circuit, Constant, Program, count_gates, pretty
from qtc.compiler.pipeline import compile_space
from qtc.errors import QtcError


@dataclass
class Outputs:
    report: str
    files: list[Path]


def program_report(prog: Program) -> str:
    """Candidates, what each pass did to them, and what is left to simulate."""
    consts = [c for c in prog.circuits if isinstance(c, Constant)]
    circs = [c for c in prog.circuits if isinstance(c, Circuit)]
    folded = sum(len(c.members) for c in consts)
    rows = [f"space {prog.name}: {prog.qubits} qubits, depth {prog.depth}, {len(prog.labels)} candidates",
            f"passes: {' -> '.join(('expand',) + prog.passes)}",
            f"result: {folded} candidates folded into {len(consts)} exact constants; "
            f"{len(circs)} circuits to simulate ({sum(c.real for c in circs)} real, "
            f"{sum(not c.real for c in circs)} complex)",
            "", "candidates:"]
    where = {m: node for node in prog.circuits for m in node.members}
    for i, label in enumerate(prog.labels):
        node = where[i]
        src = prog.source[i]
        if isinstance(node, Constant):
            what = "constant " + _describe_constant(node, prog.qubits)
        else:
            what = (f"{'real' if node.real else 'complex'} circuit, {len(node.ops)} of {len(src.ops)} ops "
                    f"({_gates(node)})")
        shared = f" [shared with {', '.join(prog.labels[m] for m in node.members if m != i)}]" \
            if len(node.members) > 1 else ""
        rows.append(f"  {i + 1:3d} {label:22s} {what}{shared}")
    rows.append("")
    rows.append("pass notes:")
    for node in prog.circuits:
        for note in node.notes:
            rows.append(f"  {prog.label_of(node)}: {note}")
    return "\n".join(rows) + "\n"


def _gates(c: Circuit) -> str:
    return " ".join(f"{k} {v}" for k, v in count_gates(c).items())


def _describe_constant(node: Constant, n: int) -> str:
    k = len(node.constraints)
    if k == 0:
        return f"uniform over all {2 ** n:,} outcomes"
    if k == n:
        x = _solve_single(node.constraints, n)
        return f"delta on |{x:0{n}b}>"
    return f"uniform over {2 ** (n - k):,} outcomes ({k} parity constraints)"


def _solve_single(constraints, n: int) -> int:
    # reduced echelon form with n rows: each row's highest bit is its pivot, and other rows do
    # not contain it, so the rows read off the bits one by one after back substitution.
    x = 0
    for mask, parity in sorted(constraints):
        pivot = mask.bit_length() - 1
        rest = bin(mask & ~(1 << pivot) & x).count("1") % 2
        x |= (parity ^ rest) << pivot
    return x


def _kernel_outputs(prog: Program):
    try:
        from qtc.compiler.render import cost_report, kernel_source
    except ImportError:
        return None, None
    return kernel_source(prog), cost_report(prog)


def write_outputs(spec: str, *, out_dir: Path | None = None, qubits=None, depth=None) -> Outputs:
    """Compile a .qs or .task spec; write report.txt, program.ir (and kernels.cu)."""
    text_parts = []
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
        text_parts.append(built.parameter_report() + "\n")
    else:
        prog = compile_space(spec, qubits=qubits, depth=depth)
        name = prog.name
    text_parts.append(program_report(prog))
    source, cost = _kernel_outputs(prog)
    if cost:
        text_parts.append("\n" + cost)
    report = "\n".join(text_parts)
    out = Path(out_dir) if out_dir else Path("out") / name
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.txt", out / "program.ir"]
    files[0].write_text(report)
    files[1].write_text(pretty(prog))
    if source:
        files.append(out / "kernels.cu")
        files[-1].write_text(source)
    return Outputs(report, files)
