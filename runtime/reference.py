"""The reference backend: plain torch, gate by gate, on the *unoptimised* candidate circuits,
and, for a space whose candidates are not listed, on its Channel node's density matrix or, for
a Sampled node, on each selected architecture's circuit.

Slow and memory-hungry on purpose, for simplicity: it is the oracle every other backend is
tested against, and autograd gives its gradients. Basis index bit q is qubit q (qubit 0 = LSB).
"""
from __future__ import annotations

from functools import lru_cache

import torch

from qtc.compiler.gates import GATES, PAULIS
from qtc.compiler.ir import Angle, Channel, Circuit, Constant, Op, Program
from qtc.runtime import weights as structural


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def rotation_matrix(axis: str, t: torch.Tensor) -> torch.Tensor:
    """exp(-i t P / 2) = cos(t/2) I - i sin(t/2) P as a differentiable 2x2 complex tensor."""
    cdt = complex_dtype(t.dtype)
    pauli = torch.as_tensor(PAULIS[axis], dtype=cdt)
    c, s = torch.cos(t / 2).to(cdt), torch.sin(t / 2).to(cdt)
    return c * torch.eye(2, dtype=cdt) - 1j * s * pauli


def _apply_1q(state: torch.Tensor, m: torch.Tensor, q: int, n: int) -> torch.Tensor:
    view = state.reshape(2 ** (n - 1 - q), 2, 2 ** q)
    return torch.einsum("ij,ajb->aib", m, view).reshape(-1)


@lru_cache(maxsize=4096)
def _permutation(gate: str, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """Index map of a gate that permutes basis states (its frame map g, read off the gate
    table): new[i] = old[g^-1(i)], g acting on the bits of `qubits`."""
    inverse = GATES[gate].lowering.frame.inverse()
    idx = torch.arange(2 ** n)
    local = sum(((idx >> q) & 1) << j for j, q in enumerate(qubits))
    source = torch.tensor([inverse(x) for x in range(1 << len(qubits))])[local]
    rest = idx & ~sum(1 << q for q in qubits)
    return rest | sum(((source >> j) & 1) << q for j, q in enumerate(qubits))


def _apply_2q(state, m, qubits, n):
    a, b = qubits
    view = state.reshape([2] * n)
    axes = [n - 1 - a, n - 1 - b]  # tensor axis of qubit q is n-1-q
    moved = torch.movedim(view, axes, [0, 1]).reshape(4, -1)
    # matrix index = bit(a) + 2*bit(b); moved row index = 2*bit(a) + bit(b)
    m4 = m.reshape(2, 2, 2, 2).permute(1, 0, 3, 2).reshape(4, 4)
    out = (m4 @ moved).reshape([2, 2] + [2] * (n - 2))
    return torch.movedim(out, [0, 1], axes).reshape(-1)


def simulate(circuit: Circuit, n: int, theta: torch.Tensor) -> torch.Tensor:
    """Final statevector of one circuit (complex, shape (2**n,))."""
    cdt = complex_dtype(theta.dtype)
    state = torch.zeros(2 ** n, dtype=cdt)
    state[0] = 1
    for op in circuit.ops:
        g = GATES[op.gate]
        if g.params:
            t = angle_value(op.angle, theta, n)
            state = _apply_1q(state, rotation_matrix(g.axis, t), op.qubits[0], n)
        elif g.lowering.kind == "frame":   # a pure permutation: a gather, no arithmetic
            state = state[_permutation(op.gate, op.qubits, n)]
        elif g.arity == 1:
            state = _apply_1q(state, torch.as_tensor(g.matrix(), dtype=cdt), op.qubits[0], n)
        else:
            state = _apply_2q(state, torch.as_tensor(g.matrix(), dtype=cdt), op.qubits, n)
    return state


def angle_value(angle: Angle | float, theta: torch.Tensor, n: int) -> torch.Tensor:
    """The rotation's angle: a constant, or scale * theta[...] + shift (autograd does the
    chain rule)."""
    if not isinstance(angle, Angle):
        return torch.tensor(float(angle), dtype=theta.dtype)
    t = theta.reshape(-1)[angle.offset(n)]
    return t if angle.plain else angle.scale * t + angle.shift


def candidate_probabilities(prog: Program, theta: torch.Tensor) -> torch.Tensor:
    """p_c(theta) for every candidate, shape (C, 2**n), from the unoptimised circuits."""
    return torch.stack([simulate(c, prog.qubits, theta).abs() ** 2 for c in prog.source])


def probabilities(prog: Program, theta: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_c weights[c] p_c(theta) over the listed candidates' unoptimised circuits."""
    return weights.to(theta.dtype) @ candidate_probabilities(prog, theta)


def program_probabilities(prog: Program, theta: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The whole program under its layout's matrix `W` (what backends.probabilities runs): its
    listed candidates, and a Channel node, which stands for candidates that are not listed."""
    parts = [probabilities(prog, theta, structural.listed(prog, W))] if prog.source else []
    parts += [channel_probabilities(node, prog.qubits, theta, W) for node in prog.nodes if node.kind == "channel"]
    parts += [sampled_probabilities(prog, theta, W) for node in prog.nodes if node.kind == "sampled"]
    return parts[0] if len(parts) == 1 else sum(parts)


def architecture_circuit(steps, chosen) -> Circuit:
    """The circuit of one architecture: every step's chosen alternative's gates, in order."""
    return Circuit(members=(0,), ops=tuple(op for step, k in zip(steps, chosen) for op in step.alts[int(k)]))


def sampled_probabilities(prog: Program, theta: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """A Sampled node's P: per one-hot matrix of W (one, or a stack of K) the distribution of the
    architecture it selects, simulated gate by gate (shape (2**n,), or (K, 2**n))."""
    steps = prog.weights.steps
    table = structural.choices(prog.weights, W)
    P = torch.stack([simulate(architecture_circuit(steps, row), prog.qubits, theta).abs() ** 2 for row in table]) \
        if len(table) else theta.new_zeros(0, 2 ** prog.qubits)
    return P if W.dim() == 3 else P[0]


def constant_distribution(node: Constant, n: int, dtype=torch.float64) -> torch.Tensor:
    """The exact distribution of a folded constant: uniform over the parity constraints."""
    idx = torch.arange(2 ** n)
    ok = torch.ones(2 ** n, dtype=torch.bool)
    for mask, parity in node.constraints:
        ok &= _popcount_parity(idx & mask) == parity
    return ok.to(dtype) / 2 ** (n - len(node.constraints))


def _popcount_parity(v: torch.Tensor) -> torch.Tensor:
    p = torch.zeros_like(v)
    while bool(v.any()):
        p ^= v & 1
        v = v >> 1
    return p


def channel_probabilities(node: Channel, n: int, theta: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """A Channel node's P = diag(Phi_S o ... o Phi_1 (|0><0|)) (qtc.compiler.factorised) in
    plain torch: the density matrix is a (2,)*2n complex tensor (axes 0..n-1 the row index,
    n..2n-1 the column index; axis i of either holds qubit n-1-i, so reshaping to (2^n, 2^n)
    gives basis index bit q = qubit q). A gate U acts on the row axes and conj(U) on the column
    axes (U rho U^dagger); autograd gives the gradients."""
    cdt = complex_dtype(theta.dtype)
    rho = torch.zeros((2,) * (2 * n), dtype=cdt)
    rho[(0,) * (2 * n)] = 1
    for step in node.steps:
        rho = sum(_weight(W, step, k, cdt) * _conjugate_by(rho, ops, n, theta)
                  for k, ops in enumerate(step.alts))
    return torch.diagonal(rho.reshape(2 ** n, 2 ** n)).real


def _weight(W: torch.Tensor, step, k: int, cdt) -> torch.Tensor | float:
    return 1.0 if step.position is None else W[step.position, k].to(cdt)


def _conjugate_by(rho: torch.Tensor, ops: tuple[Op, ...], n: int, theta: torch.Tensor) -> torch.Tensor:
    """U rho U^dagger for U = the gate list `ops` (first gate first)."""
    for op in ops:
        m = gate_matrix(op, theta, n)
        rho = apply_axes(rho, m, op.qubits, n, column=False)
        rho = apply_axes(rho, m.conj(), op.qubits, n, column=True)
    return rho


def gate_matrix(op: Op, theta: torch.Tensor, n: int) -> torch.Tensor:
    """The op's matrix from the gate table (rotations differentiable in theta)."""
    g = GATES[op.gate]
    cdt = complex_dtype(theta.dtype)
    if not g.params:
        return torch.as_tensor(g.matrix(), dtype=cdt)
    return rotation_matrix(g.axis, angle_value(op.angle, theta, n))


def apply_axes(rho: torch.Tensor, m: torch.Tensor, qubits, n: int, *, column: bool) -> torch.Tensor:
    """Contract a k-qubit matrix (index = b0 + 2 b1 + ..., b_i = bit of qubits[i]) into the row
    (or column) axes of `rho`."""
    k = len(qubits)
    base = n if column else 0
    axes = [base + n - 1 - q for q in reversed(qubits)]   # m's tensor axes: highest qubit first
    out = torch.tensordot(m.reshape((2,) * (2 * k)), rho, dims=(list(range(k, 2 * k)), axes))
    return torch.movedim(out, list(range(k)), axes)
