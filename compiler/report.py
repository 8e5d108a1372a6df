"""What `qtc compile` writes for a program: the report, the IR text and the kernel source.

(A .task's parameter counts come from the task side: qtc/cli/compile.py.)
"""
from __future__ import annotations

from qtc.compiler.cost import cost_report
from qtc.compiler.csrc import source
from qtc.compiler.factorised_report import factorised_report
from qtc.compiler.ir import Program, pretty
from qtc.compiler.pipeline import to_kernels
from qtc.compiler.target import Target


def program_report(prog: Program) -> str:
    """Candidates, what each pass did to them, and what is left to simulate."""
    kinds = {kind: [prog.nodes[i] for i in at] for kind, at in prog.groups().items()}
    consts, circs, phases = kinds["constant"], kinds["circuit"], kinds["phase"]
    folded = sum(len(c.members) for c in consts)
    rows = [f"space {prog.name}: {prog.qubits} qubits, depth {prog.depth}, {len(prog.labels)} candidates",
            f"passes: {' -> '.join(('expand',) + prog.passes)}",
            f"result: {folded} candidates folded into {len(consts)} exact constants; "
            f"{len(circs)} circuits to simulate ({sum(c.real for c in circs)} real, "
            f"{sum(not c.real for c in circs)} complex), {len(phases)} in closed phase form",
            "", "candidates:"]
    where = {m: node for node in prog.nodes for m in node.members}
    for i, label in enumerate(prog.labels):
        node = where[i]
        what = node.summary(prog.source[i], prog.qubits)
        shared = f" [shared with {', '.join(prog.labels[m] for m in node.members if m != i)}]" \
            if len(node.members) > 1 else ""
        rows.append(f"  {i + 1:3d} {label:22s} {what}{shared}")
    rows.append("")
    rows.append("pass notes:")
    for node in prog.nodes:
        for note in node.notes:
            rows.append(f"  {prog.label_of(node)}: {note}")
    return "\n".join(rows) + "\n"


def program_outputs(prog: Program, target: Target | None = None) -> dict[str, str]:
    """What `qtc compile` writes for a program, file name -> text: the report (with the cost
    model of the kernels), the IR and the kernel source (and, for the compact rendering on the
    CPU, kernels_lib.cu: the library every program links), each computed once. A per-position
    space reports the form chosen first, then its channel program or its enumerated one.
    Default target: the CPU, float64, the rendering the cost model chooses."""
    target = target or Target()
    head = factorised_report(prog) if prog.weights.kind == "position" else ""
    texts = _OUTPUTS[prog.form](prog, target)
    return {**texts, "report.txt": "\n".join(part for part in (head, texts["report.txt"]) if part)}


def _kernel_outputs(prog: Program, target: Target) -> dict[str, str]:
    kernels = to_kernels(prog, target)
    report = program_report(prog) + "\n\n" + cost_report(prog, kernels)
    library = {"kernels_lib.cu": kernels.library} if kernels.library else {}
    if kernels.plan.phases:   # the phase forms run compiler/csrc/phase.c (runtime/phase.py)
        library["kernels_phase.c"] = source("phase.c")
    return {"report.txt": report, "program.ir": pretty(prog), "kernels.cu": kernels.text, **library}


# the channel form runs the static compiler/csrc/channel.c (runtime/channel_kernels.py), the
# sampled form the static sampled.c (runtime/sampled_kernels.py: its tables are data)
_OUTPUTS = {"enumeration": _kernel_outputs,
            **{form: (lambda prog, target, form=form: {"report.txt": "", "program.ir": pretty(prog),
                                                       "kernels.cu": source(f"{form}.c")})
               for form in ("channel", "sampled")}}
