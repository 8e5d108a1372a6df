"""Target: where the generated kernels run and with what limits, as one frozen value.

The back half of the pipeline (schedule, render) reads everything machine-dependent from the
Target instead of module constants and dtype/device strings, and `Target.key` is part of every
kernel cache key, so two targets never share a compiled kernel by accident.
"""
from __future__ import annotations

from dataclasses import dataclass

from qtc.errors import QtcError

# dtype -> (C type of a real, bytes per real, C integer type of a lane-index vector, cos, sin)
DTYPES = {"float64": ("double", 8, "long long", "cos", "sin"),
          "float32": ("float", 4, "int", "cosf", "sinf")}
DEVICES = ("cpu", "cuda")
# largest tile rank (block directions per pass) by (direction, real circuit): 2^rank vectors
# per state plane stay in registers; the backward pass holds two states.
MAX_RANK = (("fwd", True, 4), ("fwd", False, 3), ("bwd", True, 3), ("bwd", False, 2))
# how the passes become source: "unrolled" (one block of code per op and register), "compact"
# (one loop over a table of the ops, compiler/csrc/compact.h) or "auto" (the cost model chooses by the
# size of the unrolled source: compiler/cost.py)
from qtc.settings import RENDERINGS  # noqa: E402 - with the comment above it


@dataclass(frozen=True)
class Target:
    """device: "cpu" (g++ -fopenmp, a GCC vector per loop iteration) or "cuda" (NVRTC, a lane
    group of threads); dtype: the real type of states and angles ("float64" or "float32");
    lanes: log2 of the vector width (8 lanes = one 64-byte AVX-512 vector of doubles, or 8
    neighbouring GPU threads); max_rank: register limits as (direction, real, rank) rows;
    rendering: one of RENDERINGS; steps: the training steps the program is expected to run,
    which "auto" weighs the unrolled build against (None: compiler.cost.HORIZON_STEPS)."""
    device: str = "cpu"
    dtype: str = "float64"
    lanes: int = 3
    max_rank: tuple[tuple[str, bool, int], ...] = MAX_RANK
    rendering: str = "auto"
    steps: int | None = None

    def __post_init__(self):
        if self.device not in DEVICES:
            raise QtcError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise QtcError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.rendering not in RENDERINGS:
            raise QtcError(f"rendering must be one of {', '.join(RENDERINGS)}, got {self.rendering!r}")
        if not 0 <= self.lanes <= 3:
            raise QtcError(f"lanes must be in 0..3 (at most 8 lanes), got {self.lanes}")
        if self.steps is not None and self.steps < 1:
            raise QtcError(f"steps must be >= 1, got {self.steps}")

    @property
    def key(self) -> str:
        """Stable text naming every field: part of the kernel cache keys."""
        ranks = ",".join(f"{d}{'r' if real else 'c'}{k}" for d, real, k in self.max_rank)
        # the expected steps only matter while the rendering is undecided
        steps = f"/steps{self.steps}" if self.rendering == "auto" and self.steps is not None else ""
        return f"{self.device}/{self.dtype}/lanes{self.lanes}/rank{ranks}/{self.rendering}{steps}"

    def rank(self, direction: str, real: bool) -> int:
        """The largest tile rank for a forward ("fwd") or backward ("bwd") pass."""
        return next(k for d, r, k in self.max_rank if (d, r) == (direction, real))

    @property
    def c_real(self) -> str:
        return DTYPES[self.dtype][0]

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype][1]

    @property
    def c_lane_index(self) -> str:
        return DTYPES[self.dtype][2]

    @property
    def c_cos_sin(self) -> tuple[str, str]:
        return DTYPES[self.dtype][3], DTYPES[self.dtype][4]
