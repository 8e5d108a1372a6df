"""`qtc regenerate` (issue 32): the manifest, --plan, a tiny end-to-end run on the shipped
sunspots CSV with its perturbed twins, resuming (finished parts and trials skipped) and
publishing part by part."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from qtc.cli import main
from qtc.errors import QtcError
from qtc.tasks.experiments import regenerate as regen

ROOT = Path(__file__).resolve().parents[1]
SUNSPOTS = ROOT / "specs" / "data" / "sunspots.task"
DIGITS = ROOT / "specs" / "data" / "digits.task"
TINY = ["--epochs", "2", "--max-batches", "2", "--jobs", "1", "--no-progress"]


def _manifest(tmp_path: Path, body: str = "") -> Path:
    path = tmp_path / "m.toml"
    path.write_text(body or f"""[defaults]
seeds = 1
perturb = 1e-7

[[part]]
name = "sunspots"
page = "own_data.md"
specs = ["{SUNSPOTS}"]
models = "diffqas,classical"
outputs = "regen/sunspots"
trial_seconds = 30

[[part]]
name = "digits"
page = "own_data.md"
specs = ["{DIGITS}"]
models = "classical"
perturb = false
outputs = "regen/digits"
""")
    return path


def test_the_bundled_manifest_names_every_published_page_once():
    """Each page under docs/results is backed by a part or says why its numbers are not run
    results: a new page must be added to specs/regenerate.toml."""
    m = regen.load_manifest()
    pages = {p.name for p in (ROOT / "docs" / "results").glob("*.md")} - {"claims_check.md"}
    assert pages == m.part_pages() | set(m.pages), "add the page to specs/regenerate.toml"
    assert not m.part_pages() & set(m.pages)
    for part in m.parts:
        assert all(Path(s).is_file() for s in part.specs) and part.outputs.startswith("regen/")
    table2 = {p.name: p for p in m.parts}["table2_authors"]
    assert table2.seeds == tuple(range(10)) and table2.perturb == 1e-7 and table2.select == ("last", None)
    assert {p.name: p for p in m.parts}["minigrid"].perturb is None      # a3c takes no --perturb


@pytest.mark.parametrize("edit, message", [
    ('models = "classical"', "unknown key\\(s\\) modelz"),
    ('specs = ["nowhere.task"]', "no spec .*nowhere.task"),
    ('seeds = -1', "--seeds -1"),
    ('select = "sometimes"', "'digits'.*sometimes"),
    ('outputs = "regen/digits"', "must be a folder relative to --publish"),
    ('name = "digits"', "two parts are named 'sunspots'"),
    ('pairs = ["digits"]', "'digits'.*--pair 'digits': expected TASK=REFERENCE"),
])
def test_a_bad_manifest_is_an_error_naming_the_part(tmp_path, edit, message):
    text = _manifest(tmp_path).read_text()
    replacement = {'models = "classical"': 'modelz = "classical"', 'specs = ["nowhere.task"]': None,
                   'seeds = -1': None, 'select = "sometimes"': None, 'pairs = ["digits"]': None,
                   'outputs = "regen/digits"': 'outputs = "../elsewhere"',
                   'name = "digits"': 'name = "sunspots"'}[edit]
    if replacement is None:      # a key added to the digits part
        text = text.replace('outputs = "regen/digits"', f'outputs = "regen/digits"\n{edit}')
        if edit.startswith("specs"):
            text = text.replace(f'specs = ["{DIGITS}"]\n', "")
    else:
        text = text.replace(edit, replacement)
    (tmp_path / "m.toml").write_text(text)
    with pytest.raises(QtcError, match=message):
        regen.load_manifest(tmp_path / "m.toml")


def test_only_names_parts_of_the_manifest(tmp_path, capsys):
    assert main(["regenerate", "--manifest", str(_manifest(tmp_path)), "--only", "sunspot", "--plan"]) == 2
    err = capsys.readouterr().err
    assert "no part named 'sunspot'" in err and "the parts are sunspots, digits" in err


def test_plan_counts_the_trials_and_estimates_their_time(tmp_path, capsys):
    assert main(["regenerate", "--manifest", str(_manifest(tmp_path)), "--seeds", "3", "--plan",
                 "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "trials: 6 + 6 perturbed = 12, 0 done" in out and "estimate 6 min of CPU at 30 s per trial" in out
    assert "part digits (page own_data.md)" in out and "not perturbed" in out and "trials: 3, 0 done" in out
    assert "total: 15 trials, 15 to run" in out and "plus the parts without an estimate" in out
    assert not (tmp_path / "out").exists()          # a plan runs nothing


def test_data_root_applies_to_the_parts_that_read_data(tmp_path, capsys):
    """sunspots reads a CSV (found in --data-root first, then beside its spec); a generated
    series reads none, so --data-root, given for every part, leaves it as it is."""
    narma5 = ROOT / "specs" / "narma5.task"
    m = _manifest(tmp_path, f"""[[part]]
name = "narma"
page = "table2.md"
specs = ["{narma5}"]
models = "classical"
outputs = "regen/narma"

[[part]]
name = "sunspots"
page = "own_data.md"
specs = ["{SUNSPOTS}"]
models = "classical"
outputs = "regen/sunspots"
""")
    parts = {p.name: p for p in regen.load_manifest(m).parts}
    assert not regen.reads_data(parts["narma"]) and regen.reads_data(parts["sunspots"])
    assert main(["regenerate", "--manifest", str(m), "--plan", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cannot run here" not in out and "total: 2 trials" in out


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_tiny_regeneration_runs_perturbed_twins_resumes_and_publishes(tmp_path, capsys):
    m, out, pub = _manifest(tmp_path), tmp_path / "out", tmp_path / "pub"
    cmd = ["regenerate", "--manifest", str(m), "--only", "sunspots", "-o", str(out), "--publish", str(pub)]
    assert main(cmd + TINY) == 0
    part = out / "sunspots"
    assert sorted(p.name for p in part.iterdir()) == ["report", "sunspots", "sunspots@perturb=1e-07", "sweep.json"]
    moved = json.loads((part / "sunspots@perturb=1e-07" / "diffqas" / "seed0" / "resolved.json").read_text())
    assert moved["options"]["perturb"] == 1e-7
    published = pub / "regen" / "sunspots"
    record = json.loads((published / "regenerate.json").read_text())
    assert record["complete"] and record["trials"] == 4 and record["request"]["perturb"] == 1e-7
    assert record["commits"] and record["commits"][0] != "not a checkout"    # the code of every run
    assert {"report.md", "summary.csv", "spread.csv", "spread.md", "variants.csv", "table2.csv"} <= {
        p.name for p in published.iterdir()}
    spread = _rows(published / "spread.csv")
    assert {r["model"] for r in spread} == {"diffqas", "classical"}
    assert all(0 < float(r["relative_change"]) < 1e-2 for r in spread)   # moved, a little
    # Table II's cells are the runs as written; the perturbed twins are a variant beside them
    assert {r["model"] for r in _rows(published / "table2.csv")} == {"DiffQAS-QT", "classical LSTM"}
    assert len(_rows(published / "table2.csv")) == 2
    summary = _rows(published / "summary.csv")
    assert {"last_median", "last10_median"} <= set(summary[0])
    capsys.readouterr()

    assert main(cmd + TINY) == 0                      # finished: skipped whole
    assert "part sunspots: finished earlier" in capsys.readouterr().out
    (part / "sunspots" / "classical" / "seed0" / "trial.json").unlink()     # one trial undone, here
    import shutil                                                            # and in the ledger
    shutil.rmtree(published / "trials" / "sunspots" / "classical" / "seed0")
    assert main(cmd + TINY) == 0
    said = capsys.readouterr().out
    assert "part sunspots: 1 run, 3 done earlier, 0 failed" in said and "published to" in said
    assert main(cmd + TINY + ["--seeds", "2"]) == 0      # another request: the new seed runs
    assert "part sunspots: 4 run, 4 done earlier" in capsys.readouterr().out


def test_publish_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    m, pub = _manifest(tmp_path), tmp_path / "pub"
    (pub / "regen" / "digits").mkdir(parents=True)
    (pub / "regen" / "digits" / "notes.md").write_text("mine")
    assert main(["regenerate", "--manifest", str(m), "--only", "digits", "-o", str(tmp_path / "out"),
                 "--publish", str(pub)] + TINY) == 2
    assert "holds files qtc regenerate did not write" in capsys.readouterr().err
    assert (pub / "regen" / "digits" / "notes.md").read_text() == "mine"


def test_a_part_folder_another_driver_holds_gets_nothing_read_back(tmp_path, capsys):
    """The part's lock comes before the published trials are written back into its folder: two
    regenerations into one -o never interleave."""
    from qtc.tasks.runs import guard
    m, pub = _manifest(tmp_path), tmp_path / "pub"
    cmd = ["regenerate", "--manifest", str(m), "--only", "digits", "--publish", str(pub)] + TINY
    assert main(cmd + ["-o", str(tmp_path / "a")]) == 0
    busy = tmp_path / "b" / "digits"
    busy.mkdir(parents=True)
    capsys.readouterr()
    with guard.RunLock(busy):
        assert main(cmd + ["-o", str(tmp_path / "b")]) == 2
        assert "in use by process" in capsys.readouterr().err
        assert sorted(p.name for p in busy.iterdir()) == [guard.LOCK]
    assert main(cmd + ["-o", str(tmp_path / "b")]) == 0
    assert "1 trial(s) read back from" in capsys.readouterr().out


def test_perturb_on_an_a3c_part_is_refused_by_name(tmp_path, capsys):
    cartpole = ROOT / "specs" / "cartpole.task"
    m = _manifest(tmp_path, f"""[[part]]
name = "cart"
page = "cartpole.md"
specs = ["{cartpole}"]
perturb = 1e-7
outputs = "regen/cart"
""")
    assert main(["regenerate", "--manifest", str(m), "-o", str(tmp_path / "out"), "--jobs", "1"]) == 2
    assert "part cart: --perturb does not apply to a3c tasks" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Published trials: a cut-off run resumed in another session from what was committed
# --------------------------------------------------------------------------------------------

RESULTS = ("summary.csv", "table2.csv", "spread.csv", "variants.csv", "curves.csv", "baselines.csv")


def _report_text(folder: Path) -> str:
    """report.md without its 'Generated ... from OUT. Command: ...' line (the folder differs)
    and the trials' wall time (the rerun trials took other seconds)."""
    return "\n".join(line for line in (folder / "report.md").read_text().splitlines()
                     if not line.startswith(("Generated ", "- trial time: ")))


def test_a_cut_off_part_resumes_from_its_published_trials_on_a_fresh_folder(tmp_path, capsys, monkeypatch):
    """Each trial is published as it finishes; a session cut off after two trials leaves them
    in the ledger (the part's report is not published yet); a fresh output folder (a fresh
    clone) reads them back, runs the other two and writes the report a straight run writes."""
    from qtc.tasks.experiments import ledger
    m = _manifest(tmp_path)
    straight, pub = tmp_path / "straight", tmp_path / "pub"
    assert main(["regenerate", "--manifest", str(m), "--only", "sunspots", "-o", str(straight),
                 "--publish", str(tmp_path / "pub_straight")] + TINY) == 0

    published = []
    real = ledger.publish

    def cut_off_after_two(trial, out, book, fp):
        real(trial, out, book, fp)
        published.append(trial.key)
        if len(published) == 2:
            raise KeyboardInterrupt        # the session ends here
    monkeypatch.setattr(ledger, "publish", cut_off_after_two)
    cmd = ["regenerate", "--manifest", str(m), "--only", "sunspots", "--publish", str(pub)]
    assert main(cmd + ["-o", str(tmp_path / "session1")] + TINY) == 130      # "interrupted"
    monkeypatch.setattr(ledger, "publish", real)
    book = pub / "regen" / "sunspots" / "trials"
    assert sorted(p.parent.relative_to(book).as_posix() for p in book.glob("*/*/*/record.json")) == sorted(published)
    assert not (pub / "regen" / "sunspots" / "report.md").exists()
    record = json.loads((book / published[0] / "record.json").read_text())
    assert record["status"] == "done" and record["commit"] and "metrics.json" in record["files"]
    capsys.readouterr()

    fresh = tmp_path / "session2"                          # nothing of session1 but the ledger
    assert main(cmd + ["-o", str(fresh), "--plan"] + TINY) == 0
    assert "4 trials, 2 to run" in capsys.readouterr().out.replace("total: ", "")
    assert main(cmd + ["-o", str(fresh)] + TINY) == 0
    said = capsys.readouterr().out
    assert f"2 trial(s) read back from {book}" in said and "part sunspots: 2 run, 2 done earlier, 0 failed" in said
    for name in RESULTS:
        assert (fresh / "sunspots" / "report" / name).read_text() == (straight / "sunspots" / "report" / name).read_text(), name
    assert _report_text(fresh / "sunspots" / "report") == _report_text(straight / "sunspots" / "report")
    assert len(list(book.glob("*/*/*/record.json"))) == 4 and (pub / "regen" / "sunspots" / "report.md").is_file()
    rec = json.loads((pub / "regen" / "sunspots" / "regenerate.json").read_text())
    assert rec["complete"] and rec["trials"] == 4


def test_a_trial_published_for_another_fingerprint_is_refused_or_rerun(tmp_path, capsys):
    """A spec changed after its trials were published: the records are refused with what differs
    (a rerun would replace a committed number silently); --rerun-stale deletes and reruns them."""
    import shutil
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    shutil.copy(SUNSPOTS.parent / "sunspots.csv", spec_dir)
    spec = spec_dir / "sunspots.task"
    spec.write_text(SUNSPOTS.read_text())
    m = _manifest(tmp_path, f"""[[part]]
name = "sun"
page = "own_data.md"
specs = ["{spec}"]
models = "classical"
outputs = "regen/sun"
""")
    pub = tmp_path / "pub"
    cmd = ["regenerate", "--manifest", str(m), "--publish", str(pub)]
    assert main(cmd + ["-o", str(tmp_path / "a")] + TINY) == 0
    record = pub / "regen" / "sun" / "trials" / "sunspots" / "classical" / "seed0" / "record.json"
    before = record.read_text()
    spec.write_text(SUNSPOTS.read_text().replace("lr 0.01", "lr 0.02"))
    capsys.readouterr()
    assert main(cmd + ["-o", str(tmp_path / "b"), "--plan"] + TINY) == 0
    assert "0 published in" in (out := capsys.readouterr().out) and "(1 more published for another fingerprint: stale)" in out
    assert main(cmd + ["-o", str(tmp_path / "b")] + TINY) == 2
    err = capsys.readouterr().err
    assert "1 finished trial(s) were run for another fingerprint" in err
    assert "task.train.lr: 0.01 -> 0.02" in err and "--rerun-stale" in err
    assert record.read_text() == before and not (tmp_path / "b" / "sun" / "sunspots").exists()
    # the same refusal for a trial done in the output folder and not yet published
    shutil.rmtree(pub / "regen" / "sun" / "trials")
    assert main(cmd + ["-o", str(tmp_path / "a")] + TINY) == 2
    assert "task.train.lr: 0.01 -> 0.02" in capsys.readouterr().err
    assert main(cmd + ["-o", str(tmp_path / "a"), "--rerun-stale"] + TINY) == 0
    assert "1 stale record(s) deleted, to run again" in capsys.readouterr().out
    assert json.loads(record.read_text())["fingerprint"] != json.loads(before)["fingerprint"]
    lr = json.loads((tmp_path / "a" / "sun" / "sunspots" / "classical" / "seed0" / "resolved.json").read_text())
    assert lr["task"]["train"]["lr"] == 0.02


def test_a_fingerprint_differs_by_what_changes_the_run_not_by_an_option_added_at_its_default():
    """As the run's resume check: a record made before an option existed (its identity lacks
    the key) still matches while the option is at its default; a changed value does not."""
    from qtc.tasks.experiments import ledger
    table2 = {p.name: p for p in regen.load_manifest().parts}["table2_authors"]
    trial = regen.plan_part(table2, (0,), 1e-7, {})[-1]          # a perturbed twin
    loaded: dict = {}
    want = ledger.planned(trial, loaded)
    assert ledger.mismatch(trial, want, want, loaded) == []
    older = ledger.fingerprint_of({k: v for k, v in want["identity"].items() if k != "task.generator.index"},
                                  want["budget"], want["twins"])
    assert older["sha256"] != want["sha256"] and ledger.mismatch(trial, older, want, loaded) == []
    other = ledger.fingerprint_of({**want["identity"], "options.perturb": 1e-6}, {**want["budget"], "epochs": 7},
                                  want["twins"])
    assert ledger.mismatch(trial, other, want, loaded) == [
        f"budget.epochs: 7 -> {want['budget']['epochs']!r}", "options.perturb: 1e-06 -> 1e-07"]
    assert trial.variant == "perturb=1e-07"
    assert ledger.mismatch(trial, None, want, loaded) == ["no readable fingerprint.json"]
