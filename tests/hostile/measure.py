"""Figures for the hostile-input corpus: every case (CASES and the OPEN ones) in a forked child
under the time and memory limits, two at a time. Prints one line per case that is not clean and
the totals.

    PYTHONPATH=... python tests/hostile/measure.py [--timeout S] [--memory GIB] [--json OUT] [NAME_PREFIX...]
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from cases import CASES, OPEN  # noqa: E402
from harness import VERDICTS, run_forked, verdict  # noqa: E402


def measure(case, timeout: float) -> tuple[str, str, str]:
    with tempfile.TemporaryDirectory(prefix=f"hostile-{case.name}-") as tmp:
        outcome = run_forked(case, Path(tmp), timeout)
        v, why = verdict(case, outcome, Path(tmp))
    return case.name, v, why


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix", nargs="*")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--memory", type=float, help="GiB of address space per case (default: harness's)")
    args = ap.parse_args()
    import qtc.cli  # noqa: F401 - imported once, before the forks
    import qtc.tasks.runs.runner  # noqa: F401
    if args.memory:
        harness.MEMORY_LIMIT = int(args.memory * (1 << 30))
    cases = [c for c in CASES + OPEN if not args.prefix or c.name.startswith(tuple(args.prefix))]
    with ThreadPoolExecutor(2) as pool:
        results = []
        for name, v, why in pool.map(lambda c: measure(c, args.timeout), cases):
            results.append((name, v, why))
            if v != "clean":
                print(f"{v:9s} {name}: {why.strip().splitlines()[-1] if why.strip() else ''}"[:300],
                      flush=True)
    counts = collections.Counter(v for _, v, _ in results)
    print(f"tried {len(results)}: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in VERDICTS))
    if args.json:
        args.json.write_text(json.dumps([{"name": n, "verdict": v, "why": w} for n, v, w in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
