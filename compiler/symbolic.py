"""Exact symbolic matrix entries in cos(t/2) and sin(t/2) of one angle t.

The gate table derives each gate's kernel lowering in this form and the renderer turns it into
C expressions, so a rotation's cos/sin are computed once per thread and constant entries fold
to literals. A real part is a sorted tuple of (symbol, coefficient) with symbols "1", "c"
(cos t/2) and "s" (sin t/2), zero coefficients left out: an exact zero is the empty tuple and
equal values compare equal. An entry is (real part, imaginary part). A table is a 2x2 matrix
(a tuple of rows) or a diagonal (a tuple of entries).
"""
from __future__ import annotations

import math

import numpy as np


def part(**terms) -> tuple:
    return tuple((k, float(v)) for k, v in sorted(terms.items()) if v != 0)


def number(x: complex) -> tuple:
    """The entry of a constant complex number."""
    x = complex(x)
    return (part(**{"1": x.real}), part(**{"1": x.imag}))


def rotation(pauli: np.ndarray) -> tuple:
    """exp(-i t P / 2) = c I - i s P entrywise; a diagonal P gives the diagonal table."""
    def entry(a, b):
        p, eye = complex(pauli[a][b]), float(a == b)
        return (part(**{"c": eye, "s": p.imag}), part(**{"s": -p.real}))
    if not np.count_nonzero(pauli - np.diag(np.diag(pauli))):
        return tuple(entry(a, a) for a in range(len(pauli)))
    return tuple(tuple(entry(a, b) for b in range(len(pauli))) for a in range(len(pauli)))


def constant(matrix: np.ndarray, diagonal: bool) -> tuple:
    """A constant matrix (or its diagonal) as a table of numbers."""
    if diagonal:
        return tuple(number(v) for v in np.diag(matrix))
    return tuple(tuple(number(v) for v in row) for row in matrix)


def conj(e: tuple) -> tuple:
    return (e[0], tuple((k, -v) for k, v in e[1]))


def adjoint(table: tuple, dense: bool) -> tuple:
    """The adjoint of a 2x2 table, or the conjugate of a diagonal one."""
    if dense:
        return tuple(tuple(conj(table[b][a]) for b in range(2)) for a in range(2))
    return tuple(conj(e) for e in table)


def _substitute(p: tuple, c: float, s: float) -> tuple:
    return part(**{"1": sum(v * {"1": 1.0, "c": c, "s": s}[k] for k, v in p)})


def fold_constant(table: tuple, angle, dense: bool) -> tuple:
    """A constant angle (a float): fold c and s into numbers; a trainable angle: unchanged."""
    if not isinstance(angle, float):
        return table
    c, s = math.cos(angle / 2), math.sin(angle / 2)
    f = lambda e: (_substitute(e[0], c, s), _substitute(e[1], c, s))  # noqa: E731
    return tuple(tuple(f(e) for e in row) for row in table) if dense else tuple(f(e) for e in table)


def value(e: tuple, t: float = 0.0) -> complex:
    """The number an entry stands for at angle t (for checks against the gate's matrix)."""
    env = {"1": 1.0, "c": math.cos(t / 2), "s": math.sin(t / 2)}
    re, im = (sum(v * env[k] for k, v in p) for p in e)
    return complex(re, im)
