"""The gate names the spec language accepts, with their signatures: what the parser checks.

The dsl sits below the compiler, so it keeps this small table of its own instead of importing
the compiler's gate records; tests/test_gates.py checks that both list the same gates with the
same arity and angle count.
"""
from __future__ import annotations

from typing import NamedTuple


class Signature(NamedTuple):
    arity: int        # qubit arguments
    params: int = 0   # angle arguments (after the qubits)


GATES: dict[str, Signature] = {
    **{name: Signature(1) for name in ("h", "x", "y", "z", "s", "sdg", "t", "tdg")},
    **{name: Signature(2) for name in ("cnot", "cx", "cz", "swap")},
    **{name: Signature(1, 1) for name in ("rx", "ry", "rz")},
}
