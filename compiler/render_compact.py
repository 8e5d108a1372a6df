"""render_compact: the same kernels as compiler/render.py, with every pass as data.

The unrolled renderer writes one block of code per op and register, so its source grows with
qubits x depth (7.5 MB at 17 qubits, depth 15) and so does the C++ / NVRTC compile. Here a pass
over the state is one loop (kernel_compact.h) over a table: the pass's tile (basis, pivots), its
ops (direction, label rows and flips, the gate's table, the angle and its form) and a table of
the distinct gate matrices as coefficients of 1, cos and sin of the half angle. The code is the
same for every program; only the tables grow, by one short record per op.

The kernels, their names and parameters, the gathers and the CPU drivers are the unrolled
rendering's (render.py); only the pass functions differ.
"""
from __future__ import annotations

from qtc.compiler import symbolic
from qtc.compiler.ir import Angle
from qtc.compiler.render import (BWD_ARGS, FWD_ARGS, PART, Rendered, _binit_kernel, _host, _init_kernel,
                                 _matrix, _out_kernel, _prelude, _static, pass_starts, pass_tiles,
                                 signatures)
from qtc.compiler.schedule import CircuitPlan, Pass, Plan, SOp
from qtc.compiler.target import Target

# flops per element of one op, as kernel_compact.h computes them: (real, complex) circuits
APPLY_FLOPS = {"dense": (3, 14), "diag": (1, 6)}
GRAD_FLOPS = {"dense": (5, 18), "diag": (3, 10)}


def _coefficients(part: tuple) -> tuple[float, float, float]:
    terms = dict(part)
    return terms.get("1", 0.0), terms.get("c", 0.0), terms.get("s", 0.0)


def gate_row(table: tuple, dense: bool) -> tuple[float, ...]:
    """A symbolic table as 24 reals: 4 entries (m00 m01 m10 m11, or a diagonal by label, padded
    with zeros) x (re, im) x (coefficient of 1, cos, sin)."""
    entries = [table[0][0], table[0][1], table[1][0], table[1][1]] if dense else list(table)
    entries += [((), ())] * (4 - len(entries))
    return tuple(x for re, im in entries for x in _coefficients(re) + _coefficients(im))


class Tables:
    """The distinct gate rows and angle forms, and every op's record, in the order written."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.gates: dict[tuple, int] = {}
        self.forms: dict[tuple, int] = {(0.5, 0.0, 1.0): 0}
        self.passes = {False: [], True: []}
        self.ops = {False: [], True: []}
        for backward in (False, True):
            for c in plan.circuits:
                for pss in (c.bwd if backward else c.fwd):
                    self._add_pass(c, pss, backward)

    def _index(self, table: dict, key: tuple) -> int:
        return table.setdefault(key, len(table))

    def _add_pass(self, circ: CircuitPlan, pss: Pass, backward: bool) -> None:
        ops = self.ops[backward]
        basis = list(pss.basis) + [0] * (4 - pss.rank)
        pivots = sorted(pss.pivots) + [0] * (4 - pss.rank)
        self.passes[backward].append((circ.offset, int(not circ.real), pss.rank, basis, pivots,
                                      len(ops), len(pss.ops)))
        for op in pss.ops:
            ops.append(self._op(op, pss, backward))

    def _op(self, op: SOp, pss: Pass, backward: bool) -> tuple:
        lanes = self.plan.lanes
        low = (1 << lanes) - 1
        dense = op.kind == "dense"
        rows = list(op.rows) + [0] * (2 - len(op.rows))
        flips = list(op.flips) + [0] * (2 - len(op.flips))
        u = pss.coords(op.d & ~low) if dense else 0
        bits = (int(not dense) | len(op.rows) << 1 | u << 3 | (op.d & low) << 8 | (rows[0] & low) << 11
                | (rows[1] & low) << 14 | flips[0] << 17 | flips[1] << 18)
        matrix = _matrix(op)
        if backward:
            matrix = symbolic.adjoint(matrix, dense)
        gate = self._index(self.gates, gate_row(matrix, dense))
        trained = isinstance(op.angle, Angle)
        gen = self._index(self.gates, gate_row(op.generator, dense)) if backward and trained else -1
        th, form = -1, 0
        if trained:
            th = op.angle.offset(self.plan.n)
            form = self._index(self.forms, (op.angle.scale / 2, op.angle.shift / 2, op.angle.scale))
        return bits, rows[0] & ~low, rows[1] & ~low, gate, gen, th, form

    def text(self) -> list[str]:
        rows = [", ".join(map(repr, g)) for g in self.gates] or ["0"]
        out = [f"QTC_TABLE real qtc_gates[] = {{", *(f"  {r}," for r in rows), "};",
               "QTC_TABLE qtc_form qtc_forms[] = {"
               + ", ".join(f"{{{hs!r}, {hh!r}, {gs!r}}}" for hs, hh, gs in self.forms) + "};"]
        for backward, tag in ((False, "f"), (True, "b")):
            passes = [f"  {{{o}L, {cplx}, {rank}, {{{', '.join(f'{b}L' for b in basis)}}}, "
                      f"{{{', '.join(map(str, piv))}}}, {op0}, {nops}}},"
                      for o, cplx, rank, basis, piv, op0, nops in self.passes[backward]]
            ops = [f"  {{{bits}, {r0}L, {r1}L, {g}, {gen}, {th}, {form}}},"
                   for bits, r0, r1, g, gen, th, form in self.ops[backward]]
            start = pass_starts(self.plan, backward)
            tiles = pass_tiles(self.plan, backward)
            out += [f"QTC_TABLE qtc_pass qtc_{tag}_pass[] = {{", *(passes or ["  {}"]), "};",
                    f"QTC_TABLE qtc_op qtc_{tag}_ops[] = {{", *(ops or ["  {}"]), "};",
                    f"QTC_TABLE int qtc_{tag}_first[] = {{{', '.join(map(str, start))}}};",
                    f"QTC_TABLE long qtc_{tag}_ntiles[] = {{{', '.join(f'{t}L' for t in tiles + [0])}}};"]
        return out


def _dispatch() -> list[str]:
    """qtc_fpass / qtc_bpass (pass k over some tiles) and the per-kernel loop over circuits."""
    run = "qtc_gates, qtc_forms"
    return [
        f"QTC_INL void qtc_fpass(int k, {FWD_ARGS}, long t0, long t1, long step) {{",
        "  const qtc_pass& P = qtc_f_pass[k];",
        f"  if (P.cplx) qtc_fpass_run<true>(P, qtc_f_ops + P.op0, {run}, st, th, t0, t1, step);",
        f"  else qtc_fpass_run<false>(P, qtc_f_ops + P.op0, {run}, st, th, t0, t1, step);",
        "}",
        f"QTC_INL void qtc_bpass(int k, {BWD_ARGS}, long t0, long t1, long step) {{",
        "  const qtc_pass& P = qtc_b_pass[k];",
        f"  if (P.cplx) qtc_bpass_run<true>(P, qtc_b_ops + P.op0, {run}, st, lam, th, gth, t0, t1, step);",
        f"  else qtc_bpass_run<false>(P, qtc_b_ops + P.op0, {run}, st, lam, th, gth, t0, t1, step);",
        "}", ""]


def _gpu_kernels(plan: Plan, backward: bool) -> list[str]:
    """CUDA: kernel j runs pass j of every circuit that has one (as the unrolled kernels do)."""
    tag, args, call = ("b", BWD_ARGS, "st, lam, th, gth") if backward else ("f", FWD_ARGS, "st, th")
    name = "bwd" if backward else "fwd"
    # one copy of the pass loop (not inlined into every kernel: NVRTC's time grows with each)
    out = ["#ifdef __CUDACC__",
           f"static __device__ __noinline__ void qtc_{name}_all(int j, {args}) {{",
           "  const long t0 = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> QTC_M;",
           "  const long step = (gridDim.x * (long)blockDim.x) >> QTC_M;",
           f"  for (int c = 0; c < {len(plan.circuits)}; ++c) {{",
           f"    const int k = qtc_{tag}_first[c] + j;",
           f"    if (k < qtc_{tag}_first[c + 1]) qtc_{tag}pass(k, {call}, t0, qtc_{tag}_ntiles[k], step);",
           "  }", "}"]
    count = plan.bwd_kernels if backward else plan.fwd_kernels
    out += [f"QTC_KERNEL qtc_{name}_{j}({args}) {{ qtc_{name}_all({j}, {call}); }}" for j in range(count)]
    return out + ["#endif", ""]


def _flops(plan: Plan, backward: bool) -> int:
    total = 0
    for c in plan.circuits:
        cplx = int(not c.real)
        for pss in (c.bwd if backward else c.fwd):
            for op in pss.ops:
                per = APPLY_FLOPS[op.kind][cplx] * (2 if backward else 1)
                if backward and isinstance(op.angle, Angle):
                    per += GRAD_FLOPS[op.kind][cplx]
                total += per << plan.n
    return total


def render_compact(plan: Plan, target: Target) -> Rendered:
    """The kernel source with table-driven passes: prelude, kernel_compact.h, the gathers, the
    tables, the pass dispatch, the GPU kernels and the CPU drivers (one part after the gathers)."""
    tables = Tables(plan)
    lines = _prelude(plan, target)
    lines += [f"#define QTC_DIM {1 << plan.n}L",
              f"#define QTC_MAXREG {max([1] + [1 << p.rank for c in plan.circuits for p in c.fwd + c.bwd])}",
              f"#define QTC_MAXOPS {max([1] + [len(p.ops) for c in plan.circuits for p in c.fwd + c.bwd])}"]
    lines += _static("kernel_compact.h") + [""]
    lines += ["QTC_KERNEL qtc_init(real* QTC_RESTRICT st);",
              "QTC_KERNEL qtc_out(const real* QTC_RESTRICT st, const real* QTC_RESTRICT wn, real* QTC_RESTRICT P);",
              "QTC_KERNEL qtc_binit(const real* QTC_RESTRICT st, real* QTC_RESTRICT lam, "
              "const real* QTC_RESTRICT wn, const real* QTC_RESTRICT g, double* QTC_RESTRICT gw);"]
    lines += ["", PART] + _init_kernel(plan) + _out_kernel(plan) + _binit_kernel(plan)
    lines += [PART] + tables.text() + [""] + _dispatch()
    for backward in (False, True):
        lines += _gpu_kernels(plan, backward)
    lines += _host(plan, [])
    text = "\n".join(lines) + "\n"
    return Rendered(text, plan, target, _flops(plan, False), _flops(plan, True), signatures(text))
