"""to_stored_coordinates and schedule: from the optimised circuits to passes over the state vector.

**Frames instead of permutations.** Gates that permute basis states (CNOT, SWAP, X) are never
executed. Each circuit keeps a GF(2)-affine *frame* f(x) = M x ^ b with

    psi_true[x] = psi_stored[f(x)],

starting from the identity. CNOT(c, t) composes f with the CNOT's linear map (column c of M
absorbs column t; row t of M^-1 absorbs row c), SWAP exchanges two columns, X(q) adds column
q of M to b. Every other gate is expressed in stored coordinates ("lowered"):

* a dense single-qubit gate on qubit q pairs stored index y with y ^ d, d = M e_q (column q),
  and the element's logical bit x_q = parity(r_q & y) ^ k_q with r_q = row q of M^-1 and
  k_q = parity(r_q & b) tells which side of the 2x2 matrix it is on;
* a diagonal gate multiplies each element by a phase that depends on the label bits of the
  qubits it touches (one row for Z/S/T/RZ, two for CZ).

The final probabilities are gathered through f once (p[x] = |psi_stored[f(x)]|^2).

**Passes.** The stored index y has n bits; its low `lanes` bits are vector lanes (8 doubles
on the CPU, 8 neighbouring threads on the GPU), the rest address blocks. A pass owns a tile:
a coset of span(basis) over blocks times all lanes, 2^rank vectors held in registers. Any op
whose direction's block part lies in span(basis) (or any diagonal op) runs inside the tile;
the lane part of a direction is a lane shuffle. Ops are list-scheduled: an op may move ahead
of earlier ops it commutes with (in stored coordinates, two ops commute when neither flips a
label bit the other reads), so one pass takes as many ops as fit in `max_rank` block
directions. The backward pass schedules the reversed op list the same way.

How a gate is lowered (its diagonal or 2x2 table, its frame map) is read from its record in
the gate table; the lane count and register limits come from the Target.
"""
from __future__ import annotations

from dataclasses import dataclass

from qtc.compiler.gates import GATES, Frame
from qtc.compiler.ir import Angle, Circuit, Program
from qtc.compiler.target import Target


def parity(v: int) -> int:
    return v.bit_count() & 1


@dataclass(frozen=True)
class SOp:
    """One gate in stored coordinates.

    kind "dense": a 2x2 matrix along direction `d`, label bit = parity(rows[0] & y) ^ flips[0].
    kind "diag": a phase per combination of label bits (one row, or two for CZ).
    `table` is the gate's symbolic table (GateDef.lowering), `generator` a rotation's Pauli.
    """
    kind: str
    gate: str
    angle: Angle | float | None
    d: int
    rows: tuple[int, ...]
    flips: tuple[int, ...]
    qubits: tuple[int, ...]
    table: tuple = ()
    generator: tuple | None = None

    def flips_label(self, row: int) -> bool:
        return self.kind == "dense" and parity(row & self.d) == 1

    def commutes(self, other: "SOp") -> bool:
        """Neither op flips a label bit the other reads (both diagonal: always)."""
        return not (any(self.flips_label(r) for r in other.rows)
                    or any(other.flips_label(r) for r in self.rows))


@dataclass(frozen=True)
class Lowered:
    """A circuit in stored coordinates: ops plus the final frame (columns of M, shift b, and
    the rows of M^-1)."""
    ops: tuple[SOp, ...]
    cols: tuple[int, ...]
    shift: int
    rows: tuple[int, ...] = ()

    def inverse(self) -> tuple[tuple[int, ...], int]:
        """f^-1(y) = M^-1 y ^ M^-1 b as (columns of M^-1, shift)."""
        n = len(self.rows)
        cols = tuple(sum(((self.rows[q] >> j) & 1) << q for q in range(n)) for j in range(n))
        return cols, sum(parity(self.rows[q] & self.shift) << q for q in range(n))


def to_stored_coordinates(circuit: Circuit, n: int) -> Lowered:
    """Each gate's table in stored coordinates, its permutation into the frame."""
    cols = [1 << q for q in range(n)]   # M e_q
    rows = [1 << q for q in range(n)]   # rows of M^-1
    shift = 0
    out: list[SOp] = []
    for op in circuit.ops:
        low, qs = GATES[op.gate].lowering, op.qubits
        if low.kind != "frame":
            flips = tuple(parity(rows[q] & shift) for q in qs)
            d = cols[qs[0]] if low.kind == "dense" else 0
            out.append(SOp(low.kind, op.gate, op.angle, d, tuple(rows[q] for q in qs), flips, qs,
                           low.table, low.generator))
        if low.frame is not None:
            shift = _compose(cols, rows, shift, qs, low.frame)
    return Lowered(tuple(out), tuple(cols), shift, tuple(rows))


def _compose(cols: list, rows: list, shift: int, qs, g: Frame) -> int:
    """f := f o g^-1 for a permutation g of the qubits qs (psi_true = psi_stored o f): the
    columns of M become M G^-1, the rows of M^-1 become G M^-1; returns the new shift."""
    inv, old = g.inverse(), [cols[q] for q in qs]
    for i, q in enumerate(qs):
        cols[q] = _combine(old, inv.cols[i])
    shift ^= _combine(old, inv.shift)
    old_rows = [rows[q] for q in qs]
    for a, q in enumerate(qs):
        rows[q] = _combine(old_rows, sum((c >> a & 1) << b for b, c in enumerate(g.cols)))
    return shift


def _combine(vectors: list, mask: int) -> int:
    """XOR of vectors[i] over the set bits i of mask."""
    out = 0
    for i, v in enumerate(vectors):
        if mask >> i & 1:
            out ^= v
    return out


# --- GF(2) tiles ---------------------------------------------------------------------------

class Basis:
    """Block directions of a tile in reduced row-echelon form, pivot = highest set bit."""

    def __init__(self):
        self.vecs: list[int] = []

    def reduce(self, v: int) -> int:
        for b in self.vecs:
            if v >> (b.bit_length() - 1) & 1:
                v ^= b
        return v

    def add(self, v: int) -> None:
        v = self.reduce(v)
        assert v
        p = v.bit_length() - 1
        self.vecs = [b ^ v if b >> p & 1 else b for b in self.vecs] + [v]
        self.vecs.sort(key=lambda b: b.bit_length())


@dataclass(frozen=True)
class Pass:
    """Ops applied inside one sweep over the state; the tile spans `basis` (block bits)."""
    basis: tuple[int, ...]
    ops: tuple[SOp, ...]

    @property
    def rank(self) -> int:
        return len(self.basis)

    @property
    def pivots(self) -> tuple[int, ...]:
        return tuple(b.bit_length() - 1 for b in self.basis)

    def offsets(self) -> list[int]:
        """Block offset of register s: XOR of the basis vectors selected by the bits of s."""
        out = [0]
        for b in self.basis:
            out += [o ^ b for o in out]
        return out

    def coords(self, v: int) -> int:
        """Coordinates (register mask) of a block vector in span(basis)."""
        u = 0
        for i, b in enumerate(self.basis):
            if v >> (b.bit_length() - 1) & 1:
                u |= 1 << i
                v ^= b
        assert v == 0, "direction outside the tile"
        return u


def schedule(ops, max_rank: int, lanes: int) -> tuple[Pass, ...]:
    """Greedy list scheduling of `ops` (in order) into passes of at most `max_rank` block
    directions. An op is ready when every earlier unscheduled op commutes with it; ready ops
    that fit the current tile are taken first, then the tile grows by the first ready op."""
    high = ~((1 << lanes) - 1)
    ops = list(ops)
    succ, waiting = _dependencies(ops)
    ready = sorted(j for j, w in enumerate(waiting) if w == 0)
    passes = []
    while ready:
        basis, taken = Basis(), []
        while ready:
            fit = [j for j in ready if ops[j].kind == "diag" or basis.reduce(ops[j].d & high) == 0]
            if fit:
                chosen = fit[0]
            elif len(basis.vecs) < max_rank:
                chosen = ready[0]  # every ready op without a fit is dense
                basis.add(ops[chosen].d & high)
            else:
                break
            ready.remove(chosen)
            taken.append(ops[chosen])
            for k in succ[chosen]:
                waiting[k] -= 1
                if waiting[k] == 0:
                    ready.append(k)
            ready.sort()
        passes.append(Pass(tuple(basis.vecs), tuple(taken)))
    assert sum(len(p.ops) for p in passes) == len(ops)
    return tuple(passes)


def _dependencies(ops: list[SOp]) -> tuple[list[list[int]], list[int]]:
    """succ[i]: later ops that do not commute with op i; waiting[j]: how many earlier ones."""
    succ: list[list[int]] = [[] for _ in ops]
    waiting = [0] * len(ops)
    for j, b in enumerate(ops):
        for i in range(j):
            if not ops[i].commutes(b):
                succ[i].append(j)
                waiting[j] += 1
    return succ, waiting


# --- the whole program ---------------------------------------------------------------------

@dataclass(frozen=True)
class CircuitPlan:
    """One simulated node: where its state lives and its forward/backward passes."""
    index: int                 # position in prog.nodes
    members: tuple[int, ...]
    label: str
    real: bool
    lowered: Lowered
    fwd: tuple[Pass, ...]
    bwd: tuple[Pass, ...]      # passes over the reversed op list
    offset: int                # start of the node's state in the buffer (elements)

    @property
    def planes(self) -> int:
        return 1 if self.real else 2


@dataclass(frozen=True)
class Plan:
    name: str
    n: int
    depth: int
    lanes: int                 # log2 of the vector width
    circuits: tuple[CircuitPlan, ...]
    constants: tuple[int, ...]  # positions in prog.nodes of the exact constants
    size: int                  # elements of the state buffer
    phases: tuple[int, ...] = ()  # positions in prog.nodes of the phase forms (runtime/phase.py)

    @property
    def fwd_kernels(self) -> int:
        return max((len(c.fwd) for c in self.circuits), default=0)

    @property
    def bwd_kernels(self) -> int:
        return max((len(c.bwd) for c in self.circuits), default=0)


def plan_program(prog: Program, target: Target) -> Plan:
    """Lower and schedule every simulated circuit of `prog`; lay out the state buffer."""
    n = prog.qubits
    lanes = min(target.lanes, n)
    plans, offset, groups = [], 0, prog.groups()
    for i in groups["circuit"]:
        node = prog.nodes[i]
        low = to_stored_coordinates(node, n)
        fwd = schedule(low.ops, target.rank("fwd", node.real), lanes)
        bwd = schedule(tuple(reversed(low.ops)), target.rank("bwd", node.real), lanes)
        plan = CircuitPlan(i, node.members, prog.label_of(node), node.real, low, fwd, bwd, offset)
        plans.append(plan)
        offset += plan.planes << n
    return Plan(prog.name, n, prog.depth, lanes, tuple(plans), groups["constant"], offset, groups["phase"])
