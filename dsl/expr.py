"""The expression language of search spaces: numbers, names, + - * / // %, unary minus, theta[...].

Expressions are evaluated only when a space is expanded (qtc.compiler.expand), once the number
of qubits, the layer and every loop variable have values, so their errors say where they
happened (`bindings`). An angle may use theta once, affinely (`check_affine`, `affine`). The
parser refuses expressions nested deeper than MAX_EXPR_DEPTH, which keeps the recursive helpers
here safe.
"""
from __future__ import annotations

import math
import sys
from typing import Literal, Union

from qtc.dsl.located import Located
from qtc.errors import did_you_mean

MAX_EXPR_DEPTH = 64         # nesting of one expression (operators, unary minuses, calls)
BUILTINS = ("n", "pi")      # names every expression knows: the number of qubits, and pi


class Num(Located):
    kind: Literal["num"] = "num"
    value: float
    integer: bool = True


class Var(Located):
    kind: Literal["var"] = "var"
    name: str


class BinOp(Located):
    kind: Literal["binop"] = "binop"
    op: str
    left: "Expr"
    right: "Expr"


class Neg(Located):
    kind: Literal["neg"] = "neg"
    operand: "Expr"


class Theta(Located):
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


def evaluate_expr(e: Expr, env: dict[str, float], what: str = "this expression") -> float:
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
        return -evaluate_expr(e.operand, env, what)
    a, b = evaluate_expr(e.left, env, what), evaluate_expr(e.right, env, what)
    if e.op in ("//", "%", "/") and b == 0:
        raise e.error(f"division by zero in '{render_expr(e)}'{bindings(env)}")
    if e.op in ("//", "%") and not (float(a).is_integer() and float(b).is_integer()):
        raise e.error(f"'{e.op}' needs integers in '{render_expr(e)}'{bindings(env)}")
    try:
        value = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                 "//": lambda: int(a) // int(b), "%": lambda: int(a) % int(b)}[e.op]()
    except OverflowError:       # an int too large for a float met a float
        value = math.inf
    return finite(e, value, env)


def finite(e: Expr, value, env: dict):
    """`value`, the value of `e`, if it is a finite number (an int within a float's range);
    else a located error: finite literals can still compute inf or nan (`1e300 * 1e300`,
    `theta / 1e-320`), which a kernel would hold as a literal and training would turn into NaN
    weights."""
    if isinstance(value, int) and not isinstance(value, bool):
        ok = abs(value) <= MAX_FLOAT
    else:
        ok = math.isfinite(value)
    if not ok:
        raise e.error(f"'{render_expr(e)}' is not a finite number (it computes {_shown(value)})"
                      f"{bindings(env)}", "every value a space computes must be finite: a product "
                      "beyond 1.8e308 overflows, and dividing by a number below 1e-308 does too")
    return value


MAX_FLOAT = int(sys.float_info.max)


def _shown(value) -> str:
    return f"an integer of {len(str(abs(value)))} digits" if isinstance(value, int) else str(value)


def thetas(e: Expr) -> list[Theta]:
    """Every theta[...] inside e."""
    if isinstance(e, Theta):
        return [e]
    return [t for c in children(e) for t in thetas(c)]


def affine(e: Expr, env: dict) -> tuple[float, Theta | None, float]:
    """An angle expression as scale * theta + shift (check_affine has proved it is affine)."""
    if isinstance(e, Theta):
        return 1.0, e, 0.0
    if not thetas(e):
        return 0.0, None, float(evaluate_expr(e, env, "this angle"))
    if isinstance(e, Neg):
        a, t, b = affine(e.operand, env)
        return -a, t, -b
    (la, lt, lb), (ra, rt, rb) = affine(e.left, env), affine(e.right, env)
    t = lt or rt
    if e.op in ("+", "-"):
        sign = 1 if e.op == "+" else -1
        scale, shift = la + sign * ra, lb + sign * rb
    elif e.op == "*":
        k, (a, b) = (rb, (la, lb)) if lt is not None else (lb, (ra, rb))
        scale, shift = k * a, k * b
    elif rb == 0:  # e.op == "/", theta on the left
        raise e.error(f"division by zero in '{render_expr(e)}'{bindings(env)}")
    else:
        scale, shift = la / rb, lb / rb
    return finite(e, scale, env), t, finite(e, shift, env)


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
