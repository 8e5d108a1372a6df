"""Published trial records: a sweep's finished trials kept in the repository, so that a run cut
off in one session resumes in the next, on a fresh clone, from what was committed (issue 32).

A run folder holds checkpoints and logs that are not committed; its small outputs are what a
report reads. `publish` copies those (`FILES`: the status, the resolved settings, the metrics,
the selection, the fingerprint, the provenance, an A3C episode log) into a ledger folder, one
folder per trial, as two files::

    LEDGER/<task>[@<variant>]/<model>/seed<k>/outputs.json.gz  {file: text}, the files as written
    LEDGER/<task>[@<variant>]/<model>/seed<k>/record.json      status, fingerprint, commit, files

`restore` writes them back into an output folder as the trial folder they came from (without
its checkpoint), where the sweep's resume counts them done and `qtc report` reads them as
any other trial.

A trial's fingerprint (`fingerprint`) is what the run's own resume check compares (the run's
identity, qtc.tasks.runs.runner.identity: the resolved spec, the search space's text, a data
file's digest or the images an image set reads, the options that change the numbers: model,
seed, selection rule, --limit, --max-batches, the perturbation) plus the budget (epochs,
episodes) and the candidates the trial is trained for. A record whose fingerprint is not the one the plan would run is
`stale`; where the code ran (threads, backend) and the commit are recorded, not compared:
the commits of every trial behind a part are listed in its regenerate.json.
"""
from __future__ import annotations

import gzip
import json
import shutil
import time
from pathlib import Path

from qtc.errors import QtcError
from qtc.tasks.experiments.trials import TRIAL_JSON, Trial, is_done, trial_options
from qtc.tasks.runs import guard
from qtc.tasks.runs.rundir import RESOLVED, atomic_json, atomic_write, read_json_or_none

RECORD = "record.json"
OUTPUTS = "outputs.json.gz"
# What a report of the trial reads (qtc.tasks.experiments.records), relative to the trial
# folder; globs for an A3C episode log, which lies where its kind writes it.
FILES = (TRIAL_JSON, RESOLVED, guard.FINGERPRINT, "provenance.json", "metrics.json", "selection.json",
         "baselines.json", "examples.json", "metric.json", "parameters.txt", "episodes.csv",
         "*/episodes.csv", "models/*/episodes.csv", "a3c/*/episodes.csv", "a3c/*/summary.json")


def fingerprint_of(identity: dict, budget: dict, twins) -> dict:
    """The compared part of a trial's record: its run identity, budget and twins, and their sha256."""
    body = {"identity": identity, "budget": budget, "twins": sorted(twins)}
    return {"sha256": guard.fingerprint(body), **body}


def planned(trial: Trial, loaded: dict | None = None) -> dict:
    """The fingerprint of `trial` as the plan would run it (the options its trial folder gets).
    `loaded` ({(spec, settings): built}, kept by the caller for one pass over a plan) loads each
    spec once, not once per model and seed."""
    from qtc.tasks.build import load_task
    from qtc.tasks.runs.runner import BUDGET_OPTIONS, identity
    loaded = {} if loaded is None else loaded
    key = (trial.spec, trial.settings)
    if key not in loaded:
        loaded[key] = load_task(trial.spec, dict(trial.settings))
    built, options = trial_options(trial, built=loaded[key])
    return fingerprint_of(identity(built, options), {k: getattr(options, k) for k in BUDGET_OPTIONS},
                          trial.twins)


def recorded(folder: Path) -> dict | None:
    """The fingerprint of the trial that ran in `folder` (its fingerprint.json and the budget in
    resolved.json), None when it has no readable fingerprint."""
    from qtc.tasks.runs.runner import BUDGET_OPTIONS
    fp = read_json_or_none(folder / guard.FINGERPRINT) or {}
    options = (read_json_or_none(folder / RESOLVED) or {}).get("options") or {}
    status = read_json_or_none(folder / TRIAL_JSON) or {}
    if not isinstance(fp.get("identity"), dict):
        return None
    return fingerprint_of(fp["identity"], {k: options.get(k) for k in BUDGET_OPTIONS}, status.get("twins") or ())


def published(ledger: Path, key: str) -> dict | None:
    """The record of trial `key` in the ledger (None: not published)."""
    return read_json_or_none(Path(ledger) / key / RECORD)


def differences(was: dict, now: dict, defaults: dict | None = None) -> list[str]:
    """What differs between two fingerprints, key by key (guard.differences of the flattened
    bodies: a key `was` lacks, at its `defaults` value now, is no difference)."""
    def flat(fp: dict) -> dict:
        return {**{f"budget.{k}": v for k, v in fp["budget"].items()}, "twins": fp["twins"], **fp["identity"]}
    return guard.differences(flat(was), flat(now), defaults)


def mismatch(trial: Trial, have: dict | None, want: dict, loaded: dict) -> list[str]:
    """What makes the recorded fingerprint `have` another trial than the planned `want` ([]: the
    same trial). As the run's resume check (qtc.tasks.runs.runner), an option added to the spec
    language since the trial ran is no difference at its default, so a record stays valid across
    such commits. `loaded` is the cache `planned` filled for this trial."""
    if have is None:
        return [f"no readable {guard.FINGERPRINT}"]
    if have["sha256"] == want["sha256"]:
        return []
    return differences(have, want, guard.field_defaults(loaded[(trial.spec, trial.settings)].spec))


def stored_fingerprint(ledger: Path, key: str) -> dict | None:
    """The full fingerprint (identity included) a published trial was recorded with."""
    record = published(ledger, key)
    if not record:
        return None
    fp = json.loads(outputs(ledger, key).get(guard.FINGERPRINT) or "{}")
    return fingerprint_of(fp["identity"], record.get("budget") or {}, record.get("twins") or ()) \
        if isinstance(fp.get("identity"), dict) else None


def publish(trial: Trial, out: Path, ledger: Path, fp: dict) -> Path:
    """Copy the finished trial OUT/<key> into LEDGER/<key>: its files in one gzipped JSON, then
    its record (`fp`: its fingerprint, checked by the caller). The record is written last, so a
    ledger folder without record.json is an unfinished copy, which is replaced."""
    src, dest = Path(out) / trial.key, Path(ledger) / trial.key
    if not is_done(src):
        raise QtcError(f"cannot publish {src}: the trial is not done")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = {}
    for pattern in FILES:
        for path in sorted(src.glob(pattern)):
            if path.is_file():
                files[path.relative_to(src).as_posix()] = path.read_text()
    blob = gzip.compress(json.dumps(files, indent=1).encode(), mtime=0)   # mtime 0: the same bytes every time
    atomic_write(dest / OUTPUTS, lambda tmp: tmp.write_bytes(blob))
    status = read_json_or_none(src / TRIAL_JSON) or {}
    provenance = read_json_or_none(src / "provenance.json") or {}
    atomic_json(dest / RECORD, {"key": trial.key, "status": status.get("status"), "fingerprint": fp["sha256"],
                                "budget": fp["budget"], "twins": fp["twins"], "commit": provenance.get("commit"),
                                "seconds": status.get("seconds"), "files": sorted(files),
                                "published": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())})
    return dest


def outputs(ledger: Path, key: str) -> dict[str, str]:
    """{file relative to the trial folder: its text} of a published trial."""
    path = Path(ledger) / key / OUTPUTS
    try:
        files = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as err:
        raise QtcError(f"{path}: not a readable published trial ({err})\nhint: delete "
                       f"{path.parent} to run the trial again") from None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise QtcError(f"{path}: not a published trial (expected {{file: text}})")
    return files


def restore(trial: Trial, ledger: Path, out: Path) -> Path:
    """Write the published trial back as OUT/<key> (a folder qtc owns, replacing an unfinished
    run of the trial there), so that the sweep counts it done and reports read it."""
    folder = Path(out) / trial.key
    files = outputs(ledger, trial.key)
    if folder.exists():
        guard.remove_owned(folder, out)
    guard.make_owned(folder)
    for rel, text in files.items():
        target = guard.inside(folder, folder / rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp, t=text: tmp.write_text(t))
    if not is_done(folder):
        raise QtcError(f"{Path(ledger) / trial.key}: the published trial has no trial.json saying done\n"
                       "hint: delete the folder to run the trial again")
    return folder


# --------------------------------------------------------------------------------------------
# A sweep and its ledger (qtc regenerate --publish, qtc sweep --publish)
# --------------------------------------------------------------------------------------------

def state(trials: list[Trial], book: Path) -> dict[str, str]:
    """{key: "published" | "stale"} of the trials found in the ledger `book` (--plan's counts)."""
    out, loaded = {}, {}
    for t in trials:
        record = published(book, t.key)
        if record:
            want = planned(t, loaded)
            same = record.get("fingerprint") == want["sha256"] or not mismatch(
                t, stored_fingerprint(book, t.key), want, loaded)
            out[t.key] = "published" if same else "stale"
    return out


def sync(trials: list[Trial], folder: Path, book: Path, *, rerun_stale: bool = False, label: str = "sweep") -> None:
    """Before a sweep runs into `folder`: every published trial whose fingerprint is the one the
    plan would run is written back into the folder (so the sweep skips it), and every trial done
    there and not yet published is published (after the same check).

    A trial published, or done in the folder, for another fingerprint (the spec, its space or
    data, the budget or a setting changed since) is refused with what differs: running it again
    would replace a committed number by another without a word. `rerun_stale` (--rerun-stale)
    deletes those records (and run folders) so that the trials run again."""
    restored, added, stale, loaded = 0, 0, [], {}
    for t in trials:
        record = published(book, t.key)
        here = Path(folder) / t.key
        if record is None and not is_done(here):
            continue
        want = planned(t, loaded)
        if record is not None:
            diffs = [] if record.get("fingerprint") == want["sha256"] else mismatch(
                t, stored_fingerprint(book, t.key), want, loaded)
            if diffs:
                stale.append((t, Path(book) / t.key, diffs))
                continue
            if not is_done(here):
                restore(t, book, folder)
                restored += 1
                continue
        have = recorded(here)
        diffs = mismatch(t, have, want, loaded)
        if diffs:
            stale.append((t, here, diffs))
        elif record is None:
            publish(t, folder, book, have)
            added += 1
    if stale and not rerun_stale:
        shown = "\n".join(f"  {where}:\n" + "\n".join(f"    {d}" for d in diffs[:4])
                          + (f"\n    ... {len(diffs) - 4} more" if len(diffs) > 4 else "")
                          for _, where, diffs in stale[:5])
        raise QtcError(f"{label}: {len(stale)} finished trial(s) were run for another fingerprint "
                       f"than this plan's (what differs: recorded -> planned):\n{shown}"
                       + (f"\n  ... and {len(stale) - 5} more" if len(stale) > 5 else "")
                       + "\nhint: undo the change, or rerun them with --rerun-stale (their records are deleted)")
    for t, where, _ in stale:
        if where.is_relative_to(book):
            shutil.rmtree(where)
        if (Path(folder) / t.key).exists():
            guard.remove_owned(Path(folder) / t.key, folder)
    if restored or added or stale:
        print(f"{label}: {restored} trial(s) read back from {book}, {added} published there"
              + (f", {len(stale)} stale record(s) deleted, to run again" if stale else ""), flush=True)


def publisher(folder: Path, book: Path):
    """The sweep's on_done: publish each trial as it finishes, with the fingerprint it ran with."""
    def on_done(t: Trial) -> None:
        fp = recorded(Path(folder) / t.key)
        if fp is None:
            raise QtcError(f"{Path(folder) / t.key}: finished without a readable {guard.FINGERPRINT}: not published")
        publish(t, folder, book, fp)
    return on_done
