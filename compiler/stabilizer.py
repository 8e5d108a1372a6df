"""A small stabilizer tableau (Aaronson-Gottesman) over Python-int bit masks.

Rows are the n stabilizer generators of the current state: Pauli x-mask, z-mask and a sign.
Used by fold_clifford_constants to prove that a rotation only adds a global phase and to read
off the exact output distribution of a Clifford circuit. Its gates are H, S and CNOT: every
Clifford gate of the table says how it is made of them (GateDef.steps).
"""
from __future__ import annotations

from dataclasses import dataclass


def _bit(mask: int, q: int) -> int:
    return (mask >> q) & 1


@dataclass
class Tableau:
    n: int
    x: list[int]
    z: list[int]
    r: list[int]

    @classmethod
    def zero_state(cls, n: int) -> "Tableau":
        """|0...0>: stabilised by Z_q for every qubit q."""
        return cls(n, [0] * n, [1 << q for q in range(n)], [0] * n)

    # --- Clifford gates -------------------------------------------------------------------
    def h(self, q):
        for i in range(self.n):
            xq, zq = _bit(self.x[i], q), _bit(self.z[i], q)
            self.r[i] ^= xq & zq
            if xq != zq:
                self.x[i] ^= 1 << q
                self.z[i] ^= 1 << q

    def s(self, q):
        for i in range(self.n):
            xq, zq = _bit(self.x[i], q), _bit(self.z[i], q)
            self.r[i] ^= xq & zq
            self.z[i] ^= xq << q

    def cnot(self, c, t):
        for i in range(self.n):
            xc, zc, xt, zt = _bit(self.x[i], c), _bit(self.z[i], c), _bit(self.x[i], t), _bit(self.z[i], t)
            self.r[i] ^= xc & zt & (xt ^ zc ^ 1)
            self.x[i] ^= xc << t
            self.z[i] ^= zt << c

    def apply(self, steps, qubits) -> None:
        """A gate given as h / s / cnot steps on its own qubits (GateDef.steps), on `qubits`."""
        for name, *local in steps:
            {"h": self.h, "s": self.s, "cnot": self.cnot}[name](*(qubits[i] for i in local))

    # --- queries --------------------------------------------------------------------------
    def stabilises(self, axis: str, q: int) -> bool:
        """Is +-P_q (P in X, Y, Z) in the stabilizer group? For a pure stabilizer state this
        holds exactly when P_q commutes with every generator."""
        px, pz = {"X": (1, 0), "Y": (1, 1), "Z": (0, 1)}[axis]
        for i in range(self.n):
            # symplectic product of P_q with row i
            if (px & _bit(self.z[i], q)) ^ (pz & _bit(self.x[i], q)):
                return False
        return True

    def distribution(self) -> tuple[tuple[int, int], ...]:
        """The measurement distribution as parity constraints (mask, parity): uniform over all x
        with popcount(mask & x) % 2 == parity for every row. Rows are in reduced echelon form."""
        x, z, r, n = list(self.x), list(self.z), list(self.r), self.n
        row = 0
        for q in range(n):  # eliminate the X part: rows with X support do not constrain outcomes
            pivot = next((i for i in range(row, n) if _bit(x[i], q)), None)
            if pivot is None:
                continue
            x[row], x[pivot], z[row], z[pivot], r[row], r[pivot] = x[pivot], x[row], z[pivot], z[row], r[pivot], r[row]
            for i in range(n):
                if i != row and _bit(x[i], q):
                    _rowmult(x, z, r, i, row, n)
            row += 1
        constraints = [(z[i], r[i]) for i in range(row, n)]
        return _reduce(constraints, n)


def _g(x1, z1, x2, z2) -> int:
    """Exponent of i when multiplying single-qubit Paulis (x1,z1)*(x2,z2) (Aaronson-Gottesman)."""
    if x1 == 0 and z1 == 0:
        return 0
    if x1 and z1:
        return z2 - x2
    if x1:
        return z2 * (2 * x2 - 1)
    return x2 * (1 - 2 * z2)


def _rowmult(x, z, r, h, i, n) -> None:
    """Row h <- row i * row h, tracking the sign."""
    phase = 2 * r[h] + 2 * r[i]
    for q in range(n):
        phase += _g(_bit(x[i], q), _bit(z[i], q), _bit(x[h], q), _bit(z[h], q))
    r[h] = (phase % 4) // 2
    x[h] ^= x[i]
    z[h] ^= z[i]


def _reduce(rows, n) -> tuple[tuple[int, int], ...]:
    """Reduced row echelon form of parity constraints over GF(2): a canonical text for each
    distribution, so that equal constants compare equal."""
    rows = list(rows)
    out = []
    for col in range(n - 1, -1, -1):
        pivot = next((k for k, (m, _) in enumerate(rows) if _bit(m, col)), None)
        if pivot is None:
            continue
        pm, pp = rows.pop(pivot)
        rows = [(m ^ pm, p ^ pp) if _bit(m, col) else (m, p) for m, p in rows]
        out = [(m ^ pm, p ^ pp) if _bit(m, col) else (m, p) for m, p in out]
        out.append((pm, pp))
    return tuple(sorted(out, reverse=True))
