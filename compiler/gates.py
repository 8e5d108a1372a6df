"""The gate table: one record per gate, the single source of truth for every pass and backend.

A record states the gate's matrix and a few facts about it; every other view a pass or a
backend needs is derived from those here, once, so adding a gate is adding one record:

* flags (claims about the matrix, checked table-wide by tests/test_gates.py): `real` (all
  entries real), `diagonal`, `monomial` (a permutation times a diagonal: keeps the set of
  probabilities, only moves and re-phases amplitudes), `clifford` (maps Paulis to Paulis);
* `axis`: a rotation's Pauli, R(t) = exp(-i t P / 2) (or, for a fixed gate, the Pauli it is a
  phase times a rotation about);
* `steps`: a Clifford gate as h / s / cnot steps on its own qubits (what the stabilizer
  tableau applies), see also `clifford_steps` for rotations by quarter turns;
* `lowering` (derived): how the kernels apply the gate in stored coordinates: a symbolic
  diagonal or 2x2 table, then a permutation absorbed into the circuit's frame (a GF(2)-affine
  map of the gate's bits, read off the matrix), and a rotation's generator for the gradient;
* `xform` (derived): the gate in the Hadamard basis when it is a permutation times phases there
  (rx, x, z, cnot, swap, ...; None otherwise), what compiler.passes.hadamard_phase_form reads.
"""
from __future__ import annotations

import cmath
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from qtc.compiler import symbolic

PAULIS = {"X": np.array([[0, 1], [1, 0]], dtype=complex),
          "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
          "Z": np.array([[1, 0], [0, -1]], dtype=complex)}


@dataclass(frozen=True)
class Frame:
    """A permutation of the gate's basis states that is affine over GF(2): x -> g(x) = the XOR
    of cols[i] over the set bits i of x, XOR shift (bit i = the gate's i-th qubit)."""
    cols: tuple[int, ...]
    shift: int

    def __call__(self, x: int) -> int:
        y = self.shift
        for i, c in enumerate(self.cols):
            if x >> i & 1:
                y ^= c
        return y

    def inverse(self) -> "Frame":
        k = len(self.cols)
        back = {self(x): x for x in range(1 << k)}
        return _frame_of([back[y] for y in range(1 << k)])


@dataclass(frozen=True)
class Lowering:
    """How the kernels apply a gate: first `table` (kind "diag": a phase per combination of the
    gate's label bits; kind "dense": a 2x2 matrix U[a][b]; kind "frame": nothing), then the
    permutation `frame` (None: the identity). `generator`: a rotation's Pauli as a table of the
    same kind (the gradient is Im(conj(lambda) . P psi))."""
    kind: str
    table: tuple | None
    frame: Frame | None
    generator: tuple | None = None


@dataclass(frozen=True)
class XForm:
    """The gate conjugated by H on each of its qubits, when that is a permutation times phases:
    first the phase exp(i a sum_j coef_j (-1)^(S_j . x)) of its bits x (a: a rotation's angle,
    1 for a fixed gate; S_j a mask of the gate's bits, never 0: global phases are left out), then
    the permutation `frame` (None: the identity)."""
    frame: Frame | None
    phases: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class GateDef:
    name: str
    arity: int
    matrix: Callable[[float], np.ndarray]  # angle -> 2^arity x 2^arity (qubit 0 of the gate = LSB)
    params: int = 0
    real: bool = False
    diagonal: bool = False
    monomial: bool = False
    clifford: bool = False
    axis: str | None = None  # rotation about this single-qubit Pauli ("X", "Y", "Z")
    inverse: str | None = None  # name of the inverse gate (fixed gates)
    steps: tuple[tuple, ...] | None = None  # Clifford gates: (("h" | "s", i) | ("cnot", i, j), ...)
    lowering: Lowering = field(init=False, compare=False, repr=False)
    xform: XForm | None = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "lowering", _lowering(self))
        object.__setattr__(self, "xform", _xform(self))


def _frame_of(perm: list[int]) -> Frame:
    """The affine map that is `perm` (perm[x] = g(x)); a ValueError if it is not affine."""
    shift = perm[0]
    frame = Frame(tuple(perm[1 << i] ^ shift for i in range(len(perm).bit_length() - 1)), shift)
    if any(frame(x) != y for x, y in enumerate(perm)):
        raise ValueError(f"permutation {perm} is not affine over GF(2)")
    return frame


def _permutation(m: np.ndarray) -> list[int]:
    """perm[x]: the row of column x's largest entry (for a monomial matrix, where x goes)."""
    return [int(np.argmax(abs(m[:, x]))) for x in range(len(m))]


def _lowering(g: GateDef) -> Lowering:
    if g.params:
        pauli = PAULIS[g.axis]
        return Lowering("diag" if g.diagonal else "dense", symbolic.rotation(pauli), None,
                        symbolic.constant(pauli, g.diagonal))
    m = g.matrix()
    if g.monomial:
        perm = _permutation(m)
        phases = [m[perm[x], x] for x in range(len(m))]
        frame = None if perm == list(range(len(m))) else _frame_of(perm)
        if all(p == 1 for p in phases):
            return Lowering("frame", None, frame)
        return Lowering("diag", tuple(symbolic.number(p) for p in phases), frame)
    if g.arity == 1:
        return Lowering("dense", symbolic.constant(m, False), None)
    raise ValueError(f"gate '{g.name}': no kernel lowering for a {g.arity}-qubit gate that is not "
                     "a permutation times a diagonal")


def _xform(g: GateDef) -> XForm | None:
    """H^k M H^k as a permutation times phases, or None when it is not one. A rotation about X
    becomes the rotation about Z: exp(-i t/2 (-1)^x); about any other axis it is dense."""
    if g.params:
        return XForm(None, ((1, -0.5),)) if g.axis == "X" else None
    h = np.ones((1, 1))
    for _ in range(g.arity):
        h = np.kron(h, np.array([[1, 1], [1, -1]]) / math.sqrt(2))
    m = h @ g.matrix() @ h
    perm = _permutation(m)
    if not np.allclose(abs(m), np.eye(len(m))[perm].T, atol=1e-12):
        return None                               # not a permutation times phases
    try:
        frame = None if perm == list(range(len(m))) else _frame_of(perm)
    except ValueError:
        return None
    # the phase angles as a Walsh series: angle(x) = sum_S a_S (-1)^(S . x)
    angle = [cmath.phase(m[perm[x], x]) for x in range(len(m))]
    walsh = [sum(a * (-1) ** (S & x).bit_count() for x, a in enumerate(angle)) / len(m)
             for S in range(len(m))]
    return XForm(frame, tuple((S, a) for S, a in enumerate(walsh) if S and abs(a) > 1e-12))


# A rotation by k quarter turns is V^dag S^k V (time order: V, S^k, V^dag) up to a global phase,
# with V the basis change that maps the axis to Z.
_TO_Z = {"Z": ((), ()), "X": ((("h", 0),), (("h", 0),)),
         "Y": ((("s", 0),) * 3 + (("h", 0),), (("h", 0), ("s", 0)))}


def clifford_steps(g: GateDef, angle=None) -> tuple[tuple, ...] | None:
    """The gate (at this angle) as h / s / cnot steps up to a global phase, or None when it is
    not Clifford: fixed Clifford gates, and rotations by a constant multiple of pi/2."""
    if g.steps is not None:
        return g.steps
    if not g.params or not isinstance(angle, float):
        return None
    turns = angle / (math.pi / 2)
    if abs(turns - round(turns)) > 1e-9:
        return None
    before, after = _TO_Z[g.axis]
    return before + (("s", 0),) * (round(turns) % 4) + after


def _const(m):
    arr = np.array(m, dtype=complex)
    return lambda _t=0.0: arr


def _rotation(axis: str):
    def matrix(t):
        return math.cos(t / 2) * np.eye(2) - 1j * math.sin(t / 2) * PAULIS[axis]
    return matrix


_S2 = 1 / math.sqrt(2)
# Two-qubit matrices use index = b0 + 2*b1, where b0 is the gate's first qubit (control).
_CNOT = [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]]
_CZ = np.diag([1, 1, 1, -1])
_SWAP = [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
_H, _S, _CX = ("h", 0), ("s", 0), ("cnot", 0, 1)

GATES: dict[str, GateDef] = {g.name: g for g in [
    GateDef("h", 1, _const([[_S2, _S2], [_S2, -_S2]]), real=True, clifford=True, inverse="h",
            steps=(_H,)),
    GateDef("x", 1, _const([[0, 1], [1, 0]]), real=True, monomial=True, clifford=True, inverse="x",
            steps=(_H, _S, _S, _H)),
    GateDef("y", 1, _const([[0, -1j], [1j, 0]]), monomial=True, clifford=True, inverse="y",
            steps=(_S, _S, _H, _S, _S, _H)),
    GateDef("z", 1, _const([[1, 0], [0, -1]]), real=True, diagonal=True, monomial=True,
            clifford=True, inverse="z", steps=(_S, _S)),
    GateDef("s", 1, _const([[1, 0], [0, 1j]]), diagonal=True, monomial=True, clifford=True,
            inverse="sdg", steps=(_S,)),
    GateDef("sdg", 1, _const([[1, 0], [0, -1j]]), diagonal=True, monomial=True, clifford=True,
            inverse="s", steps=(_S, _S, _S)),
    GateDef("t", 1, _const([[1, 0], [0, cmath.exp(0.25j * math.pi)]]), diagonal=True,
            monomial=True, axis="Z", inverse="tdg"),
    GateDef("tdg", 1, _const([[1, 0], [0, cmath.exp(-0.25j * math.pi)]]), diagonal=True,
            monomial=True, axis="Z", inverse="t"),
    GateDef("cnot", 2, _const(_CNOT), real=True, monomial=True, clifford=True, inverse="cnot",
            steps=(_CX,)),
    GateDef("cz", 2, _const(_CZ), real=True, diagonal=True, monomial=True, clifford=True,
            inverse="cz", steps=(("h", 1), _CX, ("h", 1))),
    GateDef("swap", 2, _const(_SWAP), real=True, monomial=True, clifford=True, inverse="swap",
            steps=(_CX, ("cnot", 1, 0), _CX)),
    GateDef("rx", 1, _rotation("X"), params=1, axis="X"),
    GateDef("ry", 1, _rotation("Y"), params=1, real=True, axis="Y"),
    GateDef("rz", 1, _rotation("Z"), params=1, diagonal=True, monomial=True, axis="Z"),
]}
GATES["cx"] = GATES["cnot"]  # a common alias (qtc/dsl/gatenames.py lists the same names)
