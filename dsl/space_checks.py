"""The checks of a search space that need no qubit count, run once it is parsed (parse_space).

Every name a gate call uses is bound where it is used (built-ins, 'layer' inside the layer
statement, loop variables), every gate exists and gets its arguments, theta stands only in the
layer statement's angles, every pattern a slot names exists, and patterns name each other
without cycles and not too deep. Checked here, the errors point at the spec text; what needs
the number of qubits (ranges, qubit indices) is checked at expansion (qtc.compiler.expand).
"""
from __future__ import annotations

from qtc.dsl.expr import BUILTINS, Expr, Theta, Var, check_affine, children, thetas
from qtc.dsl.gatenames import GATES
from qtc.dsl.space import (MAX_CLAUSES, MAX_PATTERN_DEPTH, Call, Compare, Cond, Loop, Ref, SearchSpace,
                           Slot)
from qtc.errors import SpecError, did_you_mean


def check_space(space: SearchSpace) -> None:
    """Raise the first SpecError of `space`, in the order: layer, patterns, init, layer slots, weights."""
    if not space.layer:
        raise space.error("the space has no 'layer' statement",
                          "add e.g. 'layer = choose { ry(q, theta[layer, q]) for q in all }'")
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
    slots = (space.init,) * (space.init is not None) + tuple(space.layer)
    if space.weights_per_position and not any(len(slot.alts) >= 2 for slot in slots):
        raise SpecError("weights per position need a position that chooses, but no choice of this "
                        "space has two or more alternatives (a 'choose' of one alternative is no "
                        "choice): there would be no structural weight to train",
                        **space.at("weights"), hint="give a choice two alternatives, e.g. 'choose { "
                        "rx(q, theta[layer, q]) for q in all | ry(q, theta[layer, q]) for q in all }', "
                        "or train this one circuit alone: drop 'per position' (one candidate)")
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
