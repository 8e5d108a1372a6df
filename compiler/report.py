"""What `qtc compile` writes for a program: the report, the IR text and the kernel source.

(A .task's parameter counts come from the task side: qtc/cli/compile.py.)
"""
from __future__ import annotations

from qtc.compiler.cost import cost_report
from qtc.compiler.factorised import Factorised
from qtc.compiler.csrc import source
from qtc.compiler.factorised_report import factorised_report, pretty_channel
from qtc.compiler.ir import Circuit, Constant, PhaseForm, Program, count_gates, pretty
from qtc.compiler.pipeline import to_kernels
from qtc.compiler.target import Target, rendering_from_env


def program_report(prog: Program) -> str:
    """Candidates, what each pass did to them, and what is left to simulate."""
    consts = [c for c in prog.circuits if isinstance(c, Constant)]
    circs = [c for c in prog.circuits if isinstance(c, Circuit)]
    phases = [c for c in prog.circuits if isinstance(c, PhaseForm)]
    folded = sum(len(c.members) for c in consts)
    rows = [f"space {prog.name}: {prog.qubits} qubits, depth {prog.depth}, {len(prog.labels)} candidates",
            f"passes: {' -> '.join(('expand',) + prog.passes)}",
            f"result: {folded} candidates folded into {len(consts)} exact constants; "
            f"{len(circs)} circuits to simulate ({sum(c.real for c in circs)} real, "
            f"{sum(not c.real for c in circs)} complex), {len(phases)} in closed phase form",
            "", "candidates:"]
    where = {m: node for node in prog.circuits for m in node.members}
    for i, label in enumerate(prog.labels):
        node = where[i]
        src = prog.source[i]
        if isinstance(node, Constant):
            what = "constant " + _describe_constant(node, prog.qubits)
        elif isinstance(node, PhaseForm):
            what = f"closed phase form, {len(node.terms)} terms from {len(src.ops)} ops"
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


def program_outputs(prog: Program | Factorised, target: Target | None = None) -> dict[str, str]:
    """What `qtc compile` writes for a program, file name -> text: the report (with the cost
    model of the kernels), the IR and the kernel source (and, for the compact rendering on the
    CPU, kernels_lib.cu: the library every program links), each computed once. A per-position
    space reports the form chosen first, then its channel program or its enumerated one.
    Default target: the CPU, float64, rendered as $QTC_RENDERING says (else the cost model)."""
    target = target or Target(rendering=rendering_from_env())
    if isinstance(prog, Factorised):
        head = factorised_report(prog)
        if prog.form == "channel":
            return {"report.txt": head, "program.ir": pretty_channel(prog),
                    "kernels.cu": source("channel.c")}
        texts = program_outputs(prog.enumerated, target)
        return {**texts, "report.txt": head + "\n" + texts["report.txt"]}
    kernels = to_kernels(prog, target)
    report = program_report(prog) + "\n\n" + cost_report(prog, kernels)
    library = {"kernels_lib.cu": kernels.library} if kernels.library else {}
    if kernels.plan.phases:   # the phase forms run compiler/csrc/phase.c (runtime/phase.py)
        library["kernels_phase.c"] = source("phase.c")
    return {"report.txt": report, "program.ir": pretty(prog), "kernels.cu": kernels.text, **library}
