"""The unrolled rendering: every pass of every circuit as straight-line code.

A pass is one function over its tiles; its body applies each op to the 2^rank registers of a
tile with the coefficients written out (a cos / sin per rotation per thread, constant entries
folded to literals, zero terms left out), so the C compiler sees every multiply. The source
grows with qubits x depth (compiler/cost.py estimates it before rendering, and "auto" renders
compact above a size). A coefficient whose value depends on label bits (`Part`) is a table per
lane, selected once per thread; `TileEmitter` writes one op's code for one or two states (the
state, and in the backward also the adjoint state lambda and the gradient); `_section` is one
circuit's pass.
"""
from __future__ import annotations

from dataclasses import dataclass

from qtc.compiler import symbolic
from qtc.compiler.ir import Angle, numbered
from qtc.compiler.render.common import (BWD_ARGS, FWD_ARGS, PART, gate_table, gather_kernels, host, prelude,
                                        prototypes, tiles)
from qtc.compiler.schedule import CircuitPlan, Pass, Plan, SOp, parity
from qtc.compiler.target import Target

ONE, MINUS_ONE = symbolic.part(**{"1": 1}), symbolic.part(**{"1": -1})


def _literal(v: float) -> str:
    return f"((real){v!r})"


def _part_code(part: tuple, k: int) -> str:
    """C expression of a real part for op k (symbols c -> c<k>, s -> s<k>)."""
    if not part:
        return "((real)0)"
    out = []
    for sym, v in part:
        if sym == "1":
            out.append(_literal(v))
        else:
            name = f"{sym}{k}"
            out.append(name if v == 1 else f"-{name}" if v == -1 else f"{_literal(v)} * {name}")
    return "(" + " + ".join(out) + ")"


# --- coefficients that depend on label bits --------------------------------------------------

class Part:
    """One real part of a coefficient whose value is table[label bits] per lane.

    Labels of lane j of register s are beta ^ kappa_s ^ pi(j): beta is known per tile at run
    time, kappa_s per register at compile time, pi(j) = parity(row & j) per lane. For every
    run-time variant v = beta ^ kappa the per-lane values are precomputed once per thread.
    """

    def __init__(self, sec: "Section", name: str, table: list, pms: tuple[int, ...], k: int):
        self.sec, self.name, self.table, self.pms, self.k = sec, name, table, pms, k
        self.selected: dict[int, str] = {}
        if all(t == () for t in table):
            self.kind = "zero"
        elif all(t == table[0] for t in table):
            self.kind = "uniform"
            self.unit = table[0] in (ONE, MINUS_ONE)
            self.sign = "-" if table[0] == MINUS_ONE else ""
            self.code = _part_code(table[0], k)
        else:
            self.kind = "variant"
            self.unit = False
            self.vtype = "qv" if any(self.pms) else "real"
            for v in range(len(table)):
                vals = [_part_code(table[v ^ lb], k) for lb in range(len(table))]
                if not any(self.pms):
                    expr = vals[0]
                elif len(table) == 2:
                    expr = f"qtc_sel1({self.pms[0]}, {vals[0]}, {vals[1]})"
                else:
                    expr = f"qtc_sel2({self.pms[0]}, {self.pms[1]}, {', '.join(vals)})"
                sec.pre.append(f"const {self.vtype} {name}_{v} = {expr};")

    def at(self, kappa: int, betas: list, decl: list) -> str | None:
        """Expression of the coefficient for registers with this kappa (None = zero)."""
        if self.kind == "zero":
            return None
        if self.kind == "uniform":
            return self.code
        if kappa not in self.selected:
            var = f"{self.name}k{kappa}"
            decl.append(f"const {self.vtype} {var} = {self._select(kappa, betas)};")
            self.selected[kappa] = var
        return self.selected[kappa]

    def _select(self, kappa: int, betas: list) -> str:
        def pick(bits: int, i: int) -> str:
            if i < 0:
                return f"{self.name}_{bits ^ kappa}"
            b = betas[i]
            if isinstance(b, int):
                return pick(bits | (b << i), i - 1)
            return f"({b} ? {pick(bits | (1 << i), i - 1)} : {pick(bits, i - 1)})"
        return pick(0, len(betas) - 1)


def _product(coef: Part, kappa, betas, decl, operand: str, sign: str = ""):
    """A signed term coef * operand, or None when the coefficient is zero."""
    c = coef.at(kappa, betas, decl)
    if c is None:
        return None
    if coef.kind == "uniform" and coef.unit:
        neg = (coef.sign == "-") != (sign == "-")
        return ("-" if neg else "+", None, operand)
    return (sign or "+", c, operand)


def _sum(terms, flops: list) -> str:
    terms = [t for t in terms if t is not None]
    if not terms:
        return "QTC_ZERO"
    out = ""
    for i, (sign, c, x) in enumerate(terms):
        body = x if c is None else f"{c} * {x}"
        flops[0] += (c is not None) + (i > 0)
        out += (f"-{body}" if sign == "-" else body) if i == 0 else f" {sign} {body}"
    return out


# --- sections: one circuit's part of one kernel ------------------------------------------------

@dataclass
class Section:
    """Code for one circuit inside one kernel: per-thread preamble, tile body, reductions."""
    pre: list
    body: list
    post: list
    flops: list          # [flops per tile]


def _cmul(cr: Part, ci: Part, kappa, betas, decl, xr: str, xi: str | None):
    """(cr + i ci)(xr + i xi) as (re terms, im terms)."""
    re = [_product(cr, kappa, betas, decl, xr)]
    im = [_product(ci, kappa, betas, decl, xr)]
    if xi is not None:
        re.append(_product(ci, kappa, betas, decl, xi, "-"))
        im.append(_product(cr, kappa, betas, decl, xi))
    return re, im


class TileEmitter:
    """Emits the ops of one pass for one circuit: the registers of one or two states."""

    def __init__(self, plan: Plan, circ: CircuitPlan, pss: Pass, sec: Section, states):
        self.plan, self.circ, self.pss, self.sec = plan, circ, pss, sec
        self.states = states          # list of (re register prefix, im prefix or None)
        self.low = (1 << plan.lanes) - 1
        self.high = ~self.low
        self.offsets = pss.offsets()
        self.nreg = len(self.offsets)
        self.k = 0

    # labels
    def betas(self, op: SOp, k: int, lines: list) -> list:
        out = []
        for i, (row, flip) in enumerate(zip(op.rows, op.flips)):
            if row & self.high:
                name = f"b{k}_{i}"
                lines.append(f"const int {name} = QTC_PAR(y0 & {row & self.high}L) ^ {flip};")
                out.append(name)
            else:
                out.append(flip)
        return out

    def _kappa(self, op: SOp, s: int) -> int:
        return sum(parity(row & self.offsets[s]) << i for i, row in enumerate(op.rows))

    def angle_vars(self, op: SOp, k: int) -> None:
        if isinstance(op.angle, Angle):
            half = _half_angle(op.angle, self.plan.n)
            self.sec.pre.append(f"const real c{k} = QTC_COS({half}), s{k} = QTC_SIN({half});")

    def _parts(self, k: int, name: str, table: list, pms) -> tuple[Part, Part]:
        re = Part(self.sec, f"{name}{k}r", [e[0] for e in table], pms, k)
        im = Part(self.sec, f"{name}{k}i", [e[1] for e in table], pms, k)
        return re, im

    def apply(self, op: SOp, k: int, matrix, lines: list, tag: str, betas: list) -> None:
        """Apply a dense 2x2 matrix or a diagonal phase table to every state register."""
        pms = tuple(r & self.low for r in op.rows)
        decl, body = [], []
        if op.kind == "dense":
            a = self._parts(k, f"A{tag}", [matrix[0][0], matrix[1][1]], pms)
            b = self._parts(k, f"B{tag}", [matrix[0][1], matrix[1][0]], pms)
            u = self.pss.coords(op.d & self.high)
            dlo = op.d & self.low
            done = set()
            for s in range(self.nreg):
                if s in done:
                    continue
                group = [s] if (s ^ u) == s else [s, s ^ u]
                done.update(group)
                for re, im in self.states:
                    self._pair(group, u, dlo, op, a, b, betas, decl, body, re, im)
        else:
            d = self._parts(k, f"D{tag}", matrix, pms)
            for s in range(self.nreg):
                kap = self._kappa(op, s)
                for re, im in self.states:
                    nr, ni = _cmul(*d, kap, betas, decl, f"{re}{s}", f"{im}{s}" if im else None)
                    body.append(f"{{ const qv t0 = {_sum(nr, self.sec.flops)};"
                                + (f" {im}{s} = {_sum(ni, self.sec.flops)};" if im else "")
                                + f" {re}{s} = t0; }}")
        lines += decl + body

    def _pair(self, group, u, dlo, op, a, b, betas, decl, body, re, im) -> None:
        stmts, assigns = [], []
        for j, s in enumerate(group):
            p = s ^ u
            xr, xi = f"{re}{p}", (f"{im}{p}" if im else None)
            if dlo:
                stmts.append(f"const qv x{j}r = QTC_LX({xr}, {dlo});")
                xr = f"x{j}r"
                if im:
                    stmts.append(f"const qv x{j}i = QTC_LX({xi}, {dlo});")
                    xi = f"x{j}i"
            kap = self._kappa(op, s)
            ar, ai = _cmul(*a, kap, betas, decl, f"{re}{s}", f"{im}{s}" if im else None)
            br, bi = _cmul(*b, kap, betas, decl, xr, xi)
            stmts.append(f"const qv n{j}r = {_sum(ar + br, self.sec.flops)};")
            assigns.append(f"{re}{s} = n{j}r;")
            if im:
                stmts.append(f"const qv n{j}i = {_sum(ai + bi, self.sec.flops)};")
                assigns.append(f"{im}{s} = n{j}i;")
        body.append("{ " + " ".join(stmts + assigns) + " }")

    def gradient(self, op: SOp, k: int, lines: list, betas: list) -> None:
        """acc<k> += Im(conj(lambda) . P psi) over the tile (P = the rotation's Pauli)."""
        diag = op.kind == "diag"
        pms = tuple(r & self.low for r in op.rows)
        decl, body = [], [f"qv g{k} = QTC_ZERO;"]
        (pr, pi), (lr, li) = self.states
        if diag:
            d = self._parts(k, "Pd", op.generator, pms)
        else:
            m = op.generator
            o = self._parts(k, "Po", [m[0][1], m[1][0]], pms)
            u = self.pss.coords(op.d & self.high)
            dlo = op.d & self.low
        for s in range(self.nreg):
            kap = self._kappa(op, s)
            stmts = []
            if diag:
                tr, ti = _cmul(*d, kap, betas, decl, f"{pr}{s}", f"{pi}{s}" if pi else None)
            else:
                xr, xi = f"{pr}{s ^ u}", (f"{pi}{s ^ u}" if pi else None)
                if dlo:
                    stmts.append(f"const qv xr = QTC_LX({xr}, {dlo});")
                    xr = "xr"
                    if pi:
                        stmts.append(f"const qv xi = QTC_LX({xi}, {dlo});")
                        xi = "xi"
                tr, ti = _cmul(*o, kap, betas, decl, xr, xi)
            terms = []
            if any(t is not None for t in ti):
                stmts.append(f"const qv ti = {_sum(ti, self.sec.flops)};")
                terms.append(("+", None, f"{lr}{s} * ti"))
                self.sec.flops[0] += 1
            if li and any(t is not None for t in tr):
                stmts.append(f"const qv tr = {_sum(tr, self.sec.flops)};")
                terms.append(("-", None, f"{li}{s} * tr"))
                self.sec.flops[0] += 1
            if terms:
                stmts.append(f"g{k} += {_sum(terms, self.sec.flops)};")
                self.sec.flops[0] += 1
                body.append("{ " + " ".join(stmts) + " }")
        body.append(f"acc{k} += QTC_ACC(g{k});")
        self.sec.pre.append(f"qacc acc{k} = {{}};")
        grad = "" if op.angle.scale == 1 else f"{op.angle.scale!r} * "  # the chain rule
        self.sec.post.append(f"qtc_add(&gth[{op.angle.offset(self.plan.n)}], {grad}QTC_HSUM(acc{k}));")
        lines += decl + body


def _half_angle(angle: Angle, n: int) -> str:
    """C expression of t / 2 for t = scale * theta[...] + shift."""
    th = f"th[{angle.offset(n)}]"
    if angle.plain:
        return f"{th} * (real)0.5"
    return f"{th} * {_literal(angle.scale / 2)} + {_literal(angle.shift / 2)}"


def _tile_base(pss: Pass, lanes: int) -> list[str]:
    """y0 = the tile index t with zero bits inserted at the pivots, shifted past the lanes."""
    out = [f"long y0 = (long)t << {lanes};"]
    for p in sorted(pss.pivots):
        mask = (1 << p) - 1
        out.append(f"y0 = (y0 & {mask}L) | ((y0 & ~{mask}L) << 1);")
    return out


def _planes(plan: Plan, circ: CircuitPlan, buf: str, regs: tuple[str, str]):
    dim = 1 << plan.n
    ptrs = [f"real* const {regs[0]}p = {buf} + {circ.offset};"]
    states = (regs[0], None)
    if not circ.real:
        ptrs.append(f"real* const {regs[1]}p = {buf} + {circ.offset + dim};")
        states = regs
    return ptrs, states


def _section(plan: Plan, circ: CircuitPlan, pss: Pass, backward: bool) -> tuple[Section, str]:
    sec = Section([], [], [], [0])
    ntiles = tiles(plan, pss)
    ptrs, psi = _planes(plan, circ, "st", ("v", "w"))
    states = [psi]
    if backward:
        p2, lam = _planes(plan, circ, "lam", ("a", "e"))
        ptrs += p2
        states.append(lam)
    em = TileEmitter(plan, circ, pss, sec, states)
    lines = _tile_base(pss, plan.lanes)
    offs = em.offsets
    for re, im in states:
        for plane in (re, im):
            if plane:
                lines += [f"qv {plane}{s} = QTC_LD({plane}p, y0 ^ {o}L);" for s, o in enumerate(offs)]
    for k, op in enumerate(pss.ops):
        lines.append(f"{{ // {_describe(op)}")
        em.angle_vars(op, k)
        oplines: list = []
        betas = em.betas(op, k, oplines)
        if backward:
            if isinstance(op.angle, Angle):
                em.gradient(op, k, oplines, betas)
            matrix = symbolic.adjoint(gate_table(op), op.kind == "dense")
        else:
            matrix = gate_table(op)
        em.apply(op, k, matrix, oplines, "", betas)
        lines += ["  " + x for x in oplines] + ["}"]
    for re, im in states:
        for plane in (re, im):
            if plane:
                lines += [f"QTC_ST({plane}p, y0 ^ {o}L, {plane}{s});" for s, o in enumerate(offs)]
    sec.body = ptrs + ["for (long t = t0; t < t1; t += step) {"] + ["  " + x for x in lines] + ["}"]
    head = (f"// circuit [{numbered(circ.members)}] {circ.label}: {len(pss.ops)} ops, "
            f"rank {pss.rank}, {ntiles} tiles")
    return sec, head


def _describe(op: SOp) -> str:
    qs = ",".join(map(str, op.qubits))
    a = "" if op.angle is None else f"({op.angle})" if isinstance(op.angle, Angle) else f"({op.angle:.17g})"
    rows = " ".join(f"{r:#x}^{f}" for r, f in zip(op.rows, op.flips))
    return f"{op.gate}{a} {qs}: " + (f"dir {op.d:#x} " if op.kind == "dense" else "") + f"label {rows}"


# --- whole kernels --------------------------------------------------------------------------

def _function(name: str, args: str, sec: Section, head: str) -> list[str]:
    """One circuit's pass as a function over the tiles t0, t0 + step, ... < t1."""
    return [head, f"QTC_FN {name}({args}, long t0, long t1, long step) {{"] + \
        ["  " + x for x in sec.pre + sec.body + sec.post] + ["}", ""]


def _gpu_kernels(plan: Plan, backward: bool) -> list[str]:
    """CUDA: kernel j runs pass j of every circuit (independent states: no grid sync)."""
    tag, args, call = ("b", BWD_ARGS, "st, lam, th, gth") if backward else ("f", FWD_ARGS, "st, th")
    count = plan.bwd_kernels if backward else plan.fwd_kernels
    out = ["#ifdef __CUDACC__"]
    for j in range(count):
        out += [f"QTC_KERNEL qtc_{'bwd' if backward else 'fwd'}_{j}({args}) {{",
                "  const long t0 = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> QTC_M;",
                "  const long step = (gridDim.x * (long)blockDim.x) >> QTC_M;"]
        for i, c in enumerate(plan.circuits):
            passes = c.bwd if backward else c.fwd
            if j < len(passes):
                out.append(f"  qtc_{tag}{j}_c{i}({call}, t0, {tiles(plan, passes[j])}L, step);")
        out.append("}")
    return out + ["#endif", ""]


def _unrolled_calls(plan: Plan) -> list[str]:
    """qtc_fpass / qtc_bpass of the unrolled rendering: a call through a table of the pass
    functions (host only; the GPU kernels call the functions directly)."""
    out = ["#ifndef __CUDACC__",
           "typedef void (*qtc_ffn)(real*, const real*, long, long, long);",
           "typedef void (*qtc_bfn)(real*, real*, const real*, double*, long, long, long);"]
    for backward, tag in ((False, "f"), (True, "b")):
        fns = [f"qtc_{tag}{j}_c{i}" for i, c in enumerate(plan.circuits)
               for j in range(len(c.bwd if backward else c.fwd))]
        out.append(f"static const qtc_{tag}fn qtc_{tag}_fns[] = {{{', '.join(fns + ['0'])}}};")
    return out + [
        "static inline void qtc_fpass(int k, real* st, const real* th, long t0, long t1, long step) {",
        "  qtc_f_fns[k](st, th, t0, t1, step);", "}",
        "static inline void qtc_bpass(int k, real* st, real* lam, const real* th, double* gth, long t0, "
        "long t1, long step) {", "  qtc_b_fns[k](st, lam, th, gth, t0, t1, step);", "}", "#endif"]


def kernel_text(plan: Plan, target: Target) -> tuple[str, int, int]:
    """The full kernel source for a scheduled program, and the flops of a forward and of a
    backward (all circuits), counted from the emitted expressions.

    Layout: prelude, prototypes of every pass function, then parts separated by PART lines
    (the gather kernels, each circuit's forward and backward passes, the GPU kernels and CPU
    drivers). Prelude + prototypes + any one part is a complete translation unit."""
    lines = prelude(plan, target)
    for backward in (False, True):
        tag, args = ("b", BWD_ARGS) if backward else ("f", FWD_ARGS)
        for i, circ in enumerate(plan.circuits):
            lines += [f"QTC_FN qtc_{tag}{j}_c{i}({args}, long t0, long t1, long step);"
                      for j in range(len(circ.bwd if backward else circ.fwd))]
    lines += prototypes()
    lines += ["", PART] + gather_kernels(plan)
    flops = {False: 0, True: 0}
    for backward in (False, True):
        tag, args = ("b", BWD_ARGS) if backward else ("f", FWD_ARGS)
        for i, circ in enumerate(plan.circuits):
            lines.append(PART)
            for j, pss in enumerate(circ.bwd if backward else circ.fwd):
                sec, head = _section(plan, circ, pss, backward)
                flops[backward] += sec.flops[0] * tiles(plan, pss) << plan.lanes
                lines += _function(f"qtc_{tag}{j}_c{i}", args, sec, head)
    lines.append(PART)
    for backward in (False, True):
        lines += _gpu_kernels(plan, backward)
    lines += host(plan, _unrolled_calls(plan))
    return "\n".join(lines) + "\n", flops[False], flops[True]
