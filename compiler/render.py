"""render: kernel source text for the forward and adjoint backward passes, and the cost report.

One text, two compilers: the kernels are written against a small prelude of macros, so the
same source is a CUDA file (a thread is one lane of an 8-lane group; lane shuffles are warp
shuffles) and a C++ file for g++ -fopenmp (a loop iteration holds 8 lanes in a GCC vector;
lane shuffles are __builtin_shuffle). Layout of the state buffer `st`: each simulated circuit
owns 2^n reals (real circuits) or a real plane followed by an imaginary plane.

Kernels (all `extern "C"`; launched in this order):
  qtc_init(st)                              every state := |0...0>
  qtc_fwd_<j>(st, th)                       pass j of every circuit that has one
  qtc_out(st, wn, P)                        P[x] = sum_c wn[c] |psi_c[f_c(x)]|^2
  qtc_binit(st, lam, wn, g, gw)             lam_c = wn[c] g psi_c (through f_c), gw[c] = g . p_c
  qtc_bwd_<j>(st, lam, th, gth)             backward pass j: gradients, then un-apply
and, on the CPU only, qtc_forward / qtc_backward that call them in order and qtc_threads(k).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from qtc.compiler.ir import Angle, Program
from qtc.compiler.schedule import CircuitPlan, Pass, Plan, SOp, bytes_moved, parity, plan_program

DTYPES = {"float64": ("double", 8, "long long"), "float32": ("float", 4, "int")}
H100_BANDWIDTH = 3.35e12

# --- symbolic 2x2 matrices ---------------------------------------------------------------
# A real part is a tuple of (symbol, coefficient) with symbols "1", "c" (cos t/2), "s" (sin t/2);
# an entry is (real part, imaginary part). Exact zero = empty tuple.


def _sym(**terms) -> tuple:
    return tuple((k, float(v)) for k, v in sorted(terms.items()) if v != 0)


def _entry(re=None, im=None) -> tuple:
    return (_sym(**(re or {})), _sym(**(im or {})))


def _num(x: complex) -> tuple:
    return (_sym(**{"1": x.real}), _sym(**{"1": x.imag}))


_K = 1 / math.sqrt(2)
_ONE, _ZERO = _num(1), _num(0)


def dense_matrix(gate: str):
    """U[a][b] in the label basis (a = output label bit, b = input label bit)."""
    if gate == "rx":
        return [[_entry({"c": 1}), _entry(im={"s": -1})], [_entry(im={"s": -1}), _entry({"c": 1})]]
    if gate == "ry":
        return [[_entry({"c": 1}), _entry({"s": -1})], [_entry({"s": 1}), _entry({"c": 1})]]
    if gate == "h":
        return [[_num(_K), _num(_K)], [_num(_K), _num(-_K)]]
    raise NotImplementedError(f"no dense lowering for gate '{gate}'")


def diag_phases(gate: str):
    """Phases indexed by the label bits (bit i = label of the gate's i-th qubit)."""
    w = complex(math.cos(math.pi / 4), math.sin(math.pi / 4))
    table = {"z": [1, -1], "s": [1, 1j], "sdg": [1, -1j], "t": [1, w], "tdg": [1, w.conjugate()],
             "ydiag": [1j, -1j], "cz": [1, 1, 1, -1]}
    if gate == "rz":
        return [_entry({"c": 1}, {"s": -1}), _entry({"c": 1}, {"s": 1})]
    return [_num(complex(v)) for v in table[gate]]


PAULI = {"X": [[_ZERO, _ONE], [_ONE, _ZERO]], "Y": [[_ZERO, _num(-1j)], [_num(1j), _ZERO]]}
PAULI_DIAG = {"Z": [_ONE, _num(-1)]}
AXIS = {"rx": "X", "ry": "Y", "rz": "Z"}


def _conj(e):
    return (e[0], tuple((k, -v) for k, v in e[1]))


def adjoint_dense(m):
    return [[_conj(m[b][a]) for b in range(2)] for a in range(2)]


def _substitute(part: tuple, c: float, s: float) -> tuple:
    """A constant angle: fold c and s into numbers."""
    val = sum(v * {"1": 1.0, "c": c, "s": s}[k] for k, v in part)
    return _sym(**{"1": val})


def _fold_constant(m, angle):
    if not isinstance(angle, float):
        return m
    c, s = math.cos(angle / 2), math.sin(angle / 2)
    f = lambda e: (_substitute(e[0], c, s), _substitute(e[1], c, s))  # noqa: E731
    return [[f(e) for e in row] for row in m] if isinstance(m[0], list) else [f(e) for e in m]


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
            self.unit = table[0] in (_sym(**{"1": 1}), _sym(**{"1": -1}))
            self.sign = "-" if table[0] == _sym(**{"1": -1}) else ""
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
        axis = AXIS[op.gate]
        pms = tuple(r & self.low for r in op.rows)
        decl, body = [], [f"qv g{k} = QTC_ZERO;"]
        (pr, pi), (lr, li) = self.states
        if axis == "Z":
            d = self._parts(k, "Pd", PAULI_DIAG["Z"], pms)
        else:
            m = PAULI[axis]
            o = self._parts(k, "Po", [m[0][1], m[1][0]], pms)
            u = self.pss.coords(op.d & self.high)
            dlo = op.d & self.low
        for s in range(self.nreg):
            kap = self._kappa(op, s)
            stmts = []
            if axis == "Z":
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
    tiles = _tiles(plan, pss)
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
            matrix = _adjoint(_matrix(op), op.kind)
        else:
            matrix = _matrix(op)
        em.apply(op, k, matrix, oplines, "", betas)
        lines += ["  " + x for x in oplines] + ["}"]
    for re, im in states:
        for plane in (re, im):
            if plane:
                lines += [f"QTC_ST({plane}p, y0 ^ {o}L, {plane}{s});" for s, o in enumerate(offs)]
    sec.body = ptrs + ["for (long t = t0; t < t1; t += step) {"] + ["  " + x for x in lines] + ["}"]
    head = (f"// circuit [{' '.join(map(str, circ.members))}] {circ.label}: {len(pss.ops)} ops, "
            f"rank {pss.rank}, {tiles} tiles")
    return sec, head


def _matrix(op: SOp):
    if op.kind == "dense":
        return _fold_constant(dense_matrix(op.gate), op.angle)
    return _fold_constant(diag_phases(op.gate), op.angle)


def _adjoint(m, kind: str):
    return adjoint_dense(m) if kind == "dense" else [_conj(e) for e in m]


def _describe(op: SOp) -> str:
    qs = ",".join(map(str, op.qubits))
    a = "" if op.angle is None else f"({op.angle})" if isinstance(op.angle, Angle) else f"({op.angle:.17g})"
    rows = " ".join(f"{r:#x}^{f}" for r, f in zip(op.rows, op.flips))
    return f"{op.gate}{a} {qs}: " + (f"dir {op.d:#x} " if op.kind == "dense" else "") + f"label {rows}"


# --- whole kernels --------------------------------------------------------------------------

FWD_ARGS = "real* QTC_RESTRICT st, const real* QTC_RESTRICT th"
BWD_ARGS = "real* QTC_RESTRICT st, real* QTC_RESTRICT lam, const real* QTC_RESTRICT th, double* QTC_RESTRICT gth"


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
                out.append(f"  qtc_{tag}{j}_c{i}({call}, t0, {_tiles(plan, passes[j])}L, step);")
        out.append("}")
    return out + ["#endif", ""]


def _tiles(plan: Plan, pss: Pass) -> int:
    return 1 << (plan.n - plan.lanes - pss.rank)


def _affine(cols, shift: int, lanes: int, var: str) -> str:
    """M v ^ b as a C expression of v, for v with its lane bits zero."""
    n = len(cols)
    ident = sum(1 << q for q in range(lanes, n) if cols[q] == 1 << q)
    expr = f"(({var} & {ident}L) ^ {shift}L)"
    for q in range(lanes, n):
        if cols[q] != 1 << q:
            expr += f" ^ ((-(({var} >> {q}) & 1L)) & {cols[q]}L)"
    return expr


def _lanemap(cols, lanes: int) -> str:
    """The lane part of the map: lane j -> M j (j < 2^lanes)."""
    c = list(cols[:lanes]) + [0] * (3 - lanes)
    return f"qtc_lanemap({c[0]}L, {c[1]}L, {c[2]}L)"


def _init_kernel(plan: Plan) -> list[str]:
    starts = " || ".join(f"i == {c.offset}L" for c in plan.circuits) or "0"
    return ["QTC_KERNEL qtc_init(real* QTC_RESTRICT st) {", "QTC_REGION",
            f"QTC_ELEMS(i, {plan.size}L) st[i] = ({starts}) ? (real)1 : (real)0;", "QTC_END", "}", ""]


def _out_kernel(plan: Plan) -> list[str]:
    """P[x] = sum_c wn[c] |psi_c[f_c(x)]|^2, a block of lanes at a time (a gather per lane)."""
    dim, m = 1 << plan.n, plan.lanes
    out = ["QTC_KERNEL qtc_out(const real* QTC_RESTRICT st, const real* QTC_RESTRICT wn, "
           "real* QTC_RESTRICT P) {", "QTC_REGION"]
    out += [f"const qvi lm{i} = {_lanemap(c.lowered.cols, m)};" for i, c in enumerate(plan.circuits)]
    out += [f"QTC_BLOCKS(xb, {dim >> m}L) {{", "  const long x = xb << QTC_M;", "  qv acc = QTC_ZERO;"]
    for i, c in enumerate(plan.circuits):
        out.append(f"  {{ const long y = {_affine(c.lowered.cols, c.lowered.shift, m, 'x')};")
        out.append(f"    const qv a = QTC_GATHER(st + {c.offset}L, y, lm{i});")
        if c.real:
            out.append(f"    acc += wn[{i}] * (a * a); }}")
        else:
            out.append(f"    const qv b = QTC_GATHER(st + {c.offset + dim}L, y, lm{i}); "
                       f"acc += wn[{i}] * (a * a + b * b); }}")
    return out + ["  QTC_ST(P, x, acc);", "}", "QTC_END", "}", ""]


def _binit_kernel(plan: Plan) -> list[str]:
    """lam_c = wn[c] g[f_c^-1(y)] psi_c[y] in stored order (a gather of g per lane) and
    gw[c] = g . p_c."""
    dim, m = 1 << plan.n, plan.lanes
    out = ["QTC_KERNEL qtc_binit(const real* QTC_RESTRICT st, real* QTC_RESTRICT lam, "
           "const real* QTC_RESTRICT wn, const real* QTC_RESTRICT g, double* QTC_RESTRICT gw) {",
           "QTC_REGION"]
    for i, c in enumerate(plan.circuits):
        icols, ishift = c.lowered.inverse()
        re, im = c.offset, c.offset + dim
        out += [f"{{ // {c.label}", f"  const qvi lm = {_lanemap(icols, m)};", "  qacc gsum = {};",
                f"  QTC_BLOCKS(yb, {dim >> m}L) {{", "    const long y = yb << QTC_M;",
                f"    const long x = {_affine(icols, ishift, m, 'y')};",
                "    const qv gx = QTC_GATHER(g, x, lm);",
                f"    const qv a = QTC_LD(st, {re}L + y);",
                f"    QTC_ST(lam, {re}L + y, wn[{i}] * gx * a);"]
        if c.real:
            out.append("    gsum += QTC_ACC(gx * (a * a));")
        else:
            out += [f"    const qv b = QTC_LD(st, {im}L + y);",
                    f"    QTC_ST(lam, {im}L + y, wn[{i}] * gx * b);",
                    "    gsum += QTC_ACC(gx * (a * a + b * b));"]
        out += ["  }", f"  qtc_add(&gw[{i}], QTC_HSUM(gsum));", "}"]
    return out + ["QTC_END", "}", ""]


def _prelude(plan: Plan, dtype: str) -> list[str]:
    real, size, ivec = DTYPES[dtype]
    w = 1 << plan.lanes
    cos, sin = ("cos", "sin") if dtype == "float64" else ("cosf", "sinf")
    xor_idx = ", ".join(f"{j}^(m)" for j in range(w))
    pm_rows = ", ".join("{" + ",".join(str(parity(m & j)) for j in range(w)) + "}" for m in range(w))
    return [
        f"// qtc kernels: program {plan.name}, {plan.n} qubits, depth {plan.depth}, {dtype}",
        "// generated by qtc.compiler.render: one source for CUDA (nvcc / NVRTC) and C++ (g++ -fopenmp)",
        f"#define QTC_M {plan.lanes}",
        f"#define QTC_W {w}",
        f"typedef {real} real;",
        f"#define QTC_COS {cos}",
        f"#define QTC_SIN {sin}",
        "#define QTC_RESTRICT __restrict__",
        "#ifdef __CUDACC__",
        '#define QTC_KERNEL extern "C" __global__ void',
        "#define QTC_REGION {",
        "#define QTC_END }",
        "typedef real qv;",
        "typedef double qacc;",
        "#define QTC_LANE ((int)(threadIdx.x & (QTC_W - 1)))",
        "// the QTC_W threads of this lane group (they always iterate together)",
        "#define QTC_GMASK ((0xffffffffu >> (32 - QTC_W)) << (threadIdx.x & 31u & ~(unsigned)(QTC_W - 1)))",
        "#define QTC_FN static __device__ void",
        "#define QTC_ELEMS(i, count) \\",
        "  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)(count); \\",
        "       i += (long)gridDim.x * blockDim.x)",
        "#define QTC_BLOCKS(b, count) \\",
        "  for (long _i = blockIdx.x * (long)blockDim.x + threadIdx.x; _i < ((long)(count) << QTC_M); \\",
        "       _i += (long)gridDim.x * blockDim.x) \\",
        "    for (long b = _i >> QTC_M, _once = 1; _once; _once = 0)",
        "typedef long qvi;",
        "#define QTC_GATHER(p, y, lm) ((p)[(y) ^ (lm)])",
        "__device__ __forceinline__ long qtc_lanemap(long c0, long c1, long c2) {",
        "  const int j = QTC_LANE;",
        "  return ((j & 1) ? c0 : 0) ^ ((j & 2) ? c1 : 0) ^ ((j & 4) ? c2 : 0);",
        "}",
        "#define QTC_LD(p, y) ((p)[(y) + QTC_LANE])",
        "#define QTC_ST(p, y, v) ((p)[(y) + QTC_LANE] = (v))",
        "#define QTC_LX(v, m) __shfl_xor_sync(QTC_GMASK, (v), (m), QTC_W)",
        "#define QTC_PAR(y) (__popcll((unsigned long long)(y)) & 1)",
        "#define QTC_ACC(v) ((double)(v))",
        "#define QTC_HSUM(a) (a)",
        "#define QTC_ZERO ((real)0)",
        "__device__ __forceinline__ real qtc_sel1(int m, real x0, real x1) {",
        "  return (__popc(m & QTC_LANE) & 1) ? x1 : x0;",
        "}",
        "__device__ __forceinline__ real qtc_sel2(int ma, int mb, real x0, real x1, real x2, real x3) {",
        "  const int l = (__popc(ma & QTC_LANE) & 1) | ((__popc(mb & QTC_LANE) & 1) << 1);",
        "  return l == 0 ? x0 : l == 1 ? x1 : l == 2 ? x2 : x3;",
        "}",
        "// every thread of the block reaches a reduction: reduce over the warp, one atomic per warp",
        "__device__ __forceinline__ void qtc_add(double* p, double v) {",
        "  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);",
        "  if ((threadIdx.x & 31) == 0) atomicAdd(p, v);",
        "}",
        "#else",
        "#include <math.h>",
        "#include <omp.h>",
        '#define QTC_KERNEL extern "C" void',
        '#define QTC_REGION _Pragma("omp parallel") {',
        "#define QTC_END }",
        "typedef real qv __attribute__((vector_size(sizeof(real) * QTC_W)));",
        "typedef real qvu __attribute__((vector_size(sizeof(real) * QTC_W), aligned(sizeof(real))));",
        f"typedef {ivec} qvi __attribute__((vector_size(sizeof(real) * QTC_W)));",
        "typedef double qacc __attribute__((vector_size(sizeof(double) * QTC_W)));",
        "#define QTC_FN void",
        '#define QTC_ELEMS(i, count) _Pragma("omp for nowait") for (long i = 0; i < (long)(count); ++i)',
        '#define QTC_BLOCKS(b, count) _Pragma("omp for nowait") for (long b = 0; b < (long)(count); ++b)',
        "#define QTC_LD(p, y) (*(const qvu*)((p) + (y)))",
        "#define QTC_ST(p, y, v) (*(qvu*)((p) + (y)) = (v))",
        f"#define QTC_LX(v, m) __builtin_shuffle((v), (qvi){{{xor_idx}}})",
        "#define QTC_PAR(y) __builtin_parityl((unsigned long)(y))",
        "#define QTC_ACC(v) __builtin_convertvector((v), qacc)",
        "#define QTC_ZERO ((qv){})",
        "// qtc_pm[m][j] = parity(m & j): which lanes see a label flip for lane mask m",
        "static const qvi qtc_pm[QTC_W] = {" + pm_rows + "};",
        "static inline qv qtc_sel1(int m, real x0, real x1) { return qtc_pm[m] ? ((qv){} + x1) : ((qv){} + x0); }",
        "static inline qv qtc_sel2(int ma, int mb, real x0, real x1, real x2, real x3) {",
        "  qv r;",
        "  for (int j = 0; j < QTC_W; ++j) {",
        "    const int l = __builtin_parity(ma & j) | (__builtin_parity(mb & j) << 1);",
        "    r[j] = l == 0 ? x0 : l == 1 ? x1 : l == 2 ? x2 : x3;",
        "  }",
        "  return r;",
        "}",
        "static inline qvi qtc_lanemap(long c0, long c1, long c2) {",
        "  qvi r;",
        "  for (int j = 0; j < QTC_W; ++j) r[j] = ((j & 1) ? c0 : 0) ^ ((j & 2) ? c1 : 0) ^ ((j & 4) ? c2 : 0);",
        "  return r;",
        "}",
        "static inline qv QTC_GATHER(const real* p, long y, qvi lm) {",
        "  qv r;",
        "  for (int j = 0; j < QTC_W; ++j) r[j] = p[y ^ lm[j]];",
        "  return r;",
        "}",
        "static inline double QTC_HSUM(qacc a) {",
        "  double s = 0;",
        "  for (int j = 0; j < QTC_W; ++j) s += a[j];",
        "  return s;",
        "}",
        "static inline void qtc_add(double* p, double v) {",
        '  _Pragma("omp atomic")',
        "  *p += v;",
        "}",
        "#endif",
        "",
    ]


def _host(plan: Plan) -> list[str]:
    """CPU drivers. mode 0: whole circuits in parallel (dynamic schedule, costliest first; no
    barrier between passes). mode 1: every pass split across the threads (for fewer circuits
    than threads)."""
    out = ["#ifndef __CUDACC__",
           "typedef void (*qtc_ffn)(real*, const real*, long, long, long);",
           "typedef void (*qtc_bfn)(real*, real*, const real*, double*, long, long, long);",
           f"#define QTC_NCIRC {len(plan.circuits)}"]
    for backward, (tag, typ) in ((False, ("f", "qtc_ffn")), (True, ("b", "qtc_bfn"))):
        fns, tiles, start = [], [], [0]
        for i, c in enumerate(plan.circuits):
            passes = c.bwd if backward else c.fwd
            fns += [f"qtc_{tag}{j}_c{i}" for j in range(len(passes))]
            tiles += [str(_tiles(plan, p)) for p in passes]
            start.append(len(fns))
        cost = [c.planes * len(c.bwd if backward else c.fwd) for c in plan.circuits]
        order = sorted(range(len(plan.circuits)), key=lambda i: (-cost[i], i))
        out += [f"static const {typ} qtc_{tag}_fns[] = {{{', '.join(fns + ['0'])}}};",
                f"static const long qtc_{tag}_tiles[] = {{{', '.join(tiles + ['0'])}}};",
                f"static const int qtc_{tag}_start[] = {{{', '.join(map(str, start))}}};",
                f"static const int qtc_{tag}_order[] = {{{', '.join(map(str, order + [0]))}}};"]
    out += [f"#define QTC_FPASSES {plan.fwd_kernels}", f"#define QTC_BPASSES {plan.bwd_kernels}", """#define QTC_DRIVE(tag, passes, ...) \
  if (mode == 0) { \
    _Pragma("omp parallel for schedule(dynamic, 1)") \
    for (int i = 0; i < QTC_NCIRC; ++i) { \
      const int c = qtc_##tag##_order[i]; \
      for (int k = qtc_##tag##_start[c]; k < qtc_##tag##_start[c + 1]; ++k) \
        qtc_##tag##_fns[k](__VA_ARGS__, 0, qtc_##tag##_tiles[k], 1); \
    } \
  } else { \
    _Pragma("omp parallel") { \
      const long nt = omp_get_num_threads(), id = omp_get_thread_num(); \
      for (int j = 0; j < passes; ++j) { \
        for (int c = 0; c < QTC_NCIRC; ++c) { \
          const int k = qtc_##tag##_start[c] + j; \
          const long T = qtc_##tag##_tiles[k]; \
          if (k < qtc_##tag##_start[c + 1]) qtc_##tag##_fns[k](__VA_ARGS__, T * id / nt, T * (id + 1) / nt, 1); \
        } \
        _Pragma("omp barrier") \
      } \
    } \
  }
extern "C" void qtc_threads(int k) { omp_set_num_threads(k); }
extern "C" void qtc_forward(real* st, const real* th, const real* wn, real* P, int mode) {
  qtc_init(st);
  QTC_DRIVE(f, QTC_FPASSES, st, th)
  qtc_out(st, wn, P);
}
extern "C" void qtc_backward(real* st, real* lam, const real* th, const real* wn, const real* g,
                             double* gth, double* gw, int mode) {
  qtc_binit(st, lam, wn, g, gw);
  QTC_DRIVE(b, QTC_BPASSES, st, lam, th, gth)
}
// profiling: one thread, every step timed. out = [init, fwd passes..., out, binit, bwd passes...]
extern "C" void qtc_profile(real* st, real* lam, const real* th, const real* wn, real* P,
                            const real* g, double* gth, double* gw, double* out) {
  int o = 0;
  double t = omp_get_wtime(), u;
#define QTC_TICK u = omp_get_wtime(); out[o++] = u - t; t = u;
  omp_set_num_threads(1);
  qtc_init(st); QTC_TICK
  for (int k = 0; k < qtc_f_start[QTC_NCIRC]; ++k) { qtc_f_fns[k](st, th, 0, qtc_f_tiles[k], 1); QTC_TICK }
  qtc_out(st, wn, P); QTC_TICK
  qtc_binit(st, lam, wn, g, gw); QTC_TICK
  for (int k = 0; k < qtc_b_start[QTC_NCIRC]; ++k) { qtc_b_fns[k](st, lam, th, gth, 0, qtc_b_tiles[k], 1); QTC_TICK }
#undef QTC_TICK
}
#endif
"""]
    return out


@dataclass(frozen=True)
class Rendered:
    """The kernel source and what the runtime and the cost model need to know about it."""
    text: str
    plan: Plan
    dtype: str
    fwd_flops: int           # per forward (all circuits), from the emitted expressions
    bwd_flops: int

    @property
    def kernels(self) -> dict[str, list[str]]:
        return {"forward": ["qtc_init"] + [f"qtc_fwd_{j}" for j in range(self.plan.fwd_kernels)]
                + ["qtc_out"],
                "backward": ["qtc_binit"] + [f"qtc_bwd_{j}" for j in range(self.plan.bwd_kernels)]}


PART = "// @qtc-part (the host build may compile the parts separately, in parallel)"


def render(plan: Plan, dtype: str = "float64") -> Rendered:
    """The full kernel source for a scheduled program.

    Layout: prelude, prototypes of every pass function, then parts separated by PART lines
    (the gather kernels, each circuit's forward and backward passes, the GPU kernels and CPU
    drivers). Prelude + prototypes + any one part is a complete translation unit."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    lines = _prelude(plan, dtype)
    for backward in (False, True):
        tag, args = ("b", BWD_ARGS) if backward else ("f", FWD_ARGS)
        for i, circ in enumerate(plan.circuits):
            lines += [f"QTC_FN qtc_{tag}{j}_c{i}({args}, long t0, long t1, long step);"
                      for j in range(len(circ.bwd if backward else circ.fwd))]
    lines += ["QTC_KERNEL qtc_init(real* QTC_RESTRICT st);",
              "QTC_KERNEL qtc_out(const real* QTC_RESTRICT st, const real* QTC_RESTRICT wn, real* QTC_RESTRICT P);",
              "QTC_KERNEL qtc_binit(const real* QTC_RESTRICT st, real* QTC_RESTRICT lam, "
              "const real* QTC_RESTRICT wn, const real* QTC_RESTRICT g, double* QTC_RESTRICT gw);"]
    lines += ["", PART] + _init_kernel(plan) + _out_kernel(plan) + _binit_kernel(plan)
    flops = {False: 0, True: 0}
    for backward in (False, True):
        tag, args = ("b", BWD_ARGS) if backward else ("f", FWD_ARGS)
        for i, circ in enumerate(plan.circuits):
            lines.append(PART)
            for j, pss in enumerate(circ.bwd if backward else circ.fwd):
                sec, head = _section(plan, circ, pss, backward)
                flops[backward] += sec.flops[0] * _tiles(plan, pss) << plan.lanes
                lines += _function(f"qtc_{tag}{j}_c{i}", args, sec, head)
    lines.append(PART)
    for backward in (False, True):
        lines += _gpu_kernels(plan, backward)
    lines += _host(plan)
    return Rendered("\n".join(lines) + "\n", plan, dtype, flops[False], flops[True])


def kernel_source(prog: Program, dtype: str = "float64") -> str:
    """Deterministic kernel source (CUDA C / C++) for the program's simulated circuits."""
    return render(plan_program(prog), dtype).text


def cost_report(prog: Program, dtype: str = "float64") -> str:
    """Deterministic text: passes, launches, bytes moved and flops per training step, and the
    time the bytes imply at the memory bandwidth of an H100."""
    plan = plan_program(prog)
    r = render(plan, dtype)
    itemsize = DTYPES[dtype][1]
    traffic = bytes_moved(plan, itemsize)
    dim = 1 << plan.n
    lines = [f"cost model: {plan.name}, {plan.n} qubits, depth {plan.depth}, {dtype}",
             f"simulated circuits: {len(plan.circuits)}; exact constants: {len(plan.constants)}",
             f"state buffer: {plan.size} reals ({plan.size * itemsize} bytes); lanes {1 << plan.lanes}",
             f"launches per step: forward {len(r.kernels['forward'])}, backward {len(r.kernels['backward'])}"]
    for c in plan.circuits:
        kind = "real" if c.real else "complex"
        lines.append(f"circuit [{' '.join(map(str, c.members))}] {kind} {c.label}: "
                     f"{len(c.lowered.ops)} ops after frames; forward {len(c.fwd)} passes "
                     f"(ranks {_ranks(c.fwd)}), backward {len(c.bwd)} passes (ranks {_ranks(c.bwd)})")
    for i in plan.constants:
        node = prog.circuits[i]
        lines.append(f"constant [{' '.join(map(str, node.members))}] {prog.label_of(node)}: exact, "
                     f"no simulation")
    total_flops = r.fwd_flops + r.bwd_flops + 8 * dim * len(plan.circuits)
    lines += [f"bytes per step: {traffic['total']} (forward passes {traffic['forward']}, "
              f"backward passes {traffic['backward']}, gathers {traffic['gather']})",
              f"flops per step: {total_flops} (forward {r.fwd_flops}, backward {r.bwd_flops})",
              f"arithmetic intensity: {total_flops / max(traffic['total'], 1):.3f} flop/byte",
              f"time at H100 bandwidth (3.35 TB/s): {traffic['total'] / H100_BANDWIDTH * 1e6:.2f} us"]
    return "\n".join(lines) + "\n"


def _ranks(passes) -> str:
    counts: dict[int, int] = {}
    for p in passes:
        counts[p.rank] = counts.get(p.rank, 0) + 1
    return " ".join(f"{k}x{v}" for k, v in sorted(counts.items())) or "-"
