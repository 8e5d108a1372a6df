"""Phase-form nodes (compiler.ir.PhaseForm) on the CPU (compiler/csrc/phase.c) and on any torch
device (the same steps in torch ops: what the cuda backend runs).

With W the unnormalised Walsh-Hadamard transform of 2^n entries and (b_k, i_k, a_k, c_k) a
node's terms as tables (mask, index into flat theta or -1, slope, constant):
    forward:  F[b_k] += a_k theta[i_k] + c_k;  f = W F;  psi = W exp(i f) / 2^n;  p = |psi|^2
    backward: chi = W (g psi);  h = (2 / 2^n) (cos f Im chi - sin f Re chi);  dF = W h;
              dtheta[i_k] += a_k dF[b_k]
in float64 whatever theta's dtype. `forward` returns p and the state its backward reads.
Nodes run one after the other on the calling thread: two nodes at once on a thread pool made
the (17, 15) step slower on the 2-core machine (33.8 / 32.8 ms against 31.3 / 29.3 ms).
"""
from __future__ import annotations

import functools

import torch

from qtc.compiler.ir import Angle, PhaseForm
from qtc.compiler.csrc import source
from qtc.runtime.cache import CPU_FLAGS
from qtc.runtime.launch import HostLibrary

FLAGS = CPU_FLAGS + ("-ffast-math",)    # the cos / sin loop on glibc's vector functions


class PhaseTables:
    """One node's terms as tensors: mask (int64), idx (int32), a and c (float64)."""

    def __init__(self, node: PhaseForm, n: int):
        self.n, self.dim = n, 1 << n
        mask, idx, a, c = [], [], [], []
        for b, angle, coef in node.terms:
            mask.append(b)
            if isinstance(angle, Angle):
                idx.append(angle.offset(n))
                a.append(coef * angle.scale)
                c.append(coef * angle.shift)
            else:
                idx.append(-1)
                a.append(0.0)
                c.append(coef * angle)
        self.mask = torch.tensor(mask, dtype=torch.int64)
        self.idx = torch.tensor(idx, dtype=torch.int32)
        self.a = torch.tensor(a, dtype=torch.float64)
        self.c = torch.tensor(c, dtype=torch.float64)
        self._devices: dict[str, tuple] = {}

    def forward(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p, state for backward), p float64 on theta's device; theta flat float64."""
        if theta.device.type == "cpu":
            work = torch.empty(4 * self.dim, dtype=torch.float64)
            p = torch.empty(self.dim, dtype=torch.float64)
            _library().call("qtc_phase_forward", n=self.n, nterms=len(self.mask), mask=self.mask, idx=self.idx,
                            a=self.a, c=self.c, theta=theta, work=work, p=p)
            return p, work
        return _torch_forward(self, theta)

    def backward(self, state: torch.Tensor, g: torch.Tensor, weight: float, gth: torch.Tensor) -> None:
        """Add weight * d(g . p)/dtheta into gth (flat float64)."""
        if g.device.type == "cpu":
            scratch = torch.empty(2 * self.dim, dtype=torch.float64)
            _library().call("qtc_phase_backward", n=self.n, nterms=len(self.mask), mask=self.mask, idx=self.idx,
                            a=self.a, work=state, g=g, weight=weight, scratch=scratch, gth=gth)
            return
        _torch_backward(self, state, g, weight, gth)

    def on(self, device: torch.device) -> tuple:
        """(mask, idx as int64, a, c) on `device`, and the theta terms' (idx, a, mask): copied
        once per device."""
        key = str(device)
        if key not in self._devices:
            mask, idx, a, c = (x.to(device) for x in (self.mask, self.idx.long(), self.a, self.c))
            keep = idx >= 0
            self._devices[key] = (mask, idx, a, c, (idx[keep], a[keep], mask[keep]))
        return self._devices[key]


def wht(x: torch.Tensor, radix_bits: int = 6) -> torch.Tensor:
    """The unnormalised Walsh-Hadamard transform along the last dimension (a power of two):
    up to `radix_bits` index bits at a time as a product with the +-1 matrix H_(2^k) (on a GPU
    3 launches at 17 qubits instead of one per bit)."""
    lead, size = x.shape[:-1], x.shape[-1]
    bits, done = size.bit_length() - 1, 0
    while done < bits:
        k = min(radix_bits, bits - done)
        h = _hadamard(k, x.dtype, x.device)
        x = torch.matmul(h, x.reshape(*lead, -1, 1 << k, 1 << done)).reshape(*lead, size)
        done += k
    return x


@functools.lru_cache(maxsize=64)
def _hadamard(k: int, dtype, device) -> torch.Tensor:
    """H_(2^k) with entries (-1)^(popcount(i & j)), built once per (k, dtype, device)."""
    i = torch.arange(1 << k, device=device)
    both = i[:, None] & i[None, :]
    parity = torch.zeros_like(both)
    for b in range(k):
        parity ^= both >> b & 1
    return (1 - 2 * parity).to(dtype)


def _torch_forward(t: PhaseTables, theta: torch.Tensor):
    mask, idx, a, c, _ = t.on(theta.device)
    value = c + torch.where(idx >= 0, a * theta[idx.clamp_min(0)], 0.0)
    F = torch.zeros(t.dim, dtype=torch.float64, device=theta.device).index_add_(0, mask, value)
    f = wht(F)
    trig = torch.stack((torch.cos(f), torch.sin(f)))
    psi = wht(trig / t.dim)
    return psi.square().sum(0), torch.cat((psi, trig)).reshape(-1)


def _torch_backward(t: PhaseTables, state: torch.Tensor, g: torch.Tensor, weight: float, gth: torch.Tensor):
    psi, trig = state.view(4, t.dim)[:2], state.view(4, t.dim)[2:]
    chi = wht(g * psi)
    h = (2.0 * weight / t.dim) * (trig[0] * chi[1] - trig[1] * chi[0])
    dF = wht(h)
    idx, a, mask = t.on(g.device)[4]
    gth.index_add_(0, idx, a * dF[mask])


@functools.lru_cache(maxsize=1)
def _library() -> HostLibrary:
    """The CPU kernels, built once per machine (runtime/cache.py keys them by source and flags)."""
    return HostLibrary(source("phase.c"), FLAGS, tag="phase")
