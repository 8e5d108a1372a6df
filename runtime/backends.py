"""Backend selection and the `Program.probabilities` entry point.

`reference` simulates the unoptimised candidates with torch autograd (the oracle); compiled
backends (`cpu`, `cuda`) register themselves in BACKENDS. `auto` picks cuda when a GPU and CuPy
are present, else cpu when a C++ compiler is, else reference (with a one-line notice).
The environment variable QTC_BACKEND overrides `auto`.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import torch

from qtc.errors import QtcError, did_you_mean

# name -> (is_available() -> bool, probabilities(prog, theta, weights) -> Tensor)
BACKENDS: dict[str, tuple[Callable[[], bool], Callable]] = {}
_noticed: set[str] = set()


def register(name: str, available: Callable[[], bool], fn: Callable) -> None:
    BACKENDS[name] = (available, fn)


def _reference(prog, theta, weights):
    from qtc.runtime.reference import probabilities
    return probabilities(prog, theta, weights)


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
        backend = os.environ.get("QTC_BACKEND", "auto")
    if backend == "auto":
        for name in ("cuda", "cpu"):
            if name in BACKENDS and BACKENDS[name][0]():
                return name
        _notice("qtc: no compiled backend available (no GPU, no C++ compiler): using the slow "
                "reference backend")
        return "reference"
    if backend not in BACKENDS:
        hint = did_you_mean(backend, list(BACKENDS) + ["auto"])
        raise QtcError(f"unknown backend '{backend}'" + (f": {hint}" if hint else ""))
    if not BACKENDS[backend][0]():
        raise QtcError(f"backend '{backend}' is not available on this machine "
                       f"(available: {', '.join(available_backends())})")
    return backend


def _notice(message: str) -> None:
    if message not in _noticed:
        _noticed.add(message)
        print(message, file=sys.stderr)


def probabilities(prog, theta: torch.Tensor, weights: torch.Tensor, *, backend: str = "auto"):
    theta = torch.as_tensor(theta)
    weights = torch.as_tensor(weights)
    if not theta.is_floating_point():
        theta = theta.to(torch.get_default_dtype())
    if tuple(theta.shape) != prog.angle_shape:
        what = "(depth, qubits" + (", angles per gate)" if len(prog.angle_shape) == 3 else ")")
        raise QtcError(f"theta has shape {tuple(theta.shape)}, expected {what} = {prog.angle_shape}")
    if weights.shape != (len(prog.labels),):
        raise QtcError(f"weights have shape {tuple(weights.shape)}, expected ({len(prog.labels)},)")
    return BACKENDS[resolve(backend)][1](prog, theta, weights.to(theta.dtype))
