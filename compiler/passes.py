"""Program -> Program passes. Each is pure and records what it did in the circuits' notes."""
from __future__ import annotations

from dataclasses import replace

from qtc.compiler.gates import GATES, clifford_steps
from qtc.compiler.ir import Circuit, Constant, Program
from qtc.compiler.stabilizer import Tableau


def drop_trailing_diagonals(prog: Program) -> Program:
    """Diagonal gates followed only by monomial gates (permutations times phases) before the
    measurement cannot change probabilities: a monomial gate maps a diagonal to a diagonal, so
    all of them can be pushed to the end, where |phase|^2 = 1."""
    out = []
    for node in prog.circuits:
        if isinstance(node, Constant):
            out.append(node)
            continue
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
        out.append(replace(node, ops=tuple(reversed(kept)), notes=notes))
    return prog.with_circuits(out, "drop_trailing_diagonals")


def fold_clifford_constants(prog: Program) -> Program:
    """Stabilizer tracking from |0...0>: while the state is a stabilizer state, a rotation about
    a Pauli that stabilises it is a global phase and is dropped, and a rotation by a constant
    multiple of pi/2 is a Clifford gate like the others. A circuit that ends with no rotation
    left is Clifford: its distribution is exact (uniform over an affine subspace)."""
    out = []
    for node in prog.circuits:
        if isinstance(node, Constant):
            out.append(node)
            continue
        out.append(_fold(node, prog.qubits))
    return prog.with_circuits(out, "fold_clifford_constants")


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


def merge_duplicates(prog: Program) -> Program:
    """Candidates that became the same circuit (or the same constant) are simulated once; the
    ensemble weight of the merged node is the sum of its members' weights."""
    groups: dict = {}
    for node in prog.circuits:
        key = ("c", node.constraints) if isinstance(node, Constant) else ("s", node.ops)
        groups.setdefault(key, []).append(node)
    out = []
    for nodes in groups.values():
        first = nodes[0]
        members = tuple(sorted(m for nd in nodes for m in nd.members))
        notes = first.notes
        if len(nodes) > 1:
            notes += (f"merge_duplicates: {len(nodes)} candidates share this node",)
        out.append(replace(first, members=members, notes=notes))
    return prog.with_circuits(out, "merge_duplicates")


def infer_real(prog: Program) -> Program:
    """A circuit of real gates started from |0...0> keeps real amplitudes."""
    out = [node if isinstance(node, Constant) else
           replace(node, real=all(GATES[op.gate].real for op in node.ops))
           for node in prog.circuits]
    return prog.with_circuits(out, "infer_real")
