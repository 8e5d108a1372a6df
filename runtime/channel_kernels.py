"""The channel form on the CPU: compiler/channel.c built by g++ (runtime.cache), driven by tables.

The C source is static (one build for every program); a program becomes flat tables: per step
its alternatives, per alternative its ops, per op its kind, qubits and matrix (from the gate
table, with this call's angles). ChannelFunction is the torch.autograd.Function: forward keeps
every step's density matrix, backward runs the adjoint chain (float64 throughout).
"""
from __future__ import annotations

import ctypes
import math
import threading
import weakref
from functools import lru_cache
import numpy as np
import torch

from qtc.compiler.factorised_report import CHANNEL_SOURCE
from qtc.compiler.gates import GATES
from qtc.compiler.ir import Angle
from qtc.runtime.cache import build_shared

KIND = {1: 0, 2: 1}          # gate arity -> kernel kind (one- / two-qubit matrix); cnot: 2
AXIS = {"X": 1, "Y": 2, "Z": 3}
SERIAL_BELOW = 8             # qubits: a smaller density matrix is cheaper on one thread
_lock = threading.Lock()
_tables: dict[int, tuple] = {}


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_shared(CHANNEL_SOURCE.read_text())))
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.qtc_ch_forward.argtypes = [i, i] + [p] * 11
    lib.qtc_ch_backward.argtypes = [i, i] + [p] * 13
    lib.qtc_ch_threads.argtypes = [i]
    return lib


class Tables:
    """The program's chain as int32/float64 arrays, plus where gradients go."""

    def __init__(self, prog):
        self.n, self.steps, self.dim = prog.qubits, prog.steps, 1 << prog.qubits
        self.shape = prog.angle_shape
        alts = [(s, k, ops) for s in prog.steps for k, ops in enumerate(s.alts)]
        self.ops = [op for _, _, ops in alts for op in ops]
        self.alt_start = _ints(np.cumsum([0] + [len(s.alts) for s in prog.steps]))
        self.op_start = _ints(np.cumsum([0] + [len(ops) for _, _, ops in alts]))
        self.kind = _ints([2 if op.gate in ("cnot", "cx") else KIND[len(op.qubits)] for op in self.ops])
        self.qa = _ints([op.qubits[0] for op in self.ops])
        self.qb = _ints([op.qubits[-1] for op in self.ops])
        angle = [isinstance(op.angle, Angle) for op in self.ops]
        self.gaxis = _ints([AXIS[GATES[op.gate].axis] if a else 0 for op, a in zip(self.ops, angle)])
        self.rot = torch.tensor([i for i, a in enumerate(angle) if a], dtype=torch.long)
        rotations = [op.angle for op, a in zip(self.ops, angle) if a]
        self.theta_index = torch.tensor([t.offset(self.n) for t in rotations], dtype=torch.long)
        self.scale = torch.tensor([t.scale for t in rotations], dtype=torch.float64)
        weighted = [(a, s.position, k) for a, (s, k, _) in enumerate(alts) if s.position is not None]
        self.weighted = torch.tensor([a for a, _, _ in weighted], dtype=torch.long)
        self.where = (torch.tensor([p for _, p, _ in weighted], dtype=torch.long),
                      torch.tensor([k for _, _, k in weighted], dtype=torch.long))
        self.nalts = len(alts)

    def matrices(self, theta: torch.Tensor) -> torch.Tensor:
        """(ops, 32) interleaved (re, im) matrices from the gate table at these angles."""
        out = np.zeros((len(self.ops), 32))
        th = theta.numpy().reshape(-1)
        for i, op in enumerate(self.ops):
            a = op.angle
            t = a.scale * th[a.offset(self.n)] + a.shift if isinstance(a, Angle) else a
            m = GATES[op.gate].matrix(0.0 if t is None else float(t)).reshape(-1)
            out[i, :2 * m.size] = np.stack([m.real, m.imag], 1).reshape(-1)
        return torch.from_numpy(out)

    def alt_weights(self, W: torch.Tensor) -> torch.Tensor:
        wa = torch.ones(self.nalts, dtype=torch.float64)
        wa[self.weighted] = W[self.where]
        return wa

    def args(self):
        return (self.n, len(self.steps), self.alt_start.ctypes.data, self.op_start.ctypes.data,
                self.kind.ctypes.data, self.qa.ctypes.data, self.qb.ctypes.data, self.gaxis.ctypes.data)


def _ints(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)


def tables(prog) -> Tables:
    """The Tables of `prog`, built once per program object."""
    with _lock:
        hit = _tables.get(id(prog))
        if hit is None or hit[0]() is not prog:
            hit = (weakref.ref(prog), Tables(prog))
            _tables[id(prog)] = hit
        return hit[1]


class ChannelFunction(torch.autograd.Function):
    """P(theta, W) = diag(Phi_S o ... o Phi_1(|0><0|)) with adjoint-method gradients."""

    @staticmethod
    def forward(ctx, theta, W, tab: Tables):
        lib = library()
        _threads(lib, tab)
        th = theta.detach().to(torch.float64).contiguous()
        mats, wa = tables_inputs(tab, th, W)
        D2 = 2 * tab.dim * tab.dim
        states = torch.empty((len(tab.steps) + 1) * D2, dtype=torch.float64)
        scratch = torch.empty(D2, dtype=torch.float64)
        P = torch.empty(tab.dim, dtype=torch.float64)
        lib.qtc_ch_forward(*tab.args(), wa.data_ptr(), mats.data_ptr(), states.data_ptr(),
                           scratch.data_ptr(), P.data_ptr())
        ctx.tab, ctx.states, ctx.mats, ctx.wa = tab, states, mats, wa
        ctx.dtypes = (theta.dtype, W.dtype, W.shape)
        return P.to(theta.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        tab, lib = ctx.tab, library()
        _threads(lib, tab)
        g = grad.detach().to(torch.float64).contiguous()
        D2 = 2 * tab.dim * tab.dim
        scratch = torch.empty(4 * D2 + tab.dim, dtype=torch.float64)
        gw = torch.zeros(tab.nalts, dtype=torch.float64)
        gop = torch.zeros(len(tab.ops), dtype=torch.float64)
        lib.qtc_ch_backward(*tab.args(), ctx.wa.data_ptr(), ctx.mats.data_ptr(),
                            ctx.states.data_ptr(), scratch.data_ptr(), g.data_ptr(),
                            gw.data_ptr(), gop.data_ptr())
        theta_dtype, w_dtype, w_shape = ctx.dtypes
        gth = torch.zeros(math.prod(tab.shape), dtype=torch.float64)
        gth.index_add_(0, tab.theta_index, gop[tab.rot] * tab.scale)   # d angle / d theta = scale
        gW = torch.zeros(w_shape, dtype=torch.float64)
        gW[tab.where] = gw[tab.weighted]
        return gth.view(tab.shape).to(theta_dtype), gW.to(w_dtype), None


def channel_threads(n: int) -> int:
    """Threads of a channel-form step at n qubits: torch's setting, one below SERIAL_BELOW."""
    return torch.get_num_threads() if n >= SERIAL_BELOW else 1


def _threads(lib, tab: Tables) -> None:
    lib.qtc_ch_threads(channel_threads(tab.n))


def tables_inputs(tab: Tables, th: torch.Tensor, W: torch.Tensor):
    """This call's matrices and per-alternative weights, as contiguous float64."""
    return tab.matrices(th).contiguous(), tab.alt_weights(W.detach().to(torch.float64)).contiguous()


def cpu_probabilities(prog, theta: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    return ChannelFunction.apply(theta.cpu(), W.cpu(), tables(prog)).to(theta.device)
