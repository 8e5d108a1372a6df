"""Benchmark: the sampled form (K architectures per step) against the exact channel form (issue 31).

A step is what each form's generator step costs in the simulator, in float64 on the cpu
backend: the channel form's P = ensemble(theta, W), loss g . P, backward to theta and W (as
bench/channel_step.py times it); the sampled form's K architectures drawn from softmax
per-position weights, P (K x 2^n) through the kernel that takes them as a table of choices,
loss mean_k g . P_k, backward to theta. Both from the same theta, on
specs/hadamard_ent_rot_per_layer_softmax.qs. It reports CPU seconds (process time, all threads:
the steadier figure on a shared machine) beside wall seconds, the median of `--reps` steps after
a warm-up step (which also builds the kernels), and each sampled K's ratio to the channel form
measured in the same run. A size whose channel form does not fit its density-matrix budget
(QTC_CHANNEL_MEMORY) is reported as such, with the memory it would need.

    OMP_NUM_THREADS=1 python bench/sampled_step.py                  # (11,10) and (13,10), K = 1 4 8
    OMP_NUM_THREADS=1 python bench/sampled_step.py --sizes 11,10 --reps 3 --json out.json

This is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from qtc.compiler.factorised import lower_factorised
from qtc.dsl.space import parse_space
from qtc.errors import SpecError
from qtc.runtime import weights as structural
from qtc.runtime.backends import probabilities

SPEC = Path(__file__).resolve().parents[1] / "specs" / "hadamard_ent_rot_per_layer_softmax.qs"
SIZES = [(11, 10), (13, 10)]
SAMPLES = (1, 4, 8)


def _timed(step) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - w0, time.process_time() - c0


def _median(step, reps: int) -> dict:
    step()                                     # warm-up: builds the kernels
    times = [_timed(step) for _ in range(reps)]
    return {"wall_s": statistics.median(t[0] for t in times), "cpu_s": statistics.median(t[1] for t in times)}


def channel_step(prog, theta, W, g):
    def step():
        theta.grad = W.grad = None
        (probabilities(prog, theta, W, backend="cpu") * g).sum().backward()
    return step


def sampled_step(prog, theta, W, g, K: int, gen: torch.Generator):
    def step():
        theta.grad = None
        probs = structural.mixture(prog, W.detach())
        picks = torch.multinomial(probs, K, replacement=True, generator=gen).T
        P = probabilities(prog, theta, structural.one_hots(prog, picks, theta.dtype), backend="cpu")
        ((P * g).sum() / K).backward()
    return step


def measure(space, n: int, L: int, reps: int) -> dict:
    torch.manual_seed(0)
    sampled = lower_factorised(space, n, L, form="sampled")
    theta = torch.randn(sampled.angle_shape, dtype=torch.float64, requires_grad=True)
    W = torch.randn(sampled.weights.shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2 ** n, dtype=torch.float64)
    row = {"n": n, "L": L, "candidates": sampled.weights.count}
    try:
        channel = lower_factorised(space, n, L, form="channel")
        mixture = structural.mixture(channel, W.detach()).requires_grad_()
        row["channel"] = _median(channel_step(channel, theta, mixture, g), reps)
    except SpecError as err:
        row["channel"] = {"fits": False, "why": str(err).splitlines()[0].split("error: ", 1)[-1]}
    for K in SAMPLES:
        row[f"sampled_{K}"] = _median(sampled_step(sampled, theta, W, g, K, torch.Generator().manual_seed(K)), reps)
        if "cpu_s" in row["channel"]:
            row[f"sampled_{K}"]["channel_over_sampled_cpu"] = row["channel"]["cpu_s"] / row[f"sampled_{K}"]["cpu_s"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=[f"{n},{L}" for n, L in SIZES])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    space = parse_space(SPEC)
    rows = []
    for size in args.sizes:
        n, L = map(int, size.split(","))
        row = measure(space, n, L, args.reps)
        rows.append(row)
        ch = row["channel"]
        print(f"(n, L) = ({n}, {L}), {row['candidates']:,} candidates")
        print("  channel:   " + (f"{ch['cpu_s']:.4g} CPU s, {ch['wall_s']:.4g} wall s" if "cpu_s" in ch
                                 else f"does not fit: {ch['why']}"))
        for K in SAMPLES:
            s = row[f"sampled_{K}"]
            ratio = f", channel / sampled {s['channel_over_sampled_cpu']:.4g}x" if "channel_over_sampled_cpu" in s else ""
            print(f"  sampled K={K}: {s['cpu_s']:.4g} CPU s, {s['wall_s']:.4g} wall s{ratio}")
    meta = {"threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": os.getloadavg(), "reps": args.reps}
    print(f"torch threads {meta['threads']}, load average at the end {meta['load_average'][0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
