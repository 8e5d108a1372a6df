"""Backend selection, the dtype rule, and `probabilities`: what `qtc.compile(...)` runs.

`reference` simulates the unoptimised candidates with torch autograd (the oracle); compiled
backends (`cpu`, `cuda`) register themselves in BACKENDS. `auto` picks cuda when a GPU and CuPy
are present, else cpu when a C++ compiler is, else reference (with a one-line notice).
QTC_BACKEND (qtc.settings) overrides `auto`. Angles are float32 or float64 on every
backend (the probabilities come back in theta's dtype); anything else is a QtcError.
"""
from __future__ import annotations

import sys
from dataclasses import fields
from typing import Callable

import torch

from qtc.compiler.ir import Program
from qtc.dsl.values import backend_hint
from qtc.errors import QtcError
from qtc.settings import setting
from qtc.runtime import weights as structural

ANGLE_DTYPES = (torch.float32, torch.float64)

# name -> (is_available() -> bool, probabilities(prog, theta, W, steps) -> Tensor), W the weight
# layout's matrix (runtime.weights.matrix)
BACKENDS: dict[str, tuple[Callable[[], bool], Callable]] = {}
# name -> what is missing when it is not available (a sentence), for the error message
MISSING: dict[str, Callable[[], str | None]] = {}
_noticed: set[str] = set()


def register(name: str, available: Callable[[], bool], fn: Callable,
             missing: Callable[[], str | None] | None = None) -> None:
    BACKENDS[name] = (available, fn)
    if missing is not None:
        MISSING[name] = missing


def _reference(prog, theta, W, steps):
    from qtc.runtime.reference import program_probabilities
    return program_probabilities(prog, theta, W)


register("reference", lambda: True, _reference)


def _load_compiled_backends() -> None:
    try:
        import qtc.runtime.kernels  # noqa: F401 - registers cpu/cuda when present
    except ImportError:
        pass


def available_backends() -> list[str]:
    _load_compiled_backends()
    return [name for name, (ok, _) in BACKENDS.items() if ok()]


def resolve(backend: str = "auto") -> str:
    _load_compiled_backends()
    if backend == "auto":
        backend = setting("backend")
    if backend == "auto":
        for name in ("cuda", "cpu"):
            if name in BACKENDS and BACKENDS[name][0]():
                return name
        _notice("qtc: no compiled backend available (no GPU, no C++ compiler): using the slow "
                "reference backend")
        return "reference"
    if backend not in BACKENDS:
        hint = backend_hint(backend)
        raise QtcError(f"unknown backend '{backend}'" + (f": {hint}" if hint else ""))
    if not BACKENDS[backend][0]():
        why = MISSING.get(backend, lambda: None)()
        raise QtcError(f"backend '{backend}' is not available on this machine"
                       + (f": {why}" if why else "")
                       + f" (available: {', '.join(available_backends())})")
    return backend


def _notice(message: str) -> None:
    if message not in _noticed:
        _noticed.add(message)
        print(message, file=sys.stderr)


def probabilities(prog: Program, theta: torch.Tensor, weights, *, backend: str = "auto",
                  steps: int | None = None) -> torch.Tensor:
    """sum_c w_c p_c(theta) with `weights` as given (the mixture itself, no normalisation),
    shape (2**qubits,), in theta's dtype, differentiable in both. `weights` follow the
    program's layout: one per candidate, or per position (a matrix or a list of vectors, and
    w_c = prod_pos weights[pos, k_pos(c)]). `steps`: the training steps the caller expects to
    run (compiled kernels only: "auto" renders unrolled when its build is repaid within them)."""
    theta = torch.as_tensor(theta)
    if theta.dtype not in ANGLE_DTYPES:
        raise QtcError(f"theta has dtype {str(theta.dtype).removeprefix('torch.')}; qtc computes in "
                       "float32 or float64: convert it first (theta.float() or theta.double())")
    if tuple(theta.shape) != prog.angle_shape:
        what = "(depth, qubits" + (", angles per gate)" if len(prog.angle_shape) == 3 else ")")
        raise QtcError(f"theta has shape {tuple(theta.shape)}, expected {what} = {prog.angle_shape}")
    return BACKENDS[resolve(backend)][1](prog, theta, structural.matrix(prog, weights, theta.dtype), steps)


class Runnable(Program):
    """A compiled Program that can be run (what `qtc.compile` returns): `probabilities`."""

    @classmethod
    def of(cls, prog: Program) -> "Runnable":
        return cls(**{f.name: getattr(prog, f.name) for f in fields(prog)})

    def probabilities(self, theta, weights, *, backend: str = "auto", steps: int | None = None) -> torch.Tensor:
        """P = sum_c v_c p_c(theta), shape (2**qubits,), differentiable in theta and weights,
        where v = mixture(weights) applies the space's normalisation (softmax for `weights
        softmax`), exactly as QTGenerator does with its structural weights."""
        return probabilities(self, theta, structural.mixture(self, structural.given(self, weights)),
                             backend=backend, steps=steps)
