"""Program -> Program passes. Each is pure and records what it did in the circuits' notes."""
from __future__ import annotations

from dataclasses import replace

from qtc.compiler.gates import GATES, clifford_steps
from qtc.compiler.ir import Angle, Circuit, Constant, PhaseForm, Program
from qtc.compiler.stabilizer import Tableau


def drop_trailing_diagonals(prog: Program) -> Program:
    """Diagonal gates followed only by monomial gates (permutations times phases) before the
    measurement cannot change probabilities: a monomial gate maps a diagonal to a diagonal, so
    all of them can be pushed to the end, where |phase|^2 = 1."""
    return on_circuits(prog, _drop_trailing, "drop_trailing_diagonals")


def on_circuits(prog: Program, rewrite, pass_name: str) -> Program:
    """The program with `rewrite(node, n)` applied to every simulated circuit (other nodes kept)."""
    out = [rewrite(node, prog.qubits) if node.kind == "circuit" else node for node in prog.nodes]
    return prog.with_nodes(out, pass_name)


def _drop_trailing(node: Circuit, n: int) -> Circuit:
    kept, dropped = [], 0
    suffix = True
    for op in reversed(node.ops):
        g = GATES[op.gate]
        suffix = suffix and g.monomial
        if suffix and g.diagonal:
            dropped += 1
            continue
        kept.append(op)
    notes = node.notes + ((f"drop_trailing_diagonals: dropped {dropped} diagonal gates",) if dropped else ())
    return replace(node, ops=tuple(reversed(kept)), notes=notes)


def fold_clifford_constants(prog: Program) -> Program:
    """Stabilizer tracking from |0...0>: while the state is a stabilizer state, a rotation about
    a Pauli that stabilises it is a global phase and is dropped, and a rotation by a constant
    multiple of pi/2 is a Clifford gate like the others. A circuit that ends with no rotation
    left is Clifford: its distribution is exact (uniform over an affine subspace)."""
    return on_circuits(prog, _fold, "fold_clifford_constants")


def _fold(node: Circuit, n: int):
    tab, kept, dropped = Tableau.zero_state(n), [], 0
    for k, op in enumerate(node.ops):
        g, steps = GATES[op.gate], clifford_steps(GATES[op.gate], op.angle)
        if steps is not None:
            tab.apply(steps, op.qubits)
            kept.append(op)
        elif g.axis and g.arity == 1 and tab.stabilises(g.axis, op.qubits[0]):
            dropped += 1
        else:  # the state leaves the stabilizer world: keep the rest as it is
            note = (f"fold_clifford_constants: {dropped} rotations are global phases",) if dropped else ()
            return replace(node, ops=tuple(kept) + node.ops[k:], notes=node.notes + note)
    note = f"fold_clifford_constants: Clifford after dropping {dropped} phase rotations -> exact constant"
    return Constant(members=node.members, constraints=tab.distribution(), notes=node.notes + (note,))


def hadamard_phase_form(prog: Program) -> Program:
    """A circuit whose every gate is, in the Hadamard basis, a permutation times phases (rx, x,
    z, cnot, swap: GateDef.xform) has a closed form. Conjugated by H on every qubit, |0...0> is
    the uniform state, the permutations move its entries and the phases multiply them, so the
    state there is u(z) = 2^(-n/2) exp(i f(z)) with f(z) = sum_k c_k a_k (-1)^(b_k . z), one term
    per phase, and the probabilities are |H^n u|^2: two Walsh-Hadamard transforms of 2^n entries
    (forward) instead of a pass over the state per gate (compiler.ir.PhaseForm)."""
    return on_circuits(prog, _phase_form, "hadamard_phase_form")


def _phase_form(node: Circuit, n: int) -> Circuit | PhaseForm:
    forms = [GATES[op.gate].xform for op in node.ops]
    if not node.ops or any(f is None for f in forms):
        return node
    # bit q of the Hadamard-basis index is rows[q] . x ^ shift[q], x the uniform start's index
    rows, shift = [1 << q for q in range(n)], [0] * n
    terms: dict[tuple, float] = {}
    for op, form in zip(node.ops, forms):
        angle = 1.0 if op.angle is None else op.angle
        for S, coef in form.phases:
            mask = sign = 0
            for j, q in enumerate(op.qubits):
                if S >> j & 1:
                    mask, sign = mask ^ rows[q], sign ^ shift[q]
            _add_term(terms, mask, angle, -coef if sign else coef)
        if form.frame is not None:
            old = [(rows[q], shift[q]) for q in op.qubits]
            for j, q in enumerate(op.qubits):
                r, s = 0, form.frame.shift >> j & 1
                for (row, sh), col in zip(old, form.frame.cols):
                    if col >> j & 1:
                        r, s = r ^ row, s ^ sh
                rows[q], shift[q] = r, s
    # in the final index z = A x ^ s: m . x = b . (z ^ s) with b = A^-T m. The shift s only
    # translates u (u(z ^ s)), which H^n turns into the signs (-1)^(y . s): no probability
    # changes, so the terms are written in b . z
    inverse = _gf2_inverse(rows)
    final: dict[tuple, float] = {}
    for (mask, angle), coef in terms.items():
        b = 0
        for i in range(n):
            if mask >> i & 1:
                b ^= inverse[i]
        if b:   # b = 0: a global phase
            _add_term(final, b, angle, coef)
    kept = tuple(sorted(((b, a, c) for (b, a), c in final.items() if abs(c) > 1e-15), key=_term_key))
    note = (f"hadamard_phase_form: {len(node.ops)} gates are a permutation times phases in the Hadamard "
            f"basis -> closed form with {len(kept)} phase terms (Walsh-Hadamard transforms)")
    return PhaseForm(members=node.members, terms=kept, notes=node.notes + (note,))


def _add_term(terms: dict, mask: int, angle, coef: float) -> None:
    if not isinstance(angle, Angle):   # constants of one mask add up into one term
        angle, coef = 1.0, coef * float(angle)
    terms[(mask, angle)] = terms.get((mask, angle), 0.0) + coef


def _term_key(term) -> tuple:
    mask, angle, _ = term
    if isinstance(angle, Angle):
        return (mask, 0, angle.layer, angle.qubit, angle.k or 0, angle.scale, angle.shift)
    return (mask, 1, 0, 0, 0, 0.0, 0.0)


def _gf2_inverse(rows: list[int]) -> list[int]:
    """Rows of the inverse of the invertible GF(2) matrix with these rows (bit j = column j)."""
    n = len(rows)
    a, inv = list(rows), [1 << i for i in range(n)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if a[r] >> col & 1)
        a[col], a[pivot] = a[pivot], a[col]
        inv[col], inv[pivot] = inv[pivot], inv[col]
        for r in range(n):
            if r != col and a[r] >> col & 1:
                a[r] ^= a[col]
                inv[r] ^= inv[col]
    return inv


def merge_duplicates(prog: Program) -> Program:
    """Candidates that became the same circuit (or the same constant) are simulated once; the
    ensemble weight of the merged node is the sum of its members' weights."""
    groups: dict = {}
    for node in prog.nodes:
        groups.setdefault(node.key(), []).append(node)
    out = []
    for nodes in groups.values():
        first = nodes[0]
        members = tuple(sorted(m for nd in nodes for m in nd.members))
        notes = first.notes
        if len(nodes) > 1:
            notes += (f"merge_duplicates: {len(nodes)} candidates share this node",)
        out.append(replace(first, members=members, notes=notes))
    return prog.with_nodes(out, "merge_duplicates")


def infer_real(prog: Program) -> Program:
    """A circuit of real gates started from |0...0> keeps real amplitudes."""
    return on_circuits(prog, lambda node, n: replace(node, real=all(GATES[op.gate].real for op in node.ops)),
                       "infer_real")
