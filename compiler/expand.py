"""expand: a search space's product space -> candidate circuits in canonical order.

Canonical order is itertools.product over the slots in declaration order (init first, then
the layer's slots; for untied spaces layer 0's slots before layer 1's), first alternative
first: for the paper's space this is Table I (1 = H-ent-RX ... 12 = none-cyc-RZ).
"""
from __future__ import annotations

import itertools
import math

from qtc.compiler.gates import GATES
from qtc.compiler.ir import Angle, Circuit, Op, Program
from qtc.dsl.space import Call, Nothing, Ref, SearchSpace, Theta, evaluate
from qtc.errors import SpecError

MAX_LOOP = 10_000  # iterations of one gate loop; far beyond any real register


def expand(space: SearchSpace, qubits: int, depth: int) -> Program:
    """All candidates of `space` at the given size, as unoptimised circuits."""
    try:
        return _expand(space, qubits, depth)
    except SpecError as err:
        raise err.located(space.file, space.source) from None


def _expand(space: SearchSpace, n: int, depth: int) -> Program:
    init = space.init.alts if space.init else ()
    per_layer = [slot.alts for slot in space.layer]
    count = max(len(init), 1) * math.prod(len(a) for a in per_layer) ** (1 if space.tied else depth)
    if count > space.limit:
        p = space.at("tie")
        raise SpecError(f"the space has {count:,} candidates, more than the limit of {space.limit:,}",
                        **p, hint="tie the layers ('tie layers'), lower the depth, or raise the "
                        "limit with 'limit N' (every candidate is simulated)")
    layer_ops = [[[_ops(space, alt.items, n, layer) for alt in alts] for alts in per_layer]
                 for layer in range(depth)]
    init_ops = [_ops(space, alt.items, n, None) for alt in init] or [()]
    init_labels = [alt.label for alt in init] or [""]
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
    weights = _weights_init(space, len(labels))
    return Program(name=space.name, qubits=n, depth=depth, labels=tuple(labels),
                   source=tuple(source), circuits=tuple(source), weights_init=weights,
                   weights_norm=space.weights_norm, angles_init=space.angles, space=space)


def _label(init: str, choices, per_layer, tied: bool) -> str:
    layers = ["-".join(per_layer[s][a].label for s, a in enumerate(c)) for c in choices]
    body = layers[0] if tied else "/".join(layers)
    return f"{init}-{body}" if init else body


def _weights_init(space: SearchSpace, count: int) -> tuple[float, ...]:
    if space.weights_init is None:
        value = 1.0 / count if space.weights_norm == "raw" else 0.0
    else:
        value = float(evaluate(space.weights_init, {"C": count, "pi": math.pi}))
        if not math.isfinite(value):
            raise space.weights_init.error(f"the initial structural weight must be a finite number, "
                                           f"got {value}")
    return (value,) * count


def _ops(space: SearchSpace, items, n: int, layer: int | None) -> tuple[Op, ...]:
    env = {"n": n, "pi": math.pi}
    if layer is not None:
        env["layer"] = layer
    out: list[Op] = []
    for it in items:
        if isinstance(it, Nothing):
            continue
        if isinstance(it, Ref):
            out += _ops(space, space.patterns[it.name], n, layer)
        elif isinstance(it, Call):
            out += _call(it, env, n)
    return tuple(out)


def _call(call: Call, env: dict, n: int) -> list[Op]:
    g = GATES[call.gate]
    if call.loop is None:
        return [_op(call, g, env, n)]
    values = _range(call, env, n)
    return [_op(call, g, {**env, call.loop.var: v}, n) for v in values]


def _range(call: Call, env: dict, n: int) -> range:
    span = call.loop.span
    if span is None:
        return range(n)
    start, stop = _int(span.start, env, "range start"), _int(span.stop, env, "range end")
    step = _int(span.step, env, "step") if span.step is not None else 1
    if step <= 0:
        raise span.error(f"the step must be positive, got {step}")
    values = range(start, stop + 1, step)
    if len(values) > MAX_LOOP:
        raise span.error(f"the loop runs {len(values):,} times, more than {MAX_LOOP:,}",
                         "a loop over qubits needs at most n iterations")
    return values


def _op(call: Call, g, env: dict, n: int) -> Op:
    qubits = tuple(_int(a, env, "qubit index") for a in call.args[:g.arity])
    for q, arg in zip(qubits, call.args):
        if not 0 <= q < n:
            raise arg.error(f"qubit index {q} is out of range for {n} qubits (0..{n - 1})",
                            "check the loop range: 'n' is the number of qubits")
    if len(set(qubits)) != len(qubits):
        raise call.error(f"gate '{call.gate}' touches qubit {qubits[0]} twice "
                         f"({call.gate}({', '.join(map(str, qubits))}) with {_bindings(call, env)})")
    angle = None
    if g.params:
        arg = call.args[g.arity]
        if isinstance(arg, Theta):
            layer, q = _int(arg.layer, env, "angle layer"), _int(arg.qubit, env, "angle qubit")
            if "layer" not in env:
                raise arg.error("theta[...] is only available inside the 'layer' statement")
            if layer != env["layer"] or not 0 <= q < n:
                raise arg.error(f"theta[{layer}, {q}] is outside this layer's angles "
                                f"theta[{env['layer']}, 0..{n - 1}]",
                                "write theta[layer, q] with 0 <= q < n")
            angle = Angle(layer, q)
        else:
            angle = float(evaluate(arg, env))
    return Op(call.gate, qubits, angle)


def _bindings(call: Call, env: dict) -> str:
    return f"{call.loop.var} = {env[call.loop.var]}" if call.loop else "no loop"


def _int(e, env: dict, what: str) -> int:
    if isinstance(e, Theta):
        raise e.error(f"expected a {what}, got an angle")
    v = evaluate(e, env)
    if not float(v).is_integer():
        raise e.error(f"the {what} must be a whole number, got {v}")
    return int(v)
