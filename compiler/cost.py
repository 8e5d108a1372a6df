"""The cost model of one training step, read off the scheduled plan and the rendered kernels.

Bytes moved come from the plan (every pass reads and writes its states once); flops were
counted by the renderer from the expressions it emitted. Nothing is scheduled or rendered
again here.
"""
from __future__ import annotations

from dataclasses import replace

from qtc.compiler.ir import Program, numbered
from qtc.compiler.render import Rendered
from qtc.compiler.render.compact import plan_flops
from qtc.compiler.schedule import Plan
from qtc.compiler.target import Target

H100_BANDWIDTH = 3.35e12  # bytes/s: what the report prices the traffic at
# Host cost of one kernel launch (CUDA driver + CuPy's call path), a lead to be measured on the
# device: at ~140 launches a step at 17 qubits this is as large as the memory traffic itself.
LAUNCH_OVERHEAD_S = 5e-6
# The unrolled renderer writes ~130 bytes per (op, register, state plane) of every pass (fitted
# on the paper space from (5, 2) to (17, 15): 129-172 bytes).
UNROLLED_BYTES_PER_STATEMENT = 130
UNROLLED_MAX_BYTES = 8 << 20   # "auto" never renders unrolled above this estimated size
# "auto" on the CPU: the unrolled passes step faster, the compact ones build in about a second
# (their kernel library is built once per dtype and machine). Unrolled is chosen when the time
# its build costs beyond the compact one is repaid within the run's training steps (the engines
# say how many: Built.sources(steps=...) -> QTGenerator -> Target.steps; HORIZON_STEPS when nobody said, a short run: Table
# II's damped SHM is 1,600 steps per model, FashionMNIST 10 epochs ~1,200). Measured
# on the 2-core AMD EPYC machine (AVX-512, g++ 12), idle, one thread, float64, the paper space
# (docs/results/speed.md; bench/generator_step.py --renderings unrolled compact): the unrolled
# source builds at 0.37 MB/s (2.8 MB in 7.7 s at (11, 10), 6.5 MB in 17.7 s at (17, 15)), a
# program's compact tables in 0.5-1.0 s; per step, against plan_flops, unrolled 44-61 GFlop/s
# and compact 31-41. So (11, 10) and (13, 10) render compact, (17, 15) unrolled.
UNROLLED_BUILD_BYTES_PER_S = 0.37e6
COMPACT_BUILD_S = 1.0
STEP_FLOPS_PER_S = {"unrolled": 55e9, "compact": 38e9}
HORIZON_STEPS = 2000


def phase_flops(n: int) -> int:
    """One phase form's step (runtime/phase.py), sin and cos not counted: 6 transforms of n
    butterfly stages (one add per entry each) and ~12 flops per entry around them."""
    return (6 * n + 12) << n


def bytes_moved(plan: Plan, itemsize: int) -> dict[str, int]:
    """The memory traffic model of one forward + backward step: every pass reads and writes
    its states once (the backward pass two states), plus the gather passes at the ends."""
    full = itemsize << plan.n
    fwd = sum(2 * c.planes * full * len(c.fwd) for c in plan.circuits)
    bwd = sum(4 * c.planes * full * len(c.bwd) for c in plan.circuits)
    # init writes, output gather reads states and writes P; backward init reads g, states and
    # writes lambda
    ends = sum(c.planes * full for c in plan.circuits) * 4 + full * 2
    # a phase form (float64 whatever the dtype): its 6 transforms sweep their array ~3 times
    # (radix 8 past the L1 blocks), ~10 element-wise sweeps around them
    phases = len(plan.phases) * (6 * 3 * 2 + 10) * (8 << plan.n)
    return {"forward": fwd, "backward": bwd, "gather": ends, "phase forms": phases,
            "total": fwd + bwd + ends + phases}


def unrolled_statements(plan: Plan) -> int:
    """(op, register, state plane) blocks the unrolled renderer writes: each pass's ops times
    its 2^rank registers times the planes of its states (the backward pass holds two states)."""
    blocks = lambda passes: sum(len(p.ops) << p.rank for p in passes)  # noqa: E731
    return sum(c.planes * (blocks(c.fwd) + 2 * blocks(c.bwd)) for c in plan.circuits)


def unrolled_bytes(plan: Plan) -> int:
    """The size the unrolled source would have, estimated without rendering it."""
    return UNROLLED_BYTES_PER_STATEMENT * unrolled_statements(plan)


def build_seconds(plan: Plan) -> dict[str, float]:
    """The estimated cold build of each rendering on the CPU (the compact library excluded)."""
    return {"unrolled": unrolled_bytes(plan) / UNROLLED_BUILD_BYTES_PER_S, "compact": COMPACT_BUILD_S}


def step_seconds(plan: Plan) -> dict[str, float]:
    """The estimated CPU step (forward and backward, one thread) of each rendering."""
    flops = plan_flops(plan, False) + plan_flops(plan, True)
    return {r: flops / rate for r, rate in STEP_FLOPS_PER_S.items()}


def with_rendering(plan: Plan, target: Target) -> Target:
    """The Target with its rendering decided. "auto": never unrolled above UNROLLED_MAX_BYTES of
    estimated source; on the CPU, unrolled when its extra build time is repaid by its faster
    steps within target.steps (default HORIZON_STEPS) steps, else compact; on the GPU compact (NVRTC on the unrolled
    source is the known risk: `nvcc --ptx -arch=sm_90` took 57 s of CPU for (11, 10) float32,
    against 7.4 s for the compact (17, 15) source; neither rendering has run on a device yet)."""
    if target.rendering != "auto":
        return target
    if unrolled_bytes(plan) > UNROLLED_MAX_BYTES or target.device == "cuda":
        return replace(target, rendering="compact")
    build, step = build_seconds(plan), step_seconds(plan)
    steps = target.steps or HORIZON_STEPS
    repaid = build["unrolled"] - build["compact"] <= steps * (step["compact"] - step["unrolled"])
    return replace(target, rendering="unrolled" if repaid else "compact")


def cost_report(prog: Program, kernels: Rendered) -> str:
    """Deterministic text: passes, launches, bytes moved and flops per training step, and the
    time the bytes imply at the memory bandwidth of an H100."""
    plan, target = kernels.plan, kernels.target
    traffic = bytes_moved(plan, target.itemsize)
    dim = 1 << plan.n
    launches = kernels.launches
    lines = [f"cost model: {plan.name}, {plan.n} qubits, depth {plan.depth}, {target.dtype}",
             f"rendering: {target.rendering}, {len(kernels.text.encode())} bytes of source (unrolled: "
             f"~{unrolled_bytes(plan)} bytes estimated)",
             _choice(plan, target.steps or HORIZON_STEPS),
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
        node = prog.nodes[i]
        lines.append(f"constant [{numbered(node.members)}] {prog.label_of(node)}: exact, "
                     f"no simulation")
    for i in plan.phases:
        node = prog.nodes[i]
        lines.append(f"phase form [{numbered(node.members)}] {prog.label_of(node)}: {len(node.terms)} terms; "
                     f"6 Walsh-Hadamard transforms of {dim} entries and {dim} sin/cos per step "
                     f"(compiler/csrc/phase.c, float64)")
    total_flops = (kernels.fwd_flops + kernels.bwd_flops + 8 * dim * len(plan.circuits)
                   + len(plan.phases) * phase_flops(plan.n))
    lines += [f"bytes per step: {traffic['total']} (forward passes {traffic['forward']}, "
              f"backward passes {traffic['backward']}, gathers {traffic['gather']}, "
              f"phase forms {traffic['phase forms']})",
              f"flops per step: {total_flops} (forward {kernels.fwd_flops}, backward {kernels.bwd_flops}, "
              f"phase forms {len(plan.phases) * phase_flops(plan.n)})",
              f"arithmetic intensity: {total_flops / max(traffic['total'], 1):.3f} flop/byte",
              f"time at H100 bandwidth (3.35 TB/s): {traffic['total'] / H100_BANDWIDTH * 1e6:.2f} us",
              f"launch overhead: {launches} launches x {LAUNCH_OVERHEAD_S * 1e6:g} us = "
              f"{launches * LAUNCH_OVERHEAD_S * 1e6:.2f} us per step (unless replayed as a CUDA graph)"]
    return "\n".join(lines) + "\n"


def _choice(plan: Plan, steps: int) -> str:
    """How "auto" weighs the renderings on the CPU (the estimates with_rendering compares)."""
    build, step = build_seconds(plan), step_seconds(plan)
    return (f"cpu estimates: build unrolled {build['unrolled']:.1f} s, compact {build['compact']:.1f} s "
            f"(+ its library once); step unrolled {step['unrolled'] * 1e3:.3g} ms, compact "
            f"{step['compact'] * 1e3:.3g} ms; auto: unrolled when the extra build is repaid within "
            f"{steps} steps (and under {UNROLLED_MAX_BYTES} bytes)")


def _ranks(passes) -> str:
    counts: dict[int, int] = {}
    for p in passes:
        counts[p.rank] = counts.get(p.rank, 0) + 1
    return " ".join(f"{k}x{v}" for k, v in sorted(counts.items())) or "-"
