"""The full product space with per-position weights: channel form or enumeration, by cost.

An untied space (`untie layers`) with `weights ... per position` gives every *position* (each
`choose` with two or more alternatives: the init block's, then layer 0's in order, then layer
1's, ...) its own weight vector w[pos, :]. A candidate c picks one alternative k_pos(c) at every
position; its weight is the product of its positions' weights, w_c = prod_pos w[pos, k_pos(c)].
Single-alternative slots are fixed gates (weight 1), so labels and order are those of `expand`.

Why the ensemble is a channel (the derivation). Write U_c = U_{S,k_S} ... U_{1,k_1}, one unitary
per step (a step is a position or a fixed slot) and rho_0 = |0><0|. Then
    p_c = diag(U_c rho_0 U_c^dagger)
    sum_c w_c p_c = sum_{k_1..k_S} prod_s w[s, k_s] diag(U_{S,k_S} ... U_{1,k_1} rho_0 U_{1,k_1}^dagger ... )
and the sum over (k_1, ..., k_S) factorises innermost first: the k_1 sum touches only
sum_k w[1, k] U_{1,k} rho_0 U_{1,k}^dagger = Phi_1(rho_0), the k_2 sum then only Phi_2 of that,
and so on, giving
    sum_c w_c p_c = diag(Phi_S o ... o Phi_1 (rho_0)),   Phi_s(rho) = sum_k w[s, k] U_{s,k} rho U_{s,k}^dagger.
Only distributivity of the product of sums and linearity of rho -> U rho U^dagger are used: the
identity holds for any real weights (unnormalised, negative); Phi_s is a channel only when the
weights are a probability vector, which the proof never needs.

Gradients (adjoint): with E_S = diag(g), g = dL/dP, and E_{s-1} = Phi_s^dagger(E_s) =
sum_k w[s, k] U_{s,k}^dagger E_s U_{s,k}, the loss is L = Tr(E_s rho_s) for every s, so
    dL/dw[s, k] = Tr(E_s U_{s,k} rho_{s-1} U_{s,k}^dagger);
an angle t of a rotation R = exp(-i t P / 2) inside U_{s,k} = A R B contributes
w[s, k] * Im Tr(F P sigma), with sigma = R B rho_{s-1} B^dagger R^dagger (the state just after R)
and F = A^dagger E_s A (the observable just after R).

Cost (in gate-amplitude updates): enumeration simulates every candidate's statevector,
C x 2^n x (gates per candidate); the channel form runs one density matrix through every
alternative once, 4^n x (sum over positions of the gates of all its alternatives).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from qtc.compiler.expand import size_angles, slot_ops
from qtc.compiler.ir import Channel, PerPosition, Program, Sampled, Step
from qtc.dsl.expr import evaluate_expr
from qtc.dsl.space import SearchSpace
from qtc.errors import QtcError, SpecError
from qtc.settings import CHANNEL_MEMORY

BYTES_PER_ENTRY = 16            # a complex float64 density-matrix entry (two planes of doubles)
SCRATCH_STATES = 6              # density matrices the backward pass needs beyond the stored ones
                                # (state and observable, each with a spare for gathers; E, E_new)
FORMS = ("auto", "channel", "enumeration", "sampled")
WHOLE = {"channel": Channel, "sampled": Sampled}   # forms that are one node for the whole space


@dataclass(frozen=True)
class Costs:
    candidates: int
    enumeration: float          # C x 2^n x gates per candidate
    channel: float              # 4^n x gates of every alternative
    channel_bytes: int          # density matrices held by the channel form's forward + backward
    limit: int                  # the space's enumeration limit (candidates)
    budget: int = CHANNEL_MEMORY  # bytes of density matrices the channel form may hold

    @property
    def enumeration_fits(self) -> bool:
        return self.candidates <= self.limit

    @property
    def channel_fits(self) -> bool:
        return self.channel_bytes <= self.budget


# --- lowering -------------------------------------------------------------------------------
def lower_factorised(space: SearchSpace, qubits: int, depth: int, *, form: str = "auto",
                     memory: int = CHANNEL_MEMORY) -> Program:
    """Per-position space -> a Program with PerPosition weights, in the cheaper form that fits
    (or the one asked for): one Channel node, or the enumerated candidates' nodes; "sampled"
    (only when asked for: sampled search, `search sampled K`) one Sampled node, which runs
    single architectures, never the mixture. `memory`: the bytes of density matrices the channel
    form may hold."""
    try:
        steps, shape = to_steps(space, qubits, depth)
        costs = estimate(steps, qubits, space.limit, memory)
        chosen = choose_form(costs, form, space, qubits, depth)
    except SpecError as err:
        raise err.located(space.file, space.source) from None
    weights = PerPosition(steps=steps, init=_weights_init(space, steps), costs=costs, norm=space.weights_norm)
    if chosen in WHOLE:
        return Program(name=space.name, qubits=qubits, depth=depth, weights=weights, nodes=(WHOLE[chosen](steps),),
                       angles_init=space.angles, angle_shape=shape, space=space)
    from qtc.compiler.pipeline import lower
    return replace(lower(space, qubits, depth), weights=weights)


def to_steps(space: SearchSpace, n: int, depth: int) -> tuple[tuple[Step, ...], tuple[int, ...]]:
    """The init slot, then every layer's slots, each with its alternatives' gate lists (built by
    `expand`'s own machinery, angles sized as there), and theta's shape; slots of two or more
    alternatives get a position."""
    memo: dict = {}
    layer_ops = [[[slot_ops(space, alt.items, n, layer, memo) for alt in slot.alts] for slot in space.layer]
                 for layer in range(depth)]
    init_ops = [slot_ops(space, alt.items, n, None, memo) for alt in space.init.alts] if space.init else []
    layer_ops, init_ops, shape = size_angles(layer_ops, init_ops, n, depth)
    slots = [("init", space.init, None, init_ops)] if space.init else []
    slots += [(f"layer {layer}.{s}", slot, layer, layer_ops[layer][s]) for layer in range(depth)
              for s, slot in enumerate(space.layer)]
    steps, pos = [], 0
    for name, slot, layer, alts in slots:
        weighted = len(alts) > 1
        steps.append(Step(name=name, labels=tuple(a.label for a in slot.alts), alts=tuple(alts),
                          position=pos if weighted else None, layer=layer))
        pos += weighted
    return tuple(steps), shape


def estimate(steps, n: int, limit: int, budget: int = CHANNEL_MEMORY) -> Costs:
    """Both forms' costs; the channel stores one density matrix per step plus scratch."""
    candidates = math.prod(len(s.alts) for s in steps)
    per_candidate = sum(sum(len(a) for a in s.alts) / len(s.alts) for s in steps)
    every_alt = sum(len(a) for s in steps for a in s.alts)
    return Costs(candidates=candidates, enumeration=float(candidates) * 2 ** n * per_candidate,
                 channel=4.0 ** n * every_alt, limit=limit, budget=budget,
                 channel_bytes=(len(steps) + 1 + SCRATCH_STATES) * BYTES_PER_ENTRY * 4 ** n)


def choose_form(costs: Costs, form: str, space: SearchSpace, n: int, depth: int) -> str:
    """The form asked for if it fits; "auto": the cheaper of those that fit (ties: enumeration,
    today's path). Neither fits: a located error with both costs and the sizes that would fit."""
    if form not in FORMS:
        raise QtcError(f"unknown form '{form}': expected one of {', '.join(FORMS)}")
    if form == "sampled":       # K statevectors of 2^n: the task's state memory check sizes them
        return form
    fits = {"enumeration": costs.enumeration_fits, "channel": costs.channel_fits}
    if form != "auto":
        if not fits[form]:
            raise _too_large(costs, space, n, depth, only=form)
        return form
    usable = [f for f in ("enumeration", "channel") if fits[f]]
    if not usable:
        raise _too_large(costs, space, n, depth)
    return min(usable, key=lambda f: getattr(costs, f))


def _too_large(costs: Costs, space: SearchSpace, n: int, depth: int, only: str | None = None):
    gib = costs.channel_bytes / 2 ** 30
    what = {"enumeration": f"enumeration would cost {costs.enumeration:.3g} gate-amplitude "
                           f"updates but {costs.candidates:,} candidates exceed the limit of "
                           f"{costs.limit:,}",
            "channel": f"the channel form would cost {costs.channel:.3g} but needs {gib:.3g} GiB "
                       f"of density matrices (budget {costs.budget / 2 ** 30:.3g} GiB)"}
    forms = [only] if only else ["enumeration", "channel"]
    fit = {"enumeration": _depth_that_enumerates(space, n),
           "channel": _qubits_for_channel(space, depth, costs.budget)}
    sizes = {"enumeration": f"depth {fit['enumeration']}" if fit["enumeration"] else None,
             "channel": f"qubits {fit['channel']}" if fit["channel"] else None}
    would = [f"{f} at {sizes[f]}" for f in forms if sizes[f]]
    hint = ("it fits " + " or ".join(would)) if would else "no size of this space fits"
    hint += " (raise the limit with 'limit N' to enumerate more)" if "enumeration" in forms else ""
    return SpecError(f"the space at {n} qubits, depth {depth} has {costs.candidates:,} candidates: "
                     + "; ".join(what[f] for f in forms), **space.at("weights"), hint=hint)


def _depth_that_enumerates(space: SearchSpace, n: int) -> int | None:
    """The largest depth (at most the spec's search bound) whose product fits the limit."""
    init = len(space.init.alts) if space.init else 1
    per_layer = math.prod(len(s.alts) for s in space.layer)
    if per_layer == 1:
        return None
    best = None
    for L in itertools.count(1):
        if init * per_layer ** L > space.limit:
            return best
        best = L


def _qubits_for_channel(space: SearchSpace, depth: int, budget: int) -> int | None:
    """The most qubits whose density matrices fit the channel form's budget at this depth."""
    steps = (1 if space.init else 0) + depth * len(space.layer) + 1 + SCRATCH_STATES
    n = int(math.log(budget / (steps * BYTES_PER_ENTRY), 4)) if budget else 0
    return n if n >= 1 else None


def _weights_init(space: SearchSpace, steps) -> tuple[tuple[float, ...], ...]:
    """Initial weights per position; in 'init E', C is the position's number of alternatives
    (so 'init 1 / C' is uniform per position and the product uniform over the candidates)."""
    out = []
    for s in steps:
        if s.position is None:
            continue
        k = len(s.alts)
        if space.weights_init is None:
            value = 1.0 / k if space.weights_norm == "raw" else 0.0
        else:
            value = float(evaluate_expr(space.weights_init, {"C": k, "pi": math.pi}))
        out.append((value,) * k)
    return tuple(out)
