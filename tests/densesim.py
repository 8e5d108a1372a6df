"""An independent dense-matrix simulator for the tests: the oracle's oracle.

Every gate becomes a full 2^n x 2^n matrix built with numpy kron products (qubit 0 = the least
significant bit of the basis index, so it is the *last* factor of a kron), applied by plain
matrix-vector products. Gate matrices are written here from their textbook definitions and
rotations come from scipy's matrix exponential, so nothing is shared with qtc but the IR.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from scipy.linalg import expm

I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
Z = np.array([[1, 0], [0, -1]], dtype=complex)
PAULI = {"I": I2, "X": X, "Y": Y, "Z": Z}
H = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)
S = np.diag([1, 1j])
T = np.diag([1, np.exp(1j * math.pi / 4)])


def _controlled(u: np.ndarray) -> np.ndarray:
    """Controlled-u with the gate's first qubit as control; index = b0 + 2*b1 (b0 = control)."""
    m = np.zeros((4, 4), dtype=complex)
    for b0, b1, c1 in itertools.product((0, 1), repeat=3):
        col, row = b0 + 2 * b1, b0 + 2 * c1
        m[row, col] = u[c1, b1] if b0 else float(c1 == b1)
    return m


SWAP = np.zeros((4, 4), dtype=complex)
for _b0, _b1 in itertools.product((0, 1), repeat=2):
    SWAP[_b1 + 2 * _b0, _b0 + 2 * _b1] = 1

FIXED = {"h": H, "x": X, "y": Y, "z": Z, "s": S, "sdg": S.conj().T, "t": T, "tdg": T.conj().T,
         "cnot": _controlled(X), "cx": _controlled(X), "cz": _controlled(Z), "swap": SWAP}
AXES = {"rx": X, "ry": Y, "rz": Z}


def rotation(pauli: np.ndarray, t: float) -> np.ndarray:
    """exp(-i t P / 2) = cos(t/2) I - i sin(t/2) P, as P^2 = I (test_gates checks it with expm)."""
    return math.cos(t / 2) * I2 - 1j * math.sin(t / 2) * pauli


def rotation_expm(pauli: np.ndarray, t: float) -> np.ndarray:
    """exp(-i t P / 2) by scipy's matrix exponential (slow here: small complex BLAS calls)."""
    return expm(-0.5j * t * pauli)


def gate_matrix(name: str, angle: float | None = None) -> np.ndarray:
    """The gate's small matrix (2^arity square), from the textbook, not from qtc."""
    if name in AXES:
        return rotation(AXES[name], angle)
    return FIXED[name]


@functools.lru_cache(maxsize=None)
def _unit(r: int, c: int) -> np.ndarray:
    m = np.zeros((2, 2), dtype=complex)
    m[r, c] = 1
    return m


def full_matrix(small: np.ndarray, qubits: tuple[int, ...], n: int) -> np.ndarray:
    """The 2^n x 2^n matrix of `small` acting on `qubits` (small's index bit k = qubits[k]).

    small = sum_{r,c} small[r,c] |r><c|, and |r><c| is a kron of one-qubit units |r_k><c_k| on
    the gate's wires and identities elsewhere (qubit n-1 first, qubit 0 last)."""
    k = len(qubits)
    if k == 1:  # the common case, one kron: I (qubits above) x small x I (qubits below)
        q = qubits[0]
        return np.kron(np.kron(np.eye(2 ** (n - 1 - q)), small), np.eye(2 ** q))
    out = np.zeros((2 ** n, 2 ** n), dtype=complex)
    for r, c in itertools.product(range(2 ** k), repeat=2):
        if small[r, c] == 0:
            continue
        factors = [I2] * n
        for j, q in enumerate(qubits):
            factors[n - 1 - q] = _unit((r >> j) & 1, (c >> j) & 1)
        out += small[r, c] * functools.reduce(np.kron, factors, np.ones((1, 1), dtype=complex))
    return out


def pauli_string(paulis: dict[int, str], n: int) -> np.ndarray:
    """The n-qubit Pauli with paulis[q] on qubit q (identity elsewhere)."""
    factors = [PAULI[paulis.get(q, "I")] for q in reversed(range(n))]
    return functools.reduce(np.kron, factors, np.ones((1, 1), dtype=complex))


def angle_value(op, theta: np.ndarray) -> float | None:
    """The numeric angle of an IR op: a constant, or scale * theta[layer, qubit(, k)] + shift."""
    return None if op.angle is None else _value(op.angle, theta)


def _value(a, theta: np.ndarray) -> float:
    if isinstance(a, (int, float)):
        return float(a)
    index = (a.layer, a.qubit) if theta.ndim == 2 else (a.layer, a.qubit, a.k or 0)
    return a.scale * float(theta[index]) + a.shift


def statevector(circuit, n: int, theta) -> np.ndarray:
    """Final state of an IR circuit started from |0...0>, by dense matrices."""
    theta = np.asarray(theta, dtype=float)
    psi = np.zeros(2 ** n, dtype=complex)
    psi[0] = 1
    for op in circuit.ops:
        if op.angle is None:
            m = _fixed_full(op.gate, tuple(op.qubits), n)
        else:
            m = full_matrix(gate_matrix(op.gate, angle_value(op, theta)), tuple(op.qubits), n)
        psi = np.einsum("ij,j->i", m, psi)  # not `@`: this machine's complex BLAS matvec is slow
    return psi


@functools.lru_cache(maxsize=4096)
def _fixed_full(name: str, qubits: tuple[int, ...], n: int) -> np.ndarray:
    return full_matrix(FIXED[name], qubits, n)


def probabilities(circuit, n: int, theta) -> np.ndarray:
    return np.abs(statevector(circuit, n, theta)) ** 2


def phase_form_probabilities(node, n: int, theta) -> np.ndarray:
    """A closed phase form (qtc's PhaseForm: terms (mask b, angle, coef)) by its definition:
    |H^n u|^2 with u(z) = 2^(-n/2) exp(i sum_k coef_k angle_k (-1)^(b_k . z)), the sum taken
    term by term and H^n a dense kron product, none of qtc's transforms."""
    theta = np.asarray(theta, dtype=float)
    z = np.arange(2 ** n)
    f = np.zeros(2 ** n)
    for mask, angle, coef in node.terms:
        f += coef * _value(angle, theta) * (1 - 2 * (np.array([bin(int(v)).count("1") for v in z & mask]) & 1))
    hn = functools.reduce(np.kron, [H] * n) if n else np.eye(1)
    return np.abs(hn @ (np.exp(1j * f) / 2 ** (n / 2))) ** 2
