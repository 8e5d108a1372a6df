"""The gate table: one record per gate, the single source of truth for every pass and backend.

Flags are claims about the matrix and are checked table-wide by tests/test_gates.py:
`real` (all entries real), `diagonal`, `monomial` (a permutation times a diagonal: keeps the
set of probabilities, only moves and re-phases amplitudes), `clifford` (maps Paulis to Paulis).
A rotation gate has `axis` (the Pauli it rotates about) and one angle: R(t) = exp(-i t P / 2).
"""
from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


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


def _const(m):
    arr = np.array(m, dtype=complex)
    return lambda _t=0.0: arr


def _rx(t):
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -1j * s], [-1j * s, c]])


def _ry(t):
    c, s = math.cos(t / 2), math.sin(t / 2)
    return np.array([[c, -s], [s, c]], dtype=complex)


def _rz(t):
    return np.diag([cmath.exp(-0.5j * t), cmath.exp(0.5j * t)])


_S2 = 1 / math.sqrt(2)
# Two-qubit matrices use index = b0 + 2*b1, where b0 is the gate's first qubit (control).
_CNOT = [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]]
_CZ = np.diag([1, 1, 1, -1])
_SWAP = [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]

GATES: dict[str, GateDef] = {g.name: g for g in [
    GateDef("h", 1, _const([[_S2, _S2], [_S2, -_S2]]), real=True, clifford=True, inverse="h"),
    GateDef("x", 1, _const([[0, 1], [1, 0]]), real=True, monomial=True, clifford=True, inverse="x"),
    GateDef("y", 1, _const([[0, -1j], [1j, 0]]), monomial=True, clifford=True, inverse="y"),
    GateDef("z", 1, _const([[1, 0], [0, -1]]), real=True, diagonal=True, monomial=True,
            clifford=True, inverse="z"),
    GateDef("s", 1, _const([[1, 0], [0, 1j]]), diagonal=True, monomial=True, clifford=True,
            inverse="sdg"),
    GateDef("sdg", 1, _const([[1, 0], [0, -1j]]), diagonal=True, monomial=True, clifford=True,
            inverse="s"),
    GateDef("t", 1, _const([[1, 0], [0, cmath.exp(0.25j * math.pi)]]), diagonal=True,
            monomial=True, axis="Z", inverse="tdg"),
    GateDef("tdg", 1, _const([[1, 0], [0, cmath.exp(-0.25j * math.pi)]]), diagonal=True,
            monomial=True, axis="Z", inverse="t"),
    GateDef("cnot", 2, _const(_CNOT), real=True, monomial=True, clifford=True, inverse="cnot"),
    GateDef("cz", 2, _const(_CZ), real=True, diagonal=True, monomial=True, clifford=True,
            inverse="cz"),
    GateDef("swap", 2, _const(_SWAP), real=True, monomial=True, clifford=True, inverse="swap"),
    GateDef("rx", 1, _rx, params=1, axis="X"),
    GateDef("ry", 1, _ry, params=1, real=True, axis="Y"),
    GateDef("rz", 1, _rz, params=1, diagonal=True, monomial=True, axis="Z"),
]}
GATES["cx"] = GATES["cnot"]  # a common alias


def gate(name: str) -> GateDef:
    return GATES[name]
