"""qtc.experiment.Experiment: a model and data from Python through the run machinery of `qtc run`.

On real data (the 10k MNIST sample beside the repository, pooled to 7x7) and tiny budgets:
every model into one run folder with its reports and exports, resume after an interrupt to the
metrics of a straight run, refusal of a changed experiment, seeds with a report over them, the
README's example executed verbatim, and the errors for Python objects that cannot run.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qtc import cli
from qtc.errors import QtcError
from qtc.experiment import Experiment

REPO = Path(__file__).resolve().parent.parent
MNIST = REPO.parent / "shared" / "data" / "mnist-10k"
pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="shared/data/mnist-10k is not beside the repo")


def _idx(name: str) -> torch.Tensor:
    data = gzip.open(MNIST / name).read()
    shape = np.frombuffer(data, ">u4", data[3], 4)
    return torch.from_numpy(np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(shape).copy())


def _data(n: int, split: str = "train"):
    prefix = "train" if split == "train" else "t10k"
    x = F.avg_pool2d(_idx(f"{prefix}-images-idx3-ubyte.gz")[:n, None].float() / 255, 4).flatten(1)
    return x, _idx(f"{prefix}-labels-idx1-ubyte.gz")[:n]


def net():
    return nn.Sequential(nn.Linear(49, 8), nn.ReLU(), nn.Linear(8, 10))


def accuracy(outputs, targets):
    return (outputs.argmax(1) == targets).float().mean()


def _experiment(loss=F.cross_entropy, train_data=None, **kw) -> Experiment:
    options = dict(generator=dict(depth=1), train=dict(lr=0.01, batch=50, epochs=2))
    options.update(kw)
    return Experiment("digits", net, train_data or _data(200), _data(100, "test"), loss=loss,
                      metric=accuracy, **options)


def _rows(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((folder / "metrics.json").read_text())]


def test_every_model_trains_into_one_run_folder_with_its_reports_and_exports(tmp_path, capsys):
    out = tmp_path / "run"
    exp = _experiment(train=dict(lr=0.01, batch=50, epochs=1, select="validation", validation=0.25))
    models = ["diffqas", "fixed:0", "fixed:6", "classical"]     # (the README's example: all 12)
    done = exp.run(out, models=",".join(models), max_batches=2, progress=False)
    assert list(done) == models
    for name in ("summary.md", "curves.png", "structural_weights.png", "selection.json",
                 "baselines.json", "fingerprint.json", "hadamard_ent_rot.qs", "spec.task"):
        assert (out / name).is_file(), name
    summary = (out / "summary.md").read_text()
    assert "| DiffQAS-QT | 1 |" in summary and "majority class" in summary
    assert re.search(r"DiffQAS-QT (ranks \d+ of 3 by final test accuracy|and the 2 fixed candidates all tie)", summary)
    assert json.loads((out / "selection.json").read_text())["classical"]["rule"] == "validation"
    assert "task digits : python" in (out / "spec.task").read_text()
    # the export: model.pt in the factory's own network gives the reported test accuracy
    readme = (out / "models" / "diffqas" / "README.md").read_text()
    assert "shape (N, 49)" in readme and "shape (N, 10)" in readme
    spec = importlib.util.spec_from_file_location("exported", out / "models" / "diffqas" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported = module.load(out / "models" / "diffqas" / "model.pt", build=net)
    x, y = _data(100, "test")
    assert float(accuracy(exported(x), y)) == pytest.approx(done["diffqas"]["test_accuracy"], abs=1e-6)
    # `qtc run --resume` cannot rebuild Python objects: it says where to resume instead
    assert cli.main(["run", "--resume", str(out)]) == 2
    assert "a Python experiment's run: resume it from Python" in capsys.readouterr().err


def test_an_interrupted_experiment_resumes_to_the_metrics_of_a_straight_run(tmp_path):
    args = dict(models="diffqas,classical", progress=False)
    _experiment().run(tmp_path / "straight", **args)
    steps = {"n": 0}

    def interrupting(outputs, targets):      # steps 1-4 are epoch 1: stop in epoch 2
        steps["n"] += torch.is_grad_enabled()
        if steps["n"] == 6:
            raise KeyboardInterrupt
        return F.cross_entropy(outputs, targets)

    exp = _experiment(loss=interrupting)
    with pytest.raises(KeyboardInterrupt):
        exp.run(tmp_path / "resumed", **args)
    assert [(r["model"], r["epoch"]) for r in _rows(tmp_path / "resumed")] == [("diffqas", 1)]
    with pytest.raises(QtcError, match="already holds a run: continue it with"):
        exp.run(tmp_path / "resumed", **args)
    exp.run(tmp_path / "resumed", resume=True, progress=False)
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    a = torch.load(tmp_path / "straight" / "models" / "diffqas" / "model.pt")
    b = torch.load(tmp_path / "resumed" / "models" / "diffqas" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_changed_experiment_naming_what_changed(tmp_path):
    _experiment().run(tmp_path / "run", models="classical", max_batches=1, progress=False)
    x, y = _data(200)
    with pytest.raises(QtcError, match=r"python\.data\.train\.sha256"):
        _experiment(train_data=(x.flip(0), y.flip(0))).run(tmp_path / "run", resume=True)

    def cross_entropy(outputs, targets):       # another loss function under the same data
        return F.cross_entropy(outputs, targets, label_smoothing=0.1)
    with pytest.raises(QtcError, match=r"python\.loss\.(name|sha256)"):
        _experiment(loss=cross_entropy).run(tmp_path / "run", resume=True)
    with pytest.raises(QtcError, match=r"task\.train\.lr"):
        _experiment(train=dict(lr=0.02, batch=50, epochs=2)).run(tmp_path / "run", resume=True)


def test_a_key_names_the_codes_version_instead_of_its_source(tmp_path):
    _experiment(key="v1").run(tmp_path / "run", models="classical", max_batches=1, progress=False)
    ident = json.loads((tmp_path / "run" / "fingerprint.json").read_text())["identity"]
    assert ident["python.key"] == "v1" and "python.model.sha256" not in ident
    assert ident["python.model.name"] == f"{__name__}.net"
    with pytest.raises(QtcError, match=r"python\.key: 'v1' -> 'v2'"):
        _experiment(key="v2").run(tmp_path / "run", resume=True)


def test_seeds_run_a_folder_per_model_and_seed_and_a_report_over_them(tmp_path):
    out = tmp_path / "seeds"
    done = _experiment().run(out, seeds=2, models="diffqas,classical", epochs=1, max_batches=1,
                             progress=False)
    assert sorted(done) == [f"digits/{m}/seed{s}" for m in ("classical", "diffqas") for s in (0, 1)]
    for key in done:
        assert json.loads((out / key / "trial.json").read_text())["status"] == "done"
        assert (out / key / "summary.md").is_file()
    report = (out / "report" / "report.md").read_text()
    assert "### digits (python; test accuracy, higher is better)" in report   # its own metric
    assert "DiffQAS-QT" in report and "classical" in report
    # the same call again resumes: every trial is done, nothing retrains
    again = _experiment().run(out, seeds=2, models="diffqas,classical", epochs=1, max_batches=1,
                              progress=False)
    assert again == done
    with pytest.raises(QtcError, match=r"seed\(s\) 1 repeat"):
        _experiment().run(out, seeds=[1, 1])


def test_python_objects_that_cannot_run_are_clear_errors():
    data, test = _data(20), _data(10, "test")
    with pytest.raises(QtcError, match="give the function or class that builds"):
        Experiment("d", net(), data, test, loss=F.cross_entropy, metric=accuracy)
    with pytest.raises(QtcError, match="metric_name="):
        Experiment("d", net, data, test, loss=F.cross_entropy, metric=lambda o, t: 0.0)
    with pytest.raises(QtcError, match=r"does not run on the data's input \[49\] \(one example\)"):
        Experiment("d", lambda: nn.Linear(50, 10), data, test, loss=F.cross_entropy, metric=accuracy)
    with pytest.raises(QtcError, match="the loss .*mse_loss.* fails on the model's outputs"):
        Experiment("d", net, data, test, loss=F.mse_loss, metric=accuracy)
    with pytest.raises(QtcError, match="has no parameters with requires_grad to generate"):
        Experiment("d", lambda: net().requires_grad_(False), data, test, loss=F.cross_entropy,
                   metric=accuracy)
    with pytest.raises(QtcError, match=r"the model's parameters are float16: .*\.float\(\) or \.double\(\)"):
        Experiment("d", lambda: net().half(), data, test, loss=F.cross_entropy, metric=accuracy)
    with pytest.raises(QtcError, match="generator option mapping='cubic'"):
        Experiment("d", net, data, test, loss=F.cross_entropy, metric=accuracy,
                   generator=dict(mapping="cubic"))
    with pytest.raises(QtcError, match="'nowhere.qs' not found; looked in, in order"):
        Experiment("d", net, data, test, loss=F.cross_entropy, metric=accuracy, space="nowhere.qs")


def test_a_space_is_a_name_looked_up_as_a_tasks_or_a_path(tmp_path, monkeypatch):
    from qtc import specs
    text = specs.path("hadamard_ent_rot.qs").read_text().replace("depth 15", "depth 3")
    (tmp_path / "mine.qs").write_text(text)
    data, test = _data(20), _data(10, "test")
    exp = Experiment("d", net, data, test, loss=F.cross_entropy, metric=accuracy,
                     space=tmp_path / "mine.qs")
    assert exp.built.program.depth == 3
    monkeypatch.setenv("QTC_SPACE_PATH", str(tmp_path))
    exp = Experiment("d", net, data, test, loss=F.cross_entropy, metric=accuracy, space="mine.qs")
    assert exp.built.program.depth == 3 and exp.built.space_file() == tmp_path / "mine.qs"


def readme_example() -> str:
    """The Python block under the README's "Your own model and data, from Python" heading."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own model and data, from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow      # tests/test_doc_examples.py runs the block in the default tier; this checks its result
def test_the_readme_example_runs_verbatim(monkeypatch, capsys):
    """Executed as written, from the checkout's root (its data: specs/data/digits.npz)."""
    monkeypatch.chdir(REPO)
    before = set(os.listdir(REPO))
    exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    shown = eval(printed.strip().splitlines()[-1])            # the example's last line: a dict
    assert list(shown) == ["diffqas", "fixed:0", "fixed:6", "classical"]
    assert shown["classical"] > 0.3                            # real digits, learnt (chance: 0.1)
    assert "run folder" in printed and set(os.listdir(REPO)) == before   # nothing written here


def test_ctrl_c_in_an_experiment_names_the_python_way_back_in(tmp_path, capsys):
    """A real Ctrl-C (SIGINT, deferred to a step boundary) stops with the checkpoint saved and
    says how to continue from Python, not with `qtc run --resume` (a Python run is no spec)."""
    import os
    import signal
    steps = {"n": 0}

    def interrupting(outputs, targets):
        steps["n"] += torch.is_grad_enabled()
        if steps["n"] == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return F.cross_entropy(outputs, targets)

    with pytest.raises(KeyboardInterrupt):
        _experiment(loss=interrupting).run(tmp_path / "run", models="diffqas", progress=False)
    said = capsys.readouterr().out
    assert "interrupted: checkpoint saved" in said and "resume=True" in said
    assert "qtc run --resume" not in said
