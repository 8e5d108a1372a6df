"""Benchmark: the channel form against enumeration on one per-position space (issue 15).

A step is P = ensemble(theta, W) (forward), loss = g . P, loss.backward() (theta and W), in
float64. For each (n, L) of specs/hadamard_ent_rot_per_layer.qs it times the channel form on the
cpu backend and, where the product is small enough to enumerate, the enumeration form on the
cpu backend (its compiled statevector kernels), both from the same theta and W. It reports CPU
seconds (process time, all threads) beside wall seconds: on a shared machine the CPU seconds
are the steadier figure. The first step of each is a warm-up (it also builds the kernels).

    python bench/channel_step.py                         # (7,4) (9,6) (11,10), both forms
    python bench/channel_step.py --sizes 5,3 --reps 5
    python bench/channel_step.py --forms channel         # skip enumeration (its cold compile
                                                         # of thousands of candidates is minutes)

This is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from qtc.compiler.factorised import lower_factorised
from qtc.dsl.space import parse_space
from qtc.errors import SpecError
from qtc.runtime.backends import probabilities

SPEC = Path(__file__).resolve().parents[1] / "specs" / "hadamard_ent_rot_per_layer.qs"
SIZES = [(7, 4), (9, 6), (11, 10)]
FORMS = ("channel", "enumeration")


def _step(prog, theta, W, g) -> tuple[float, float]:
    """(wall, cpu) seconds of one forward + backward."""
    theta.grad = W.grad = None
    w0, c0 = time.perf_counter(), time.process_time()
    (probabilities(prog, theta, W, backend="cpu") * g).sum().backward()
    return time.perf_counter() - w0, time.process_time() - c0


def measure(prog, reps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    theta = torch.randn(prog.depth, prog.qubits, dtype=torch.float64, requires_grad=True)
    W = torch.rand(prog.weights.shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2 ** prog.qubits, dtype=torch.float64)
    _step(prog, theta, W, g)
    times = [_step(prog, theta, W, g) for _ in range(reps)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=[f"{n},{L}" for n, L in SIZES])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS))
    args = ap.parse_args()
    space = parse_space(SPEC)
    print(f"torch threads {torch.get_num_threads()}; median of {args.reps} steps after a warm-up")
    print(f"{'(n, L)':>9} {'form':>12} {'candidates':>12} {'wall s/step':>12} {'CPU s/step':>11}")
    for size in args.sizes:
        n, L = map(int, size.split(","))
        for form in args.forms:
            try:
                prog = lower_factorised(space, n, L, form=form)
            except SpecError as err:   # a form that does not fit is reported
                print(f"{f'({n}, {L})':>9} {form:>12}   does not fit: {str(err).splitlines()[0][:60]}")
                continue
            wall, cpu = measure(prog, args.reps)
            print(f"{f'({n}, {L})':>9} {form:>12} {prog.weights.count:>12,} {wall:>12.4g} {cpu:>11.4g}")


if __name__ == "__main__":
    main()
