"""The paper's Table II, in one module: its numbers, our cells beside them, and `qtc table2`.

- the paper's values (test MSE per data set for DiffQAS-QT and Configs 1-12) and which of our
  candidates each Config k is (`paper_row`, `paper_value`; a forecast run's summary.md shows
  them too);
- our cells from the trial records of a sweep folder (`table2_cells`: median, mean and std over
  seeds at each run's selected epoch, at the last epoch, over the last ten epochs (median) and at
  the lowest-training-MSE epoch), the goal checks, and the files table2.md / table2.csv (`write_table2`) plus the Table II
  section of `qtc report`;
- `qtc table2` (`run_table2`), a preset of the sweep engine: five data sets x DiffQAS-QT, the 12
  fixed candidates and the classical LSTM, as one sweep (OUT/<task>/<model>/seed<k>, the same
  executors, the same resume: rerun the command).

Fixed candidates that the compiler merges into one node (the paper space's constants: configs
1 = 3 = 4 = 6 uniform, 9 = 12 a delta on |0...0>) train identically, bit for bit: the same seed
gives the same mapping init and theta cannot matter. Only the first member of such a group is
trained; sweep.json records the ties and Table II reports the others with its result, marked
"tied" (`all_candidates` trains them all anyway).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qtc import specs as bundled
from qtc.dsl import applies
from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.data.series import NAMES
from qtc.tasks.experiments import sweep
from qtc.tasks.experiments.trials import Trial, read_status
from qtc.tasks.experiments.paired import baselines_markdown, paired_markdown, paired_stats
from qtc.tasks.experiments.records import LAST, TrialRecord, collect, last_epochs, mean_std, write_csv
from qtc.tasks.runs.rundir import atomic_text, read_json_or_none


# --------------------------------------------------------------------------------------------
# The paper's values
# --------------------------------------------------------------------------------------------

# Paper Table II: test MSE per data set; keys "DiffQAS-QT" and "Config 1" .. "Config 12".
PAPER_COLUMNS = ("bessel", "damped_shm", "delayed_qc", "narma5", "narma10")
_PAPER_ROWS = {
    "DiffQAS-QT": (0.000040, 0.000036, 0.001710, 0.000050, 0.000117),
    "Config 1": (0.000515, 0.000155, 0.000715, 0.000038, 0.000095),
    "Config 2": (0.000525, 0.000695, 0.001190, 0.000068, 0.000103),
    "Config 3": (0.000515, 0.000155, 0.000676, 0.000038, 0.000095),
    "Config 4": (0.000515, 0.000155, 0.002011, 0.000038, 0.000095),
    "Config 5": (0.002902, 0.000820, 0.001111, 0.000024, 0.000098),
    "Config 6": (0.000515, 0.000155, 0.002638, 0.000038, 0.000095),
    "Config 7": (0.000601, 0.000040, 0.001679, 0.000052, 0.000120),
    "Config 8": (0.000141, 0.008873, 0.001723, 0.000091, 0.000081),
    "Config 9": (0.001391, 0.000154, 0.000956, 0.000045, 0.000125),
    "Config 10": (0.000216, 0.000157, 0.001839, 0.000040, 0.000121),
    "Config 11": (0.007428, 0.032072, 0.000211, 0.000054, 0.000140),
    "Config 12": (0.001391, 0.000154, 0.000956, 0.000045, 0.000125),
}
PAPER_TABLE2: dict[str, dict[str, float]] = {
    ds: {row: vals[i] for row, vals in _PAPER_ROWS.items()} for i, ds in enumerate(PAPER_COLUMNS)}
# The paper's Config k is the k-th of these candidates (the paper's Table I order: H / none x ent /
# cyc x RX / RY / RZ, as specs/hadamard_ent_rot.qs enumerates them).
PAPER_CONFIG_LABELS = ("H-ent-RX", "H-ent-RY", "H-ent-RZ", "H-cyc-RX", "H-cyc-RY", "H-cyc-RZ",
                       "none-ent-RX", "none-ent-RY", "none-ent-RZ", "none-cyc-RX", "none-cyc-RY",
                       "none-cyc-RZ")
ROW_ORDER = ["DiffQAS-QT"] + [f"Config {k}" for k in range(1, 13)] + ["classical LSTM"]


def paper_row(model: str, candidates) -> str | None:
    """'DiffQAS-QT' / 'Config k' when `model` (with the task's candidate labels) is a row of the
    paper's Table II, else None."""
    if model == naming.DIFFQAS:
        return "DiffQAS-QT"
    k = naming.fixed_index(model)
    if k is not None and k < len(candidates) and candidates[k] in PAPER_CONFIG_LABELS:
        return f"Config {PAPER_CONFIG_LABELS.index(candidates[k]) + 1}"
    return None


def paper_value(dataset: str, key: str | None) -> float | None:
    """The paper's Table II test MSE, or None (unknown data set or model)."""
    return PAPER_TABLE2.get(dataset, {}).get(key) if key else None


def fmt(v: float | None) -> str:
    """An MSE as in the paper's table (6 decimals; small values in scientific notation)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.6f}" if v >= 5e-6 else f"{v:.2e}"


# --------------------------------------------------------------------------------------------
# Our cells
# --------------------------------------------------------------------------------------------

def table2_cells(records: list[TrialRecord], ties: dict | None = None) -> dict[tuple[str, str], dict]:
    """(paper row, data set) -> our test MSE per seed, mean, std, and the paper's value.

    Only finished forecast trials of a task as written count: a variant (a --grid point, a
    perturbed rerun) is another experiment, set beside it by the report's Variants section. `ties` ({task: {model: trained twin}}, from a preset's
    sweep.json) reports a candidate that was not trained with its compiled twin's results.
    """
    cells: dict[tuple[str, str], dict] = {}
    for rec in sorted(records, key=lambda r: r.seed):
        if rec.kind != "forecast" or rec.status != "done" or not rec.rows or "@" in rec.task:
            continue
        twins = [m for m, twin in ((ties or {}).get(rec.task) or {}).items() if twin == rec.model]
        for model in [rec.model] + twins:
            key = paper_row(model, rec.candidates)
            name = "classical LSTM" if model == naming.CLASSICAL else key or naming.label(model, rec.candidates)
            cell = cells.setdefault((name, rec.dataset), {
                "paper": paper_value(rec.dataset, key), "seeds": [], "values": [], "train": [],
                "final": [], "best_train": [], "last": [],
                "tied_with": rec.label if model != rec.model else None})
            final, last = last_epochs(rec)
            cell["seeds"].append(rec.seed)
            cell["values"].append(rec.reported["test_mse"])
            cell["train"].append(rec.reported["train_mse"])
            cell["final"].append(final)
            cell["best_train"].append(min(rec.rows, key=lambda r: r["train_mse"])["test_mse"])
            cell["last"].append(last)
    for cell in cells.values():
        cell["mean"], cell["std"] = mean_std(cell["values"])
        cell["median"] = float(np.median(cell["values"]))
        cell["final_median"] = float(np.median(cell["final"]))
        cell["best_train_median"] = float(np.median(cell["best_train"]))
        cell["last_mean"] = float(np.mean(cell["last"]))
        cell["last_median"] = float(np.median(cell["last"]))
    return cells


def _table2_layout(cells: dict) -> tuple[list[str], list[str]]:
    """(rows in the paper's order, then any others; data sets in the paper's column order)."""
    names = {name for name, _ in cells}
    rows = [r for r in ROW_ORDER if r in names] + sorted(names - set(ROW_ORDER))
    found = {d for _, d in cells}
    return rows, [d for d in PAPER_COLUMNS if d in found] + sorted(found - set(PAPER_COLUMNS))


def _md_table(cells: dict, rows: list[str], datasets, stat: str = "mean") -> list[str]:
    head = " | ".join(f"{d} ours | {d} paper" for d in datasets)
    md = [f"| model | {head} |", "|---" * (1 + 2 * len(datasets)) + "|"]
    for name in rows:
        vals = []
        for d in datasets:
            c = cells.get((name, d))
            vals += [fmt(c[stat]) if c else "…", fmt(c["paper"]) if c else "…"]
        md.append(f"| {name} | " + " | ".join(vals) + " |")
    return md


def goal_checks(cells: dict, datasets, stat: str = "median") -> list[str]:
    """The goals: DiffQAS-QT <= 2x the paper (4 of 5) and better than the median fixed candidate."""
    lines, within, beats = [], 0, 0
    for ds in datasets:
        dq = cells.get(("DiffQAS-QT", ds))
        fixed = [c[stat] for (name, d), c in cells.items() if d == ds and name.startswith("Config")]
        if not dq or len(fixed) < 12:
            lines.append(f"- {ds}: incomplete")
            continue
        ratio = dq[stat] / dq["paper"] if dq["paper"] else float("nan")
        med = float(np.median(fixed))
        within += ratio <= 2.0
        beats += dq[stat] < med
        lines.append(f"- {ds}: DiffQAS-QT {fmt(dq[stat])} = {ratio:.2f}x the paper's {fmt(dq['paper'])}; "
                     f"median of the {len(fixed)} fixed candidates {fmt(med)} -> DiffQAS-QT "
                     f"{'better' if dq[stat] < med else 'NOT better'}")
    lines.append(f"- within 2x of the paper: {within} of {len(datasets)} data sets (goal: at least 4 of 5); "
                 f"better than the median fixed candidate: {beats} of {len(datasets)} (goal: all)")
    return lines


def _per_seed(cells: dict, rows: list[str], datasets) -> list[str]:
    seeds = sorted({s for c in cells.values() for s in c["seeds"]})
    if len(seeds) < 2:
        return []
    md = ["", "## Per seed", "", "| model | data set | " + " | ".join(f"seed {s}" for s in seeds)
          + " | median | mean | std |", "|---|---|" + "---|" * (len(seeds) + 3)]
    for name in rows:
        for d in datasets:
            c = cells.get((name, d))
            if c:
                per = dict(zip(c["seeds"], c["values"]))
                md.append(f"| {name} | {d} | " + " | ".join(fmt(per.get(s)) for s in seeds)
                          + f" | {fmt(c['median'])} | {fmt(c['mean'])} | {fmt(c['std'])} |")
    return md


def table2_markdown(cells: dict, sweep: dict, records: list[TrialRecord] | None = None) -> str:
    """table2.md: ours beside the paper's under the run's selection rule, the epoch-100 and
    best-training-MSE values, the goal checks, the paired statistics, the baselines, per seed."""
    rows, datasets = _table2_layout(cells)
    seeds = sorted({s for c in cells.values() for s in c["seeds"]})
    tied = sorted({f"{name} = {c['tied_with']}" for (name, _), c in cells.items() if c["tied_with"]})
    rule = _rule_of(sweep)
    md = ["# Table II: test MSE, ours beside the paper's", "",
          f"- command: `{sweep['command']}`" if sweep.get("command") else "- command: (API call)",
          f"- seeds: {', '.join(map(str, seeds))} (ours = median over seeds); epochs: "
          f"{(sweep.get('overrides') or {}).get('epochs') or 'from the specs'}; "
          f"cells filled: {sum(len(c['values']) for c in cells.values())}", "",
          f"Test MSE at the epoch the selection rule picks ({rule}; each run folder's selection.json "
          "names it). The paper does not say which epoch its Table II reports; the Quantum-Train "
          "toolkit evaluates the checkpoint with the lowest training loss.", ""]
    md += _md_table(cells, rows, datasets, "median")
    if tied:
        md += ["", "Tied candidates (one compiled node: trained once, reported for each member): "
               + "; ".join(tied) + "."]
    md += ["", "## Goals", ""] + goal_checks(cells, datasets)
    md += ["", "## The same runs at the last epoch, over the last ten epochs and at the lowest-training-MSE epoch", "",
           "Median over seeds of the test MSE after the last epoch:", ""]
    md += _md_table(cells, rows, datasets, "final_median")
    md += ["", f"Median over seeds of each run's median test MSE over its last {LAST} epochs (a "
           "statistic that does not hinge on one epoch):", ""]
    md += _md_table(cells, rows, datasets, "last_median")
    md += ["", "Median over seeds of the test MSE at the epoch with the lowest training MSE (chosen "
           "without test data, as the Quantum-Train toolkit does):", ""]
    md += _md_table(cells, rows, datasets, "best_train_median") + ["", "Goals on this statistic:", ""]
    md += goal_checks(cells, datasets, "best_train_median")
    if records is not None:
        md += [""] + baselines_markdown(records) + paired_markdown(paired_stats(records, sweep.get("ties")))
    md += _per_seed(cells, rows, datasets)
    return "\n".join(md) + "\n"


def _rule_of(sweep: dict) -> str:
    """The selection rule a sweep ran under, in words (from its overrides; else the specs')."""
    select = (sweep.get("overrides") or {}).get("select")
    if not select:
        return "the specs' select statement"
    return f"select {select[0]}" + (f" {select[1]:g}" if select[1] is not None else "")


def table2_rows(cells: dict) -> list[dict]:
    """table2.csv: one line per cell, with the per-seed values."""
    rows, datasets = _table2_layout(cells)
    out = []
    for name in rows:
        for d in datasets:
            c = cells.get((name, d))
            if c:
                out.append({"model": name, "dataset": d, "test_mse_mean": f"{c['mean']:.8g}",
                            "test_mse_std": f"{c['std']:.8g}", "paper_test_mse": c["paper"] or "",
                            "ratio": f"{c['mean'] / c['paper']:.4g}" if c["paper"] else "",
                            "train_mse_mean": f"{np.mean(c['train']):.8g}",
                            "seeds": ";".join(map(str, c["seeds"])),
                            "test_mse_per_seed": ";".join(f"{v:.8g}" for v in c["values"]),
                            "test_mse_median": f"{c['median']:.8g}",
                            "test_mse_last_epoch_median": f"{c['final_median']:.8g}",
                            "test_mse_best_train_epoch_median": f"{c['best_train_median']:.8g}",
                            f"test_mse_last{LAST}_median_mean": f"{c['last_mean']:.8g}",
                            f"test_mse_last{LAST}_median_median": f"{c['last_median']:.8g}"})
    return out


def write_table2(root: Path | str, out: Path | str | None = None,
                 records: list[TrialRecord] | None = None) -> list[Path]:
    """table2.md and table2.csv of the sweep folder `root` (into `out`, default `root`), from
    `records` when the caller has read them (a report of several folders)."""
    root = Path(root)
    out = Path(out) if out else root
    sweep = (read_json_or_none(root / "sweep.json") or {}) if records is None else {}
    records = collect(root) if records is None else records
    cells = table2_cells(records, sweep.get("ties"))
    if not cells:
        return []
    return [atomic_text(out / "table2.md", table2_markdown(cells, sweep, records)),
            write_csv(out / "table2.csv", table2_rows(cells))]


def report_section(cells: dict) -> list[str]:
    """The Table II section of `qtc report` (none without forecast trials)."""
    if not cells:
        return []
    rows, datasets = _table2_layout(cells)
    return (["## Table II: test MSE, ours (median over seeds) beside the paper", ""]
            + _md_table(cells, rows, datasets, "median")
            + ["", "Config k is the paper's k-th circuit (H / none × ent / cyc × RX / RY / RZ); the paper "
               "gives no LSTM baseline value. Configs 1, 3, 4, 6 and 9, 12 tie in the paper because "
               "those circuits are constant. Goals, spread and per-seed values: `table2.md`.", ""])


# --------------------------------------------------------------------------------------------
# The preset: `qtc table2`
# --------------------------------------------------------------------------------------------

def plan(datasets, seeds, models: str, spec_dir: Path | None, overrides: dict,
         all_candidates: bool = False) -> tuple[list[Trial], dict]:
    """The trials (one per data set, model and seed) and the ties they leave out, by task; the
    specs are <dataset>.task in `spec_dir`, else the bundled ones."""
    from qtc.tasks.build import load_task
    unknown = [d for d in datasets if d not in NAMES]
    if unknown:
        raise QtcError(f"unknown data set(s) {', '.join(map(repr, unknown))}: expected some of "
                       f"{', '.join(NAMES)}" + ("\nhint: leave --datasets out for all five" if "" in unknown else ""))
    specs = [Path(spec_dir) / f"{ds}.task" if spec_dir else bundled.path(f"{ds}.task") for ds in datasets]
    missing = [str(p) for p in specs if not p.is_file()]
    if missing:
        raise QtcError(f"no spec for data set(s): expected {', '.join(missing)} (set --spec-dir)")
    built = [load_task(p) for p in specs]
    for path, b in zip(specs, built):         # Table II is forecasting: a spec of another kind is refused
        applies.refuse_command("table2", b.spec.kind, str(path))
    tied = {} if all_candidates else {b.spec.name: b.twins(b.select_models(models)) for b in built}
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
    files = write_table2(res.out)
    print(f"table2: done in {res.seconds:.0f} s; {files[0] if files else 'no finished runs'}", flush=True)
    return 1 if res.failed else 0


def _print_trial(res: sweep.SweepResult, t: Trial) -> None:
    status = read_status(res.out / t.key) or {}
    final = status.get("final") or {}
    note = "reused" if t.key in res.skipped else status.get("status", "not run")
    mse = f"test MSE {final['test_mse']:.6g}" if "test_mse" in final else (status.get("error") or "")
    print(f"  {t.task:<10} seed {t.seed} {t.model:<10} {mse.splitlines()[0] if mse else ''} ({note})")
