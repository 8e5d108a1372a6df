"""In-process A/B of the generator's tail in one C pass (runtime/mapping.py, 2026-12-07 late
evening; docs/results/speed.md): A runs the tail as the torch ops it was before
(QTGenerator._rescaled and _generated, some twenty ops and autograd nodes per generator), B as
qtc runs it now (one C pass each way, one autograd node). Same models, environment and
optimizer, alternating blocks in one process (bench/a3c_overhead_ab.py's `run`): the way to
measure a change on a shared, loaded machine. The two sides agree to rounding, not bit for bit
(sums in double in C), so their trajectories drift apart: each block is still one update's cost.

    python bench/a3c_tail_ab.py --models classical,fixed:1,diffqas --rounds 40 --updates 50

classical is the control (no generator: A and B run the same code).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from a3c_overhead_ab import run  # noqa: E402
from a3c_update import SPECS  # noqa: E402


def torch_tail():
    """The one patch: QTGenerator._tail as the torch ops."""
    from qtc.runtime.generator import QTGenerator
    return [("QTGenerator._tail", QTGenerator, "_tail", lambda self, P: self._generated(self._rescaled(P)))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(SPECS / "minigrid_5x5.task"))
    ap.add_argument("--models", default="classical,fixed:1,diffqas")
    ap.add_argument("--rounds", type=int, default=20, help="blocks per side")
    ap.add_argument("--updates", type=int, default=50, help="timed updates per block")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    load = {"before": os.getloadavg()}
    print(f"in-process A/B (A: the tail in torch ops, B: in C), {Path(args.spec).name}, one torch thread, "
          f"{args.rounds} blocks of {args.updates} updates per side; load average {load['before'][0]:.2f}")
    out = {}
    for model in args.models.split(","):
        r = out[model] = run(model, args.rounds, args.updates, str(Path(args.spec).resolve()), torch_tail)
        print(f"{model:<10} A {r['A_median']:7.2f} ms  B {r['B_median']:7.2f} ms  B / A median {r['ratio_median']:.3f} "
              f"(blocks {min(r['ratios']):.3f} .. {max(r['ratios']):.3f}); load average {os.getloadavg()[0]:.2f}")
    load["after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps({"models": out, "load": load, "spec": args.spec, "rounds": args.rounds,
                                         "updates": args.updates}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
