"""expand: a search space's product space -> candidate circuits in canonical order.

Canonical order is itertools.product over the slots in declaration order (init first, then
the layer's slots; for untied spaces layer 0's slots before layer 1's), first alternative
first: for the paper's space this is Table I (1 = H-ent-RX ... 12 = none-cyc-RZ).

Every size is checked against a stated bound before the work it measures is done: the number
of candidates (the space's `limit`), the iterations of one gate's loops, the gates of one
alternative and the gates of all candidates together.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import replace

from qtc.compiler.gates import GATES
from qtc.compiler.ir import Angle, Circuit, Op, PerCandidate, Program
from qtc.dsl.expr import affine, bindings, evaluate_expr, render_expr
from qtc.dsl.space import MAX_ANGLES_PER_GATE, MAX_LIMIT, Call, Compare, Loop, Nothing, Ref, SearchSpace
from qtc.errors import SpecError

MAX_LOOP = 10_000          # iterations of one gate's loops; far beyond any real register
MAX_ALT_OPS = 100_000      # gates of one alternative (patterns included) in one layer
MAX_TOTAL_OPS = 2_000_000  # gates of all candidate circuits together
_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def expand(space: SearchSpace, qubits: int, depth: int) -> Program:
    """All candidates of `space` at the given size, as unoptimised circuits."""
    try:
        return _expand(space, qubits, depth)
    except SpecError as err:
        raise err.located(space.file, space.source) from None


def _expand(space: SearchSpace, n: int, depth: int) -> Program:
    init = space.init.alts if space.init else ()
    per_layer = [slot.alts for slot in space.layer]
    count = candidate_count(space, depth)
    if count > space.limit:
        p = space.at("tie")
        bound = (f"raise the limit with 'limit {count}'" if count <= MAX_LIMIT else
                 f"no limit can be that high: at most {MAX_LIMIT:,} candidates are compiled")
        raise SpecError(f"the space has {count:,} candidates, more than the limit of {space.limit:,}",
                        **p, hint="tie the layers ('tie layers'), lower the depth, or " + bound +
                        " (every candidate is simulated)")
    memo: dict = {}
    layer_ops = [[[slot_ops(space, alt.items, n, layer, memo) for alt in alts] for alts in per_layer]
                 for layer in range(depth)]
    init_ops = [slot_ops(space, alt.items, n, None, memo) for alt in init] or [()]
    _check_total(space, count, init_ops, layer_ops, depth)
    layer_ops, init_ops, shape = size_angles(layer_ops, init_ops, n, depth)
    # one init alternative tells no candidates apart: it names the only candidate, no other
    init_labels = ([alt.label for alt in init] if len(init) > 1 or count == 1 else []) or [""]
    slot_choices = list(itertools.product(*[range(len(a)) for a in per_layer]))
    if space.tied:
        per_candidate = [[choice] * depth for choice in slot_choices]
    else:
        per_candidate = [list(c) for c in itertools.product(slot_choices, repeat=depth)]
    labels, source = [], []
    for i_init, choices in itertools.product(range(len(init_ops)), per_candidate):
        ops = list(init_ops[i_init])
        for layer, choice in enumerate(choices):
            for slot, alt in enumerate(choice):
                ops += layer_ops[layer][slot][alt]
        labels.append(_label(init_labels[i_init], choices, per_layer, space.tied))
        source.append(Circuit(members=(len(source),), ops=tuple(ops)))
    weights = PerCandidate(labels=tuple(labels), init=_weights_init(space, len(labels)), norm=space.weights_norm)
    return Program(name=space.name, qubits=n, depth=depth, weights=weights, nodes=tuple(source),
                   labels=tuple(labels), source=tuple(source), angles_init=space.angles, angle_shape=shape,
                   space=space)


def candidate_count(space: SearchSpace, depth: int) -> int:
    """Candidates of the product space, computed without building any (a Python int)."""
    init = len(space.init.alts) if space.init else 1
    per_layer = math.prod(len(slot.alts) for slot in space.layer)
    return init * per_layer ** (1 if space.tied else depth)


def _check_total(space: SearchSpace, count: int, init_ops, layer_ops, depth: int) -> None:
    """Gates of all candidates together, counted before one is built: each alternative of a
    slot appears in count / (its slot's size) candidates."""
    total = sum(len(ops) for ops in init_ops) * (count // len(init_ops))
    for alts_per_slot in layer_ops:
        total += sum(sum(len(ops) for ops in alts) * (count // len(alts)) for alts in alts_per_slot)
    if total > MAX_TOTAL_OPS:
        raise SpecError(f"the {count:,} candidates have {total:,} gates in all, more than "
                        f"{MAX_TOTAL_OPS:,} (depth {depth})", **space.at("layer"),
                        hint="lower the depth or the qubits, or tie the layers")


def size_angles(layer_ops, init_ops, n: int, depth: int):
    """theta has shape (L, n) unless some gate writes a third index: then (L, n, K) with K
    one more than the largest third index used."""
    ks = [op.angle.k for alts_per_slot in layer_ops for alts in alts_per_slot for ops in alts
          for op in ops if isinstance(op.angle, Angle) and op.angle.k is not None]
    if not ks:
        return layer_ops, init_ops, (depth, n)
    width = max(ks) + 1

    def widen(ops):
        return tuple(replace(op, angle=replace(op.angle, k=op.angle.k or 0, width=width))
                     if isinstance(op.angle, Angle) else op for op in ops)
    layer_ops = [[[widen(ops) for ops in alts] for alts in per_slot] for per_slot in layer_ops]
    return layer_ops, init_ops, (depth, n, width)


def _label(init: str, choices, per_layer, tied: bool) -> str:
    layers = ["-".join(per_layer[s][a].label for s, a in enumerate(c)) for c in choices]
    body = layers[0] if tied else "/".join(layers)
    return f"{init}-{body}" if init else body


def _weights_init(space: SearchSpace, count: int) -> tuple[float, ...]:
    env = {"C": count, "pi": math.pi}
    w = space.weights_init
    if w is None:
        return ((1.0 / count) if space.weights_norm == "raw" else 0.0,) * count
    if not isinstance(w, tuple):
        return (_weight(w, env),) * count
    if len(w) != count:
        raise SpecError(f"'weights init' lists {len(w)} value(s) but the space has {count} candidates",
                        **space.at("weights"), hint="give one value per candidate, in the order of "
                        "'qtc compile' (the product of the choices, first alternative first)")
    return tuple(_weight(e, env) for e in w)


def _weight(e, env: dict) -> float:
    """One initial structural weight: finite numbers parse, but `1e300 * 1e300` is inf."""
    value = float(evaluate_expr(e, env, "a weight"))
    if not math.isfinite(value):
        raise e.error(f"the initial structural weight must be a finite number, got {value}")
    return value


def slot_ops(space: SearchSpace, items, n: int, layer: int | None, memo: dict) -> tuple[Op, ...]:
    """The gates of an item sequence in one layer (None = init). A pattern's gates are built
    once per layer (memo), and no sequence may exceed MAX_ALT_OPS gates: a pattern that names
    another twice per level doubles at every level."""
    env = {"n": n, "pi": math.pi}
    if layer is not None:
        env["layer"] = layer
    out: list[Op] = []
    for it in items:
        if isinstance(it, Nothing):
            continue
        if isinstance(it, Ref):
            key = (it.name, layer)
            if key not in memo:
                memo[key] = slot_ops(space, space.patterns[it.name], n, layer, memo)
            part = memo[key]
        else:
            part = _call(it, env, n)
        if len(out) + len(part) > MAX_ALT_OPS:
            raise it.error(f"this sequence has more than {MAX_ALT_OPS:,} gates "
                           f"({len(out) + len(part):,} so far){bindings(env)}",
                           "a pattern that names another pattern twice doubles at every level")
        out += part
    return tuple(out)


def _call(call: Call, env: dict, n: int) -> list[Op]:
    """A gate with its 'for' and 'if' clauses, outer clause first (as a comprehension)."""
    g = GATES[call.gate]
    envs = [env]
    for cl in call.clauses:
        if isinstance(cl, Loop):
            ranges = [_range(cl, e) for e in envs]      # lazy: counted before any is enumerated
            total = sum(len(r) for r in ranges)
            if total > MAX_LOOP:
                raise cl.error(f"the loops run {total:,} times, more than {MAX_LOOP:,}",
                               "a loop over qubits needs at most n iterations")
            envs = [{**e, cl.var: v} for e, r in zip(envs, ranges) for v in r]
        else:
            envs = [e for e in envs if _holds(cl.cond, e)]
    return [_op(call, g, e, n) for e in envs]


def _holds(cond, env: dict) -> bool:
    if isinstance(cond, Compare):
        a, b = (evaluate_expr(x, env, "an 'if' condition") for x in (cond.left, cond.right))
        return _CMP[cond.op](a, b)
    left = _holds(cond.left, env)
    return (left and _holds(cond.right, env)) if cond.op == "and" else (left or _holds(cond.right, env))


def _range(loop: Loop, env: dict) -> range:
    """`a .. b` includes both ends and counts downwards when b < a: it is never empty. With
    `step s` it counts by s in the direction of s, and is empty when it stops short of its
    start by at most one step (`0 .. n - 2 step 1` at n = 1, `1 .. n - 2 step 2` at n = 2); a
    range that runs further the other way than its step says is an error, never nothing."""
    span = loop.span
    start, stop = _int(span.start, env, "range start"), _int(span.stop, env, "range end")
    if span.step is None:
        step = 1 if stop >= start else -1
    else:
        step = _int(span.step, env, "step")
        if step == 0:
            raise span.error(f"the step must not be zero{bindings(env)}")
    values = range(start, stop + (1 if step > 0 else -1), step)
    if not values and (stop - start) * (1 if step > 0 else -1) < -abs(step):
        way = "down" if step < 0 else "up"
        raise span.error(f"the range {start} .. {stop} runs against its step {step} (it counts {way}wards)"
                         f"{bindings(env)}", f"write 'step {-step}' to count the other way")
    if len(values) > MAX_LOOP:
        raise span.error(f"the loop runs {len(values):,} times, more than {MAX_LOOP:,}",
                         "a loop over qubits needs at most n iterations")
    return values


def _op(call: Call, g, env: dict, n: int) -> Op:
    qubits = tuple(_int(a, env, "qubit index") for a in call.args[:g.arity])
    for q, arg in zip(qubits, call.args):
        if not 0 <= q < n:
            raise arg.error(f"qubit index {q} is out of range for {n} qubits (0..{n - 1}){bindings(env)}",
                            "check the loop range: 'n' is the number of qubits")
    if len(set(qubits)) != len(qubits):
        raise call.error(f"gate '{call.gate}' touches qubit {qubits[0]} twice "
                         f"({call.gate}({', '.join(map(str, qubits))}) with {_loop_values(call, env)})")
    angle = _angle(call.args[g.arity], env, n) if g.params else None
    return Op(call.gate, qubits, angle)


def _angle(arg, env: dict, n: int) -> Angle | float:
    """A rotation angle: a constant, or scale * theta[layer, q(, k)] + shift."""
    scale, theta, shift = affine(arg, env)
    if theta is None or scale == 0:
        return float(shift)
    layer, q = _int(theta.layer, env, "angle layer"), _int(theta.qubit, env, "angle qubit")
    k = None if theta.index is None else _int(theta.index, env, "angle index")
    if layer != env["layer"] or not 0 <= q < n:
        raise theta.error(f"theta[{layer}, {q}] is outside this layer's angles "
                          f"theta[{env['layer']}, 0..{n - 1}]{bindings(env)}",
                          "write theta[layer, q] with 0 <= q < n")
    if k is not None and not 0 <= k < MAX_ANGLES_PER_GATE:
        raise theta.error(f"the third index of {render_expr(theta)} is {k}, outside "
                          f"0..{MAX_ANGLES_PER_GATE - 1}{bindings(env)}")
    return Angle(layer, q, k=k, scale=float(scale), shift=float(shift))


def _loop_values(call: Call, env: dict) -> str:
    shown = [f"{cl.var} = {env[cl.var]}" for cl in call.clauses if isinstance(cl, Loop)]
    return ", ".join(shown) if shown else "no loop"


def _int(e, env: dict, what: str) -> int:
    v = evaluate_expr(e, env, f"a {what}")
    if not float(v).is_integer():
        raise e.error(f"the {what} must be a whole number, got {v}{bindings(env)}")
    return int(v)
