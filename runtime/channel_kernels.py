"""The channel form compiled: compiler/csrc/channel.c's passes, ordered by one driver on cpu and cuda.

The C source is static (one build for every program). A program becomes ChannelTables: per
step its alternatives, per alternative its segments, each one pass over the density matrix on
both sides at once: a non-monomial one-qubit gate (H, RX, RY: `qtc_ch_dense`, real where the
gate is) or a run of monomial gates (CNOT, CZ, SWAP, X, RZ, ...: one `qtc_ch_gather` through an
index table and phases, so a CNOT network costs one pass whatever its length). The driver
(`forward`, `backward`) is plain Python over those passes and torch views; it launches through
`CpuKernels` (a HostLibrary) or `CudaKernels` (a DeviceModule: qtc.runtime.launch), by
parameter name, so both devices run the same kernels in the same order. `apply` keeps every
step's density matrix, `gradients` runs the adjoint chain (float64); the Channel node's runner
(runtime/kernels.py, RUNNERS) calls them inside ProgramFunction, as every node kind's runner.

Gradients: a rotation's Im Tr(F P sigma) may be taken at any later point of its alternative
as long as every gate in between commutes with its generator P (gates on other qubits; diagonal
gates for RZ). So a layer of rotations on distinct qubits, or a monomial run's RZs (only
diagonal gates may follow a rotation inside a run), have all their traces taken at the end of
the alternative, beside the weight's Tr(E X), in one `qtc_ch_traces` pass; the others at the
state just after their segment, walking the alternative backwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from qtc.compiler.csrc import source
from qtc.compiler.gates import GATES
from qtc.compiler.ir import Angle
from qtc.compiler.render.common import signatures
from qtc.runtime.launch import DeviceModule, HostLibrary

AXIS = {"X": 1, "Y": 2, "Z": 3}
CHANNEL_SERIAL_BELOW = 8     # qubits: a smaller density matrix is cheaper on one thread


# --- the program as tables ----------------------------------------------------------------------
@dataclass
class Segment:
    """One pass: kind "dense" (ops: one gate) or "mono" (a run of monomial gates); `grads`: the
    (rotation index, axis, qubit) whose gradient traces are taken just after the pass (walking
    back), `terms`: their (offset, count) in ChannelTables.terms."""
    kind: str
    ops: list
    grads: list
    real: bool = False
    phased: bool = False
    index: int = 0            # dense: row of the matrices; mono: row of the tables and phases
    terms: tuple[int, int] = (0, 0)

    def commutes_with(self, axis: int, qubit: int) -> bool:
        """Whether every gate of the pass commutes with the Pauli `axis` on `qubit`."""
        return all(commutes(op, axis, qubit) for op in self.ops)


def commutes(op, axis: int, qubit: int) -> bool:
    """Whether the gate commutes with the Pauli `axis` on `qubit`: it acts elsewhere, or it is
    diagonal and the Pauli is Z, or it is a one-qubit rotation (or phase) about that Pauli."""
    g = GATES[op.gate]
    return (qubit not in op.qubits or (axis == AXIS["Z"] and g.diagonal)
            or (g.arity == 1 and g.axis is not None and AXIS[g.axis] == axis))


class ChannelTables:
    """A Channel node's chain (its `steps`, at `n` qubits) as passes, and where gradients go."""

    def __init__(self, steps, n: int):
        self.n, self.dim = n, 1 << n
        self.D = self.dim * self.dim
        alts = [(s, k, ops) for s in steps for k, ops in enumerate(s.alts)]
        self.nalts = len(alts)
        first = np.cumsum([0] + [len(s.alts) for s in steps])
        self.steps = [list(range(first[i], first[i + 1])) for i in range(len(steps))]
        self.rotations: list = []        # parametrised ops, in gradient-slot order
        self.rot_alt: list[int] = []
        self.dense: list = []            # ops of the dense segments
        self.mono: list[list] = []       # ops of the monomial segments
        self.alts = [self._segments(ops, a) for a, (_, _, ops) in enumerate(alts)]
        self.terms: list[tuple[int, int, int]] = []   # (axis, qubit, row of the trace rows)
        # an alternative whose every gate commutes with every rotation's generator in it (a layer
        # of rotations on distinct qubits, a CNOT network, a diagonal run of RZ): its traces
        # Tr(E P U rho U^+) = Tr(U^+ E U P rho) need no state X at all (`start`)
        self.start = [all(s.commutes_with(ax, q) for seg in segs for _, ax, q in seg.grads for s in segs)
                      for segs in self.alts]
        self.ends = [self._terms([(a, 0, 0)] + (self._all_grads(segs) if start else self._deferred(segs)))
                     for a, (segs, start) in enumerate(zip(self.alts, self.start))]
        for segs in self.alts:
            for seg in segs:
                seg.terms = self._terms([(self.nalts + r, ax, q) for r, ax, q in seg.grads])
        self.theta_index = torch.tensor([op.angle.offset(self.n) for op in self.rotations], dtype=torch.long)
        self.scale = torch.tensor([op.angle.scale for op in self.rotations], dtype=torch.float64)
        self.rot_alt_t = torch.tensor(self.rot_alt, dtype=torch.long)
        weighted = [(a, s.position, k) for a, (s, k, _) in enumerate(alts) if s.position is not None]
        self.weighted = torch.tensor([a for a, _, _ in weighted], dtype=torch.long)
        self.where = (torch.tensor([p for _, p, _ in weighted], dtype=torch.long),
                      torch.tensor([k for _, _, k in weighted], dtype=torch.long))
        perms = [monomial_run(ops, np.zeros(0), self.n)[0] for ops in self.mono]
        self.perm = _ints([p for p in perms]).reshape(len(perms), self.dim)
        self.perm_inv = _ints([np.argsort(p) for p in perms]).reshape(len(perms), self.dim)
        self._static: dict[str, tuple] = {}
        self._fixed: tuple[np.ndarray, ...] | None = None   # the rows no angle changes (inputs)
        self._trained_dense = [i for i, op in enumerate(self.dense) if isinstance(op.angle, Angle)]
        self._trained_mono = [i for i, ops in enumerate(self.mono) if any(isinstance(op.angle, Angle) for op in ops)]

    def _segments(self, ops, alt: int) -> list[Segment]:
        segs: list[Segment] = []
        for op in ops:
            g, param = GATES[op.gate], isinstance(op.angle, Angle)
            grads = [(self._rotation(op, alt), AXIS[g.axis], op.qubits[0])] if param else []
            if not g.monomial:
                segs.append(Segment("dense", [op], grads, real=g.real, index=len(self.dense)))
                self.dense.append(op)
                continue
            if param and not g.diagonal:
                raise ValueError(f"gate '{op.gate}': a monomial rotation that is not diagonal")
            last = segs[-1] if segs and segs[-1].kind == "mono" else None
            if last is None or (last.grads and not g.diagonal):   # no permutation after a rotation
                last = Segment("mono", [], [], index=len(self.mono))
                segs.append(last)
                self.mono.append(last.ops)
            last.ops.append(op)
            last.grads += grads
            last.phased = last.phased or param or not _unit_phases(g.matrix(0.0))
        return segs

    def _deferred(self, segs: list[Segment]) -> list[tuple[int, int, int]]:
        """Take out of each pass the gradients whose generator commutes with every later pass:
        their traces move to the alternative's end (as (row, axis, qubit))."""
        out = []
        for i, seg in enumerate(segs):
            late = [g for g in seg.grads if all(s.commutes_with(g[1], g[2]) for s in segs[i + 1:])]
            seg.grads = [g for g in seg.grads if g not in late]
            out += [(self.nalts + r, ax, q) for r, ax, q in late]
        return out

    def _all_grads(self, segs: list[Segment]) -> list[tuple[int, int, int]]:
        out = [(self.nalts + r, ax, q) for seg in segs for r, ax, q in seg.grads]
        for seg in segs:
            seg.grads = []
        return out

    def _terms(self, rows: list[tuple[int, int, int]]) -> tuple[int, int]:
        start = len(self.terms)
        self.terms += [(ax, q, row) for row, ax, q in rows]
        return start, len(rows)

    def _rotation(self, op, alt: int) -> int:
        self.rotations.append(op)
        self.rot_alt.append(alt)
        return len(self.rotations) - 1

    @property
    def slots(self) -> int:
        """Trace rows: one per alternative (its weight's gradient), then one per rotation."""
        return self.nalts + len(self.rotations)

    def inputs(self, theta: np.ndarray) -> dict[str, torch.Tensor]:
        """This call's dense matrices (m, then m^dagger: 16 reals a row) and monomial phases
        (forward: e = d, adjoint: conj(phi); interleaved complex) as float64 tensors. Only the
        rows with a trained angle are computed per call; the others (H, a CNOT network) once."""
        if self._fixed is None:
            self._fixed = self._rows(np.zeros(0), range(len(self.dense)), range(len(self.mono)))
        mats, fwd, adj = (a.copy() for a in self._fixed)
        self._rows(theta, self._trained_dense, self._trained_mono, (mats, fwd, adj))
        return {"mats": torch.from_numpy(mats), "fwd": _planes(fwd), "adj": _planes(adj)}

    def _rows(self, theta: np.ndarray, dense, mono, out=None) -> tuple[np.ndarray, ...]:
        """The `dense` rows of the matrices and the `mono` rows of the phases at `theta` (empty:
        every angle 0), written into `out` (new arrays: every other row the identity's)."""
        if out is None:
            out = (np.zeros((max(len(self.dense), 1), 16)),
                   np.ones((max(len(self.mono), 1), self.dim), dtype=complex),
                   np.ones((max(len(self.mono), 1), self.dim), dtype=complex))
        mats, fwd, adj = out
        for i in dense:
            m = op_matrix(self.dense[i], theta, self.n)
            mats[i, :8] = _interleave(m)
            mats[i, 8:] = _interleave(m.conj().T)
        for i in mono:
            p, phi = monomial_run(self.mono[i], theta, self.n)
            fwd[i] = phi[self.perm_inv[i]]
            adj[i] = phi.conj()
        return out

    def static(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The index tables (forward: p^-1, adjoint: p) and the trace terms (axis, qubit, row
        as three int32 rows) on `device`, moved once."""
        key = str(device)
        if key not in self._static:
            terms = _ints(np.array(self.terms, dtype=np.int32).reshape(-1, 3).T)
            self._static[key] = tuple(torch.from_numpy(t).to(device) for t in (self.perm_inv, self.perm, terms))
        return self._static[key]

    def alt_weights(self, W: torch.Tensor) -> torch.Tensor:
        wa = torch.ones(self.nalts, dtype=torch.float64)
        wa[self.weighted] = W[self.where]
        return wa


def op_matrix(op, theta: np.ndarray, n: int) -> np.ndarray:
    """The op's matrix from the gate table at this call's angle (theta flat; empty: angle 0)."""
    a = op.angle
    if isinstance(a, Angle):
        t = a.scale * theta[a.offset(n)] + a.shift if theta.size else 0.0
    else:
        t = 0.0 if a is None else float(a)
    return GATES[op.gate].matrix(float(t))


def monomial_run(ops, theta: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A run of monomial gates as M|x> = phi[x] |p[x]> over the 2^n basis states."""
    dim = 1 << n
    p, phi = np.arange(dim), np.ones(dim, dtype=complex)
    for op in ops:
        m = op_matrix(op, theta, n)
        perm = np.argmax(abs(m), axis=0)
        phase = m[perm, np.arange(len(m))]
        local = sum(((p >> q) & 1) << i for i, q in enumerate(op.qubits))
        new = perm[local]
        phi = phi * phase[local]
        mask = sum(1 << q for q in op.qubits)
        p = (p & ~mask) | sum(((new >> i) & 1) << q for i, q in enumerate(op.qubits))
    return p, phi


def _unit_phases(m: np.ndarray) -> bool:
    return bool(np.allclose(m[np.argmax(abs(m), axis=0), np.arange(len(m))], 1))


def _interleave(m: np.ndarray) -> np.ndarray:
    return np.stack([m.real, m.imag], -1).reshape(-1)


def _planes(z: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack([z.real, z.imag], -1).reshape(len(z), -1)))


def _ints(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)


# --- launching ----------------------------------------------------------------------------------
class CpuKernels:
    """The g++ build of channel.c; a launch's `work` (the GPU's grid) does not matter here."""

    def __init__(self):
        self.lib = HostLibrary(source("channel.c"))

    def threads(self, n: int) -> None:
        self.lib.call("qtc_ch_threads", k=channel_threads(n))

    def __call__(self, name: str, work: int, **named) -> None:
        self.lib.call(name, **named)


class CudaKernels:
    """The NVRTC build of channel.c, on torch's current stream (qtc_ch_threads is the CPU's)."""

    def __init__(self):
        text = source("channel.c")
        self.module = DeviceModule(text, [name for name in signatures(text) if name != "qtc_ch_threads"])

    def threads(self, n: int) -> None:
        pass

    def __call__(self, name: str, work: int, **named) -> None:
        self.module.launch(name, work, **named)


@lru_cache(maxsize=None)
def kernels(device: str):
    """The kernel caller for a device kind ("cpu" or "cuda"), built once per process."""
    return CpuKernels() if device == "cpu" else CudaKernels()


# --- the driver ---------------------------------------------------------------------------------
class Run:
    """One call's tensors on one device: kernels, inputs, index tables, weights per alternative."""

    def __init__(self, k, tab: ChannelTables, inp: dict, wa: list[float], device: torch.device):
        self.k, self.tab, self.wa = k, tab, wa
        self.inp = {name: t.to(device) for name, t in inp.items()}
        self.pinv, self.perm, self.terms = tab.static(device)

    def apply(self, seg: Segment, src, out, alpha: float, beta: float, inverse: bool = False) -> None:
        """out = alpha * (seg applied to src, or its adjoint) + beta * out."""
        t = self.tab
        if seg.kind == "dense":
            m = self.inp["mats"][seg.index, 8:] if inverse else self.inp["mats"][seg.index, :8]
            name = "qtc_ch_dense_real" if seg.real else "qtc_ch_dense"
            self.k(name, t.D // 4, input=src, out=out, D=t.D, n=t.n, q=seg.ops[0].qubits[0], m=m,
                   alpha=alpha, beta=beta)
        else:
            table = self.perm[seg.index] if inverse else self.pinv[seg.index]
            e = self.inp["adj" if inverse else "fwd"][seg.index]
            self.k("qtc_ch_gather", t.D, input=src, out=out, D=t.D, n=t.n, t=table, e=e, phased=int(seg.phased),
                   alpha=alpha, beta=beta)

    def traces(self, F, S, rows, terms: tuple[int, int]) -> None:
        """The trace terms ChannelTables.terms[offset:offset + count] of (F, S) into their rows."""
        start, count = terms
        if count:
            axis, qubit, slot = (self.terms[r, start:] for r in range(3))
            self.k("qtc_ch_traces", self.tab.dim, F=F, S=S, out=rows, n=self.tab.n, axis=axis, qubit=qubit,
                   slot=slot, terms=count)

    def chain(self, segs, src, out, alpha: float, beta: float, spare, inverse: bool = False) -> None:
        """out = alpha * U src U^dagger + beta * out for the segments' U (inverse: U^dagger src U);
        intermediate states in the two `spare` buffers (a dense pass runs in place, a gather
        into the other one)."""
        if not segs:
            _accumulate(out, src, alpha, beta)
            return
        cur, order = src, list(reversed(segs)) if inverse else segs
        for i, seg in enumerate(order):
            last = i == len(order) - 1
            dst = out if last else _next_buffer(seg, cur, spare)
            self.apply(seg, cur, dst, alpha if last else 1.0, beta if last else 0.0, inverse)
            cur = dst


def _next_buffer(seg: Segment, cur, spare):
    if seg.kind == "dense" and any(cur is s for s in spare):
        return cur
    return spare[1] if cur is spare[0] else spare[0]


def _accumulate(out, src, alpha: float, beta: float) -> None:
    if beta == 0:
        torch.mul(src, alpha, out=out)
    else:
        out.mul_(beta).add_(src, alpha=alpha)


def forward(run: Run, states: torch.Tensor, spare) -> None:
    """states[0] := |0><0|, states[s + 1] := Phi_s(states[s]) = sum_a w_a U_a rho U_a^dagger."""
    states[0].zero_()
    states[0, 0] = 1
    for s, alts in enumerate(run.tab.steps):
        for j, a in enumerate(alts):
            run.chain(run.tab.alts[a], states[s], states[s + 1], run.wa[a], 0.0 if j == 0 else 1.0, spare)


def backward(run: Run, states: torch.Tensor, g: torch.Tensor, rows: torch.Tensor, buf) -> None:
    """The adjoint chain: E := diag(g); per step backwards and alternative a (not `start`, see
    ChannelTables; those trace U_a^+ E U_a against rho): X = U_a rho U_a^+,
    rows[a] <- Tr(E X); walking its segments backwards, the rotations' Im Tr(Y P X) rows, then
    X and Y = the observable un-applied (X only while an earlier pass still has traces to take);
    E_new = sum_a w_a U_a^+ E U_a."""
    tab = run.tab
    X, XT, Y, YT, E, En = buf
    E.zero_()
    E[:tab.D].view(tab.dim, tab.dim).diagonal().copy_(g)
    for s in range(len(tab.steps) - 1, -1, -1):
        for j, a in enumerate(tab.steps[s]):
            beta, segs = 0.0 if j == 0 else 1.0, tab.alts[a]
            if tab.start[a]:                          # Y = U^+ E U, traces against rho itself
                run.chain(segs, E, Y, 1.0, 0.0, (YT, XT), inverse=True)
                run.traces(Y, states[s], rows, tab.ends[a])
                _accumulate(En, Y, run.wa[a], beta)
                continue
            run.chain(segs, states[s], X, 1.0, 0.0, (XT, Y))
            run.traces(E, X, rows, tab.ends[a])       # the weight's, and the deferred rotations'
            x, y = X, E
            for i in range(len(segs) - 1, -1, -1):
                seg = segs[i]
                run.traces(y, x, rows, seg.terms)
                if any(sg.grads for sg in segs[:i]):
                    dst = _next_buffer(seg, x, (X, XT))
                    run.apply(seg, x, dst, 1.0, 0.0, inverse=True)
                    x = dst
                dst = En if i == 0 else _next_buffer(seg, y, (Y, YT))
                run.apply(seg, y, dst, run.wa[a] if i == 0 else 1.0, beta if i == 0 else 0.0, inverse=True)
                y = dst
            if not segs:
                _accumulate(En, E, run.wa[a], beta)
        E, En = En, E


@dataclass
class Saved:
    """What the forward pass leaves for the backward one: the run and every step's state."""
    run: Run
    states: torch.Tensor
    wa: torch.Tensor


def apply(tab: ChannelTables, theta: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, Saved]:
    """P = diag(Phi_S o ... o Phi_1(|0><0|)) in float64 on theta's device (theta flat or not,
    W the per-position matrix), and what `gradients` needs."""
    device = theta.device
    k = kernels(device.type)
    k.threads(tab.n)
    th = theta.detach().to("cpu", torch.float64).numpy().reshape(-1)
    wa = tab.alt_weights(W.detach().to("cpu", torch.float64))
    run = Run(k, tab, tab.inputs(th), wa.tolist(), device)
    states = torch.empty(len(tab.steps) + 1, 2 * tab.D, dtype=torch.float64, device=device)
    spare = torch.empty(2, 2 * tab.D, dtype=torch.float64, device=device)
    forward(run, states, (spare[0], spare[1]))
    return states[-1, :tab.D].view(tab.dim, tab.dim).diagonal(), Saved(run, states, wa)


def gradients(saved: Saved, grad: torch.Tensor, theta_size: int, w_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """The adjoint chain's gradients (float64, on the CPU): of flat theta (`theta_size`
    angles) and of W (`w_shape`)."""
    run, tab = saved.run, saved.run.tab
    device = saved.states.device
    run.k.threads(tab.n)
    g = grad.detach().to(device, torch.float64).contiguous()
    buf = torch.empty(6, 2 * tab.D, dtype=torch.float64, device=device)
    rows = torch.zeros(tab.slots, tab.dim, dtype=torch.float64, device=device)
    backward(run, saved.states, g, rows, tuple(buf))
    sums = rows.sum(1).cpu()
    gop = sums[tab.nalts:] * saved.wa[tab.rot_alt_t]
    gth = torch.zeros(theta_size, dtype=torch.float64)
    gth.index_add_(0, tab.theta_index, gop * tab.scale)   # d angle / d theta = scale
    gW = torch.zeros(w_shape, dtype=torch.float64)
    gW[tab.where] = sums[:tab.nalts][tab.weighted]
    return gth, gW


def channel_threads(n: int) -> int:
    """Threads of a channel-form step at n qubits: torch's setting, one below CHANNEL_SERIAL_BELOW."""
    return torch.get_num_threads() if n >= CHANNEL_SERIAL_BELOW else 1
