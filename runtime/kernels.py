"""Compiled backends: the generated kernels on the CPU (g++ + ctypes) and on NVIDIA GPUs (CuPy).

Importing this module registers the backends "cpu" and "cuda" with qtc.runtime.backends.
Both run the same kernel text (qtc.compiler.render) and share everything here except how a
kernel is launched. `ProgramFunction` is the torch.autograd.Function around them: forward
gives P = sum over candidates of w_c p_c(theta); backward runs the adjoint kernels.
"""
from __future__ import annotations

import ctypes
import os
import threading
import weakref

import torch

from qtc.compiler.ir import Program
from qtc.compiler.render import Rendered, render
from qtc.compiler.schedule import plan_program
from qtc.runtime import backends, cuda
from qtc.runtime.cache import build_shared, find_compiler
from qtc.runtime.reference import constant_distribution

SERIAL_BELOW = 14      # qubits: smaller states run on one thread
_DTYPES = {torch.float64: "float64", torch.float32: "float32"}
_lock = threading.Lock()
_compiled: dict[tuple, tuple] = {}   # (id(prog), dtype, device kind) -> (weakref, Compiled)


class Compiled:
    """A program rendered and built for one dtype and one device kind ("cpu" or "cuda")."""

    def __init__(self, prog: Program, dtype: torch.dtype, device: str):
        self.dtype, self.device = dtype, device
        self.rendered: Rendered = render(plan_program(prog), _DTYPES[dtype])
        plan = self.rendered.plan
        self.plan, self.n, self.dim = plan, plan.n, 1 << plan.n
        nodes = [prog.circuits[c.index] for c in plan.circuits] + [prog.circuits[i] for i in plan.constants]
        # S[node, candidate] = 1 when the candidate is a member of the node
        self.S = torch.zeros(len(nodes), len(prog.labels), dtype=dtype)
        for i, node in enumerate(nodes):
            self.S[i, list(node.members)] = 1
        self.ncirc = len(plan.circuits)
        self.cdist = torch.stack([constant_distribution(prog.circuits[i], self.n, dtype)
                                  for i in plan.constants]) if plan.constants else None
        self.launcher = (_CpuLauncher if device == "cpu" else _CudaLauncher)(self) if self.ncirc else None

    def to(self, device: torch.device):
        """S and the constants on `device` (cached per device)."""
        key = str(device)
        cache = self.__dict__.setdefault("_on", {})
        if key not in cache:
            cache[key] = (self.S.to(device), None if self.cdist is None else self.cdist.to(device))
        return cache[key]


class _CpuLauncher:
    def __init__(self, comp: Compiled):
        self.lib = ctypes.CDLL(str(build_shared(comp.rendered.text)))
        p = ctypes.c_void_p
        i = ctypes.c_int
        self.lib.qtc_forward.argtypes = [p, p, p, p, i]
        self.lib.qtc_backward.argtypes = [p, p, p, p, p, p, p, i]
        self.lib.qtc_threads.argtypes = [i]
        self.size, self.ncirc, self.n = comp.plan.size, comp.ncirc, comp.n

    def _mode(self) -> int:
        """0: whole circuits in parallel (no barriers), when there are enough of them;
        1: every pass split across the threads. QTC_CPU_MODE overrides (for benchmarks).
        Below SERIAL_BELOW qubits a step takes a few milliseconds: one thread, because waking
        and joining threads costs more than it saves (and much more on a busy machine)."""
        threads = torch.get_num_threads() if self.n >= SERIAL_BELOW else 1
        self.lib.qtc_threads(threads)
        forced = os.environ.get("QTC_CPU_MODE")
        if forced in ("0", "1"):
            return int(forced)
        return 0 if self.ncirc >= 2 * threads or threads == 1 else 1

    def forward(self, th, wn, P):
        st = torch.empty(self.size, dtype=th.dtype)
        self.lib.qtc_forward(st.data_ptr(), th.data_ptr(), wn.data_ptr(), P.data_ptr(), self._mode())
        return st

    def backward(self, st, th, wn, g, gth, gw):
        lam = torch.empty_like(st)
        self.lib.qtc_backward(st.data_ptr(), lam.data_ptr(), th.data_ptr(), wn.data_ptr(),
                              g.data_ptr(), gth.data_ptr(), gw.data_ptr(), self._mode())


class _CudaLauncher:
    """The CUDA kernels bound to their arguments; compiling and launching: qtc.runtime.cuda."""

    def __init__(self, comp: Compiled):
        self.launcher = cuda.Launcher(comp.rendered)
        self.names = comp.rendered.kernels
        self.size = comp.plan.size

    def forward(self, th, wn, P):
        st = torch.empty(self.size, dtype=th.dtype, device=th.device)
        fwd = self.names["forward"]
        plan = [(fwd[0], (0,))] + [(k, (0, 1)) for k in fwd[1:-1]] + [(fwd[-1], (0, 2, 3))]
        self.launcher.run(plan, (st, th, wn, P), writes=(0, 3))
        return st

    def backward(self, st, th, wn, g, gth, gw):
        lam = torch.empty_like(st)
        bwd = self.names["backward"]
        plan = [(bwd[0], (0, 1, 3, 4, 6))] + [(k, (0, 1, 2, 5)) for k in bwd[1:]]
        self.launcher.run(plan, (st, lam, th, wn, g, gth, gw), writes=(0, 1, 5, 6))


def compiled(prog: Program, dtype: torch.dtype, device: str) -> Compiled:
    """The Compiled program for (prog, dtype, device kind), built once per process."""
    key = (id(prog), dtype, device)
    with _lock:
        hit = _compiled.get(key)
        if hit is not None and hit[0]() is prog:
            return hit[1]
        comp = Compiled(prog, dtype, device)
        _compiled[key] = (weakref.ref(prog), comp)
        return comp


class ProgramFunction(torch.autograd.Function):
    """P(theta, weights) = sum_c weights[c] p_c(theta) with adjoint-method gradients."""

    @staticmethod
    def forward(ctx, theta, weights, comp: Compiled):
        th = theta.detach().contiguous()
        S, cdist = comp.to(th.device)
        wn = S @ weights.detach().to(th.dtype)           # weight of every node
        P = torch.zeros(comp.dim, dtype=th.dtype, device=th.device)
        st = None
        if comp.ncirc:
            wc = wn[:comp.ncirc].contiguous()
            st = comp.launcher.forward(th, wc, P)
        if cdist is not None:
            P = P + wn[comp.ncirc:] @ cdist
        ctx.comp, ctx.st = comp, st
        ctx.save_for_backward(th, wn)
        return P

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        comp = ctx.comp
        th, wn = ctx.saved_tensors
        g = grad.detach().to(th.dtype).contiguous()
        S, cdist = comp.to(th.device)
        gth = torch.zeros(th.numel(), dtype=torch.float64, device=th.device)
        gw = torch.zeros(comp.ncirc, dtype=torch.float64, device=th.device)
        if comp.ncirc:
            # the kernels un-apply the state in place: work on a copy so backward can run twice
            comp.launcher.backward(ctx.st.clone(), th, wn[:comp.ncirc].contiguous(), g, gth, gw)
        dnode = gw.to(th.dtype)
        if cdist is not None:
            dnode = torch.cat([dnode, cdist @ g])
        dweights = S.t() @ dnode
        return gth.to(th.dtype).view_as(th), dweights, None


def _probabilities(device: str):
    def run(prog: Program, theta: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        dtype = theta.dtype if theta.dtype in _DTYPES else torch.float64
        home = theta.device
        target = torch.device("cuda") if device == "cuda" else torch.device("cpu")
        theta_t = theta.to(target, dtype)
        weights_t = weights.to(target, dtype)
        P = ProgramFunction.apply(theta_t, weights_t, compiled(prog, dtype, device))
        return P if home == target else P.to(home)
    return run


def cpu_available() -> bool:
    return find_compiler() is not None


def cpu_problem() -> str | None:
    return None if cpu_available() else "no C++ compiler was found (looked for $CXX, g++, c++)"


backends.register("cpu", cpu_available, _probabilities("cpu"), missing=cpu_problem)
backends.register("cuda", cuda.available, _probabilities("cuda"), missing=cuda.problem)
