"""The channel form's runtime: P = diag(Phi_S o ... o Phi_1 (|0><0|)) (qtc.compiler.factorised).

`reference` is plain torch: the density matrix is a (2,)*2n complex tensor (axes 0..n-1 the row
index, n..2n-1 the column index; axis i of either holds qubit n-1-i, so reshaping to
(2^n, 2^n) gives basis index bit q = qubit q). A gate U acts on the row axes and conj(U) on the
column axes (U rho U^dagger); autograd gives the gradients: it is the oracle. `cpu` and `cuda`
run the compiled kernels of qtc.runtime.channel_kernels (forward and adjoint backward), one
source and one driver for both.
"""
from __future__ import annotations

import torch

from qtc.compiler.gates import GATES
from qtc.compiler.ir import Op
from qtc.runtime import backends
from qtc.runtime.reference import angle_value, complex_dtype, rotation_matrix


def probabilities(prog, theta: torch.Tensor, W: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """The channel form on `backend` (auto: cuda, else cpu, else reference: backends.resolve)."""
    name = backends.resolve(backend)
    if name == "reference":
        return reference_probabilities(prog, theta, W)
    from qtc.runtime import channel_kernels
    run = channel_kernels.cpu_probabilities if name == "cpu" else channel_kernels.cuda_probabilities
    return run(prog, theta, W)


def reference_probabilities(prog, theta: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    n = prog.qubits
    cdt = complex_dtype(theta.dtype)
    rho = torch.zeros((2,) * (2 * n), dtype=cdt)
    rho[(0,) * (2 * n)] = 1
    for step in prog.weights.steps:
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
