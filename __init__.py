"""qtc: a compiler and trainer for Quantum-Train with differentiable quantum architecture search."""
from __future__ import annotations

from qtc.runtime.threads import configure_waiting

__version__ = "0.1.0"
configure_waiting()   # before anything loads torch's OpenMP runtime (the kernels share it)


def compile(source, *, qubits=None, depth=None):  # noqa: A001 - the contract's name
    """Compile a search space (`.qs` path or spec text) into a Program that can be run
    (`.probabilities(theta, weights, backend=...)`: the README's "Python API")."""
    from qtc.compiler.pipeline import compile_space
    from qtc.runtime.backends import Runnable
    from qtc.settings import settings
    return Runnable.of(compile_space(source, qubits=qubits, depth=depth, channel_memory=settings().channel_memory))


def __getattr__(name: str):
    """`qtc.QTModel` (runtime/model.py), imported on first use: `qtc --help` does not load torch."""
    if name == "QTModel":
        from qtc.runtime.model import QTModel
        return QTModel
    raise AttributeError(f"module 'qtc' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What `dir(qtc)` and completion show: the module's names and the lazily imported QTModel."""
    return sorted([*globals(), "QTModel"])
