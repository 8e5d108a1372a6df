"""The C sources qtc ships: the kernel prelude and CPU drivers the renderer wraps around every
program (prelude.h, host.c), the compact rendering's table-driven passes (compact.h,
compact_lib.c), the phase forms' CPU kernels (phase.c), the channel form's kernels
(channel.c), the sampled form's (sampled.c) and the generator's tail on the CPU (mapping.c). None of them depends on a program. `source` is the one way to read them, in a
checkout and in an installed wheel alike (importlib.resources: no path arithmetic).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The text of the shipped C file `name` (e.g. "phase.c"), read once per process."""
    return resources.files(__name__).joinpath(name).read_text()
