"""`qtc regenerate`: every published result redone by one command, part by part (issue 32).

A preset of the sweep engine, driven by a manifest (specs/regenerate.toml, `load_manifest`):
each `[[part]]` is one sweep of some specs with its seeds, models, epoch rule and budget, and
names the results page it backs and where its outputs go; each `[[page]]` is a published page
whose numbers are not run results (timings, fault tables), with the reason. For each part,
in the manifest's order:

    OUT/<part>/<task>/<model>/seed<k>/                a sweep trial (qtc.tasks.experiments.sweep)
    OUT/<part>/<task>@perturb=1e-07/<model>/seed<k>/  the same seed, initial parameters moved by
                                                      at most 1e-7 (--perturb): the spread a
                                                      rounding change (another commit) makes
    OUT/<part>/report/                                `qtc report` of the part (its Variants section
                                                      sets each perturbed model beside the unperturbed),
                                                      plus spread.csv / spread.md and regenerate.json
    PUBLISH/<outputs>/                                a copy of the report, with --publish PUBLISH
    PUBLISH/<outputs>/trials/<task>/<model>/seed<k>/  each finished trial's small outputs and its
                                                      fingerprint, published as it finishes
                                                      (qtc.tasks.experiments.ledger)

Resuming: the same command again skips every trial that is done (the sweep's resume) and every
part whose OUT/<part>/report/regenerate.json records the same request (seeds, perturbation,
budget, specs, models, rule) and whose trials are all still done; a part is published only when all its trials are done, so each
finished part can be committed on its own. regenerate.json records the commit of every run
behind the part (their provenance.json), the command and the request, so a published number
names the code that made it. With --publish, a run reads back the trials published there whose
fingerprint is the plan's (`sync`: a fresh clone resumes from what an earlier session committed)
and refuses those published for another. `plan` (--plan) says what would run and how many trials, and an
estimate of their CPU time from the manifest's measured `trial_seconds`.
"""
from __future__ import annotations

import math
import shutil
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from qtc import specs as bundled
from qtc.errors import QtcError
from qtc.tasks.experiments import ledger, sweep
from qtc.tasks.experiments.paired import parse_pairs
from qtc.tasks.experiments.records import collect, final_metric, fmt_metric
from qtc.tasks.experiments.trials import Trial, is_done
from qtc.tasks.runs.rundir import atomic_json, atomic_text, read_json_or_none
from qtc.tasks.runs.provenance import git_commit

MANIFEST = "regenerate.toml"
RECORD = "regenerate.json"
PART_KEYS = {"name", "page", "specs", "seeds", "models", "epochs", "select", "perturb", "outputs",
             "trial_seconds", "note", "pairs"}
PAGE_KEYS = {"page", "why"}
DEFAULT_KEYS = {"seeds", "perturb"}
SPECS_OWN = "the specs'"


@dataclass(frozen=True)
class Part:
    """One sweep of the manifest and the page it backs."""
    name: str
    page: str
    specs: tuple[str, ...]              # absolute paths
    outputs: str                        # relative to --publish
    seeds: tuple[int, ...] = (0,)
    models: str | None = None
    epochs: int | None = None
    select: tuple | None = None         # (rule, fraction or None), as --select
    perturb: float | None = None
    trial_seconds: float | None = None
    note: str = ""
    pairs: tuple[tuple[str, str], ...] = ()   # the report's --pair TASK=REFERENCE


@dataclass(frozen=True)
class Manifest:
    path: Path
    parts: tuple[Part, ...]
    pages: dict = field(default_factory=dict)     # page -> why its numbers are not run results

    def part_pages(self) -> set[str]:
        return {p.page for p in self.parts}


def default_manifest() -> Path:
    return bundled.path(MANIFEST)


def load_manifest(path: Path | str | None = None) -> Manifest:
    """The manifest at `path` (default: the bundled specs/regenerate.toml), checked: an unknown
    key, a missing one, a spec that is not there or a bad value is an error naming the part."""
    from qtc.tasks.engines.selection import parse_select
    path = Path(path) if path else default_manifest()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise QtcError(f"cannot read the manifest {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise QtcError(f"{path}: not valid TOML: {err}") from None
    _keys(path, "the top level", data, {"defaults", "part", "page"})
    defaults = data.get("defaults") or {}
    _keys(path, "[defaults]", defaults, DEFAULT_KEYS)
    parts, names = [], set()
    for i, raw in enumerate(data.get("part") or []):
        where = f"[[part]] {raw.get('name', f'number {i + 1}')!r}"
        _keys(path, where, raw, PART_KEYS)
        missing = sorted({"name", "page", "specs", "outputs"} - set(raw))
        if missing:
            raise QtcError(f"{path}: {where} has no {', '.join(missing)}")
        if raw["name"] in names:
            raise QtcError(f"{path}: two parts are named {raw['name']!r}")
        names.add(raw["name"])
        raw = {**defaults, **raw}
        try:
            specs = tuple(str((path.parent / s).resolve()) for s in raw["specs"])
            for s in specs:
                if not Path(s).is_file():
                    raise QtcError(f"no spec {s}")
            perturb = raw.get("perturb")
            part = Part(name=str(raw["name"]), page=str(raw["page"]), specs=specs,
                        outputs=_relative(raw["outputs"]), seeds=tuple(sweep.parse_seeds(
                            ",".join(map(str, raw["seeds"])) if isinstance(raw.get("seeds"), list)
                            else raw.get("seeds"))),
                        models=raw.get("models"), epochs=raw.get("epochs"),
                        select=parse_select(str(raw["select"]).split()) if raw.get("select") else None,
                        perturb=float(perturb) if perturb not in (None, False) else None,
                        trial_seconds=raw.get("trial_seconds"), note=raw.get("note", ""),
                        pairs=tuple(parse_pairs(raw.get("pairs") or ())))
        except (QtcError, TypeError, ValueError) as err:
            raise QtcError(f"{path}: {where}: {err}") from None
        parts.append(part)
    pages = {}
    for raw in data.get("page") or []:
        _keys(path, f"[[page]] {raw.get('page')!r}", raw, PAGE_KEYS)
        if not raw.get("page") or not raw.get("why"):
            raise QtcError(f"{path}: a [[page]] needs both 'page' and 'why' (got {raw})")
        pages[raw["page"]] = raw["why"]
    return Manifest(path, tuple(parts), pages)


def _keys(path: Path, where: str, table, allowed: set[str]) -> None:
    if not isinstance(table, dict):
        raise QtcError(f"{path}: {where} is not a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise QtcError(f"{path}: {where}: unknown key(s) {', '.join(unknown)} (expected some of "
                       f"{', '.join(sorted(allowed))})")


def _relative(text: str) -> str:
    """An outputs folder: relative, inside the publish folder (no '..')."""
    p = Path(str(text))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise QtcError(f"outputs {text!r} must be a folder relative to --publish, without '..'")
    return p.as_posix()


def choose(manifest: Manifest, only: str | None) -> list[Part]:
    """The parts `--only a,b` names (all without it), in the manifest's order."""
    if not only:
        return list(manifest.parts)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    known = {p.name for p in manifest.parts}
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise QtcError(f"--only {only}: no part named {', '.join(map(repr, unknown)) or '(none)'} in "
                       f"{manifest.path}\nhint: the parts are {', '.join(p.name for p in manifest.parts)}")
    return [p for p in manifest.parts if p.name in wanted]


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------

def perturbed_group(eps: float) -> str:
    """The variant a perturbed trial belongs to: `perturb=1e-07` (its folder `<task>@perturb=1e-07`)."""
    return f"perturb={eps:g}"


def request(part: Part, seeds, perturb: float | None, overrides: dict) -> dict:
    """What a part's runs are, as regenerate.json records it: a finished part is skipped only
    when it was finished for the same request."""
    return {"specs": [Path(s).name for s in part.specs], "seeds": list(seeds), "models": part.models,
            "epochs": part.epochs, "select": list(part.select) if part.select else None,
            "perturb": perturb, "overrides": {k: v for k, v in overrides.items() if v not in (None, False)}}


def plan_part(part: Part, seeds, perturb: float | None, overrides: dict) -> list[Trial]:
    """The part's trials: every spec x model (merged twins once) x seed, then, with `perturb`,
    the same trials with the initial parameters moved (variant perturb=EPS). A setting a task
    refuses (--perturb on A3C, --limit on a series) is an error naming the part; --data-root
    applies to the parts that read a data set (`reads_data`)."""
    over = {**overrides, "epochs": overrides.get("epochs") or part.epochs, "select": part.select}
    if not reads_data(part):
        over["data_root"] = None
    try:
        trials = sweep.plan(list(part.specs), list(seeds), part.models, overrides=over, merge_twins=True)
        if perturb:
            moved = sweep.plan(list(part.specs), list(seeds), part.models,
                               overrides={**over, "perturb": perturb}, merge_twins=True)
            trials += [replace(t, variant=perturbed_group(perturb)) for t in moved]
    except QtcError as err:
        raise QtcError(f"part {part.name}: {err}") from None
    return trials


def reads_data(part: Part) -> bool:
    """Whether a part reads a data set (an image set, a CSV or npy file), so that --data-root,
    given for every part, applies to it; the generated series and the A3C environments read none."""
    from qtc.dsl.task import parse_task
    from qtc.tasks.data.sources import is_file_source
    specs = [parse_task(Path(s)) for s in part.specs]
    return any(spec.kind == "classify" or is_file_source(spec) for spec in specs)


def plan(parts: list[Part], out: Path, *, seeds=None, perturb=None, overrides: dict,
         publish: Path | None = None) -> list[str]:
    """--plan: what each part would run (trials, done already here or published in the ledger
    under `publish`, the estimate), as lines."""
    lines, total, todo, cpu = [], 0, 0, 0.0
    unknown = False
    for part in parts:
        eps = part_perturb(part, perturb)
        chosen = tuple(seeds) if seeds else part.seeds
        rule = " ".join(f"{x:g}" if isinstance(x, float) else x for x in part.select if x is not None) \
            if part.select else "the specs'"
        head = (f"part {part.name} (page {part.page}) -> {part.outputs}\n  specs: "
                + ", ".join(Path(s).name for s in part.specs)
                + f"; models: {part.models or SPECS_OWN}; seeds: {_seeds_text(chosen)}; epochs: "
                + f"{overrides.get('epochs') or part.epochs or SPECS_OWN}; select: {rule}"
                + (f"; perturbed: {eps:g}" if eps else "; not perturbed"))
        try:
            trials = plan_part(part, chosen, eps, overrides)
        except QtcError as err:
            why = str(err).removeprefix(f"part {part.name}: ").replace("\n", "\n    ")
            lines += [head, f"  cannot run here: {why}"]
            continue
        here = {t.key for t in trials if is_done(out / part.name / t.key)}
        book = ledger.state(trials, ledger_of(part, publish)) if publish else {}
        valid = {k for k, state in book.items() if state == "published"}
        stale = [k for k, state in book.items() if state == "stale"]
        done = len(here) if not publish else len(here - valid)
        moved = sum(1 for t in trials if t.variant)
        left = len(trials) - len(here | valid)
        total, todo = total + len(trials), todo + left
        if part.trial_seconds:
            cpu += left * part.trial_seconds
            est = f"; estimate {_hours(left * part.trial_seconds)} of CPU at {part.trial_seconds:g} s per trial"
        else:
            unknown = unknown or left > 0
            est = "; no estimate (the manifest gives no trial_seconds)"
        shown = (f", {len(valid)} published in {ledger_of(part, publish)}"
                 + (f" ({len(stale)} more published for another fingerprint: stale)" if stale else "")
                 + f", {done} more" if publish else f", {done}")
        lines += [head, f"  trials: {len(trials) - moved}" + (f" + {moved} perturbed = {len(trials)}" if moved else "")
                  + f"{shown} done in {out / part.name}, {left} left{est}"]
        if part.note:
            lines.append(f"  note: {part.note}")
    lines.append(f"total: {total} trials, {todo} to run; estimate {_hours(cpu)} of CPU"
                 + (" plus the parts without an estimate" if unknown else "")
                 + " (the manifest's trial_seconds: measured figures, some under load)")
    return lines


def part_perturb(part: Part, given: float | None | bool) -> float | None:
    """The perturbation a part runs: --perturb EPS for the parts that take one, none with
    --no-perturb (False), else the manifest's."""
    if given is False:
        return None
    return (given if given is not None else part.perturb) if part.perturb is not None else None


def _seeds_text(seeds) -> str:
    seeds = list(seeds)
    return (f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 3 and seeds == list(range(seeds[0], seeds[-1] + 1))
            else ", ".join(map(str, seeds)))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

def regenerate(parts: list[Part], out: Path, *, seeds=None, perturb=None, overrides: dict,
               executor: str = "process", workers: int | None = None, publish: Path | None = None,
               command: str = "", progress: bool = False, rerun_stale: bool = False) -> int:
    """Run (or finish) every part in turn; report and, with `publish`, copy each part that
    finished. With `publish`, every trial is also published to the part's ledger as it finishes
    and read back from it (`sync`): a fresh output folder resumes from the published trials.
    Returns the exit status: 1 when a trial failed, else 0."""
    from qtc.tasks.experiments.report import write_report
    out = Path(out)
    status = 0
    commit = git_commit()
    print(f"regenerate: {len(parts)} part(s) into {out}, code at {commit}", flush=True)
    for part in parts:
        chosen = tuple(seeds) if seeds else part.seeds
        eps = part_perturb(part, perturb)
        want = request(part, chosen, eps, overrides if reads_data(part) else {**overrides, "data_root": None})
        folder = out / part.name
        trials = plan_part(part, chosen, eps, overrides)
        book = ledger_of(part, publish) if publish else None
        with sweep.driving(folder):       # the folder's lock before its first byte (sync writes)
            if book:
                sync(part, trials, folder, book, rerun_stale=rerun_stale)
            record = read_json_or_none(folder / "report" / RECORD) or {}
            if record.get("request") == want and record.get("complete") and all(
                    is_done(folder / k) for k in record.get("keys") or ()):
                commits = ", ".join(record.get("commits") or ["?"])
                print(f"part {part.name}: finished earlier (code at {commits}); skipped")
                if publish:
                    _publish(folder / "report", publish, part)
                continue
            print(f"part {part.name}: {len(trials)} trials (page {part.page})", flush=True)
            settings = {"preset": "regenerate", "part": part.name, "page": part.page, "seeds": list(chosen),
                        "models": part.models, "command": command,
                        "overrides": {k: v for k, v in {**overrides, "epochs": overrides.get("epochs") or part.epochs,
                                                        "select": part.select, "perturb": eps}.items() if v}}
            res = sweep.sweep(trials, folder, executor=executor, workers=workers, progress=progress,
                              settings=settings, on_done=ledger.publisher(folder, book) if book else None)
            report = write_report(folder, pairs=part.pairs)
            complete = not res.failed and all(is_done(folder / t.key) for t in trials)
            files = write_spread(folder, folder / "report", eps)
            rec = {"part": part.name, "page": part.page, "outputs": part.outputs, "request": want,
                   "complete": complete, "command": command, "code_at_start": commit,
                   "commits": _commits(folder, trials), "trials": len(trials), "failed": res.failed,
                   "keys": [t.key for t in trials],
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()),
                   "files": sorted({p.name for p in [*report.files, *files]})}
            atomic_json(folder / "report" / RECORD, rec)
            print(f"part {part.name}: {len(res.done)} run, {len(res.skipped)} done earlier, "
                  f"{len(res.failed)} failed; report {report.markdown}", flush=True)
            if res.failed:
                status = 1
            if complete and publish:
                _publish(folder / "report", publish, part)
    return status


def _commits(folder: Path, trials: list[Trial]) -> list[str]:
    """The commits recorded by the runs behind a part (their provenance.json): one, unless the
    part was resumed on other code, which its regenerate.json then shows."""
    found = {(read_json_or_none(folder / t.key / "provenance.json") or {}).get("commit") for t in trials}
    return sorted(c for c in found if c)


def _publish(report: Path, publish: Path, part: Part) -> None:
    """Copy a finished part's report into PUBLISH/<outputs>, replacing a copy made earlier by
    regenerate (it has regenerate.json) and keeping the published trials (trials/); a folder
    of other files is refused, not overwritten."""
    dest = Path(publish) / part.outputs
    _check_own(dest, part)
    for p in (dest.iterdir() if dest.exists() else ()):
        if p.name != TRIALS:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    shutil.copytree(report, dest, dirs_exist_ok=True)
    print(f"part {part.name}: published to {dest}", flush=True)


def _check_own(dest: Path, part: Part) -> None:
    """PUBLISH/<outputs> holds only what regenerate writes there (a report with regenerate.json,
    the ledger trials/), or nothing: anything else is refused, not overwritten."""
    others = [p.name for p in dest.iterdir() if p.name != TRIALS] if dest.is_dir() else []
    if others and not (dest / RECORD).is_file():
        raise QtcError(f"part {part.name}: {dest} holds files qtc regenerate did not write (no {RECORD}): "
                       "not overwritten\nhint: empty it, or name another outputs folder in the manifest")


# --------------------------------------------------------------------------------------------
# Published trials: resuming across sessions from what was committed (qtc.tasks.experiments.ledger)
# --------------------------------------------------------------------------------------------

TRIALS = "trials"


def ledger_of(part: Part, publish: Path | None) -> Path | None:
    """Where a part's finished trials are published: PUBLISH/<outputs>/trials."""
    return Path(publish) / part.outputs / TRIALS if publish else None


def sync(part: Part, trials: list[Trial], folder: Path, book: Path, *, rerun_stale: bool = False) -> None:
    """Before a part runs: its published trials read back and its trials done in OUT/<part>
    published (qtc.tasks.experiments.ledger.sync), into a folder that holds only what
    regenerate writes there."""
    _check_own(book.parent, part)
    ledger.sync(trials, folder, book, rerun_stale=rerun_stale, label=f"part {part.name}")


# --------------------------------------------------------------------------------------------
# The perturbation spread
# --------------------------------------------------------------------------------------------

def spread_rows(folder: Path, eps: float | None) -> list[dict]:
    """Per task, model and seed: the reported metric unperturbed and perturbed, and their
    relative difference (|perturbed - unperturbed| / |unperturbed|)."""
    if not eps:
        return []
    group = perturbed_group(eps)
    values: dict[tuple[str, str, int], float] = {}
    labels: dict[str, str] = {}
    for rec in collect(folder):
        labels.setdefault(rec.model, rec.label)
        v = final_metric(rec)
        if v is not None:
            values[rec.task, rec.model, rec.seed] = v
    rows = []
    for (task, model, seed), base in sorted(values.items()):
        moved = values.get((f"{task}@{group}", model, seed))
        if "@" in task or moved is None:
            continue
        rel = abs(moved - base) / abs(base) if base else math.inf
        rows.append({"task": task, "model": model, "label": labels[model], "seed": seed, "unperturbed": base,
                     "perturbed": moved, "relative_change": rel})
    return rows


def write_spread(folder: Path, out: Path, eps: float | None) -> list[Path]:
    """spread.csv (every seed) and spread.md (per task: the median and largest relative change
    of the reported metric that moving the initial parameters by `eps` made)."""
    from qtc.tasks.experiments.records import write_csv
    rows = spread_rows(folder, eps)
    if not rows:
        return []
    import numpy as np
    md = [f"# The spread a rounding change makes: initial parameters moved by at most {eps:g}", "",
          "Each seed was run twice, as published and with every initial parameter moved by a seeded "
          f"uniform draw in [-{eps:g}, {eps:g}] (`--perturb`). A published difference smaller than "
          "these changes is not larger than what another commit's rounding does.", "",
          "| task | model | seeds | median relative change | largest | unperturbed (median) | perturbed (median) |",
          "|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["task"] == task):
            mine = [r for r in rows if r["task"] == task and r["model"] == model]
            rel = [r["relative_change"] for r in mine]
            md.append(f"| {task} | {mine[0]['label']} | {len(mine)} | {np.median(rel):.3g} | {max(rel):.3g} | "
                      f"{fmt_metric(float(np.median([r['unperturbed'] for r in mine])))} | "
                      f"{fmt_metric(float(np.median([r['perturbed'] for r in mine])))} |")
        rel = [r["relative_change"] for r in rows if r["task"] == task]
        md.append(f"| {task} | all models | {len(rel)} runs | {np.median(rel):.3g} | {max(rel):.3g} | | |")
    return [write_csv(out / "spread.csv", rows), atomic_text(out / "spread.md", "\n".join(md) + "\n")]
