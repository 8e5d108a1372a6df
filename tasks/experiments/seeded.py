"""`qtc run SPEC --seeds ...` (or `seeds K` in the train statement): one task over several seeds.

A preset of the sweep engine (`--jobs N`: N runs at a time, a process each; 1: in this process): OUT/<task>/<model>/seed<k>/ is one resumable
run folder per (model, seed) -- rerun the same command to continue -- and OUT/report/ aggregates
over seeds (median, IQR, min/max, the naive baselines and the paired statistics). Every model of
a seed starts from that seed and walks the data in the same order. Fixed candidates the compiler
merges into one node train identically, so each group is trained once per seed and reported for
every member (as `qtc table2`).
"""
from __future__ import annotations

from pathlib import Path

from qtc.tasks.experiments import sweep


def run_seeds(built, seeds: list[int], *, models: str | None, baselines: bool, out: Path | None,
              overrides: dict, command: str, progress: bool = True, jobs: int = 1) -> int:
    """Run every (model, seed) of the task into `out` (default runs/<task>-seeds), `jobs` runs at
    a time (each in its own process when more than one); exit status."""
    chosen = built.select_models(models) if models else (
        built.baseline_models() if baselines else built.models())
    tied = built.twins(chosen)
    spec = str(Path(built.spec.file).resolve())
    trials = sweep.plan([spec], seeds, ",".join(chosen), overrides=overrides, settings=built.settings,
                        skip=lambda _built, model: model in tied)
    out = Path(out) if out else Path("runs") / f"{built.spec.name}-seeds"
    settings = {"seeds": seeds, "models": ",".join(chosen), "ties": {built.spec.name: tied}, "set": built.settings,
                "command": command, "overrides": {k: v for k, v in overrides.items() if v}}
    executor = "process" if jobs > 1 and len(trials) > 1 else "serial"
    return sweep.run_sweep(trials, out, executor=executor, workers=jobs, progress=progress,
                           settings=settings)
