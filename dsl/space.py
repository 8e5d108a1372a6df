"""Search-space specs (.qs): grammar in space.lark, parsed into validated pydantic models.

Every node carries `line`/`column`, so errors found later (at expansion, when the number of
qubits is known) still point at the spec text.
"""
from __future__ import annotations

import math
from typing import Literal, Union

from lark import v_args
from lark.visitors import Transformer_NonRecursive
from pydantic import BaseModel, ConfigDict

from qtc.dsl.common import parse_spec, parse_text, pos, transform
from qtc.dsl.gatenames import GATES
from qtc.errors import SpecError, did_you_mean

KEYWORDS = ("space", "qubits", "depth", "pattern", "init", "layer", "tie", "untie", "weights",
            "angles", "limit", "choose", "nothing", "for", "in", "all", "step", "theta", "auto",
            "if", "and", "or")
WEIGHT_NORMS = ("raw", "softmax")
ANGLE_INITS = {"normal": 2, "uniform": 2, "zeros": 0, "constant": 1}
DEFAULT_LIMIT = 4096
MAX_QUBITS = 30
MAX_DEPTH = 10_000          # layers of a space (the statement and a task's generator depth)
MAX_LIMIT = 65_536          # candidates: every one is expanded, folded and simulated
MAX_EXPR_DEPTH = 64         # nesting of one expression (operators, unary minuses, calls)
MAX_PATTERN_DEPTH = 32      # patterns naming patterns
MAX_CLAUSES = 8             # 'for' and 'if' clauses of one gate
MAX_ANGLES_PER_GATE = 16    # the third index of theta[layer, q, k]
BUILTINS = ("n", "pi")


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


class Theta(Node):
    """theta[layer, q] or theta[layer, q, k]: a trainable angle (k = None: two indices)."""
    kind: Literal["theta"] = "theta"
    layer: "Expr"
    qubit: "Expr"
    index: Union["Expr", None] = None


Expr = Union[Num, Var, BinOp, Neg, Theta]


def children(e: Expr) -> tuple:
    if isinstance(e, BinOp):
        return (e.left, e.right)
    if isinstance(e, Neg):
        return (e.operand,)
    if isinstance(e, Theta):
        return tuple(x for x in (e.layer, e.qubit, e.index) if x is not None)
    return ()


def render_expr(e: Expr) -> str:
    if isinstance(e, Num):
        return str(int(e.value)) if e.integer else repr(e.value)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Neg):
        return f"-{render_expr(e.operand)}"
    if isinstance(e, Theta):
        return "theta[" + ", ".join(render_expr(x) for x in children(e)) + "]"
    return f"({render_expr(e.left)} {e.op} {render_expr(e.right)})"


def bindings(env: dict) -> str:
    """The user's names in `env` (layer, loop variables) as 'layer = 1, q = 0', for messages."""
    shown = [f"{k} = {v}" for k, v in env.items() if k not in BUILTINS + ("C",)]
    return f" (at {', '.join(shown)})" if shown else ""


def evaluate(e: Expr, env: dict[str, float], what: str = "this expression") -> float:
    """Evaluate an expression; unknown names and division by zero are spec errors that say
    where (which layer, which loop value) they happened."""
    if isinstance(e, Num):
        return int(e.value) if e.integer else e.value
    if isinstance(e, Var):
        if e.name not in env:
            raise e.error(f"unknown name '{e.name}' in expression", did_you_mean(e.name, env))
        return env[e.name]
    if isinstance(e, Theta):
        raise e.error(f"theta[...] is a trainable angle and cannot stand in {what}",
                      "theta may only be (part of) a rotation's angle")
    if isinstance(e, Neg):
        return -evaluate(e.operand, env, what)
    a, b = evaluate(e.left, env, what), evaluate(e.right, env, what)
    if e.op in ("//", "%", "/") and b == 0:
        raise e.error(f"division by zero in '{render_expr(e)}'{bindings(env)}")
    if e.op in ("//", "%") and not (float(a).is_integer() and float(b).is_integer()):
        raise e.error(f"'{e.op}' needs integers in '{render_expr(e)}'{bindings(env)}")
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "//": lambda: int(a) // int(b), "%": lambda: int(a) % int(b)}[e.op]()


def thetas(e: Expr) -> list[Theta]:
    """Every theta[...] inside e (expressions are depth-bounded: recursion is safe)."""
    if isinstance(e, Theta):
        return [e]
    return [t for c in children(e) for t in thetas(c)]


def affine(e: Expr, env: dict) -> tuple[float, Theta | None, float]:
    """An angle expression as scale * theta + shift (check_affine has proved it is affine)."""
    if isinstance(e, Theta):
        return 1.0, e, 0.0
    if not thetas(e):
        return 0.0, None, float(evaluate(e, env, "this angle"))
    if isinstance(e, Neg):
        a, t, b = affine(e.operand, env)
        return -a, t, -b
    (la, lt, lb), (ra, rt, rb) = affine(e.left, env), affine(e.right, env)
    t = lt or rt
    if e.op in ("+", "-"):
        sign = 1 if e.op == "+" else -1
        return la + sign * ra, t, lb + sign * rb
    if e.op == "*":
        k, (a, b) = (rb, (la, lb)) if lt is not None else (lb, (ra, rb))
        return k * a, t, k * b
    if rb == 0:  # e.op == "/", theta on the left
        raise e.error(f"division by zero in '{render_expr(e)}'{bindings(env)}")
    return la / rb, t, lb / rb


def check_affine(e: Expr) -> None:
    """An angle may use theta once, affinely: a * theta[...] + b with a, b constants."""
    found = thetas(e)
    if len(found) > 1:
        raise found[1].error("an angle may use theta only once",
                             "write one affine term, e.g. '2 * theta[layer, q] + pi / 2'")
    if found:
        _check_affine_path(e)


def _check_affine_path(e: Expr) -> None:
    if isinstance(e, Theta):
        return
    if isinstance(e, Neg):
        return _check_affine_path(e.operand)
    left = bool(thetas(e.left))
    if e.op in ("//", "%") or (e.op == "/" and not left):
        raise e.error(f"'{render_expr(e)}' is not affine in theta",
                      "an angle is a * theta[...] + b: theta may be scaled, negated, shifted or "
                      "divided by a constant")
    _check_affine_path(e.left if left else e.right)


# --- circuit items -----------------------------------------------------------------------
class Compare(Node):
    op: str
    left: Expr
    right: Expr


class BoolOp(Node):
    op: Literal["and", "or"]
    left: Union[Compare, "BoolOp"]
    right: Union[Compare, "BoolOp"]


Cond = Union[Compare, BoolOp]


class RangeSpan(Node):
    start: Expr
    stop: Expr          # inclusive
    step: Expr | None = None


class Loop(Node):
    var: str
    span: RangeSpan     # `all` is 0 .. n - 1


class Filter(Node):
    cond: Cond


class Call(Node):
    kind: Literal["call"] = "call"
    gate: str
    args: tuple[Expr, ...]
    clauses: tuple[Union[Loop, Filter], ...] = ()   # outer first, as in a comprehension


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
    `qubits` (if given) is the size used when the space is compiled alone. `patterns` are gate
    sequences, `choices` are named choices (`pattern p = choose {...}`), used as whole slots."""
    name: str
    qubits: int | None = None
    qubits_auto: bool = False
    depth: int | None = None
    patterns: dict[str, tuple[Item, ...]] = {}
    choices: dict[str, Slot] = {}
    init: Slot | None = None
    layer: tuple[Slot, ...] = ()
    tied: bool = True
    weights_norm: Literal["raw", "softmax"] = "raw"
    weights_init: Union[Expr, tuple[Expr, ...], None] = None   # one value, or one per candidate
    weights_per_position: bool = False  # one weight vector per choice (qtc.compiler.factorised)
    angles: tuple[str, tuple[float, ...]] = ("normal", (0.0, 0.01))
    limit: int = DEFAULT_LIMIT
    file: str | None = None
    source: str | None = None
    statements: dict[str, dict] = {}  # statement keyword -> its position

    def at(self, keyword: str) -> dict:
        return self.statements.get(keyword, {"line": self.line, "column": self.column})


# --- parse tree -> models ----------------------------------------------------------------
@v_args(meta=True)
class _ToModels(Transformer_NonRecursive):
    """Bottom-up and without recursion (Lark's non-recursive transformer), so a deep parse
    tree cannot overflow the stack; every expression's nesting is bounded by MAX_EXPR_DEPTH
    here, which makes the recursive helpers above safe."""

    def __init__(self):
        super().__init__()
        self._depth: dict[int, int] = {}

    def _nested(self, node, *parts):
        depth = 1 + max((self._depth.get(id(p), 0) for p in parts), default=0)
        if depth > MAX_EXPR_DEPTH:
            raise node.error(f"the expression nests more than {MAX_EXPR_DEPTH} levels deep",
                             "split it, or simplify it: a long sum or chain of unary minuses "
                             "counts one level per operator")
        self._depth[id(node)] = depth
        return node

    def int(self, meta, c):
        if len(c[0]) > 15:  # beyond a float's exact integers (and pydantic's float range)
            raise SpecError(f"the number {c[0][:20]}... is too large", **pos(meta))
        return Num(value=int(c[0]), **pos(meta))

    def float(self, meta, c):
        if not math.isfinite(float(c[0])):
            raise SpecError(f"the number {c[0][:20]} is too large", **pos(meta))
        return Num(value=float(c[0]), integer=False, **pos(meta))

    def var(self, meta, c):
        return Var(name=str(c[0]), **pos(meta))

    def neg(self, meta, c):
        return self._nested(Neg(operand=c[0], **pos(meta)), c[0])

    def binop(self, meta, c):
        return self._nested(BinOp(left=c[0], op=str(c[1]), right=c[2], **pos(c[1])), c[0], c[2])

    def theta(self, meta, c):
        node = Theta(layer=c[0], qubit=c[1], index=c[2] if len(c) > 2 else None, **pos(meta))
        return self._nested(node, *c)

    def compare(self, meta, c):
        return Compare(left=c[0], op=str(c[1]), right=c[2], **pos(c[1]))

    def both(self, meta, c):
        return BoolOp(op="and", left=c[0], right=c[1], **pos(meta))

    def either(self, meta, c):
        return BoolOp(op="or", left=c[0], right=c[1], **pos(meta))

    def range_all(self, meta, c):
        p = pos(meta)
        last = BinOp(left=Var(name="n", **p), op="-", right=Num(value=1, **p), **p)
        return RangeSpan(start=Num(value=0, **p), stop=last, step=c[1] if len(c) > 1 else None, **p)

    def range_span(self, meta, c):
        return RangeSpan(start=c[0], stop=c[1], step=c[2] if len(c) > 2 else None, **pos(meta))

    def loop(self, meta, c):
        return Loop(var=str(c[0]), span=c[1], **pos(meta))

    def filter(self, meta, c):
        return Filter(cond=c[0], **pos(meta))

    def call(self, meta, c):
        clauses = tuple(a for a in c[1:] if isinstance(a, (Loop, Filter)))
        args = tuple(a for a in c[1:] if not isinstance(a, (Loop, Filter)))
        return Call(gate=str(c[0]).lower(), args=args, clauses=clauses, **pos(meta))

    def ref(self, meta, c):
        return Ref(name=str(c[0]), **pos(meta))

    def nothing(self, meta, c):
        return Nothing(**pos(meta))

    def seq(self, meta, c):
        return tuple(c)

    def values(self, meta, c):
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


def _slot(node, choices: dict[str, Slot]) -> Slot:
    """A slot: a choice, a named choice used whole, or one fixed item."""
    if isinstance(node, Slot):
        return node
    if isinstance(node, Ref) and node.name in choices:
        return Slot(alts=choices[node.name].alts, line=node.line, column=node.column)
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
                    "patterns": {}, "choices": {}, **pos(name_tok)}
    slots: dict = {}
    for kind, children, p in stmts:
        key = "tie" if kind == "tie" else kind
        if key in fields["statements"] and kind != "pattern":
            first = fields["statements"][key]["line"]
            raise SpecError(f"'{key}' is given twice (first on line {first})", **p)
        fields["statements"].setdefault(key, p)
        if kind in ("init", "layer"):
            slots[kind] = children  # resolved once every named choice is known
        else:
            _apply(kind, children, p, fields)
    if "init" in slots:
        fields["init"] = _slot(slots["init"][0], fields["choices"])
    if "layer" in slots:
        fields["layer"] = tuple(_slot(s, fields["choices"]) for s in slots["layer"])
    space = SearchSpace(**fields)
    check_space(space)
    return space


def _apply(kind: str, c: list, p: dict, f: dict) -> None:
    if kind == "qubits":
        f["qubits_auto"] = str(c[0]) == "auto"
        if c[-1].type == "INT":
            f["qubits"] = _bounded(int(c[-1]), 1, MAX_QUBITS, "qubits", pos(c[-1]))
    elif kind == "depth":
        f["depth"] = _bounded(int(c[0]), 1, MAX_DEPTH, "depth", p)
    elif kind == "pattern":
        name = str(c[0])
        if name in f["patterns"] or name in f["choices"]:
            raise SpecError(f"pattern '{name}' is defined twice", **pos(c[0]),
                            hint="give each pattern its own name")
        if name in GATES or name in KEYWORDS:
            raise SpecError(f"'{name}' is a gate or keyword and cannot name a pattern", **pos(c[0]))
        if isinstance(c[1], Slot):
            f["choices"][name] = c[1]
        else:
            f["patterns"][name] = c[1]
    elif kind == "tie":
        f["tied"] = str(c[0]) == "tie"
    elif kind == "weights":
        norm = str(c[0])
        if norm not in WEIGHT_NORMS:
            raise SpecError(f"unknown weight normalisation '{norm}'", **pos(c[0]),
                            hint=did_you_mean(norm, WEIGHT_NORMS))
        f["weights_norm"] = norm
        f["weights_per_position"] = any(getattr(x, "type", None) == "PER" for x in c)
        f["weights_init"] = c[-1] if len(c) > 1 and getattr(c[-1], "type", None) != "PER" else None
    elif kind == "angles":
        f["angles"] = _angles(c, p)
    elif kind == "limit":
        f["limit"] = _bounded(int(c[0]), 1, MAX_LIMIT, "limit", p)


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
    values = tuple(float(evaluate(a, {"pi": math.pi}, "an angle initialisation")) for a in args)
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
    per_layer = _pattern_uses_layer(space)
    if space.init is not None:
        _check_slot(space, space.init)
        for alt in space.init.alts:
            for it in alt.items:
                if isinstance(it, Ref) and per_layer.get(it.name):
                    raise it.error(f"pattern '{it.name}' uses 'layer' or theta, which 'init' does not have",
                                   "'layer' and theta[layer, ...] exist only in the 'layer' statement")
                if isinstance(it, Call):
                    _check_call(it, BUILTINS, in_layer=False)
    for slot in space.layer:
        _check_slot(space, slot)
        for alt in slot.alts:
            for it in alt.items:
                if isinstance(it, Call):
                    _check_call(it, BUILTINS + ("layer",), in_layer=True)
    if space.weights_per_position and space.tied:
        raise SpecError("weights per position need independent layers, but the layers are tied",
                        **space.at("weights"), hint="write 'untie layers' (a tied space's choices "
                        "are one choice for all layers: give it one weight per candidate)")
    if space.weights_per_position and isinstance(space.weights_init, tuple):
        raise SpecError("'weights ... per position' takes one initial value, not a list",
                        **space.at("weights"), hint="write e.g. 'init 1 / C' (C is the number of "
                        "alternatives of each position); a list gives one value per candidate")


def _check_slot(space: SearchSpace, slot: Slot) -> None:
    labels = set()
    for alt in slot.alts:
        if alt.label in labels:
            raise alt.error(f"two alternatives of one choice are both labelled '{alt.label}'",
                            "label them apart, e.g. 'A: ... | B: ...'")
        labels.add(alt.label)
        _check_refs(space, alt.items)


def _check_refs(space: SearchSpace, items) -> None:
    """Every name an item sequence uses is a pattern (a named choice only as a whole slot)."""
    for it in items:
        if not isinstance(it, Ref):
            continue
        if it.name in space.choices:
            raise it.error(f"pattern '{it.name}' is a choice and can only be a whole slot",
                           f"write it alone between ';' in 'layer = ...' or as 'init = {it.name}'")
        if it.name not in space.patterns:
            raise it.error(f"unknown pattern '{it.name}'",
                           did_you_mean(it.name, list(space.patterns) + list(space.choices) + list(GATES)))


def _pattern_uses_layer(space: SearchSpace) -> dict[str, bool]:
    """Check every pattern once, in an order where the patterns it names come first (an
    iterative depth-first walk: no recursion, cycles and nesting depth reported at the
    reference that causes them). Returns pattern -> whether it needs 'layer' (or theta)."""
    bodies = dict(space.patterns)
    for name, slot in space.choices.items():
        _check_slot(space, slot)
        bodies[name] = tuple(it for alt in slot.alts for it in alt.items)
    depth: dict[str, int] = {}
    uses: dict[str, bool] = {}
    for root in bodies:
        stack = [(root, None)]
        path: list[str] = []
        while stack:
            name, ref = stack.pop()
            if name is None:  # all of path[-1]'s patterns are done
                done = path.pop()
                refs = [it for it in bodies[done] if isinstance(it, Ref)]
                depth[done] = 1 + max((depth[r.name] for r in refs), default=0)
                if depth[done] > MAX_PATTERN_DEPTH:
                    raise max(refs, key=lambda r: depth[r.name]).error(
                        f"pattern '{done}' nests {depth[done]} patterns deep, more than {MAX_PATTERN_DEPTH}",
                        "write the gates of a long chain of patterns into fewer patterns")
                uses[done] = any(uses[r.name] for r in refs) or _items_use_layer(bodies[done])
                continue
            if name in depth:
                continue
            if name in path:
                raise ref.error(f"pattern '{name}' refers to itself")
            if name in space.patterns:  # (a named choice's alternatives: checked above)
                _check_refs(space, bodies[name])
            path.append(name)
            stack.append((None, None))
            for it in reversed(bodies[name]):
                if isinstance(it, Ref) and it.name not in depth:
                    stack.append((it.name, it))
    return uses


def _items_use_layer(items) -> bool:
    """Check a pattern's own gate calls; True when they need 'layer' or theta."""
    uses = False
    for it in items:
        if isinstance(it, Call):
            _check_call(it, BUILTINS + ("layer",), in_layer=True)
            uses = uses or any(_uses_layer(a) for a in _call_exprs(it))
    return uses


def _call_exprs(call: Call) -> list:
    out = list(call.args)
    for cl in call.clauses:
        out += [cl.span.start, cl.span.stop, cl.span.step] if isinstance(cl, Loop) else _cond_exprs(cl.cond)
    return [e for e in out if e is not None]


def _cond_exprs(c: Cond) -> list:
    if isinstance(c, Compare):
        return [c.left, c.right]
    return _cond_exprs(c.left) + _cond_exprs(c.right)


def _uses_layer(e: Expr) -> bool:
    return isinstance(e, Theta) or (isinstance(e, Var) and e.name == "layer") or \
        any(_uses_layer(c) for c in children(e))


def _check_call(call: Call, scope, in_layer: bool) -> None:
    g = GATES.get(call.gate)
    if g is None:
        raise call.error(f"unknown gate '{call.gate}'", did_you_mean(call.gate, GATES))
    want = g.arity + g.params
    if len(call.args) != want:
        shape = ", ".join(["qubit"] * g.arity + ["angle"] * g.params)
        raise call.error(f"gate '{call.gate}' takes {want} argument(s) ({shape}), got {len(call.args)}")
    if len(call.clauses) > MAX_CLAUSES:
        raise call.clauses[MAX_CLAUSES].error(f"a gate takes at most {MAX_CLAUSES} 'for'/'if' clauses")
    names = set(scope)
    for cl in call.clauses:  # each clause sees the variables bound before it
        if isinstance(cl, Loop):
            for e in (cl.span.start, cl.span.stop, cl.span.step):
                if e is not None:
                    _check_plain(e, names, "a loop range")
            if cl.var in names:
                what = "a built-in name" if cl.var in scope else "an outer loop variable"
                raise cl.error(f"loop variable '{cl.var}' hides {what}")
            names.add(cl.var)
        else:
            for e in _cond_exprs(cl.cond):
                _check_plain(e, names, "an 'if' condition")
    for k, arg in enumerate(call.args):
        if k < g.arity:
            found = thetas(arg)
            if found:
                raise found[0].error(f"argument {k + 1} of '{call.gate}' is a qubit, not an angle")
            _check_names(arg, names)
            continue
        check_affine(arg)
        for t in thetas(arg):
            if not in_layer:
                raise t.error("theta[...] is only available inside the 'layer' statement")
            for e in children(t):
                _check_plain(e, names, "an index of theta")
        _check_names(arg, names)


def _check_plain(e: Expr, names, what: str) -> None:
    found = thetas(e)
    if found:
        raise found[0].error(f"theta[...] is a trainable angle and cannot stand in {what}")
    _check_names(e, names)


def _check_names(e, names) -> None:
    if isinstance(e, Var):
        if e.name not in names:
            hint = did_you_mean(e.name, names)
            if e.name == "layer":
                hint = "'layer' is only defined inside the 'layer' statement"
            raise e.error(f"unknown name '{e.name}'", hint)
    for c in children(e):
        _check_names(c, names)
