"""The command line as a new user meets it (issue 13): no value silently replaced, `--set` and
`--grid`, `--threads`, errors before a run folder exists, `--version`, a closed stdout pipe."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qtc.cli import main, version_text
from qtc.tasks.experiments.sweep import parse_grid, plan, sweep

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SMOKE = ["--models", "classical", "--epochs", "1", "--max-batches", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def _keep_torch_threads(monkeypatch):
    """A run sets torch's threads for the whole process: give the next test its own back."""
    monkeypatch.delenv("QTC_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _resolved(run: Path) -> dict:
    return json.loads((run / "resolved.json").read_text())


# --- no value silently replaced --------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be a whole number between 1 and 1,000,000, got 0"),
    (["--max-batches", "0"], "--max-batches must be a whole number between 1 and 1,000,000,000, got 0"),
    (["--limit", "-5"], "--limit must be a whole number >= 1, got -5"),
    (["--seed", "-3"], "--seed must be a whole number between 0 and 4,294,967,295"),
    (["--threads", "0"], "--threads must be a whole number between 1 and 1,024, got 0"),
    (["--set", "train.epochs=0"], "--set train.epochs=0: 'train' option 'epochs': must be at least 1"),
    (["--set", "train.seed=-3"], "--set train.seed=-3: 'train' option 'seed': must be at least 0"),
])
def test_each_value_that_was_silently_replaced_is_an_error_before_any_run_folder(
        tiny, tmp_path, capsys, args, message):
    assert main(["run", str(tiny), *args, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_compile_qubits_zero_is_an_error_not_the_spaces_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compile", str(SPECS / "hadamard_ent_rot.qs"), "--qubits", "0", "-o", str(tmp_path)])
    assert exit_.value.code == 2
    assert "must be between 1 and 30, got 0" in capsys.readouterr().err
    assert not (tmp_path / "report.txt").exists()


def test_compile_qubits_on_a_task_is_refused_or_shown_in_the_parameter_table(tmp_path, capsys):
    bessel = str(SPECS / "bessel.task")
    assert main(["compile", bessel, "--qubits", "9", "-o", str(tmp_path / "a")]) == 2
    assert "1,781 parameters but 9 qubits give only 512" in capsys.readouterr().err
    assert main(["compile", bessel, "--qubits", "12", "--depth", "3", "-o", str(tmp_path / "b")]) == 0
    report = (tmp_path / "b" / "report.txt").read_text()
    assert "qubits                12 (2^12" in report and "angles                36 = 3 x 12" in report
    assert (tmp_path / "b" / "program.ir").read_text().startswith("program hadamard_ent_rot qubits 12 depth 3")


# --- --set and --grid ---------------------------------------------------------------------
def test_set_round_trips_into_resolved_json_and_a_resume_keeps_it(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", str(tiny), *SMOKE, "--set", "train.lr=3e-4", "--set", "generator.depth=3",
                 "-o", str(run)]) == 0
    res = _resolved(run)
    assert res["settings"] == {"train.lr": "3e-4", "generator.depth": "3"}
    assert res["task"]["train"]["lr"] == 3e-4 and res["program"]["depth"] == 3
    assert main(["run", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert _resolved(run)["task"]["train"]["lr"] == 3e-4 and _resolved(run)["options"]["epochs"] == 2
    capsys.readouterr()
    assert main(["run", "--resume", str(run), "--set", "train.lr=1e-3"]) == 2
    assert "--set train.lr=1e-3 (the run has train.lr=3e-4 generator.depth=3)" in capsys.readouterr().err


def test_set_applies_to_every_seed_of_a_seeds_run(tiny, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["run", str(tiny), *SMOKE, "--seeds", "0,1", "--set", "train.lr=3e-4", "-o", str(out)]) == 0
    for seed in (0, 1):
        res = _resolved(out / "tiny" / "classical" / f"seed{seed}")
        assert res["settings"] == {"train.lr": "3e-4"} and res["task"]["train"]["lr"] == 3e-4


@pytest.mark.parametrize("setting, message", [
    ("train.lrr=1", "'train' has no option 'lrr'\nhint: did you mean 'lr'?; 'train' options: optimizer, lr,"),
    ("trian.lr=1", "no statement 'trian'\nhint: did you mean 'train'?; statements: data, generator, train"),
    ("train.lr=abc", "'train' option 'lr': Input should be a valid number"),
    ("train.lr=inf", "'lr': Input should be a finite number"),
    ("generator.mapping=cubic", "'generator' option 'mapping': expected 'linear' or 'mlp'"),
    ("env.id=MiniGrid-Empty-5x5-v0", "the task has no 'env' statement to change"),
    ("train.lr", "expected STATEMENT.OPTION=VALUE"),
])
def test_a_bad_setting_exits_2_naming_the_option_and_the_allowed_ones(tiny, tmp_path, capsys, setting, message):
    assert main(["run", str(tiny), "--set", setting, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_the_same_option_twice_is_an_error_not_a_silent_replacement(tiny, tmp_path, capsys):
    assert main(["run", str(tiny), "--set", "train.lr=1e-3", "--set", "train.lr=1e-2"]) == 2
    assert "--set train.lr given twice" in capsys.readouterr().err
    assert main(["compile", str(tiny), "--qubits", "4", "--set", "generator.qubits=5", "-o", str(tmp_path)]) == 2
    assert "generator.qubits given twice" in capsys.readouterr().err


def test_grid_values_split_at_commas_outside_brackets():
    assert parse_grid(["train.lr=1e-3,1e-2", "data.classes=[1, 5],[3, 7]"]) == {
        "train.lr": ["1e-3", "1e-2"], "data.classes": ["[1, 5]", "[3, 7]"]}


def test_a_grid_sweep_runs_the_cartesian_product_each_point_recorded_in_its_folder(tiny, tmp_path):
    grid = parse_grid(["train.lr=1e-3,1e-2", "generator.depth=2,3"])
    trials = plan([str(tiny)], [0], "classical", overrides={"epochs": 1, "max_batches": 1},
                  settings={"train.batch": "5"}, grid=grid)
    assert sorted(t.key for t in trials) == [f"tiny@train.lr={lr},generator.depth={d}/classical/seed0"
                                             for lr in ("1e-2", "1e-3") for d in (2, 3)]
    with pytest.raises(Exception, match="'generator' option 'depth': depth must be between 1 and 10000"):
        plan([str(tiny)], [0], "classical", grid=parse_grid(["generator.depth=2,0"]))
    two = [t for t in trials if t.key.endswith("depth=2/classical/seed0")]
    res = sweep(two, tmp_path / "out", executor="serial", progress=False)
    assert len(res.done) == 2 and not res.failed
    for t in two:
        got = _resolved(tmp_path / "out" / t.key)
        lr = float(dict(t.settings)["train.lr"])
        assert got["settings"] == {"train.batch": "5", "train.lr": dict(t.settings)["train.lr"],
                                   "generator.depth": "2"}
        assert got["task"]["train"]["lr"] == lr and got["task"]["train"]["batch"] == 5


# --- --threads --------------------------------------------------------------------------------
def test_threads_default_to_one_are_printed_recorded_and_qtc_threads_overrides(tiny, tmp_path, capsys, monkeypatch):
    assert main(["run", str(tiny), *SMOKE, "-o", str(tmp_path / "a")]) == 0
    assert "torch threads: 1" in capsys.readouterr().out
    assert _resolved(tmp_path / "a")["options"]["threads"] == 1
    monkeypatch.setenv("QTC_THREADS", "2")
    assert main(["run", str(tiny), *SMOKE, "-o", str(tmp_path / "b")]) == 0
    assert _resolved(tmp_path / "b")["options"]["threads"] == 2
    assert main(["run", str(tiny), *SMOKE, "--threads", "3", "-o", str(tmp_path / "c")]) == 0
    assert _resolved(tmp_path / "c")["options"]["threads"] == 3
    monkeypatch.setenv("QTC_THREADS", "many")
    assert main(["run", str(tiny), *SMOKE, "-o", str(tmp_path / "d")]) == 2
    assert "QTC_THREADS must be a whole number >= 1, got 'many'" in capsys.readouterr().err


# --- errors that came late --------------------------------------------------------------------
@pytest.mark.parametrize("edit, message", [
    (("classes [1, 5]", "classes [3, 10]"), ":3:1: error: class 10 does not exist in mnist"),
    (("data mnist", "data mnistt"), ":3:1: error: unknown image data set 'mnistt'\n"),
])
def test_a_bad_data_statement_fails_at_compile_and_before_a_run_folder(tmp_path, capsys, edit, message):
    spec = tmp_path / "t.task"
    spec.write_text((SPECS / "mnist_1v5.task").read_text().replace(*edit))
    shutil.copy(SPECS / "hadamard_ent_rot.qs", tmp_path)
    assert main(["compile", str(spec), "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert main(["run", str(spec), "-o", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["run", "table2"])
@pytest.mark.parametrize("word, hint", [("gpu", "the GPU backend is called 'cuda'"),
                                        ("cpuu", "did you mean 'cpu'?")])
def test_an_unknown_backend_is_a_usage_error_with_the_alias_hint(tiny, tmp_path, capsys, command, word, hint):
    spec = [str(tiny)] if command == "run" else []
    with pytest.raises(SystemExit) as exit_:
        main([command, *spec, "--backend", word, "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"unknown backend '{word}': {hint}" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("words, hint", [(["--epoch", "1"], "'--epochs'"),
                                         (["--epoch=1", "--modles", "x"], "'--epochs', '--models'")])
def test_an_abbreviated_or_misspelt_option_is_refused_with_the_full_name(tiny, tmp_path, capsys, words, hint):
    with pytest.raises(SystemExit) as exit_:       # not taken for --epochs: no abbreviations
        main(["run", str(tiny), *words, "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"unrecognized arguments: {' '.join(words)}" in err
    assert f"hint: did you mean {hint}?" in err and not (tmp_path / "run").exists()


def test_backend_with_only_the_classical_network_is_said_to_change_nothing(tiny, tmp_path, capsys):
    """--backend picks the circuits' simulator: with no model that runs one, a note says so (the
    run goes on: a sweep's --backend rides along with its classical trials); with a quantum
    model, or without --backend, nothing is said."""
    note = "note: --backend reference changes nothing here: no model runs a circuit (models: classical)"
    assert main(["run", str(tiny), "-o", str(tmp_path / "a"), "--backend", "reference", *SMOKE]) == 0
    assert note in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "a"), "--backend", "reference", "--no-progress"]) == 0
    assert note in capsys.readouterr().err
    assert main(["sweep", str(tiny), "--out", str(tmp_path / "s"), "--executor", "serial", "--no-report",
                 "--backend", "reference", *SMOKE]) == 0
    assert capsys.readouterr().err.count(note) == 1                 # once for the sweep, not per trial
    from qtc.tasks.runs.runner import note_idle_backend
    for backend, models in (("reference", ["diffqas", "classical"]), ("reference", ["fixed:3"]),
                            (None, ["classical"])):
        note_idle_backend(backend, models)
        assert "note:" not in capsys.readouterr().err


def test_play_on_a_forecast_run_says_it_needs_an_a3c_run(tiny, tmp_path, capsys):
    assert main(["run", str(tiny), *SMOKE, "-o", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["play", str(tmp_path / "run")]) == 2
    assert "is a forecast run (tiny): qtc play watches a policy, so it needs an A3C run" in capsys.readouterr().err


# --- --version, closed pipes ------------------------------------------------------------------
def test_version_prints_the_version_and_in_a_checkout_the_commit(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    out = capsys.readouterr().out.strip()
    assert exit_.value.code == 0 and out == version_text()
    pattern = r"qtc \d+\.\d+\.\d+ \(git [0-9a-f]{7,}(-dirty)?\)" if (ROOT / ".git").exists() else r"qtc \d+\.\d+\.\d+"
    assert re.fullmatch(pattern, out), out


def test_compile_into_a_closed_pipe_exits_quietly(tmp_path):
    """`qtc compile X.task | head`: the reader is gone before qtc prints its report."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "qtc", "compile", str(SPECS / "bessel.task"), "-o",
                           str(tmp_path)], stdout=write, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=300)
    os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")
    assert (tmp_path / "report.txt").is_file()        # the files were written before the print
