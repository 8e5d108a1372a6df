"""The structural weights as tensors: their start, a fixed candidate's one-hot, the mixture the
ensemble runs under, and the flat list reports show.

The compiler only describes the weights (compiler.ir.PerCandidate: one per candidate;
PerPosition: a (positions, max alternatives) matrix, entries past a position's alternatives
padding); the maths on them is the runtime's, in torch, here. Every function takes the Program
and reads its layout through LAYOUTS, one entry per layout kind.
"""
from __future__ import annotations

import torch

from qtc.compiler.ir import PerCandidate, PerPosition, Program
from qtc.errors import QtcError


class _PerCandidate:
    """(C,) weights, one per candidate."""

    @staticmethod
    def matrix(layout: PerCandidate, weights, dtype) -> torch.Tensor:
        w = torch.as_tensor(weights)
        if w.shape != layout.shape:
            raise QtcError(f"weights have shape {tuple(w.shape)}, expected ({layout.count},)")
        return w.to(dtype)

    @staticmethod
    def given(layout: PerCandidate, weights) -> torch.Tensor:
        weights = torch.as_tensor(weights)
        return weights if weights.is_floating_point() else weights.to(torch.float64)

    @staticmethod
    def mask(layout: PerCandidate) -> torch.Tensor:
        return torch.ones(layout.shape, dtype=torch.bool)

    @staticmethod
    def initial(layout: PerCandidate, dtype) -> torch.Tensor:
        return torch.tensor(layout.init, dtype=dtype)

    @staticmethod
    def select(out: torch.Tensor, layout: PerCandidate, candidate: int) -> None:
        out[candidate] = 1.0

    @staticmethod
    def mixture(layout: PerCandidate, weights: torch.Tensor) -> torch.Tensor:
        return torch.softmax(weights, 0) if layout.norm == "softmax" else weights

    @staticmethod
    def per_candidate(layout: PerCandidate, W: torch.Tensor) -> torch.Tensor:
        return W

    @staticmethod
    def architecture(layout: PerCandidate, flat: list[float]) -> None:
        return None


class _PerPosition:
    """(positions, max alternatives) weights, padding zero."""

    @staticmethod
    def matrix(layout: PerPosition, weights, dtype) -> torch.Tensor:
        """(positions, max alternatives), or a stack of K of them (K, positions, max
        alternatives): K one-hot architectures for a sampled program."""
        rows, cols = layout.shape
        if isinstance(weights, (list, tuple)):
            if len(weights) != rows:
                raise QtcError(f"weights give {len(weights)} positions, expected {rows}")
            vecs = [torch.as_tensor(w, dtype=dtype).reshape(-1) for w in weights]
            for p, v in zip(layout.positions, vecs):
                if v.numel() != len(p.alts):
                    raise QtcError(f"position {p.name} has {len(p.alts)} alternatives, got "
                                   f"{v.numel()} weights")
            return torch.stack([torch.cat([v, v.new_zeros(cols - v.numel())]) for v in vecs])
        W = torch.as_tensor(weights).to(dtype)
        if W.shape[-2:] != (rows, cols) or W.dim() > 3:
            raise QtcError(f"weights have shape {tuple(W.shape)}, expected (positions, max "
                           f"alternatives) = ({rows}, {cols}), or K of them (K, {rows}, {cols})")
        return W * _PerPosition.mask(layout).to(W.device)

    @staticmethod
    def given(layout: PerPosition, weights) -> torch.Tensor:
        return _PerPosition.matrix(layout, weights, torch.float64)

    @staticmethod
    def mask(layout: PerPosition) -> torch.Tensor:
        out = torch.zeros(layout.shape, dtype=torch.bool)
        for i, p in enumerate(layout.positions):
            out[i, :len(p.alts)] = True
        return out

    @staticmethod
    def initial(layout: PerPosition, dtype) -> torch.Tensor:
        return _PerPosition.matrix(layout, list(layout.init), dtype)

    @staticmethod
    def select(out: torch.Tensor, layout: PerPosition, candidate: int) -> None:
        rest = candidate
        for s in reversed(layout.steps):            # mixed radix, the last slot varies fastest
            rest, k = divmod(rest, len(s.alts))
            if s.position is not None:
                out[s.position, k] = 1.0

    @staticmethod
    def mixture(layout: PerPosition, weights: torch.Tensor) -> torch.Tensor:
        W = _PerPosition.matrix(layout, weights, weights.dtype)
        m = _PerPosition.mask(layout).to(W.device)
        if layout.norm != "softmax":
            return W * m
        return torch.softmax(W.masked_fill(~m, float("-inf")), 1)

    @staticmethod
    def per_candidate(layout: PerPosition, W: torch.Tensor) -> torch.Tensor:
        out = torch.ones(1, dtype=W.dtype)
        for step in layout.steps:
            if step.position is not None:
                out = (out[:, None] * W[step.position, :len(step.alts)][None, :]).reshape(-1)
        return out

    @staticmethod
    def architecture(layout: PerPosition, flat: list[float]) -> str:
        return "; ".join(f"{pos} {lab}" for pos, lab in layout.favourites(flat))


LAYOUTS = {"candidate": _PerCandidate, "position": _PerPosition}


def _of(prog: Program):
    return LAYOUTS[prog.weights.kind]


def matrix(prog: Program, weights, dtype) -> torch.Tensor:
    """`weights` checked against the program, in `dtype`: (C,) for one weight per candidate;
    per position the (positions, max alternatives) matrix, padding zeroed (differentiable),
    given as that matrix or as a list of per-position vectors."""
    return _of(prog).matrix(prog.weights, weights, dtype)


def given(prog: Program, weights) -> torch.Tensor:
    """Weights as a user passes them to `probabilities`, as a floating tensor: one per candidate
    in their own dtype (float64 for integers), per position as the float64 matrix."""
    return _of(prog).given(prog.weights, weights)


def mask(prog: Program) -> torch.Tensor:
    """True where a weight entry stands for an alternative (False: a per-position matrix's padding)."""
    return _of(prog).mask(prog.weights)


def initial(prog: Program, dtype) -> torch.Tensor:
    """The trainable structural weights' start: (C,), or (positions, max alternatives)."""
    return _of(prog).initial(prog.weights, dtype)


def one_hot(prog: Program, candidate: int, dtype) -> torch.Tensor:
    """Frozen weights selecting one candidate (canonical order): per position, its choice."""
    out = torch.zeros(prog.weights.shape, dtype=dtype)
    _of(prog).select(out, prog.weights, candidate)
    return out


def mixture(prog: Program, weights: torch.Tensor) -> torch.Tensor:
    """The ensemble's mixture from the trainable structural weights, as the space says:
    softmax(weights) for `weights softmax`, the weights themselves for `weights raw` (per
    position: over each position's alternatives, padding zero)."""
    return _of(prog).mixture(prog.weights, weights)


def per_candidate(prog: Program, W: torch.Tensor) -> torch.Tensor:
    """The weight of every enumerated candidate in canonical (expand) order: the weights
    themselves, or per position w_c = prod_pos W[pos, k_pos(c)]."""
    return _of(prog).per_candidate(prog.weights, W)


def listed(prog: Program, W: torch.Tensor) -> torch.Tensor:
    """The weights of the program's listed candidates (`prog.labels`) from its layout's matrix
    `W`, which its candidate nodes weigh by: none for the channel form, whose Channel node mixes
    by W itself and whose candidates are not listed (there may be billions)."""
    return per_candidate(prog, W) if prog.labels else W.new_zeros(0)


def choices(layout: PerPosition, W: torch.Tensor) -> torch.Tensor:
    """The architectures a (K, positions, max alternatives) stack of one-hot weight matrices of a
    per-position `layout`
    (or one matrix: K = 1) selects, as a (K, steps) table of alternatives (0 at a fixed slot):
    what a sampled program runs. Anything but one-hot rows is a QtcError: a sampled program
    evaluates single architectures, never their mixture (the channel form's job)."""
    W = W.detach().reshape(-1, *layout.shape)
    pad = ~_PerPosition.mask(layout).to(W.device)
    ok = bool(((W == 0) | (W == 1)).all()) and bool((W.sum(-1) == 1).all()) and not bool(W[:, pad].any())
    if not ok:
        raise QtcError("a sampled program runs single architectures: every position's weights must "
                       "be one-hot (one 1, the rest 0); for the mixture of all architectures use the "
                       "channel or enumeration form (weights ... per position without 'search sampled')")
    picked = W.argmax(-1)                           # (K, positions)
    out = torch.zeros(len(W), len(layout.steps), dtype=torch.long)
    for s, step in enumerate(layout.steps):
        if step.position is not None:
            out[:, s] = picked[:, step.position]
    return out


def one_hots(prog: Program, picks: torch.Tensor, dtype) -> torch.Tensor:
    """The (K, positions, max alternatives) one-hot stack of K architectures given as (K,
    positions) alternatives (the inverse of `choices` on the positions)."""
    out = torch.zeros(len(picks), *prog.weights.shape, dtype=dtype)
    return out.scatter_(2, picks[:, :, None].long(), 1.0)


def flat(prog: Program, weights: torch.Tensor) -> list[float]:
    """The weights as a list aligned with `prog.weight_labels` (padding dropped)."""
    return weights.detach()[mask(prog)].tolist()


def architecture(prog: Program, weights: torch.Tensor) -> str | None:
    """Per-position weights: every position's favourite ("layer 0.0 ent; layer 0.1 RY"), the
    architecture found; None for one weight per candidate (the report lists them all)."""
    return _of(prog).architecture(prog.weights, flat(prog, weights))
