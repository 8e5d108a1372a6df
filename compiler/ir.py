"""The compiler's IR: one Program type, small frozen records, a deterministic pretty-printer and verify().

A Program is what the compiler gives for every space. Two things in it are data, not types:
- its weight layout (`weights`): PerCandidate, one structural weight per candidate in canonical
  order (`labels`), or PerPosition, a weight vector per position of an untied space (the
  product of a candidate's positions' weights is its weight);
- its nodes, each a record with a `kind`: Circuit (simulated), Constant (an exact distribution),
  PhaseForm (a closed form), Channel (the whole per-position ensemble as one density-matrix
  channel) or Sampled (the whole per-position space, one architecture at a time, for sampled
  search). Each candidate node names the candidates it stands for (`members`): its weight is the
  sum of theirs. A Channel or Sampled node stands alone and weighs by the position matrix.
Every node kind says how it merges (`key`), prints (`lines`), reports (`summary`) and is checked
(`problems`): a new kind is one record here plus one runner in the runtime. Running a Program is
the runtime's business (`qtc.compile` returns a runtime.backends.Runnable around it).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from qtc.compiler.gates import GATES

if TYPE_CHECKING:      # factorised.py imports this module
    from qtc.compiler.factorised import Costs

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
    kind: ClassVar[str] = "circuit"

    def key(self):
        return "s", self.ops

    def lines(self, prog: Program) -> list[str]:
        kind = "real" if self.real else "complex"
        return ([f"circuit [{numbered(self.members)}] {kind} {prog.label_of(self)} ({len(self.ops)} ops)"]
                + [f"  {op}" for op in self.ops])

    def summary(self, source: Circuit, n: int) -> str:
        gates = " ".join(f"{k} {v}" for k, v in count_gates(self).items())
        return f"{'real' if self.real else 'complex'} circuit, {len(self.ops)} of {len(source.ops)} ops ({gates})"

    def problems(self, prog: Program):
        for op in self.ops:
            yield from _op_problems(op, prog, prog.label_of(self), self.real)


@dataclass(frozen=True)
class Constant:
    """An exact theta-independent distribution: uniform over the solutions x of the parity
    constraints popcount(mask & x) % 2 == parity (independent rows)."""
    members: tuple[int, ...]
    constraints: tuple[tuple[int, int], ...]
    notes: tuple[str, ...] = ()
    kind: ClassVar[str] = "constant"

    def key(self):
        return "c", self.constraints

    def lines(self, prog: Program) -> list[str]:
        return ([f"constant [{numbered(self.members)}] {prog.label_of(self)}"]
                + [f"  parity {mask:0{prog.qubits}b} = {p}" for mask, p in self.constraints]
                + ([] if self.constraints else ["  uniform"]))

    def summary(self, source: Circuit, n: int) -> str:
        k = len(self.constraints)
        if k == 0:
            return f"constant uniform over all {2 ** n:,} outcomes"
        if k == n:
            return f"constant delta on |{self._single():0{n}b}>"
        return f"constant uniform over {2 ** (n - k):,} outcomes ({k} parity constraints)"

    def _single(self) -> int:
        # reduced echelon form with n rows: each row's highest bit is its pivot, and other rows do
        # not contain it, so the rows read off the bits one by one after back substitution.
        x = 0
        for mask, parity in sorted(self.constraints):
            pivot = mask.bit_length() - 1
            rest = bin(mask & ~(1 << pivot) & x).count("1") % 2
            x |= (parity ^ rest) << pivot
        return x

    def problems(self, prog: Program):
        for mask, parity in self.constraints:
            if not (0 < mask < 1 << prog.qubits) or parity not in (0, 1):
                yield f"bad constraint {(mask, parity)} in {prog.label_of(self)}"


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
    kind: ClassVar[str] = "phase"

    def key(self):
        return "p", self.terms

    def lines(self, prog: Program) -> list[str]:
        return ([f"phase [{numbered(self.members)}] {prog.label_of(self)} ({len(self.terms)} terms)"]
                + [f"  {coef:.17g} * {angle} @ {mask:0{prog.qubits}b}" for mask, angle, coef in self.terms])

    def summary(self, source: Circuit, n: int) -> str:
        return f"closed phase form, {len(self.terms)} terms from {len(source.ops)} ops"

    def problems(self, prog: Program):
        for mask, angle, _ in self.terms:
            if not 0 < mask < 1 << prog.qubits or (isinstance(angle, Angle) and not _in_range(angle, prog)):
                yield f"bad phase term {mask:b} {angle} in {prog.label_of(self)}"


@dataclass(frozen=True)
class Step:
    """One slot of a per-position space in order: its alternatives' gate lists and labels.
    `position` is the index of its weight vector, or None for a fixed (single-alternative) slot."""
    name: str
    labels: tuple[str, ...]
    alts: tuple[tuple[Op, ...], ...]
    position: int | None = None
    layer: int | None = None    # None: the init slot


@dataclass(frozen=True)
class Channel:
    """The whole per-position ensemble in channel form (compiler.factorised): one density matrix
    through every step, each position's alternatives mixed by its weights. It stands for every
    candidate of the product space, none of them listed (`members` is empty)."""
    steps: tuple[Step, ...]
    members: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()
    kind: ClassVar[str] = "channel"

    def key(self):
        return "channel", self.steps

    def lines(self, prog: Program) -> list[str]:
        out = []
        for s in self.steps:
            out.append(f"step {s.name} ({'fixed' if s.position is None else f'position {s.position}'})")
            for label, ops in zip(s.labels, s.alts):
                out.append(f"  alt {label} ({len(ops)} ops)")
                out += [f"    {op}" for op in ops]
        return out

    def summary(self, source: Circuit, n: int) -> str:
        return f"channel of {len(self.steps)} steps"

    def problems(self, prog: Program):
        if prog.weights.kind != "position" or self.steps != prog.weights.steps:
            yield f"a {self.kind} node's steps are not its per-position weight layout's"
        if len(prog.nodes) != 1:
            yield f"a {self.kind} node stands alone, not beside {len(prog.nodes) - 1} other nodes"
        for s in self.steps:
            for label, ops in zip(s.labels, s.alts):
                for op in ops:
                    yield from _op_problems(op, prog, f"{s.name} {label}", False)


@dataclass(frozen=True)
class Sampled(Channel):
    """The whole per-position space for sampled search (`search sampled K`): the same steps as
    the channel form, run one statevector per architecture, each architecture's alternative at
    every step read from a table of choices at run time (runtime/sampled_kernels.py), so one
    build serves every architecture a search draws. Under a one-hot weight matrix it gives that
    architecture's distribution (the channel form's value there), under a stack of K of them
    K distributions; it is never a mixture."""
    kind: ClassVar[str] = "sampled"

    def key(self):
        return "sampled", self.steps

    def summary(self, source: Circuit, n: int) -> str:
        return f"sampled: {len(self.steps)} steps, one statevector per drawn architecture"


NODES = {kind.kind: kind for kind in (Circuit, Constant, PhaseForm, Channel, Sampled)}   # in run order
WHOLE_SPACE = ("channel", "sampled")   # node kinds that stand for every candidate of the space


@dataclass(frozen=True)
class PerCandidate:
    """One structural weight per candidate, in canonical order."""
    labels: tuple[str, ...]
    init: tuple[float, ...]
    norm: str = "raw"                 # "raw" (the weights are the mixture) or "softmax"
    kind: ClassVar[str] = "candidate"

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.labels),)

    @property
    def count(self) -> int:
        """Candidates of the space."""
        return len(self.labels)

    def fixed_candidates(self) -> tuple[str, ...]:
        """The candidates a fixed baseline may train alone: every one."""
        return self.labels

    def init_text(self) -> str:
        return " ".join(f"{w:.6g}" for w in self.init)

    def describe(self) -> str:
        return f"{len(self.labels)} candidates"

    def best(self, flat) -> int:
        """The candidate of the largest weight (`flat`: one value per label)."""
        return _argmax(flat)

    def architecture(self, flat) -> str:
        return self.labels[self.best(flat)]


@dataclass(frozen=True)
class PerPosition:
    """A weight vector per position of an untied space (`weights ... per position`): a candidate
    c picks alternative k_pos(c) at every position and weighs prod_pos w[pos, k_pos(c)]. As a
    tensor the weights are a (positions, max alternatives) matrix, entries past a position's
    alternatives padding (runtime.weights). `costs` sizes the product space both ways."""
    steps: tuple[Step, ...]
    init: tuple[tuple[float, ...], ...]
    costs: Costs
    norm: str = "raw"
    kind: ClassVar[str] = "position"

    @property
    def positions(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.position is not None)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.positions), max((len(p.alts) for p in self.positions), default=1)

    @property
    def count(self) -> int:
        """Candidates of the product space (120,932,352 for the paper's space untied at depth 10)."""
        return self.costs.candidates

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per structural weight ("layer 0.1: RY"), positions in order."""
        return tuple(f"{p.name}: {lab}" for p in self.positions for lab in p.labels)

    def fixed_candidates(self) -> tuple[str, ...]:
        """None: the candidates are the whole product space, not listed."""
        return ()

    def init_text(self) -> str:
        """The enumerated candidates' initial weights: the products of their positions'."""
        return " ".join(f"{w:.6g}" for w in self.candidate_products(self.init))

    def describe(self) -> str:
        return f"{len(self.positions)} positions, {self.count:,} candidates"

    def candidate_products(self, weights) -> tuple[float, ...]:
        """w_c = prod_pos weights[pos][k_pos(c)] for every candidate in canonical (expand) order,
        the last slot varying fastest (float64, as runtime.weights.per_candidate multiplies)."""
        out = [1.0]
        for step in self.steps:
            if step.position is not None:
                out = [o * w for o in out for w in weights[step.position][:len(step.alts)]]
        return tuple(out)

    def choices(self, flat) -> list[int]:
        """Per step, the alternative of its largest weight (`flat`: one value per label, as
        runtime.weights.flat gives them); a fixed slot: its only one."""
        out, at = [], 0
        for s in self.steps:
            if s.position is None:
                out.append(0)
                continue
            out.append(_argmax(flat[at:at + len(s.alts)]))
            at += len(s.alts)
        return out

    def favourites(self, flat) -> list[tuple[str, str]]:
        """(position, label of its largest weight) per position: the architecture found."""
        return [(s.name, s.labels[k]) for s, k in zip(self.steps, self.choices(flat)) if s.position is not None]

    def architecture(self, flat) -> str:
        """The favourite candidate's label, in `expand`'s format ("H-chain-RY/none-RZ")."""
        return self.label([s.labels[k] for s, k in zip(self.steps, self.choices(flat))])

    def label(self, chosen) -> str:
        """Join one label per step as `expand` labels a candidate: init, then layers split by '/'."""
        init = [lab for s, lab in zip(self.steps, chosen) if s.layer is None]
        layers: dict[int, list[str]] = {}
        for s, lab in zip(self.steps, chosen):
            if s.layer is not None:
                layers.setdefault(s.layer, []).append(lab)
        body = "/".join("-".join(v) for v in layers.values())
        return f"{init[0]}-{body}" if init else body


def _argmax(values) -> int:
    """The index of the first largest value (as torch.argmax)."""
    values = list(values)
    return max(range(len(values)), key=values.__getitem__)


@dataclass(frozen=True)
class Program:
    name: str
    qubits: int
    depth: int
    weights: PerCandidate | PerPosition
    nodes: tuple[Circuit | Constant | PhaseForm | Channel | Sampled, ...]
    labels: tuple[str, ...] = ()      # the enumerated candidates, canonical order (none: channel form)
    source: tuple[Circuit, ...] = ()  # the unoptimised candidates, one per label (reference)
    passes: tuple[str, ...] = ()
    angles_init: tuple[str, tuple[float, ...]] = ("normal", (0.0, 0.01))
    angle_shape: tuple[int, ...] = ()  # theta's shape: (depth, qubits) or (depth, qubits, K)
    space: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.angle_shape:
            object.__setattr__(self, "angle_shape", (self.depth, self.qubits))

    @property
    def candidates(self) -> list[str]:
        """Candidate labels in the space's canonical order (the API contract); empty for the
        channel form, whose candidates (weights.count) are not listed."""
        return list(self.labels)

    @property
    def weight_labels(self) -> tuple[str, ...]:
        """One label per structural weight (a candidate's, or "layer 0.1: RY" per position)."""
        return self.weights.labels

    @property
    def form(self) -> str:
        """"channel" or "sampled" (one node for the whole space) or "enumeration" (nodes for
        enumerated candidates)."""
        return next((node.kind for node in self.nodes if node.kind in WHOLE_SPACE), "enumeration")

    def groups(self) -> dict[str, tuple[int, ...]]:
        """Node kind -> the positions of its nodes in `nodes`, kinds in run order (NODES)."""
        return {kind: tuple(i for i, node in enumerate(self.nodes) if node.kind == kind) for kind in NODES}

    def with_nodes(self, nodes, pass_name: str) -> "Program":
        return replace(self, nodes=tuple(nodes), passes=self.passes + (pass_name,))

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
    seen = []
    if len(prog.source) != len(prog.labels):
        raise IRError(f"after {where}: {len(prog.source)} source circuits for {len(prog.labels)} labels")
    if prog.weights.kind == "candidate" and prog.weights.labels != prog.labels:
        raise IRError(f"after {where}: the weights' labels are not the candidates'")
    for node in prog.nodes:
        if NODES.get(getattr(node, "kind", None)) is not type(node):
            raise IRError(f"after {where}: {type(node).__name__} is not a node kind ({', '.join(NODES)})")
        seen += node.members
        for problem in node.problems(prog):
            raise IRError(f"after {where}: {problem}")
    if sorted(seen) != list(range(len(prog.labels))):
        raise IRError(f"after {where}: candidates covered {sorted(seen)}, expected each of "
                      f"0..{len(prog.labels) - 1} exactly once")
    return prog


def _op_problems(op: Op, prog: Program, where: str, real: bool):
    g = GATES.get(op.gate)
    if g is None or len(op.qubits) != g.arity or len(set(op.qubits)) != g.arity:
        yield f"bad op '{op}' in {where}"
    elif any(not 0 <= q < prog.qubits for q in op.qubits):
        yield f"qubit out of range in '{op}' ({where})"
    elif (op.angle is None) != (g.params == 0):
        yield f"angle mismatch in '{op}' ({where})"
    elif isinstance(op.angle, Angle) and not _in_range(op.angle, prog):
        yield f"angle out of range in '{op}'"
    elif real and not g.real:
        yield f"complex gate '{op}' in real circuit {where}"


def _width(prog: Program) -> int:
    return prog.angle_shape[2] if len(prog.angle_shape) == 3 else 1


def _in_range(angle: Angle, prog: Program) -> bool:
    return (0 <= angle.layer < prog.depth and 0 <= angle.qubit < prog.qubits
            and 0 <= (angle.k or 0) < angle.width and angle.width == _width(prog))


def pretty(prog: Program) -> str:
    """Deterministic text of the program (what `qtc compile` writes as the IR)."""
    lines = _HEADS[prog.form](prog)
    for node in prog.nodes:
        lines += node.lines(prog) + [f"  # {note}" for note in node.notes]
    return "\n".join(lines) + "\n"


def _enumeration_head(prog: Program) -> list[str]:
    return ([f"program {prog.name} qubits {prog.qubits} depth {prog.depth}"
             + (f" angles {' x '.join(map(str, prog.angle_shape))}" if len(prog.angle_shape) == 3 else ""),
             f"passes {' '.join(prog.passes) or '-'}",
             f"weights {prog.weights.norm} init {prog.weights.init_text()}",
             "candidates"]
            + [f"  {i:3d} {lab}" for i, lab in enumerate(prog.labels)])


_HEADS = {"enumeration": _enumeration_head,
          "channel": lambda prog: [f"channel {prog.name} qubits {prog.qubits} depth {prog.depth}"],
          "sampled": lambda prog: [f"sampled {prog.name} qubits {prog.qubits} depth {prog.depth}"]}
