"""The compiler pipeline, one stage per line: spec -> Program -> plan -> kernel source.

The front half (`compile_space`) parses, sizes, expands and runs the passes; the back half
(`to_kernels`) schedules and renders for one Target. The runtime builds what `to_kernels`
returns (runtime/kernels.py); `qtc compile` writes it (compiler/report.py). Nothing else
schedules or renders.
"""
from __future__ import annotations

from dataclasses import replace

from qtc.compiler.cost import with_rendering
from qtc.compiler.expand import expand
from qtc.compiler.factorised import lower_factorised
from qtc.compiler.ir import Circuit, PerCandidate, Program, verify
from qtc.compiler.passes import (drop_trailing_diagonals, fold_clifford_constants, hadamard_phase_form, infer_real,
                                 merge_duplicates)
from qtc.compiler.render import Rendered, render
from qtc.compiler.schedule import plan_program
from qtc.compiler.target import Target
from qtc.dsl.space import MAX_DEPTH, MAX_QUBITS, SearchSpace, parse_space
from qtc.errors import SpecError
from qtc.settings import CHANNEL_MEMORY

PASSES = (
    drop_trailing_diagonals,   # phases before the measurement change nothing
    fold_clifford_constants,   # theta-independent candidates -> exact constants
    hadamard_phase_form,       # rx / cnot circuits -> closed form (Walsh-Hadamard transforms)
    merge_duplicates,          # identical circuits share one simulation
    infer_real,                # real gates only -> real amplitudes
)


def lower(space: SearchSpace, qubits: int, depth: int, *, check: bool = False) -> Program:
    return optimise(expand(space, qubits, depth), check=check)   # product space -> candidates


def optimise(prog: Program, *, check: bool = False) -> Program:
    """Run PASSES over an expanded Program (verify() after each with check=True)."""
    for p in PASSES:
        prog = p(prog)
        if check:
            verify(prog)
    return prog


def only_candidate(prog: Program, k: int, *, check: bool = False) -> Program:
    """The program of candidate k alone: what a fixed-architecture baseline simulates.

    Its unoptimised circuit goes through the same PASSES on its own, so a Clifford candidate
    becomes a free exact constant and a real one a real circuit, instead of paying for every
    circuit of the ensemble under a one-hot weight. One label, weight 1 (raw)."""
    if not 0 <= k < len(prog.labels):
        raise IndexError(f"candidate {k} is out of range 0..{len(prog.labels) - 1}")
    src = replace(prog.source[k], members=(0,))
    alone = replace(prog, name=f"{prog.name}.{k}", labels=(prog.labels[k],), source=(src,), nodes=(src,),
                    passes=(), weights=PerCandidate(labels=(prog.labels[k],), init=(1.0,)))
    return optimise(alone, check=check)


def found_candidate(prog: Program, weights, *, check: bool = False) -> Program:
    """The program of the architecture a search found alone, from its structural weights as
    reported (`weights`: one value per weight label): the largest weight's candidate of an
    enumerated space (only_candidate), every position's favourite of a per-position one, whose
    candidates need not be enumerated."""
    return _FOUND[prog.weights.kind](prog, list(weights), check)


def _found_per_position(prog: Program, weights: list[float], check: bool) -> Program:
    layout = prog.weights
    ops = tuple(op for s, k in zip(layout.steps, layout.choices(weights)) for op in s.alts[k])
    src = Circuit(members=(0,), ops=ops)
    label = layout.architecture(weights)
    alone = Program(name=f"{prog.name}.found", qubits=prog.qubits, depth=prog.depth,
                    weights=PerCandidate(labels=(label,), init=(1.0,)), nodes=(src,), labels=(label,),
                    source=(src,), angles_init=prog.angles_init, angle_shape=prog.angle_shape,
                    space=prog.space)
    return optimise(alone, check=check)


_FOUND = {"candidate": lambda prog, w, check: only_candidate(prog, prog.weights.best(w), check=check),
          "position": _found_per_position}


def to_kernels(prog: Program, target: Target) -> Rendered:
    """The back half: one Program's kernels for one Target."""
    plan = plan_program(prog, target)          # frames, tiles, passes over the state
    target = with_rendering(plan, target)      # "auto": unrolled when small, compact when big
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
    if not 1 <= n <= MAX_QUBITS or not 1 <= L <= MAX_DEPTH:
        raise SpecError(f"qubits must be in 1..{MAX_QUBITS} and depth in 1..{MAX_DEPTH:,}, got "
                        f"qubits={n}, depth={L:,}", **space.at("depth"))
    return n, L


def compile_space(source, *, qubits: int | None = None, depth: int | None = None,
                  check: bool = False, channel_memory: int = CHANNEL_MEMORY, form: str = "auto") -> Program:
    """The front half (`qtc.compile`): a .qs path or spec text -> the optimised Program (for
    'weights ... per position': channel form or enumeration, by cost, the channel form's
    density matrices within `channel_memory` bytes; or the `form` asked for, "sampled" for
    sampled search)."""
    space = source if isinstance(source, SearchSpace) else parse_space(source)   # text -> spec
    try:                        # every error of the space's values names its file (issue 29)
        n, L = resolve_size(space, qubits, depth)
        if space.weights_per_position:         # the full product space, factorised
            return lower_factorised(space, n, L, form=form, memory=channel_memory)
        return lower(space, n, L, check=check)     # expand + PASSES
    except SpecError as err:
        raise err.located(space.file, space.source) from None
