"""The cost model of one training step, read off the scheduled plan and the rendered kernels.

Bytes moved come from the plan (every pass reads and writes its states once); flops were
counted by the renderer from the expressions it emitted. Nothing is scheduled or rendered
again here.
"""
from __future__ import annotations

from dataclasses import replace

from qtc.compiler.ir import Program, numbered
from qtc.compiler.render import Rendered
from qtc.compiler.schedule import Plan
from qtc.compiler.target import Target

H100_BANDWIDTH = 3.35e12  # bytes/s: what the report prices the traffic at
# Host cost of one kernel launch (CUDA driver + CuPy's call path), a lead to be measured on the
# device: at ~140 launches a step at 17 qubits this is as large as the memory traffic itself.
LAUNCH_OVERHEAD_S = 5e-6
# The unrolled renderer writes ~130 bytes per (op, register, state plane) of every pass (fitted
# on the paper space from (5, 2) to (17, 15): 129-172 bytes). Measured on the shared 2-core
# machine (load 7-13; README "Kernel rendering"): at (11, 10) the unrolled 3.3 MB took 808 s of wall
# time to build cold and 6.6 ms CPU per step, the compact 0.1 MB 14 s and 32.8 ms. The compact
# passes are not as fast yet, so "auto" keeps the unrolled ones wherever they build at all
# (7.5 MB at (17, 15), 28-38 s on an idle machine) and renders compact beyond that;
# QTC_RENDERING=compact or `qtc compile --rendering compact` chooses the quick build.
UNROLLED_BYTES_PER_STATEMENT = 130
UNROLLED_MAX_BYTES = 8 << 20   # "auto" renders compact above this estimated unrolled size


def bytes_moved(plan: Plan, itemsize: int) -> dict[str, int]:
    """The memory traffic model of one forward + backward step: every pass reads and writes
    its states once (the backward pass two states), plus the gather passes at the ends."""
    full = itemsize << plan.n
    fwd = sum(2 * c.planes * full * len(c.fwd) for c in plan.circuits)
    bwd = sum(4 * c.planes * full * len(c.bwd) for c in plan.circuits)
    # init writes, output gather reads states and writes P; backward init reads g, states and
    # writes lambda
    ends = sum(c.planes * full for c in plan.circuits) * 4 + full * 2
    return {"forward": fwd, "backward": bwd, "gather": ends, "total": fwd + bwd + ends}


def unrolled_statements(plan: Plan) -> int:
    """(op, register, state plane) blocks the unrolled renderer writes: each pass's ops times
    its 2^rank registers times the planes of its states (the backward pass holds two states)."""
    blocks = lambda passes: sum(len(p.ops) << p.rank for p in passes)  # noqa: E731
    return sum(c.planes * (blocks(c.fwd) + 2 * blocks(c.bwd)) for c in plan.circuits)


def unrolled_bytes(plan: Plan) -> int:
    """The size the unrolled source would have, estimated without rendering it."""
    return UNROLLED_BYTES_PER_STATEMENT * unrolled_statements(plan)


def with_rendering(plan: Plan, target: Target) -> Target:
    """The Target with its rendering decided: "auto" is unrolled up to UNROLLED_MAX_BYTES of
    estimated unrolled source (the fastest passes), compact above (a build in seconds)."""
    if target.rendering != "auto":
        return target
    big = unrolled_bytes(plan) > UNROLLED_MAX_BYTES
    return replace(target, rendering="compact" if big else "unrolled")


def cost_report(prog: Program, kernels: Rendered) -> str:
    """Deterministic text: passes, launches, bytes moved and flops per training step, and the
    time the bytes imply at the memory bandwidth of an H100."""
    plan, target = kernels.plan, kernels.target
    traffic = bytes_moved(plan, target.itemsize)
    dim = 1 << plan.n
    launches = len(kernels.kernels["forward"]) + len(kernels.kernels["backward"])
    lines = [f"cost model: {plan.name}, {plan.n} qubits, depth {plan.depth}, {target.dtype}",
             f"rendering: {target.rendering}, {len(kernels.text.encode())} bytes of source (unrolled: "
             f"~{unrolled_bytes(plan)} bytes estimated; auto renders compact above {UNROLLED_MAX_BYTES})",
             f"simulated circuits: {len(plan.circuits)}; exact constants: {len(plan.constants)}",
             f"state buffer: {plan.size} reals ({plan.size * target.itemsize} bytes); lanes {1 << plan.lanes}",
             f"launches per step: forward {len(kernels.kernels['forward'])}, "
             f"backward {len(kernels.kernels['backward'])}"]
    for c in plan.circuits:
        kind = "real" if c.real else "complex"
        lines.append(f"circuit [{numbered(c.members)}] {kind} {c.label}: "
                     f"{len(c.lowered.ops)} ops after frames; forward {len(c.fwd)} passes "
                     f"(ranks {_ranks(c.fwd)}), backward {len(c.bwd)} passes (ranks {_ranks(c.bwd)})")
    for i in plan.constants:
        node = prog.circuits[i]
        lines.append(f"constant [{numbered(node.members)}] {prog.label_of(node)}: exact, "
                     f"no simulation")
    total_flops = kernels.fwd_flops + kernels.bwd_flops + 8 * dim * len(plan.circuits)
    lines += [f"bytes per step: {traffic['total']} (forward passes {traffic['forward']}, "
              f"backward passes {traffic['backward']}, gathers {traffic['gather']})",
              f"flops per step: {total_flops} (forward {kernels.fwd_flops}, backward {kernels.bwd_flops})",
              f"arithmetic intensity: {total_flops / max(traffic['total'], 1):.3f} flop/byte",
              f"time at H100 bandwidth (3.35 TB/s): {traffic['total'] / H100_BANDWIDTH * 1e6:.2f} us",
              f"launch overhead: {launches} launches x {LAUNCH_OVERHEAD_S * 1e6:g} us = "
              f"{launches * LAUNCH_OVERHEAD_S * 1e6:.2f} us per step (unless replayed as a CUDA graph)"]
    return "\n".join(lines) + "\n"


def _ranks(passes) -> str:
    counts: dict[int, int] = {}
    for p in passes:
        counts[p.rank] = counts.get(p.rank, 0) + 1
    return " ".join(f"{k}x{v}" for k, v in sorted(counts.items())) or "-"
