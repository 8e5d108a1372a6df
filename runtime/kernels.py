"""Compiled backends: the generated kernels on the CPU (g++ + ctypes) and on NVIDIA GPUs (CuPy).

Importing this module registers the backends "cpu" and "cuda" with qtc.runtime.backends.
Both run the same kernel text (qtc.compiler.pipeline.to_kernels) and share everything here
except how a kernel is launched; both bind a kernel's arguments by name against the signature
the renderer read off the source (qtc.runtime.launch). `ProgramFunction` is the
torch.autograd.Function around them: forward gives P = sum over candidates of w_c p_c(theta);
backward runs the adjoint kernels. A program's nodes run through a runner per node kind
(RUNNERS): its simulated circuits (the kernels), its exact constants, its phase forms
(runtime/phase.py), a Channel node (runtime/channel_kernels.py) and a Sampled node
(runtime/sampled_kernels.py: K architectures, P of shape (K, 2^n)).
"""
from __future__ import annotations

import threading
import weakref

import torch

from qtc.compiler.ir import Program
from qtc.compiler.pipeline import to_kernels
from qtc.compiler.render import Rendered
from qtc.compiler.target import Target
from qtc.runtime import backends, channel_kernels, cuda, sampled_kernels, threads
from qtc.runtime import weights as structural
from qtc.runtime.cache import CPU_FLAGS, find_compiler
from qtc.runtime.launch import HostLibrary, arguments, bind, written
from qtc.runtime.phase import PhaseTables
from qtc.runtime.reference import constant_distribution
from qtc.settings import setting, settings

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_lock = threading.Lock()
_compiled: dict[tuple, tuple] = {}   # (id(prog), target key) -> (weakref, Compiled)


class Compiled:
    """A program rendered and built for one Target (dtype and device kind), with a runner per
    node kind (RUNNERS), in run order; the rows of S (one per node weighted by its members)
    follow the same order."""

    def __init__(self, prog: Program, target: Target):
        self.target, self.dtype = target, TORCH_DTYPES[target.dtype]
        self.layout = prog.weights
        self.rendered: Rendered = to_kernels(prog, target)
        plan = self.rendered.plan
        self.plan, self.n, self.dim = plan, plan.n, 1 << plan.n
        groups = prog.groups()
        nodes = [prog.nodes[i] for kind, runner in RUNNERS.items() if not runner.by_position for i in groups[kind]]
        # S[node, candidate] = 1 when the candidate is a member of the node
        self.S = torch.zeros(len(nodes), len(prog.labels), dtype=self.dtype)
        for i, node in enumerate(nodes):
            self.S[i, list(node.members)] = 1
        self.ncirc = len(plan.circuits)
        self.runners, start = {}, 0          # kind -> (runner, its nodes' rows of S)
        for kind, runner in RUNNERS.items():
            count = 0 if runner.by_position else len(groups[kind])
            self.runners[kind] = (runner(self, [prog.nodes[i] for i in groups[kind]]), slice(start, start + count))
            start += count
        # what a step runs: the runners of the kinds the program has nodes of (one without nodes
        # adds nothing to P and no rows to S; five calls each way cost a small step ~2%)
        self.running = tuple(self.runners[kind] for kind in RUNNERS if groups[kind])
        self.launcher = self.runners["circuit"][0].launcher

    def to(self, device: torch.device) -> torch.Tensor:
        """S on `device` (cached per device)."""
        cache = self.__dict__.setdefault("_on", {})
        if str(device) not in cache:
            cache[str(device)] = self.S.to(device)
        return cache[str(device)]


class _CpuLauncher:
    """The g++ build (HostLibrary): qtc_forward / qtc_backward run every kernel in order."""

    def __init__(self, comp: Compiled):
        r = comp.rendered   # its Target's rendering decided ("auto" resolved by the cost model)
        self.lib = HostLibrary(r.text, CPU_FLAGS, tag=r.target.key, library=r.library)
        self.size, self.ncirc, self.n = comp.plan.size, comp.ncirc, comp.n
        self.last_setting: threads.Setting | None = None   # what the latest pass ran with (benchmarks)
        # OpenMP's thread count for the calling thread, from the runtime the kernels link
        self.max_threads = self.lib.lib.omp_get_max_threads

    def _call(self, name: str, **tensors) -> None:
        """Run a driver with this step's threads and mode (runtime/threads.py: one thread below
        SERIAL_BELOW qubits or on a busy machine; QTC_THREADS / QTC_CPU_MODE override). The
        thread count is OpenMP's, which torch shares and reads back as torch.get_num_threads():
        it is put back afterwards, or one step's choice would become every later step's limit.
        Neither call is made when OpenMP (as the kernels' library sees it) already has the
        step's count: at 13 qubits and one thread the two calls cost a tenth of the kernels."""
        requested = torch.get_num_threads()
        step = self.last_setting = threads.for_step(self.n, self.ncirc)
        if step.threads == self.max_threads():
            self.lib.call(name, **tensors, mode=step.mode)
            return
        self.lib.call("qtc_threads", k=step.threads)
        try:
            self.lib.call(name, **tensors, mode=step.mode)
        finally:
            self.lib.call("qtc_threads", k=requested)

    def forward(self, th, wn, P):
        st = torch.empty(self.size, dtype=th.dtype)
        self._call("qtc_forward", st=st, th=th, wn=wn, P=P)
        return st

    def backward(self, st, th, wn, g, gth, gw):
        self._call("qtc_backward", st=st, lam=torch.empty_like(st), th=th, wn=wn, g=g, gth=gth, gw=gw)


class _CudaLauncher:
    """The CUDA kernels bound to their arguments; compiling and launching: qtc.runtime.cuda."""

    def __init__(self, comp: Compiled):
        self.launcher = cuda.Launcher(comp.rendered, graphs=settings().cuda_graphs)
        self.size = comp.plan.size
        self.steps = {phase: _launch_list(comp.rendered, names) for phase, names in comp.rendered.kernels.items()}

    def _run(self, phase: str, **tensors) -> None:
        """Every kernel of `phase`, with the tensors its kernels name (by parameter name)."""
        names, launches, writes = self.steps[phase]
        self.launcher.run(launches, tuple(tensors[n] for n in names), writes=writes)

    def forward(self, th, wn, P):
        st = torch.empty(self.size, dtype=th.dtype, device=th.device)
        self._run("forward", st=st, th=th, wn=wn, P=P)
        return st

    def backward(self, st, th, wn, g, gth, gw):
        self._run("backward", st=st, lam=torch.empty_like(st), th=th, wn=wn, g=g, gth=gth, gw=gw)


def _launch_list(rendered: Rendered, kernels: list[str]) -> tuple:
    """(the arguments the kernels take, each once; every kernel with its arguments as indices
    into them; the indices of those the kernels write: a CUDA graph copies these back out)."""
    names = arguments(rendered.signature, kernels)
    slots = {name: i for i, name in enumerate(names)}
    launches = tuple((k, bind(rendered.signature, k, slots)) for k in kernels)
    return names, launches, tuple(slots[n] for n in written(rendered.signature, kernels))


def compiled(prog: Program, target: Target) -> Compiled:
    """The Compiled program for (prog, target), built once per process."""
    key = (id(prog), target.key)
    with _lock:
        hit = _compiled.get(key)
        if hit is not None and hit[0]() is prog:
            return hit[1]
        comp = Compiled(prog, target)
        _compiled[key] = (weakref.ref(prog), comp)
        return comp


class Circuits:
    """The simulated circuits: the generated kernels, through a launcher per device kind. The
    state buffer the forward pass leaves is what the backward pass un-applies."""
    by_position = False          # weighted by its members' weights (a row of S each)

    def __init__(self, comp: Compiled, nodes):
        self.count = len(nodes)
        self.launcher = (_CpuLauncher if comp.target.device == "cpu" else _CudaLauncher)(comp) if nodes else None

    def forward(self, th, wn, P):
        return P, (self.launcher.forward(th, wn.contiguous(), P) if self.count else None)

    def backward(self, st, th, wn, g, gth):
        gw = torch.zeros(self.count, dtype=torch.float64, device=th.device)
        if self.count:
            # the kernels un-apply the state in place: work on a copy so backward can run twice
            self.launcher.backward(st.clone(), th, wn.contiguous(), g, gth, gw)
        return gw.to(th.dtype)


class Constants:
    """The exact constants: their distributions, fixed (no gradient in theta)."""
    by_position = False

    def __init__(self, comp: Compiled, nodes):
        self.dist = torch.stack([constant_distribution(node, comp.n, comp.dtype) for node in nodes]) \
            if nodes else torch.zeros(0, comp.dim, dtype=comp.dtype)
        self._on: dict[str, torch.Tensor] = {}

    def on(self, device) -> torch.Tensor:
        """The distributions on `device` (cached per device)."""
        if str(device) not in self._on:
            self._on[str(device)] = self.dist.to(device)
        return self._on[str(device)]

    def forward(self, th, wn, P):
        return (P + wn @ self.on(th.device) if len(wn) else P), None

    def backward(self, _, th, wn, g, gth):
        return self.on(g.device) @ g if len(self.dist) else g.new_zeros(0)


class Phases:
    """The phase forms: Walsh-Hadamard transforms in float64 (runtime/phase.py)."""
    by_position = False

    def __init__(self, comp: Compiled, nodes):
        self.tables = [PhaseTables(node, comp.n) for node in nodes]

    def forward(self, th, wn, P):
        theta64 = th.reshape(-1).double()
        runs = [t.forward(theta64) for t in self.tables]   # (p, state) each
        for j, (p, _) in enumerate(runs):
            P = P + wn[j] * p.to(th.dtype)
        return P, runs

    def backward(self, runs, th, wn, g, gth):
        if not self.tables:
            return g.new_zeros(0)
        g64 = g.double()
        for t, (_, state), w in zip(self.tables, runs, wn.tolist()):
            t.backward(state, g64, w, gth)
        return torch.stack([g64 @ p for p, _ in runs]).to(th.dtype)


class Channels:
    """A Channel node: its density-matrix chain (runtime/channel_kernels.py, float64), weighted
    by the layout's per-position matrix W itself, not by members (it lists none)."""
    by_position = True

    def __init__(self, comp: Compiled, nodes):
        self.tab = channel_kernels.ChannelTables(nodes[0].steps, comp.n) if nodes else None

    def forward(self, th, W, P):
        if self.tab is None:
            return P, None
        p, saved = channel_kernels.apply(self.tab, th, W)
        return P + p.to(th.dtype), saved

    def backward(self, saved, th, W, g, gth):
        if self.tab is None:
            return None
        dth, dW = channel_kernels.gradients(saved, g, th.numel(), W.shape)
        gth += dth.to(gth.device)
        return dW.to(W.device, W.dtype)


class Samples:
    """A Sampled node: the architectures a stack of one-hot weight matrices W selects
    (weights.choices), one statevector each (runtime/sampled_kernels.py, float64); P gets a
    leading axis of K. No gradient reaches W: a sampled search trains its logits by the score
    function (runtime/sampling.py), not through the circuits."""
    by_position = True

    def __init__(self, comp: Compiled, nodes):
        self.layout = comp.layout
        self.tab = sampled_kernels.SampledTables(nodes[0].steps, comp.n) if nodes else None

    def forward(self, th, W, P):
        if self.tab is None:
            return P, None
        p, saved = sampled_kernels.apply(self.tab, th, structural.choices(self.layout, W))
        return P + (p if W.dim() == 3 else p[0]).to(th.dtype), saved

    def backward(self, saved, th, W, g, gth):
        if self.tab is None:
            return None
        gth += sampled_kernels.gradients(saved, g, th.numel()).to(gth.device)
        return None


# node kind -> its runner, in run order: each weighs its nodes by their members' weights (rows
# of S) or, `by_position`, by the layout's matrix W
RUNNERS = {"circuit": Circuits, "constant": Constants, "phase": Phases, "channel": Channels, "sampled": Samples}


class ProgramFunction(torch.autograd.Function):
    """P(theta, weights, W) with adjoint-method gradients: the sum of every node kind's part, a
    node of listed candidates weighted by the sum of its members' `weights` (one per listed
    candidate), a Channel node by the layout's matrix `W`."""

    @staticmethod
    def forward(ctx, theta, weights, W, comp: Compiled):
        th = theta.detach().contiguous()
        S = comp.to(th.device)
        wn = S @ weights.detach().to(th.dtype)           # weight of every member-weighted node
        Wd = W.detach()
        P = torch.zeros(comp.dim, dtype=th.dtype, device=th.device)
        ctx.saved = []
        for runner, rows in comp.running:
            P, saved = runner.forward(th, Wd if runner.by_position else wn[rows], P)
            ctx.saved.append(saved)
        ctx.comp = comp
        ctx.save_for_backward(th, wn, Wd)
        return P

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        comp = ctx.comp
        th, wn, W = ctx.saved_tensors
        g = grad.detach().to(th.dtype).contiguous()
        gth = torch.zeros(th.numel(), dtype=torch.float64, device=th.device)
        dnode, dW = [], None
        for (runner, rows), saved in zip(comp.running, ctx.saved):
            if runner.by_position:
                part = runner.backward(saved, th, W, g, gth)
                dW = part if part is not None else dW
            else:
                dnode.append(runner.backward(saved, th, wn[rows], g, gth))
        dweights = comp.to(th.device).t() @ (torch.cat(dnode) if dnode else g.new_zeros(0))
        return gth.to(th.dtype).view_as(th), dweights, dW, None


def step_target(device: str, dtype: torch.dtype, steps: int | None = None) -> Target:
    """The Target a step on `device` in `dtype` compiles for: rendered as $QTC_RENDERING says
    (qtc.settings; default "auto": the cost model chooses per program, for the training steps
    the caller expects). A run's provenance.json records its key."""
    return Target(device=device, dtype=str(dtype).removeprefix("torch."), rendering=setting("rendering"),
                  steps=steps)


def _probabilities(device: str):
    """Run on `device` in theta's dtype (backends.probabilities admits float32 and float64),
    compiled for `step_target`."""
    def run(prog: Program, theta: torch.Tensor, W: torch.Tensor, steps: int | None) -> torch.Tensor:
        target = step_target(device, theta.dtype, steps)
        home, where = theta.device, torch.device(device)
        weights = structural.listed(prog, W)
        P = ProgramFunction.apply(theta.to(where), weights.to(where, theta.dtype), W.to(where, theta.dtype),
                                  compiled(prog, target))
        return P if home == where else P.to(home)
    return run


def cpu_available() -> bool:
    return find_compiler() is not None


def cpu_problem() -> str | None:
    return None if cpu_available() else "no C++ compiler was found (looked for $CXX, g++, c++)"


backends.register("cpu", cpu_available, _probabilities("cpu"), missing=cpu_problem)
backends.register("cuda", cuda.available, _probabilities("cuda"), missing=cuda.problem)
