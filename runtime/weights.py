"""The structural weights as tensors: their start, a fixed candidate's one-hot, the mixture the
ensemble runs under, and the flat list reports show.

The compiler only describes the weights (a Program's one per candidate; a per-position space's
(positions, max alternatives) matrix, entries past a position's alternatives padding); the
maths on them is the runtime's, in torch, here. One API for both kinds of program.
"""
from __future__ import annotations

import torch

from qtc.compiler.factorised import Factorised
from qtc.errors import QtcError


def matrix(prog, weights, dtype) -> torch.Tensor:
    """`weights` checked against the program: (C,) for one weight per candidate; per position the
    (positions, max alternatives) matrix, padding zeroed (differentiable), given as that matrix
    or as a list of per-position vectors."""
    if not isinstance(prog, Factorised):
        w = torch.as_tensor(weights)
        if w.shape != (len(prog.labels),):
            raise QtcError(f"weights have shape {tuple(w.shape)}, expected ({len(prog.labels)},)")
        return w.to(dtype)
    rows, cols = prog.weights_shape
    if isinstance(weights, (list, tuple)):
        if len(weights) != rows:
            raise QtcError(f"weights give {len(weights)} positions, expected {rows}")
        vecs = [torch.as_tensor(w, dtype=dtype).reshape(-1) for w in weights]
        for p, v in zip(prog.positions, vecs):
            if v.numel() != len(p.alts):
                raise QtcError(f"position {p.name} has {len(p.alts)} alternatives, got "
                               f"{v.numel()} weights")
        return torch.stack([torch.cat([v, v.new_zeros(cols - v.numel())]) for v in vecs])
    W = torch.as_tensor(weights).to(dtype)
    if W.shape != (rows, cols):
        raise QtcError(f"weights have shape {tuple(W.shape)}, expected (positions, max "
                       f"alternatives) = ({rows}, {cols})")
    return W * mask(prog).to(W.device)


def given(prog, weights) -> torch.Tensor:
    """Weights as a user passes them to `probabilities`, as a floating tensor: one per candidate
    in their own dtype (float64 for integers), per position as the float64 matrix."""
    if isinstance(prog, Factorised):
        return matrix(prog, weights, torch.float64)
    weights = torch.as_tensor(weights)
    return weights if weights.is_floating_point() else weights.to(torch.float64)


def mask(prog) -> torch.Tensor:
    """True where a weight entry stands for an alternative (False: a per-position matrix's padding)."""
    if not isinstance(prog, Factorised):
        return torch.ones(len(prog.labels), dtype=torch.bool)
    rows, cols = prog.weights_shape
    out = torch.zeros(rows, cols, dtype=torch.bool)
    for i, p in enumerate(prog.positions):
        out[i, :len(p.alts)] = True
    return out


def initial(prog, dtype) -> torch.Tensor:
    """The trainable structural weights' start: (C,), or (positions, max alternatives)."""
    if not isinstance(prog, Factorised):
        return torch.tensor(prog.weights_init, dtype=dtype)
    return matrix(prog, list(prog.weights_init), dtype)


def one_hot(prog, candidate: int, dtype) -> torch.Tensor:
    """Frozen weights selecting one candidate (canonical order): per position, its choice."""
    out = torch.zeros(mask(prog).shape, dtype=dtype)
    if not isinstance(prog, Factorised):
        out[candidate] = 1.0
        return out
    rest = candidate
    for s in reversed(prog.steps):            # mixed radix, the last slot varies fastest
        rest, k = divmod(rest, len(s.alts))
        if s.position is not None:
            out[s.position, k] = 1.0
    return out


def mixture(prog, weights: torch.Tensor) -> torch.Tensor:
    """The ensemble's mixture from the trainable structural weights, as the space says:
    softmax(weights) for `weights softmax`, the weights themselves for `weights raw` (per
    position: over each position's alternatives, padding zero)."""
    if not isinstance(prog, Factorised):
        return torch.softmax(weights, 0) if prog.weights_norm == "softmax" else weights
    W = matrix(prog, weights, weights.dtype)
    m = mask(prog).to(W.device)
    if prog.weights_norm != "softmax":
        return W * m
    return torch.softmax(W.masked_fill(~m, float("-inf")), 1)


def per_candidate(prog: Factorised, W: torch.Tensor) -> torch.Tensor:
    """w_c = prod_pos W[pos, k_pos(c)] for every candidate in canonical (expand) order."""
    out = torch.ones(1, dtype=W.dtype)
    for step in prog.steps:
        if step.position is not None:
            out = (out[:, None] * W[step.position, :len(step.alts)][None, :]).reshape(-1)
    return out


def choices(prog: Factorised, W: torch.Tensor) -> list[int]:
    """Per step, the alternative of its largest weight (a fixed slot: its only one)."""
    W = W.detach()
    return [0 if s.position is None else int(torch.argmax(W[s.position, :len(s.alts)]))
            for s in prog.steps]


def flat(prog, weights: torch.Tensor) -> list[float]:
    """The weights as a list aligned with `prog.weight_labels` (padding dropped)."""
    return weights.detach()[mask(prog)].tolist()


def unflatten(prog, values) -> torch.Tensor:
    """The inverse of `flat`: a list aligned with `weight_labels` as the program's weights."""
    m = mask(prog)
    out = torch.zeros(m.shape, dtype=torch.float64)
    out[m] = torch.as_tensor(values, dtype=torch.float64)
    return out
