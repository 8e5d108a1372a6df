"""render: kernel source text for the forward and adjoint backward passes.

One text, two compilers: the kernels are written against a small prelude of macros
(csrc/prelude.h), so the same source is a CUDA file (a thread is one lane of an 8-lane group;
lane shuffles are warp shuffles) and a C++ file for g++ -fopenmp (a loop iteration holds 8
lanes in a GCC vector; lane shuffles are __builtin_shuffle). Layout of the state buffer `st`:
each simulated circuit owns 2^n reals (real circuits) or a real plane followed by an imaginary
plane.

Kernels (all `extern "C"`; launched in this order):
  qtc_init(st)                              every state := |0...0>
  qtc_fwd_<j>(st, th)                       pass j of every circuit that has one
  qtc_out(st, wn, P)                        P[x] = sum_c wn[c] |psi_c[f_c(x)]|^2
  qtc_binit(st, lam, wn, g, gw)             lam_c = wn[c] g psi_c (through f_c), gw[c] = g . p_c
  qtc_bwd_<j>(st, lam, th, gth)             backward pass j: gradients, then un-apply
and, on the CPU only, qtc_forward / qtc_backward that call them in order and qtc_threads(k).
`Rendered.signature` lists every kernel's parameters by name: the launchers bind by name.

Two renderings write the passes (the Target's `rendering`, decided by compiler/cost.py for
"auto"): unrolled.py, straight-line code per op, and compact.py, one loop over tables of the
ops. Everything else in the text is common.py's, the same for both.
"""
from __future__ import annotations

from dataclasses import dataclass

from qtc.compiler.render import compact, unrolled
from qtc.compiler.render.common import signatures
from qtc.compiler.schedule import Plan
from qtc.compiler.target import Target


@dataclass(frozen=True)
class Rendered:
    """The kernel source and what the runtime and the cost model need to know about it:
    `signature` maps every kernel and CPU entry point to its parameters, as (C type, name);
    `library`, when not empty, is a second C++ source the CPU build links in (the compact
    rendering's passes: the same text for every program, so it is compiled once)."""
    text: str
    plan: Plan
    target: Target
    fwd_flops: int           # per forward (all circuits), from the emitted expressions
    bwd_flops: int
    signature: dict[str, tuple[tuple[str, str], ...]]
    library: str = ""

    @property
    def kernels(self) -> dict[str, list[str]]:
        """The kernels of a forward and of a backward, in launch order."""
        return {"forward": ["qtc_init"] + [f"qtc_fwd_{j}" for j in range(self.plan.fwd_kernels)]
                + ["qtc_out"],
                "backward": ["qtc_binit"] + [f"qtc_bwd_{j}" for j in range(self.plan.bwd_kernels)]}

    @property
    def launches(self) -> int:
        """Kernel launches of a training step (a forward and a backward), one per kernel."""
        return sum(len(names) for names in self.kernels.values())


def render(plan: Plan, target: Target) -> Rendered:
    """The kernels of a scheduled program for a Target whose rendering is decided ("unrolled"
    or "compact"; compiler.cost.with_rendering decides "auto")."""
    if target.rendering == "compact":
        text, fwd, bwd = compact.kernel_text(plan, target)
        library = compact.library(plan.lanes, target) if target.device == "cpu" else ""
    else:
        text, fwd, bwd = unrolled.kernel_text(plan, target)
        library = ""
    return Rendered(text, plan, target, fwd, bwd, signatures(text), library)
