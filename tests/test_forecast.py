"""Forecasting (paper Table II): specs, smoke runs, resume, export, the Table II command."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from qtc.cli import main
from qtc.errors import SpecError
from qtc.tasks.kinds import forecast as FC
from qtc.tasks.build import load_task
from qtc.tasks.data.series import NAMES
from qtc.tasks.experiments import table2

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _run(spec, out, *extra):
    return main(["run", str(spec), "-o", str(out), "--no-progress", *extra])


def _rows(folder):
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((Path(folder) / "metrics.json").read_text())]


@pytest.mark.parametrize("name", NAMES)
def test_each_spec_has_the_papers_parameter_counts(name):
    built = load_task(SPECS / f"{name}.task")
    net = next(iter(built.nets.values()))
    assert net.num_params == 1781                           # LSTM(1 -> 20) + Linear(20 -> 1)
    source = built.sources("diffqas")[net.name]
    assert sum(p.numel() for p in source.parameters() if p.requires_grad) == 135   # 110 + 12 + 13
    assert source().shape == (1781,)
    fixed = built.sources("fixed:4")[net.name]
    assert sum(p.numel() for p in fixed.parameters() if p.requires_grad) == 123    # no structural weights
    assert (built.spec.train.optimizer, built.spec.train.lr, built.spec.train.batch) == ("rmsprop", 0.01, 10)


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_of_each_spec_for_two_epochs(name, tmp_path):
    out = tmp_path / name
    assert _run(SPECS / f"{name}.task", out, "--epochs", "2", "--max-batches", "2",
                "--models", "diffqas,classical") == 0
    rows = _rows(out)
    assert [(r["model"], r["epoch"]) for r in rows] == [("diffqas", 1), ("diffqas", 2),
                                                        ("classical", 1), ("classical", 2)]
    assert all(0 < r["test_mse"] < 10 and r["test_mse"] == r["test_loss"] for r in rows)
    assert len(rows[1]["structural_weights"]) == 12
    summary = json.loads((out / "summary.json").read_text())
    dq = next(r for r in summary["rows"] if r["model"] == "diffqas")
    assert dq["paper_test_mse"] == table2.PAPER_TABLE2[name]["DiffQAS-QT"]
    assert dq["test_mse"] == rows[1]["test_mse"]
    assert "paper test MSE" in (out / "summary.md").read_text()
    for model in ("diffqas", "classical"):                 # report epochs [1, 15, 30, 100] + the last
        assert (out / "plots" / f"predictions_{model}_epoch1.png").stat().st_size > 10_000
        assert (out / "plots" / f"predictions_{model}_epoch2.png").is_file()
        assert (out / "models" / model / "model.pt").is_file()
    assert (out / "plots" / "structural_weights.png").is_file()


@pytest.mark.slow
def test_resume_after_an_interrupt_gives_exactly_the_straight_run(tmp_path, monkeypatch):
    spec, args = SPECS / "narma5.task", ("--epochs", "2", "--max-batches", "3", "--models", "diffqas,classical")
    assert _run(spec, tmp_path / "straight", *args) == 0
    calls = {"n": 0}
    real = F.mse_loss

    def interrupting(*a, **k):  # training steps 1-3 are epoch 1: stop at epoch 2's second batch
        calls["n"] += torch.is_grad_enabled()   # evaluation runs without grad
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(F, "mse_loss", interrupting)
    assert _run(spec, tmp_path / "resumed", *args) == 130
    monkeypatch.setattr(F, "mse_loss", real)
    partial = _rows(tmp_path / "resumed")
    assert [(r["model"], r["epoch"]) for r in partial] == [("diffqas", 1)]
    assert main(["run", "--resume", str(tmp_path / "resumed"), "--no-progress"]) == 0
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    a = torch.load(tmp_path / "straight" / "models" / "diffqas" / "model.pt")
    b = torch.load(tmp_path / "resumed" / "models" / "diffqas" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_exported_lstms_run_stand_alone_and_reproduce_the_test_mse(tmp_path):
    out = tmp_path / "run"
    assert _run(SPECS / "damped_shm.task", out, "--epochs", "1", "--max-batches", "4",
                "--models", "diffqas,classical") == 0
    _, wins, _ = FC.load_series(load_task(SPECS / "damped_shm.task"))
    torch.save({"x": wins.x_test, "y": wins.y_test}, tmp_path / "test.pt")
    script = (
        "import importlib.util, sys, torch\n"
        "d = torch.load(sys.argv[2])\n"
        "for model in ('classical', 'diffqas'):\n"
        "    folder = sys.argv[1] + '/models/' + model\n"
        "    spec = importlib.util.spec_from_file_location('m', folder + '/model.py')\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "    net = m.load(folder + '/model.pt').eval()\n"
        "    with torch.no_grad():\n"
        "        print(model, float(((net(d['x']) - d['y']) ** 2).mean()))\n"
        "assert not any(k.startswith('qtc') for k in sys.modules), 'the export must not need qtc'\n")
    res = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "test.pt")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    got = {line.split()[0]: float(line.split()[1]) for line in res.stdout.splitlines()}
    want = {r["model"]: r["test_mse"] for r in _rows(out)}
    for model in ("classical", "diffqas"):
        assert got[model] == pytest.approx(want[model], rel=1e-5, abs=1e-9)


def test_data_options_reach_the_generator_and_unknown_ones_are_located(tmp_path):
    text = (SPECS / "bessel.task").read_text()
    good = tmp_path / "good.task"
    good.write_text(text.replace("data bessel window 4 split 0.67", "data bessel window 4 split 0.5 points 304"))
    series, wins, desc = FC.load_series(load_task(good))
    # drop_last (the authors' loop, as the specs ship): 304 - 4 - 1 = 299 windows
    assert len(series) == 304 and len(wins.x_train) == 149 and len(wins.x_test) == 150
    assert "linspace(2, 100, 304)" in desc
    bad = tmp_path / "bad.task"
    bad.write_text(text.replace("data bessel window 4 split 0.67", "data bessel window 4 split 0.67 pointz 300"))
    with pytest.raises(SpecError) as err:
        FC.load_series(load_task(bad))
    line, src = next((i, s) for i, s in enumerate(bad.read_text().splitlines(), 1) if s.startswith("data "))
    msg = str(err.value)
    assert f"bad.task:{line}:{src.index('pointz') + 1}:" in msg
    assert "unknown option 'pointz'" in msg and "did you mean 'points'" in msg


def test_paper_rows_map_to_our_candidates():
    built = load_task(SPECS / "delayed_qc.task")
    labels = built.candidate_labels()
    assert table2.paper_row("diffqas", labels) == "DiffQAS-QT"
    assert [table2.paper_row(f"fixed:{k}", labels) for k in range(12)] == [f"Config {k}" for k in range(1, 13)]
    assert table2.paper_row("classical", labels) is None
    assert table2.paper_value("delayed_qc", "Config 11") == 0.000211
    assert table2.paper_value("narma10", "DiffQAS-QT") == 0.000117


@pytest.mark.slow
def test_table2_command_writes_markdown_and_csv_and_reuses_finished_runs(tmp_path, capsys):
    args = ["table2", "--epochs", "1", "--max-batches", "1", "--jobs", "1", "--datasets", "narma10",
            "--models", "diffqas,fixed:0,fixed:2,classical", "-o", str(tmp_path)]
    assert main(args) == 0
    md = (tmp_path / "table2.md").read_text()
    assert "| DiffQAS-QT |" in md and "| Config 3 |" in md and "| classical LSTM |" in md
    assert "0.000117" in md and "cells filled: 4" in md
    assert not (tmp_path / "narma10" / "fixed_2").exists()      # config 3 = config 1 (uniform)
    with (tmp_path / "table2.csv").open() as fh:
        cells = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(cells) == {"DiffQAS-QT", "Config 1", "Config 3", "classical LSTM"}
    assert cells["Config 3"]["test_mse_mean"] == cells["Config 1"]["test_mse_mean"]
    assert float(cells["Config 3"]["paper_test_mse"]) == 0.000095
    assert float(cells["DiffQAS-QT"]["paper_test_mse"]) == 0.000117
    summary = json.loads((tmp_path / "narma10" / "diffqas" / "seed0" / "summary.json").read_text())
    assert float(cells["DiffQAS-QT"]["test_mse_mean"]) == pytest.approx(summary["rows"][0]["test_mse"], rel=1e-6)
    capsys.readouterr()
    assert main(args) == 0                                    # a rerun finds every run finished
    assert capsys.readouterr().out.count("reused") == 3


def test_tied_constant_candidates_really_train_identically(tmp_path):
    # A run trains a merged group once (Built.twins); here each member is trained, in two runs
    # without their twin, to check that the compiler's merge is sound.
    rows = {}
    for name, models in (("first", "fixed:0,fixed:8"), ("twins", "fixed:2,fixed:11")):
        assert _run(SPECS / "narma5.task", tmp_path / name, "--epochs", "1", "--max-batches", "3",
                    "--models", models) == 0
        rows.update({r["model"]: {k: v for k, v in r.items() if k not in ("model", "label")}
                     for r in _rows(tmp_path / name)})
    assert rows["fixed:0"] == rows["fixed:2"] and rows["fixed:8"] == rows["fixed:11"]
    assert rows["fixed:0"] != rows["fixed:8"]


def test_epochs_below_the_report_epochs_says_which_plots_it_skips(tiny, tmp_path, capsys):
    """--epochs 2 on a spec reporting epochs [1, 3] draws epoch 1 and the last (2), and says so
    for epoch 3 instead of skipping it silently."""
    tiny.write_text(tiny.read_text() + "report epochs [1, 3]\n")
    run = tmp_path / "run"
    assert main(["run", str(tiny), "--models", "classical", "--epochs", "2", "-o", str(run),
                 "--no-progress"]) == 0
    assert "--epochs 2 ends before the spec's report epoch 3: no prediction plot" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "plots").glob("predictions_*")) == [
        "predictions_classical_epoch1.png", "predictions_classical_epoch2.png"]
