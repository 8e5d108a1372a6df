"""The compact rendering: the same kernels as the unrolled one (unrolled.py), with every pass
as data.

The unrolled rendering writes one block of code per op and register, so its source grows with
qubits x depth (7.5 MB at 17 qubits, depth 15) and so does the C++ / NVRTC compile. Here a pass
over the state is one loop (csrc/compact.h) over a table: the pass's tile (basis, pivots), its
ops (direction, label rows and flips, the gate's table, the angle and its form) and a table of
the distinct gate matrices as coefficients of 1, cos and sin of the half angle. The code is the
same for every program; only the tables (`CompactTables`) grow, by one short record per op.

The kernels, their names and parameters, the gathers and the CPU drivers are common.py's; only
the pass functions differ. On the CPU they are not in the program's text at all: compact.h and
compact_lib.c, after the prelude's dtype and lane parameters, are `Rendered.library`, the same
text for every program, which the build cache compiles once and links with each program (whose
qtc_fpass / qtc_bpass call qtc_lib_fpass / qtc_lib_bpass with its tables). On the GPU the
program's text instantiates them itself.
"""
from __future__ import annotations

from qtc.compiler import symbolic
from qtc.compiler.ir import Angle
from qtc.compiler.render.common import (BWD_ARGS, FWD_ARGS, PART, c_lines, gate_table, gather_kernels, host,
                                        pass_starts, pass_tiles, prelude, prelude_params, prototypes)
from qtc.compiler.schedule import CircuitPlan, Pass, Plan, SOp, parity
from qtc.compiler.target import Target

# flops per element of one op, as compact.h computes them: (real, complex) circuits
APPLY_FLOPS = {"dense": (3, 14), "diag": (1, 6)}
GRAD_FLOPS = {"dense": (5, 18), "diag": (3, 10)}


def _coefficients(part: tuple) -> tuple[float, float, float]:
    terms = dict(part)
    return terms.get("1", 0.0), terms.get("c", 0.0), terms.get("s", 0.0)


def shape(row: tuple[float, ...]) -> int:
    """Which parts of a 2x2 gate row (gate_row) can be non-zero: 1 when every imaginary part is
    structurally zero (H, RY), 2 when the diagonal is real and the off-diagonal imaginary (RX),
    else 0 (compact.h's qtc_mac K)."""
    re0 = [not any(row[6 * e:6 * e + 3]) for e in range(4)]
    im0 = [not any(row[6 * e + 3:6 * e + 6]) for e in range(4)]
    if all(im0):
        return 1
    return 2 if im0[0] and im0[3] and re0[1] and re0[2] else 0


def op_shape(gate: tuple[float, ...], gen: tuple[float, ...] | None) -> int:
    """A dense complex op's kernel shape: the matrix's K when its generator (if it has one, in
    the backward) has the other non-zero K (RX with X, RY with Y), else 0 (the general code)."""
    k = shape(gate)
    kg = 3 - k if gen is None else shape(gen)
    return k if k and kg == 3 - k else 0


def gate_row(table: tuple, dense: bool) -> tuple[float, ...]:
    """A symbolic table as 24 reals: 4 entries (m00 m01 m10 m11, or a diagonal by label, padded
    with zeros) x (re, im) x (coefficient of 1, cos, sin)."""
    entries = [table[0][0], table[0][1], table[1][0], table[1][1]] if dense else list(table)
    entries += [((), ())] * (4 - len(entries))
    return tuple(x for re, im in entries for x in _coefficients(re) + _coefficients(im))


class CompactTables:
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
        self.passes[backward].append((circ.offset, 1 << self.plan.n, int(not circ.real), pss.rank,
                                      basis, pivots, len(ops), len(pss.ops)))
        offsets = pss.offsets()
        for op in pss.ops:
            ops.append(self._op(op, pss, offsets, backward))

    def _op(self, op: SOp, pss: Pass, offsets: list[int], backward: bool) -> tuple:
        lanes = self.plan.lanes
        low = (1 << lanes) - 1
        dense = op.kind == "dense"
        rows = list(op.rows) + [0] * (2 - len(op.rows))
        flips = list(op.flips) + [0] * (2 - len(op.flips))
        u = pss.coords(op.d & ~low) if dense else 0
        matrix = gate_table(op)
        if backward:
            matrix = symbolic.adjoint(matrix, dense)
        row = gate_row(matrix, dense)
        gate = self._index(self.gates, row)
        trained = isinstance(op.angle, Angle)
        gen_row = gate_row(op.generator, dense) if backward and trained else None
        gen = -1 if gen_row is None else self._index(self.gates, gen_row)
        th, form = -1, 0
        if trained:
            th = op.angle.offset(self.plan.n)
            form = self._index(self.forms, (op.angle.scale / 2, op.angle.shift / 2, op.angle.scale))
        # the label bits of each register's block offset, 2 bits per register
        kap = sum((parity(rows[0] & ~low & o) | parity(rows[1] & ~low & o) << 1) << 2 * s
                  for s, o in enumerate(offsets))
        kind = op_shape(row, gen_row) if dense else 0
        bits = (int(not dense) | len(op.rows) << 1 | u << 3 | (op.d & low) << 8 | (rows[0] & low) << 11
                | (rows[1] & low) << 14 | flips[0] << 17 | flips[1] << 18 | kind << 19)
        return bits, rows[0] & ~low, rows[1] & ~low, gate, gen, th, form, kap

    def text(self) -> list[str]:
        rows = [", ".join(map(repr, g)) for g in self.gates] or ["0"]
        out = [f"QTC_TABLE real qtc_gates[] = {{", *(f"  {r}," for r in rows), "};",
               "QTC_TABLE qtc_form qtc_forms[] = {"
               + ", ".join(f"{{{hs!r}, {hh!r}, {gs!r}}}" for hs, hh, gs in self.forms) + "};"]
        for backward, tag in ((False, "f"), (True, "b")):
            passes = [f"  {{{o}L, {dim}L, {cplx}, {rank}, {{{', '.join(f'{b}L' for b in basis)}}}, "
                      f"{{{', '.join(map(str, piv))}}}, {op0}, {nops}}},"
                      for o, dim, cplx, rank, basis, piv, op0, nops in self.passes[backward]]
            ops = [f"  {{{bits}, {r0}, {r1}, {g}, {gen}, {th}, {form}, {kap}}},"
                   for bits, r0, r1, g, gen, th, form, kap in self.ops[backward]]
            start = pass_starts(self.plan, backward)
            tiles = pass_tiles(self.plan, backward)
            out += [f"QTC_TABLE qtc_pass qtc_{tag}_pass[] = {{", *(passes or ["  {}"]), "};",
                    f"QTC_TABLE qtc_op qtc_{tag}_ops[] = {{", *(ops or ["  {}"]), "};",
                    f"QTC_TABLE int qtc_{tag}_first[] = {{{', '.join(map(str, start))}}};",
                    f"QTC_TABLE long qtc_{tag}_ntiles[] = {{{', '.join(f'{t}L' for t in tiles + [0])}}};"]
        return out


def dispatch() -> list[str]:
    """qtc_fpass / qtc_bpass: pass k over some tiles, by the library's entry points on the CPU
    and by the templates of compact.h on the GPU."""
    run = "qtc_gates, qtc_forms"
    return [
        "#ifdef __CUDACC__",
        f"QTC_INL void qtc_fpass(int k, {FWD_ARGS}, long t0, long t1, long step) {{",
        f"  qtc_fpass_run(qtc_f_pass[k], qtc_f_ops + qtc_f_pass[k].op0, {run}, st, th, t0, t1, step);",
        "}",
        f"QTC_INL void qtc_bpass(int k, {BWD_ARGS}, long t0, long t1, long step) {{",
        f"  qtc_bpass_run(qtc_b_pass[k], qtc_b_ops + qtc_b_pass[k].op0, {run}, st, lam, th, gth, t0, t1, step);",
        "}",
        "#else",
        f"static inline void qtc_fpass(int k, {FWD_ARGS}, long t0, long t1, long step) {{",
        f"  qtc_lib_fpass(&qtc_f_pass[k], qtc_f_ops + qtc_f_pass[k].op0, {run}, st, th, t0, t1, step);",
        "}",
        f"static inline void qtc_bpass(int k, {BWD_ARGS}, long t0, long t1, long step) {{",
        f"  qtc_lib_bpass(&qtc_b_pass[k], qtc_b_ops + qtc_b_pass[k].op0, {run}, st, lam, th, gth, t0, t1, step);",
        "}",
        "#endif", ""]


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


def plan_flops(plan: Plan, backward: bool) -> int:
    """Flops of a forward (or backward) as the compact kernels compute them (every part of a
    coefficient): also the cost model's measure of a step's work before rendering."""
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


COMPACT_MAX_RANK = 4   # compact.h instantiates tiles of 1 to 16 registers


def library(lanes: int, target: Target) -> str:
    """The CPU kernel library: the same text for every program of (lanes, dtype)."""
    lines = ["// qtc compact kernel library: the passes of every program on the CPU"]
    lines += prelude_params(lanes, target) + c_lines("prelude.h")
    return "\n".join(lines + c_lines("compact.h") + c_lines("compact_lib.c")) + "\n"


def kernel_text(plan: Plan, target: Target) -> tuple[str, int, int]:
    """The kernel source with table-driven passes (prelude, compact.h, the gathers, the tables,
    the pass dispatch, the GPU kernels and the CPU drivers: one part after the gathers), and the
    flops of a forward and of a backward as the compact kernels compute them."""
    assert all(p.rank <= COMPACT_MAX_RANK for c in plan.circuits for p in c.fwd + c.bwd), "tile rank above 4"
    tables = CompactTables(plan)
    lines = prelude(plan, target)
    lines += c_lines("compact.h") + [""]
    lines += prototypes()
    lines += ["", PART] + gather_kernels(plan)
    lines += [PART] + tables.text() + [""] + dispatch()
    for backward in (False, True):
        lines += _gpu_kernels(plan, backward)
    lines += host(plan, [])
    return "\n".join(lines) + "\n", plan_flops(plan, False), plan_flops(plan, True)
