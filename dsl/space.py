"""Search-space specs (.qs): grammar in space.lark, parsed into validated pydantic models.

Every node carries `line`/`column`, so errors found later (at expansion, when the number of
qubits is known) still point at the spec text.
"""
from __future__ import annotations

import math
from typing import Literal, Union

from lark import Transformer, v_args
from pydantic import BaseModel, ConfigDict

from qtc.compiler.gates import GATES
from qtc.dsl.common import parse_spec, parse_text, pos, transform
from qtc.errors import SpecError, did_you_mean

KEYWORDS = ("space", "qubits", "depth", "pattern", "init", "layer", "tie", "untie", "weights",
            "angles", "limit", "choose", "nothing", "for", "in", "all", "step", "theta", "auto")
WEIGHT_NORMS = ("raw", "softmax")
ANGLE_INITS = {"normal": 2, "uniform": 2, "zeros": 0, "constant": 1}
DEFAULT_LIMIT = 4096
MAX_QUBITS = 30


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)
    line: int | None = None
    column: int | None = None

    def error(self, message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, line=self.line, column=self.column, hint=hint)


# --- expressions -------------------------------------------------------------------------
class Num(Node):
    kind: Literal["num"] = "num"
    value: float
    integer: bool = True


class Var(Node):
    kind: Literal["var"] = "var"
    name: str


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: str
    left: "Expr"
    right: "Expr"


class Neg(Node):
    kind: Literal["neg"] = "neg"
    operand: "Expr"


Expr = Union[Num, Var, BinOp, Neg]


def render_expr(e: Expr) -> str:
    if isinstance(e, Num):
        return str(int(e.value)) if e.integer else repr(e.value)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Neg):
        return f"-{render_expr(e.operand)}"
    return f"({render_expr(e.left)} {e.op} {render_expr(e.right)})"


def evaluate(e: Expr, env: dict[str, float]) -> float:
    """Evaluate an expression; unknown names and division by zero are spec errors."""
    if isinstance(e, Num):
        return int(e.value) if e.integer else e.value
    if isinstance(e, Var):
        if e.name not in env:
            raise e.error(f"unknown name '{e.name}' in expression", did_you_mean(e.name, env))
        return env[e.name]
    if isinstance(e, Neg):
        return -evaluate(e.operand, env)
    a, b = evaluate(e.left, env), evaluate(e.right, env)
    if e.op in ("//", "%", "/") and b == 0:
        raise e.error(f"division by zero in '{render_expr(e)}'")
    if e.op in ("//", "%") and not (float(a).is_integer() and float(b).is_integer()):
        raise e.error(f"'{e.op}' needs integers in '{render_expr(e)}'")
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "//": lambda: int(a) // int(b), "%": lambda: int(a) % int(b)}[e.op]()


# --- circuit items -----------------------------------------------------------------------
class Theta(Node):
    kind: Literal["theta"] = "theta"
    layer: Expr
    qubit: Expr


class RangeSpan(Node):
    start: Expr
    stop: Expr          # inclusive
    step: Expr | None = None


class Loop(Node):
    var: str
    span: RangeSpan | None = None   # None = all qubits


class Call(Node):
    kind: Literal["call"] = "call"
    gate: str
    args: tuple[Union[Expr, Theta], ...]
    loop: Loop | None = None


class Ref(Node):
    kind: Literal["ref"] = "ref"
    name: str


class Nothing(Node):
    kind: Literal["nothing"] = "nothing"


Item = Union[Call, Ref, Nothing]


class Alt(Node):
    label: str
    items: tuple[Item, ...]


class Slot(Node):
    alts: tuple[Alt, ...]


class SearchSpace(Node):
    """A validated search space. With `qubits_auto` a task sizes the space from its target and
    `qubits` (if given) is the size used when the space is compiled alone."""
    name: str
    qubits: int | None = None
    qubits_auto: bool = False
    depth: int | None = None
    patterns: dict[str, tuple[Item, ...]] = {}
    init: Slot | None = None
    layer: tuple[Slot, ...] = ()
    tied: bool = True
    weights_norm: Literal["raw", "softmax"] = "raw"
    weights_init: Expr | None = None
    angles: tuple[str, tuple[float, ...]] = ("normal", (0.0, 0.01))
    limit: int = DEFAULT_LIMIT
    file: str | None = None
    source: str | None = None
    statements: dict[str, dict] = {}  # statement keyword -> its position

    def at(self, keyword: str) -> dict:
        return self.statements.get(keyword, {"line": self.line, "column": self.column})


# --- parse tree -> models ----------------------------------------------------------------
@v_args(meta=True)
class _ToModels(Transformer):
    def int(self, meta, c):
        if len(c[0]) > 15:  # beyond a float's exact integers (and pydantic's float range)
            raise SpecError(f"the number {c[0][:20]}... is too large", **pos(meta))
        return Num(value=int(c[0]), **pos(meta))

    def float(self, meta, c):
        if not math.isfinite(float(c[0])):
            raise SpecError(f"the number {c[0]} is too large", **pos(meta))
        return Num(value=float(c[0]), integer=False, **pos(meta))

    def var(self, meta, c):
        return Var(name=str(c[0]), **pos(meta))

    def neg(self, meta, c):
        return Neg(operand=c[0], **pos(meta))

    def binop(self, meta, c):
        return BinOp(left=c[0], op=str(c[1]), right=c[2], **pos(c[1]))

    def theta(self, meta, c):
        return Theta(layer=c[0], qubit=c[1], **pos(meta))

    def range_all(self, meta, c):
        return None

    def range_span(self, meta, c):
        return RangeSpan(start=c[0], stop=c[1], step=c[2] if len(c) > 2 else None, **pos(meta))

    def loop(self, meta, c):
        return Loop(var=str(c[0]), span=c[1], **pos(meta))

    def call(self, meta, c):
        loop = c[-1] if c and isinstance(c[-1], Loop) else None
        args = tuple(a for a in c[1:] if not isinstance(a, Loop))
        return Call(gate=str(c[0]).lower(), args=args, loop=loop, **pos(meta))

    def ref(self, meta, c):
        return Ref(name=str(c[0]), **pos(meta))

    def nothing(self, meta, c):
        return Nothing(**pos(meta))

    def seq(self, meta, c):
        return tuple(c)

    def alt(self, meta, c):
        label = str(c[0]) if len(c) == 2 else None
        return (label, c[-1], pos(meta))

    def choice(self, meta, c):
        return Slot(alts=tuple(_label(label, items, p) for label, items, p in c), **pos(meta))

    def __default__(self, data, children, meta):
        return (str(data), children, pos(meta))


def _default_label(items) -> str:
    if len(items) == 1:
        it = items[0]
        if isinstance(it, Nothing):
            return "none"
        if isinstance(it, Ref):
            return it.name
        if isinstance(it, Call):
            return it.gate.upper()
    return "+".join(_default_label((it,)) for it in items)


def _label(label, items, p) -> Alt:
    if label in KEYWORDS:
        raise SpecError(f"'{label}' is a keyword and cannot label an alternative", **p,
                        hint=f"choose another label, e.g. '{label.upper()}'")
    return Alt(label=label or _default_label(items), items=tuple(items), **p)


def _slot(node) -> Slot:
    if isinstance(node, Slot):
        return node
    return Slot(alts=(_label(None, (node,), {"line": node.line, "column": node.column}),),
                line=node.line, column=node.column)


def parse_space(source, *, file: str | None = None) -> SearchSpace:
    """Parse and validate a .qs spec (a path or the text). Raises SpecError."""
    return parse_spec(_build, source, file)


def _build(text: str, file: str | None) -> SearchSpace:
    tree = parse_text("space.lark", text, KEYWORDS)
    name_tok = tree.children[0]
    stmts = [transform(_ToModels(), c) for c in tree.children[1:]]
    fields: dict = {"name": str(name_tok), "file": file, "source": text, "statements": {},
                    "patterns": {}, **pos(name_tok)}
    for kind, children, p in stmts:
        key = "tie" if kind == "tie" else kind
        if key in fields["statements"] and kind != "pattern":
            first = fields["statements"][key]["line"]
            raise SpecError(f"'{key}' is given twice (first on line {first})", **p)
        fields["statements"].setdefault(key, p)
        _apply(kind, children, p, fields)
    space = SearchSpace(**fields)
    check_space(space)
    return space


def _apply(kind: str, c: list, p: dict, f: dict) -> None:
    if kind == "qubits":
        f["qubits_auto"] = str(c[0]) == "auto"
        if c[-1].type == "INT":
            f["qubits"] = _bounded(int(c[-1]), 1, MAX_QUBITS, "qubits", pos(c[-1]))
    elif kind == "depth":
        f["depth"] = _bounded(int(c[0]), 1, 10_000, "depth", p)
    elif kind == "pattern":
        name = str(c[0])
        if name in f["patterns"]:
            raise SpecError(f"pattern '{name}' is defined twice", **pos(c[0]),
                            hint="give each pattern its own name")
        if name in GATES or name in KEYWORDS:
            raise SpecError(f"'{name}' is a gate or keyword and cannot name a pattern", **pos(c[0]))
        f["patterns"][name] = c[1]
    elif kind == "init":
        f["init"] = _slot(c[0])
    elif kind == "layer":
        f["layer"] = tuple(_slot(s) for s in c)
    elif kind == "tie":
        f["tied"] = str(c[0]) == "tie"
    elif kind == "weights":
        norm = str(c[0])
        if norm not in WEIGHT_NORMS:
            raise SpecError(f"unknown weight normalisation '{norm}'", **pos(c[0]),
                            hint=did_you_mean(norm, WEIGHT_NORMS))
        f["weights_norm"] = norm
        f["weights_init"] = c[1] if len(c) > 1 else None
    elif kind == "angles":
        f["angles"] = _angles(c, p)
    elif kind == "limit":
        f["limit"] = _bounded(int(c[0]), 1, 1_000_000, "limit", p)


def _bounded(value: int, lo: int, hi: int, what: str, p: dict) -> int:
    if not lo <= value <= hi:
        raise SpecError(f"{what} must be between {lo} and {hi}, got {value}", **p)
    return value


def _angles(c: list, p: dict):
    dist, args = str(c[0]), c[1:]
    if dist not in ANGLE_INITS:
        raise SpecError(f"unknown angle initialisation '{dist}'", **pos(c[0]),
                        hint=did_you_mean(dist, ANGLE_INITS))
    if len(args) != ANGLE_INITS[dist]:
        raise SpecError(f"'{dist}' takes {ANGLE_INITS[dist]} argument(s), got {len(args)}", **p)
    values = tuple(float(evaluate(a, {"pi": math.pi})) for a in args)
    _check_angles(dist, values, args)
    return dist, values


def _check_angles(dist: str, values: tuple[float, ...], args) -> None:
    """Every parameter finite; normal's std not negative; uniform's bounds in order."""
    for v, a in zip(values, args):
        if not math.isfinite(v):
            raise a.error(f"the '{dist}' parameter must be a finite number, got {v}")
    if dist == "normal" and values[1] < 0:
        raise args[1].error(f"the std of 'normal' must not be negative, got {values[1]:g}")
    if dist == "uniform" and values[0] > values[1]:
        raise args[0].error(f"'uniform(a, b)' needs a <= b, got a = {values[0]:g} > b = {values[1]:g}",
                            f"write uniform({values[1]:g}, {values[0]:g})")


# --- semantic checks that need no qubit count ---------------------------------------------
def check_space(space: SearchSpace) -> None:
    if not space.layer:
        raise SpecError("the space has no 'layer' statement", line=space.line, column=space.column,
                        hint="add e.g. 'layer = choose { ry(q, theta[layer, q]) for q in all }'")
    for name, items in space.patterns.items():
        _check_items(space, items, scope=("n", "pi"), stack=(name,))
    if space.init is not None:
        for alt in space.init.alts:
            _check_items(space, alt.items, scope=("n", "pi"), stack=())
    for slot in space.layer:
        labels = set()
        for alt in slot.alts:
            if alt.label in labels:
                raise alt.error(f"two alternatives of one choice are both labelled '{alt.label}'",
                                "label them apart, e.g. 'A: ... | B: ...'")
            labels.add(alt.label)
            _check_items(space, alt.items, scope=("n", "pi", "layer"), stack=())
    if space.init is not None and len({a.label for a in space.init.alts}) != len(space.init.alts):
        raise space.init.error("two init alternatives have the same label")


def _check_items(space: SearchSpace, items, scope, stack) -> None:
    for it in items:
        if isinstance(it, Ref):
            if it.name not in space.patterns:
                raise it.error(f"unknown pattern '{it.name}'",
                               did_you_mean(it.name, list(space.patterns) + list(GATES)))
            if it.name in stack:
                raise it.error(f"pattern '{it.name}' refers to itself")
            _check_items(space, space.patterns[it.name], scope, stack + (it.name,))
        elif isinstance(it, Call):
            _check_call(it, scope)


def _check_call(call: Call, scope) -> None:
    g = GATES.get(call.gate)
    if g is None:
        raise call.error(f"unknown gate '{call.gate}'", did_you_mean(call.gate, GATES))
    want = g.arity + g.params
    if len(call.args) != want:
        shape = ", ".join(["qubit"] * g.arity + ["angle"] * g.params)
        raise call.error(f"gate '{call.gate}' takes {want} argument(s) ({shape}), got {len(call.args)}")
    names = set(scope) | ({call.loop.var} if call.loop else set())
    if call.loop and call.loop.var in scope:
        raise call.loop.error(f"loop variable '{call.loop.var}' hides a built-in name")
    for k, arg in enumerate(call.args):
        if k < g.arity and isinstance(arg, Theta):
            raise arg.error(f"argument {k + 1} of '{call.gate}' is a qubit, not an angle")
        for e in ([arg.layer, arg.qubit] if isinstance(arg, Theta) else [arg]):
            _check_names(e, names)
    if call.loop and call.loop.span:
        for e in (call.loop.span.start, call.loop.span.stop, call.loop.span.step):
            if e is not None:
                _check_names(e, set(scope))


def _check_names(e, names) -> None:
    if isinstance(e, Var):
        if e.name not in names:
            hint = did_you_mean(e.name, names)
            if e.name == "layer":
                hint = "'layer' is only defined inside the 'layer' statement"
            raise e.error(f"unknown name '{e.name}'", hint)
    elif isinstance(e, BinOp):
        _check_names(e.left, names), _check_names(e.right, names)
    elif isinstance(e, Neg):
        _check_names(e.operand, names)
