"""`qtc table2`: the paper's Table II in one command, a preset of the sweep engine.

Five data sets x DiffQAS-QT, the 12 fixed candidates and the classical LSTM, as one sweep
(OUT/<task>/<model>/seed<k>, the same executors, the same resume: rerun the command). Fixed
candidates that the compiler merges into one node (the paper space's constants: configs
1 = 3 = 4 = 6 uniform, 9 = 12 a delta on |0...0>) train identically, bit for bit: the same seed
gives the same mapping init and theta cannot matter. Only the first member of such a group is
trained; sweep.json records the ties and Table II (qtc.tasks.experiments.report) reports the
others with its result, marked "tied" (`all_candidates` trains them all anyway).
"""
from __future__ import annotations

from pathlib import Path

from qtc import specs as bundled
from qtc.errors import QtcError
from qtc.tasks.data.series import NAMES
from qtc.tasks.experiments import report, sweep


def plan(datasets, seeds, models: str, spec_dir: Path | None, overrides: dict,
         all_candidates: bool = False) -> tuple[list[sweep.Trial], dict]:
    """The trials (one per data set, model and seed) and the ties they leave out, by task; the
    specs are <dataset>.task in `spec_dir`, else the bundled ones."""
    from qtc.tasks.build import load_task
    unknown = [d for d in datasets if d not in NAMES]
    if unknown:
        raise QtcError(f"unknown data set(s) {', '.join(unknown)}: expected some of {', '.join(NAMES)}")
    specs = [Path(spec_dir) / f"{ds}.task" if spec_dir else bundled.path(f"{ds}.task") for ds in datasets]
    missing = [str(p) for p in specs if not p.is_file()]
    if missing:
        raise QtcError(f"no spec for data set(s): expected {', '.join(missing)} (set --spec-dir)")
    tied = {} if all_candidates else {b.spec.name: b.twins(b.select_models(models))
                                      for b in map(load_task, specs)}
    trials = sweep.plan([str(p) for p in specs], list(seeds), models, overrides=overrides,
                        skip=lambda built, model: model in tied.get(built.spec.name, {}))
    return trials, tied


def run_table2(out: Path, *, seeds=(0,), datasets=None, models: str = "diffqas,fixed,classical",
               spec_dir: Path | None = None, all_candidates: bool = False, executor: str = "process",
               workers: int | None = None, overrides: dict | None = None, command: str = "") -> int:
    """Run (or finish) every trial, then write OUT/table2.md and OUT/table2.csv; exit status."""
    trials, tied = plan(datasets or NAMES, seeds, models, spec_dir,
                        overrides or {}, all_candidates)
    settings = {"preset": "table2", "seeds": list(seeds), "models": models, "ties": tied,
                "command": command, "overrides": {k: v for k, v in (overrides or {}).items() if v}}
    print(f"table2: {len(trials)} runs on {workers or 1} process(es), results in {out}", flush=True)
    res = sweep.sweep(trials, out, executor=executor, workers=workers, progress=False,
                      settings=settings)
    for t in trials:
        _print_trial(res, t)
    files = report.write_table2(res.out)
    print(f"table2: done in {res.seconds:.0f} s; {files[0] if files else 'no finished runs'}", flush=True)
    return 1 if res.failed else 0


def _print_trial(res: sweep.SweepResult, t: sweep.Trial) -> None:
    status = sweep.read_status(res.out / t.key) or {}
    final = status.get("final") or {}
    note = "reused" if t.key in res.skipped else status.get("status", "not run")
    mse = f"test MSE {final['test_mse']:.6g}" if "test_mse" in final else (status.get("error") or "")
    print(f"  {t.task:<10} seed {t.seed} {t.model:<10} {mse.splitlines()[0] if mse else ''} ({note})")
