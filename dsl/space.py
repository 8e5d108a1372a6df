"""Search-space specs (.qs): grammar in space.lark, parsed into validated pydantic models.

Each statement keyword has a model (SPACE_STATEMENTS) whose fields are the SearchSpace fields it
sets, so a new statement is one model and one grammar rule. Expressions are qtc.dsl.expr's; the
checks that need no qubit count are qtc.dsl.space_checks'. Every node is Located, so errors
found later (at expansion, when the number of qubits is known) still point at the spec text.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar, Literal, Union

from lark import v_args
from lark.visitors import Transformer_NonRecursive

from qtc.dsl.common import parse_spec, parse_text, pos, transform
from qtc.dsl.expr import MAX_EXPR_DEPTH, BinOp, Expr, Neg, Num, Theta, Var, evaluate_expr
from qtc.dsl.gatenames import GATES
from qtc.dsl.located import Located
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
MAX_PATTERN_DEPTH = 32      # patterns naming patterns
MAX_CLAUSES = 8             # 'for' and 'if' clauses of one gate
MAX_ANGLES_PER_GATE = 16    # the third index of theta[layer, q, k]


# --- circuit items -----------------------------------------------------------------------
class Compare(Located):
    op: str
    left: Expr
    right: Expr


class BoolOp(Located):
    op: Literal["and", "or"]
    left: Union[Compare, "BoolOp"]
    right: Union[Compare, "BoolOp"]


Cond = Union[Compare, BoolOp]


class RangeSpan(Located):
    start: Expr
    stop: Expr          # inclusive
    step: Expr | None = None


class Loop(Located):
    var: str
    span: RangeSpan     # `all` is 0 .. n - 1


class Filter(Located):
    cond: Cond


class Call(Located):
    kind: Literal["call"] = "call"
    gate: str
    args: tuple[Expr, ...]
    clauses: tuple[Union[Loop, Filter], ...] = ()   # outer first, as in a comprehension


class Ref(Located):
    kind: Literal["ref"] = "ref"
    name: str


class Nothing(Located):
    kind: Literal["nothing"] = "nothing"


Item = Union[Call, Ref, Nothing]


class Alt(Located):
    label: str
    items: tuple[Item, ...]


class Slot(Located):
    alts: tuple[Alt, ...]


class SearchSpace(Located):
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
        return self.statements.get(keyword, self.position())


# --- statements: a model per keyword; its fields are the SearchSpace fields it sets ------------
class SpaceStmt(Located):
    """A statement of a .qs file. `parse` builds it from its parse-tree children (the checks that
    point at one of its tokens happen there); `apply` writes it into the SearchSpace's fields:
    by default each of its fields under its own name."""
    repeatable: ClassVar[bool] = False      # may stand more than once (pattern)

    @classmethod
    @abstractmethod
    def parse(cls, c: list, p: dict) -> "SpaceStmt":
        """The statement from its children `c` (tokens and models) at position `p`."""

    def apply(self, fields: dict) -> None:
        own = [k for k in type(self).model_fields if k not in Located.model_fields]
        fields.update({k: getattr(self, k) for k in own})


class QubitsStmt(SpaceStmt):
    """`qubits N`, or `qubits auto [N]`: a task sizes the space (N: its size compiled alone)."""
    qubits_auto: bool = False
    qubits: int | None = None

    @classmethod
    def parse(cls, c, p):
        n = _bounded(int(c[-1]), 1, MAX_QUBITS, "qubits", pos(c[-1])) if c[-1].type == "INT" else None
        return cls(qubits_auto=str(c[0]) == "auto", qubits=n, **p)


class DepthStmt(SpaceStmt):
    """`depth L`: the layers of the space when compiled alone (a task may set its own)."""
    depth: int

    @classmethod
    def parse(cls, c, p):
        return cls(depth=_bounded(int(c[0]), 1, MAX_DEPTH, "depth", p), **p)


class PatternStmt(SpaceStmt):
    """`pattern NAME = a; b` (a gate sequence) or `pattern NAME = choose {...}` (a named choice,
    used as a whole slot). Located at its name."""
    repeatable: ClassVar[bool] = True
    name: str
    body: Union[Slot, tuple[Item, ...]]

    @classmethod
    def parse(cls, c, p):
        name = str(c[0])
        if name in GATES or name in KEYWORDS:
            raise SpecError(f"'{name}' is a gate or keyword and cannot name a pattern", **pos(c[0]))
        return cls(name=name, body=c[1], **pos(c[0]))

    def apply(self, fields):
        if self.name in fields["patterns"] or self.name in fields["choices"]:
            raise self.error(f"pattern '{self.name}' is defined twice", "give each pattern its own name")
        fields["choices" if isinstance(self.body, Slot) else "patterns"][self.name] = self.body


class InitStmt(SpaceStmt):
    """`init = slot`: the layer before the first (a slot: _build resolves named choices)."""
    init: Union[Slot, Item]

    @classmethod
    def parse(cls, c, p):
        return cls(init=c[0], **p)


class LayerStmt(SpaceStmt):
    """`layer = slot; slot; ...`: every layer's slots."""
    layer: tuple[Union[Slot, Item], ...]

    @classmethod
    def parse(cls, c, p):
        return cls(layer=tuple(c), **p)


class TieStmt(SpaceStmt):
    """`tie layers` (one choice for all layers, the default) or `untie layers`."""
    tied: bool

    @classmethod
    def parse(cls, c, p):
        return cls(tied=str(c[0]) == "tie", **p)


class WeightsStmt(SpaceStmt):
    """`weights raw|softmax [per position] [init VALUE | init [V1, ...]]`."""
    weights_norm: Literal["raw", "softmax"]
    weights_per_position: bool = False
    weights_init: Union[Expr, tuple[Expr, ...], None] = None

    @classmethod
    def parse(cls, c, p):
        norm = str(c[0])
        if norm not in WEIGHT_NORMS:
            raise SpecError(f"unknown weight normalisation '{norm}'", **pos(c[0]),
                            hint=did_you_mean(norm, WEIGHT_NORMS))
        tokens = {getattr(x, "type", None) for x in c}
        return cls(weights_norm=norm, weights_per_position="PER" in tokens,
                   weights_init=c[-1] if "WEIGHTS_INIT" in tokens else None, **p)


class AnglesStmt(SpaceStmt):
    """`angles normal(mean, std)`, `uniform(a, b)`, `constant(v)` or `zeros`: theta's start."""
    angles: tuple[str, tuple[float, ...]]

    @classmethod
    def parse(cls, c, p):
        dist, args = str(c[0]), c[1:]
        if dist not in ANGLE_INITS:
            raise SpecError(f"unknown angle initialisation '{dist}'", **pos(c[0]),
                            hint=did_you_mean(dist, ANGLE_INITS))
        if len(args) != ANGLE_INITS[dist]:
            raise SpecError(f"'{dist}' takes {ANGLE_INITS[dist]} argument(s), got {len(args)}", **p)
        values = tuple(float(evaluate_expr(a, {"pi": math.pi}, "an angle initialisation")) for a in args)
        _check_angles(dist, values, args)
        return cls(angles=(dist, values), **p)


class LimitStmt(SpaceStmt):
    """`limit N`: at most N candidates (every one is expanded, folded and simulated)."""
    limit: int

    @classmethod
    def parse(cls, c, p):
        return cls(limit=_bounded(int(c[0]), 1, MAX_LIMIT, "limit", p), **p)


SPACE_STATEMENTS: dict[str, type[SpaceStmt]] = {
    "qubits": QubitsStmt, "depth": DepthStmt, "pattern": PatternStmt, "init": InitStmt,
    "layer": LayerStmt, "tie": TieStmt, "weights": WeightsStmt, "angles": AnglesStmt,
    "limit": LimitStmt,
}


# --- parse tree -> models ----------------------------------------------------------------
@v_args(meta=True)
class _ToModels(Transformer_NonRecursive):
    """Bottom-up and without recursion (Lark's non-recursive transformer), so a deep parse
    tree cannot overflow the stack; every expression's nesting is bounded by MAX_EXPR_DEPTH
    here, which makes the recursive helpers of qtc.dsl.expr and space_checks safe."""

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
        """A statement: (keyword, children, position), built by its SPACE_STATEMENTS model."""
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
        return Slot(alts=choices[node.name].alts, **node.position())
    return Slot(alts=(_label(None, (node,), node.position()),), **node.position())


def parse_space(source, *, file: str | None = None) -> SearchSpace:
    """Parse and validate a .qs spec (a path or the text). Raises SpecError."""
    return parse_spec(_build, source, file)


def _build(text: str, file: str | None) -> SearchSpace:
    from qtc.dsl.space_checks import check_space    # (it reads this module's models)
    tree = parse_text("space.lark", text, KEYWORDS)
    name_tok = tree.children[0]
    # Every statement is read before any is built, so errors come in the order they always have.
    stmts = [transform(_ToModels(), c) for c in tree.children[1:]]
    fields: dict = {"name": str(name_tok), "file": file, "source": text, "statements": {},
                    "patterns": {}, "choices": {}, **pos(name_tok)}
    for keyword, children, p in stmts:
        model = SPACE_STATEMENTS[keyword]
        if keyword in fields["statements"] and not model.repeatable:
            first = fields["statements"][keyword]["line"]
            raise SpecError(f"'{keyword}' is given twice (first on line {first})", **p)
        fields["statements"].setdefault(keyword, p)
        model.parse(children, p).apply(fields)
    # init and layer may use named choices that are defined after them
    if "init" in fields:
        fields["init"] = _slot(fields["init"], fields["choices"])
    fields["layer"] = tuple(_slot(s, fields["choices"]) for s in fields.get("layer", ()))
    space = SearchSpace(**fields)
    check_space(space)
    return space


def _bounded(value: int, lo: int, hi: int, what: str, p: dict) -> int:
    if not lo <= value <= hi:
        raise SpecError(f"{what} must be between {lo} and {hi}, got {value}", **p)
    return value


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
