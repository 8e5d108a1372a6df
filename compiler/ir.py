"""The compiler's IR: small frozen dataclasses, a deterministic pretty-printer and verify().

A Program holds the search space's candidates in canonical order (`labels`) and the circuits
that remain to be simulated after the passes. Each circuit (or exact constant) names the
candidates it stands for (`members`): its ensemble weight is the sum of theirs. Running a
Program is the runtime's business: `qtc.compile` returns a runtime.backends.RunnableProgram,
this Program with `probabilities(theta, weights)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from qtc.compiler.gates import GATES


@dataclass(frozen=True)
class Angle:
    """A rotation angle scale * theta[layer, qubit(, k)] + shift of the trainable angles.

    theta has shape (L, n), or (L, n, width) when some gate writes a third index k (width =
    the program's angles per (layer, qubit)); `offset` is the angle's place in flat theta, and
    the gradient of the rotation's angle reaches theta times `scale` (the chain rule)."""
    layer: int
    qubit: int
    k: int | None = None
    width: int = 1
    scale: float = 1.0
    shift: float = 0.0

    def offset(self, n: int) -> int:
        return (self.layer * n + self.qubit) * self.width + (self.k or 0)

    @property
    def plain(self) -> bool:
        return self.scale == 1.0 and self.shift == 0.0

    def __str__(self):
        idx = f"{self.layer},{self.qubit}" + ("" if self.k is None else f",{self.k}")
        scale = "" if self.scale == 1 else "-" if self.scale == -1 else f"{self.scale:.17g}*"
        shift = "" if self.shift == 0 else f"{self.shift:+.17g}"
        return f"{scale}theta[{idx}]{shift}"


@dataclass(frozen=True)
class Op:
    gate: str
    qubits: tuple[int, ...]
    angle: Angle | float | None = None

    def __str__(self):
        qs = ",".join(map(str, self.qubits))
        if self.angle is None:
            return f"{self.gate} {qs}"
        a = self.angle if isinstance(self.angle, Angle) else f"{self.angle:.17g}"
        return f"{self.gate}({a}) {qs}"


@dataclass(frozen=True)
class Circuit:
    """A circuit to simulate, started from |0...0>; probabilities are measured at the end."""
    members: tuple[int, ...]
    ops: tuple[Op, ...]
    real: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Constant:
    """An exact theta-independent distribution: uniform over the solutions x of the parity
    constraints popcount(mask & x) % 2 == parity (independent rows)."""
    members: tuple[int, ...]
    constraints: tuple[tuple[int, int], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseForm:
    """A circuit in closed form (compiler.passes.hadamard_phase_form): its probabilities are
    |H^n u|^2 with u(z) = 2^(-n/2) exp(i f(z)), f(z) = sum over `terms` (mask b, angle a, coef c)
    of c a (-1)^(b . z), where a is an Angle of theta or a constant (H^n u is its state up to
    signs and a global phase). f and H^n u are Walsh-Hadamard transforms of 2^n entries, however
    many gates the circuit had."""
    members: tuple[int, ...]
    terms: tuple[tuple[int, Angle | float, float], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Program:
    name: str
    qubits: int
    depth: int
    labels: tuple[str, ...]           # every candidate, canonical order
    source: tuple[Circuit, ...]       # the unoptimised candidates, one per label (reference)
    circuits: tuple[Circuit | Constant | PhaseForm, ...]
    passes: tuple[str, ...] = ()
    weights_init: tuple[float, ...] = ()
    weights_norm: str = "raw"
    angles_init: tuple[str, tuple[float, ...]] = ("normal", (0.0, 0.01))
    angle_shape: tuple[int, ...] = ()  # theta's shape: (depth, qubits) or (depth, qubits, K)
    space: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.angle_shape:
            object.__setattr__(self, "angle_shape", (self.depth, self.qubits))

    @property
    def candidates(self) -> list[str]:
        """Candidate labels in the space's canonical order (the API contract)."""
        return list(self.labels)

    @property
    def weight_labels(self) -> tuple[str, ...]:
        """One label per structural weight: here a weight per candidate (as Factorised's)."""
        return self.labels

    def with_circuits(self, circuits, pass_name: str) -> "Program":
        return replace(self, circuits=tuple(circuits), passes=self.passes + (pass_name,))

    def label_of(self, node) -> str:
        return " = ".join(self.labels[m] for m in node.members)


def numbered(members) -> str:
    """Candidate indices as the user reads them: 1-based, as in the report's candidate list and
    the paper's configs (``0 2 3 5`` -> ``1 3 4 6``)."""
    return " ".join(str(m + 1) for m in members)


def count_gates(circuit: Circuit) -> dict[str, int]:
    out: dict[str, int] = {}
    for op in circuit.ops:
        out[op.gate] = out.get(op.gate, 0) + 1
    return dict(sorted(out.items()))


class IRError(AssertionError):
    pass


def verify(prog: Program) -> Program:
    """Check the IR's invariants; raise IRError naming the last pass and the offending node."""
    where = prog.passes[-1] if prog.passes else "expand"
    n, seen = prog.qubits, []
    if len(prog.source) != len(prog.labels):
        raise IRError(f"after {where}: {len(prog.source)} source circuits for {len(prog.labels)} labels")
    for node in prog.circuits:
        seen += node.members
        if isinstance(node, Constant):
            for mask, parity in node.constraints:
                if not (0 < mask < 1 << n) or parity not in (0, 1):
                    raise IRError(f"after {where}: bad constraint {(mask, parity)} in {prog.label_of(node)}")
            continue
        if isinstance(node, PhaseForm):
            for mask, angle, _ in node.terms:
                if not 0 < mask < 1 << n or (isinstance(angle, Angle) and not _in_range(angle, prog)):
                    raise IRError(f"after {where}: bad phase term {mask:b} {angle} in {prog.label_of(node)}")
            continue
        for op in node.ops:
            g = GATES.get(op.gate)
            if g is None or len(op.qubits) != g.arity or len(set(op.qubits)) != g.arity:
                raise IRError(f"after {where}: bad op '{op}' in {prog.label_of(node)}")
            if any(not 0 <= q < n for q in op.qubits):
                raise IRError(f"after {where}: qubit out of range in '{op}' ({prog.label_of(node)})")
            if (op.angle is None) != (g.params == 0):
                raise IRError(f"after {where}: angle mismatch in '{op}' ({prog.label_of(node)})")
            if isinstance(op.angle, Angle) and not _in_range(op.angle, prog):
                raise IRError(f"after {where}: angle out of range in '{op}'")
            if node.real and not g.real:
                raise IRError(f"after {where}: complex gate '{op}' in real circuit {prog.label_of(node)}")
    if sorted(seen) != list(range(len(prog.labels))):
        raise IRError(f"after {where}: candidates covered {sorted(seen)}, expected each of "
                      f"0..{len(prog.labels) - 1} exactly once")
    return prog


def _width(prog: Program) -> int:
    return prog.angle_shape[2] if len(prog.angle_shape) == 3 else 1


def _in_range(angle: Angle, prog: Program) -> bool:
    return (0 <= angle.layer < prog.depth and 0 <= angle.qubit < prog.qubits
            and 0 <= (angle.k or 0) < angle.width and angle.width == _width(prog))


def pretty(prog: Program) -> str:
    """Deterministic text of the program (what `qtc compile` writes as the IR)."""
    lines = [f"program {prog.name} qubits {prog.qubits} depth {prog.depth}"
             + (f" angles {' x '.join(map(str, prog.angle_shape))}" if len(prog.angle_shape) == 3 else ""),
             f"passes {' '.join(prog.passes) or '-'}",
             f"weights {prog.weights_norm} init {' '.join(f'{w:.6g}' for w in prog.weights_init)}",
             "candidates"]
    lines += [f"  {i:3d} {lab}" for i, lab in enumerate(prog.labels)]
    for node in prog.circuits:
        members = numbered(node.members)
        if isinstance(node, Constant):
            lines.append(f"constant [{members}] {prog.label_of(node)}")
            lines += [f"  parity {mask:0{prog.qubits}b} = {p}" for mask, p in node.constraints]
            if not node.constraints:
                lines.append("  uniform")
        elif isinstance(node, PhaseForm):
            lines.append(f"phase [{members}] {prog.label_of(node)} ({len(node.terms)} terms)")
            lines += [f"  {coef:.17g} * {angle} @ {mask:0{prog.qubits}b}" for mask, angle, coef in node.terms]
        else:
            kind = "real" if node.real else "complex"
            lines.append(f"circuit [{members}] {kind} {prog.label_of(node)} ({len(node.ops)} ops)")
            lines += [f"  {op}" for op in node.ops]
        lines += [f"  # {note}" for note in node.notes]
    return "\n".join(lines) + "\n"
