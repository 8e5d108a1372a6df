"""The sampled form compiled: compiler/csrc/sampled.c, one build for every architecture drawn.

Sampled search (`search sampled K`) evaluates K architectures of a per-position space per step.
Building a program per architecture would put a compile in every step; instead the whole
space's passes are tables (the channel form's: runtime/channel_kernels.ChannelTables, per
alternative its segments, a dense one-qubit gate or one gather for a run of monomial gates, and
where each rotation's gradient term is taken) and the architectures are a table of choices
(K x steps: the alternative each takes at each step), both data to one static kernel pair.
`apply` runs every architecture's statevector forward (P: K x 2^n, float64) and `gradients`
the adjoint method back (the angles' gradient, summed over the K); the Sampled node's runner
(runtime/kernels.py, RUNNERS) calls them inside ProgramFunction, on cpu (g++) or cuda (NVRTC)
alike, launched by parameter name (runtime/launch.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from qtc.compiler.csrc import source
from qtc.compiler.render.common import signatures
from qtc.runtime.channel_kernels import ChannelTables
from qtc.runtime.launch import BLOCK, DeviceModule, HostLibrary

SEGMENT = {"dense": 0, "mono": 1}


class SampledTables:
    """A Sampled node's steps at n qubits as sampled.c's int32 tables (see its header)."""

    def __init__(self, steps, n: int):
        self.chain = tab = ChannelTables(steps, n)
        self.n, self.dim, self.S = n, 1 << n, len(steps)
        self.first = _ints([alts[0] for alts in tab.steps])
        alts, segs = [], []
        for segments, end in zip(tab.alts, tab.ends):
            alts.append((len(segs), len(segments), *end))
            segs += [(SEGMENT[s.kind], s.index, s.ops[0].qubits[0] if s.kind == "dense" else 0,
                      int(s.phased), *s.terms) for s in segments]
        self.alts = _ints(alts).reshape(-1)
        self.segs = _ints(segs or [(0,) * 6]).reshape(-1)
        self.terms = _ints(np.array(tab.terms, dtype=np.int32).reshape(-1, 3).T).reshape(-1)
        self.nterms = len(tab.terms)
        self.nalts, self.nrot = tab.nalts, len(tab.rotations)
        self.sizes = [len(s.alts) for s in steps]
        self._static: dict[str, dict[str, torch.Tensor]] = {}

    def static(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The tables that do not change between calls, on `device` (moved once)."""
        key = str(device)
        if key not in self._static:
            t = self.chain
            self._static[key] = {name: torch.from_numpy(v).to(device) for name, v in (
                ("first", self.first), ("alts", self.alts), ("segs", self.segs), ("terms", self.terms),
                ("pinv", t.perm_inv.reshape(-1)), ("perm", t.perm.reshape(-1)))}
        return self._static[key]

    def check(self, choices: torch.Tensor) -> None:
        """Refuse a choices table that is not (K, steps) of alternatives in range."""
        if choices.dim() != 2 or choices.shape[1] != self.S:
            raise ValueError(f"choices have shape {tuple(choices.shape)}, expected (K, {self.S})")
        if len(choices) and ((choices < 0).any() or (choices >= torch.tensor(self.sizes)).any()):
            raise ValueError(f"a choice is out of range: step sizes {self.sizes}")


# --- launching ----------------------------------------------------------------------------------
class CpuKernels:
    """The g++ build of sampled.c; a launch's `work` (the GPU's grid) does not matter here."""

    def __init__(self):
        self.lib = HostLibrary(source("sampled.c"))

    def __call__(self, name: str, work: int, **named) -> None:
        self.lib.call("qtc_sp_threads", k=torch.get_num_threads())
        self.lib.call(name, **named)


class CudaKernels:
    """The NVRTC build of sampled.c, on torch's current stream: a block per architecture."""

    def __init__(self):
        text = source("sampled.c")
        self.module = DeviceModule(text, [name for name in signatures(text) if name != "qtc_sp_threads"])

    def __call__(self, name: str, work: int, **named) -> None:
        self.module.launch(name, work, **named)


@lru_cache(maxsize=None)
def kernels(device: str):
    """The kernel caller for a device kind ("cpu" or "cuda"), built once per process."""
    return CpuKernels() if device == "cpu" else CudaKernels()


# --- the driver ---------------------------------------------------------------------------------
@dataclass
class Saved:
    """What the forward pass leaves for the backward one."""
    tab: SampledTables
    choices: torch.Tensor       # (K, steps) int32 on the device
    inputs: dict                # this call's matrices and phases on the device
    psi: torch.Tensor           # (K, 2 * dim) final states


def apply(tab: SampledTables, theta: torch.Tensor, choices: torch.Tensor) -> tuple[torch.Tensor, Saved]:
    """P[k] = |psi_k|^2 for the architecture choices[k] (K x steps alternatives) at angles
    `theta` (flat or not), float64 on theta's device, and what `gradients` needs."""
    tab.check(choices)
    device = theta.device
    th = theta.detach().to("cpu", torch.float64).numpy().reshape(-1)
    inp = {name: t.to(device) for name, t in tab.chain.inputs(th).items()}
    ch = choices.to(device, torch.int32).contiguous()
    K = len(ch)
    psi = torch.empty(K, 2 * tab.dim, dtype=torch.float64, device=device)
    P = torch.empty(K, tab.dim, dtype=torch.float64, device=device)
    if K:
        kernels(device.type)("qtc_sp_forward", K * BLOCK, psi=psi, tmp=torch.empty_like(psi), P=P, K=K, n=tab.n,
                             S=tab.S, choices=ch, mats=inp["mats"], fwd=inp["fwd"], adj=inp["adj"],
                             **_tables(tab, device, "first", "alts", "segs", "pinv", "perm"))
    return P, Saved(tab, ch, inp, psi)


def gradients(saved: Saved, grad: torch.Tensor, theta_size: int) -> torch.Tensor:
    """d(sum_k grad[k] . P[k]) / d theta (flat, float64, on the CPU) by the adjoint method."""
    tab, psi = saved.tab, saved.psi
    device, K = psi.device, len(psi)
    g = grad.detach().to(device, torch.float64).reshape(K, tab.dim).contiguous()
    rows = torch.zeros(K, max(tab.nrot, 1), dtype=torch.float64, device=device)
    if K:
        kernels(device.type)("qtc_sp_backward", K * BLOCK, psi=psi.clone(), lam=torch.empty_like(psi),
                             tmp=torch.empty_like(psi), g=g, grads=rows, K=K, n=tab.n, S=tab.S, nalts=tab.nalts,
                             nrot=tab.nrot, choices=saved.choices, mats=saved.inputs["mats"],
                             fwd=saved.inputs["fwd"], adj=saved.inputs["adj"], T=tab.nterms,
                             **_tables(tab, device, "first", "alts", "segs", "pinv", "perm", "terms"))
    per_rotation = rows.sum(0).cpu()[:tab.nrot]
    gth = torch.zeros(theta_size, dtype=torch.float64)
    gth.index_add_(0, tab.chain.theta_index, per_rotation * tab.chain.scale)   # d angle / d theta = scale
    return gth


def _tables(tab: SampledTables, device: torch.device, *names: str) -> dict[str, torch.Tensor]:
    static = tab.static(device)
    return {name: static[name] for name in names}


def _ints(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)
