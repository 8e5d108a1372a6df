"""--perturb EPS: the same seed with every initial parameter moved by at most EPS (issue 32: the
commit-to-commit spread, measured), recorded in the run's settings and fingerprint."""
from __future__ import annotations

import json

import pytest
import torch

from qtc.cli import main
from qtc.errors import QtcError
from qtc.tasks.build import load_task
from qtc.tasks.engines.supervised import perturb
from qtc.tasks.runs import runner


def _initial(built, model: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return next(iter(built.sources(model).values()))


@pytest.mark.parametrize("model", ["diffqas", "classical"])
def test_perturb_moves_every_parameter_by_at_most_eps_and_is_seeded(tiny, model):
    built = load_task(tiny)
    before = {k: v.clone() for k, v in _initial(built, model).state_dict().items()}
    moved = _initial(built, model)
    perturb(moved, 1e-7, seed=3)
    after = moved.state_dict()
    diffs = torch.cat([(after[k] - before[k]).abs().flatten().double() for k in before])
    # at most EPS, plus half a rounding step of the parameter's dtype (float32 here)
    half_ulp = torch.cat([before[k].abs().flatten().double() * torch.finfo(before[k].dtype).eps / 2
                          for k in before])
    assert 0 < diffs.max() and bool((diffs <= 1e-7 + half_ulp).all())
    # a float32 parameter near 0.1 rounds a draw under ~7e-9 away: most move, not all
    assert (diffs > 0).double().mean() > 0.8
    again = _initial(built, model)
    perturb(again, 1e-7, seed=3)
    other = _initial(built, model)
    perturb(other, 1e-7, seed=4)
    assert all(torch.equal(again.state_dict()[k], after[k]) for k in before)
    assert not all(torch.equal(other.state_dict()[k], after[k]) for k in before)


def test_a_perturbed_run_is_recorded_and_differs_only_slightly(tiny, tmp_path):
    base, moved = tmp_path / "base", tmp_path / "moved"
    common = ["run", str(tiny), "--epochs", "1", "--no-progress", "--models", "diffqas,classical"]
    assert main(common + ["-o", str(base)]) == 0
    assert main(common + ["-o", str(moved), "--perturb", "1e-7"]) == 0
    assert json.loads((moved / "resolved.json").read_text())["options"]["perturb"] == 1e-7
    ident = json.loads((moved / "fingerprint.json").read_text())["identity"]
    assert ident["options.perturb"] == 1e-7
    # an unperturbed run's identity has no such key: the fingerprints of older runs stay valid
    assert "options.perturb" not in json.loads((base / "fingerprint.json").read_text())["identity"]
    rows = {p: {r["model"]: r["test_mse"] for r in json.loads((p / "metrics.json").read_text())}
            for p in (base, moved)}
    for model in ("diffqas", "classical"):
        a, b = rows[base][model], rows[moved][model]
        assert a != b and abs(a - b) <= 1e-3 * a, (model, a, b)


def test_a_resumed_run_keeps_its_perturbation(tiny, tmp_path):
    out = tmp_path / "r"
    assert main(["run", str(tiny), "--epochs", "1", "--no-progress", "--models", "classical",
                 "-o", str(out), "--perturb", "1e-7"]) == 0
    with pytest.raises(QtcError, match=r"keeps the settings it started with; differs: --perturb 1e-06"):
        runner.reopen(out, overrides={"perturb": 1e-6})


@pytest.mark.parametrize("value", ["0", "-1e-7", "0.5", "nan", "x"])
def test_a_bad_perturbation_is_a_usage_error(tiny, tmp_path, capsys, value):
    try:                 # a range error is qtc's (returned), a non-number argparse's (raised)
        code = main(["run", str(tiny), f"--perturb={value}", "-o", str(tmp_path / "r")])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert "--perturb" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_perturb_is_refused_for_an_a3c_task():
    with pytest.raises(QtcError, match="--perturb does not apply to a3c tasks"):
        runner.resolve_options(load_task(runner.Path(__file__).parents[1] / "specs" / "cartpole.task"),
                               perturb=1e-7)
