"""The compiler pipeline, one stage per line: spec -> Program -> plan -> kernel source.

The front half (`compile_space`) parses, sizes, expands and runs the passes; the back half
(`to_kernels`) schedules and renders for one Target. The runtime builds what `to_kernels`
returns (runtime/kernels.py); `qtc compile` writes it (compiler/report.py). Nothing else
schedules or renders.
"""
from __future__ import annotations

from qtc.compiler.expand import expand
from qtc.compiler.ir import Program, verify
from qtc.compiler.passes import drop_trailing_diagonals, fold_clifford_constants, infer_real, merge_duplicates
from qtc.compiler.render import Rendered, render
from qtc.compiler.schedule import plan_program
from qtc.compiler.target import Target
from qtc.dsl.space import SearchSpace, parse_space
from qtc.errors import SpecError

PASSES = (
    drop_trailing_diagonals,   # phases before the measurement change nothing
    fold_clifford_constants,   # theta-independent candidates -> exact constants
    merge_duplicates,          # identical circuits share one simulation
    infer_real,                # real gates only -> real amplitudes
)


def lower(space: SearchSpace, qubits: int, depth: int, *, check: bool = False) -> Program:
    prog = expand(space, qubits, depth)        # product space -> candidate circuits
    for p in PASSES:
        prog = p(prog)
        if check:
            verify(prog)
    return prog


def to_kernels(prog: Program, target: Target) -> Rendered:
    """The back half: one Program's kernels for one Target."""
    plan = plan_program(prog, target)          # frames, tiles, passes over the state
    return render(plan, target)                # kernel source text, signature, flop counts


def resolve_size(space: SearchSpace, qubits: int | None, depth: int | None) -> tuple[int, int]:
    # None means 'not given': an explicit 0 is checked below, never replaced by the space's size
    n = space.qubits if qubits is None else qubits
    L = space.depth if depth is None else depth
    if n is None:
        raise SpecError("the space says 'qubits auto' but nothing gives the size", **space.at("qubits"),
                        hint="pass qubits=N (or --qubits N), or compile a .task that uses this space")
    if L is None:
        raise SpecError("the space gives no depth", line=space.line, column=space.column,
                        hint="add 'depth L' to the space, or pass depth=L (--depth L)")
    if not 1 <= n <= 30 or L < 1:
        raise SpecError(f"qubits must be in 1..30 and depth >= 1, got qubits={n}, depth={L}")
    return n, L


def compile_space(source, *, qubits: int | None = None, depth: int | None = None,
                  check: bool = False) -> Program:
    """The front half (`qtc.compile`): a .qs path or spec text -> the optimised Program."""
    space = source if isinstance(source, SearchSpace) else parse_space(source)   # text -> spec
    try:
        n, L = resolve_size(space, qubits, depth)
    except SpecError as err:
        raise err.located(space.file, space.source) from None
    return lower(space, n, L, check=check)     # expand + PASSES
