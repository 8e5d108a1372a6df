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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from a3c_overhead_ab import ab_main  # noqa: E402


def torch_tail():
    """The one patch: QTGenerator._tail as the torch ops."""
    from qtc.runtime.generator import QTGenerator
    return [("QTGenerator._tail", QTGenerator, "_tail", lambda self, P: self._generated(self._rescaled(P)))]


def main(argv=None) -> int:
    return ab_main(argv, "A: the tail in torch ops, B: in C", torch_tail,
                   models="classical,fixed:1,diffqas", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
