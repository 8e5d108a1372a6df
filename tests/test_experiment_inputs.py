"""qtc.experiment.Experiment on synthetic data (no ../shared needed): a model of several inputs
(`forward(x1, x2)`) end to end with its export, and an interrupted run of a model with dropout
resuming bit-identically to an uninterrupted one (torch's RNG state is in the checkpoint).
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qtc.errors import QtcError
from qtc.experiment import Experiment

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int, seed: int):
    """Two inputs: a (4,) vector and a (2, 3) matrix; the label depends on both."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 4, generator=g), torch.randn(n, 2, 3, generator=g)
    y = ((a[:, 0] + b[:, 1, 2]) > 0).long()
    return (a, b), y


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(4, 5), nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, a, b):
        return self.out(torch.tanh(self.a(a) + self.b(b.flatten(1))))


def accuracy(outputs, targets):
    return (outputs.argmax(1) == targets).float().mean()


def _rows(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((folder / "metrics.json").read_text())]


def test_a_model_of_several_inputs_trains_exports_and_checks_its_shapes(tmp_path):
    exp = Experiment("two", TwoInputs, _data(64, 0), _data(32, 1), loss=F.cross_entropy,
                     metric=accuracy, generator=dict(depth=1),
                     train=dict(lr=0.05, batch=16, epochs=2))
    assert exp.built.main_net.inputs.shapes == ((4,), (2, 3))
    done = exp.run(tmp_path / "run", models="diffqas,classical", progress=False)
    assert set(done) == {"diffqas", "classical"}
    readme = (tmp_path / "run" / "models" / "classical" / "README.md").read_text()
    assert "`net(x1, x2)`" in readme and "x1 (N, 4); x2 (N, 2, 3)" in readme
    assert "inputs [4], [2, 3] (forward(x1, x2))" in (tmp_path / "run" / "spec.task").read_text()
    # the export is the factory's module called with the two inputs, at the reported accuracy
    spec = importlib.util.spec_from_file_location("exported", tmp_path / "run" / "models" / "classical" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.load(tmp_path / "run" / "models" / "classical" / "model.pt", build=TwoInputs)
    (a, b), y = _data(32, 1)
    assert float(accuracy(net(a, b), y)) == pytest.approx(done["classical"]["test_accuracy"], abs=1e-6)
    # inputs that do not fit: the test data's shapes, the model's, the counts
    with pytest.raises(QtcError, match=r"train_data's inputs are \[4\], \[2, 3\] each, test_data's \[4\], \[6\]"):
        Experiment("two", TwoInputs, _data(8, 0), ((_data(8, 1)[0][0], torch.zeros(8, 6)), _data(8, 1)[1]),
                   loss=F.cross_entropy, metric=accuracy)
    with pytest.raises(QtcError, match=r"does not run on the data's inputs \[4\], \[2, 3\] \(forward\(x1, x2\)\)"):
        Experiment("two", lambda: nn.Linear(4, 2), _data(8, 0), _data(8, 1), loss=F.cross_entropy,
                   metric=accuracy)
    with pytest.raises(QtcError, match=r"train_data: x2 has shape \[7, 2, 3\] and y \[8\]"):
        Experiment("two", TwoInputs, ((torch.zeros(8, 4), torch.zeros(7, 2, 3)), torch.zeros(8).long()),
                   _data(8, 1), loss=F.cross_entropy, metric=accuracy)


def test_a_dataset_of_several_inputs_per_example_is_the_same_experiment():
    (a, b), y = _data(16, 0)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            return (a[i], b[i]), y[i]

    pairs = Pairs()
    by_tensors = Experiment("two", TwoInputs, ((a, b), y), _data(8, 1), loss=F.cross_entropy, metric=accuracy)
    by_pairs = Experiment("two", TwoInputs, pairs, _data(8, 1), loss=F.cross_entropy, metric=accuracy)
    assert torch.equal(by_pairs.built.kind.train.tensors[0], by_tensors.built.kind.train.tensors[0])
    assert by_pairs.built.extra_identity() == by_tensors.built.extra_identity()


def dropout_net():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))


def _dropout_experiment(loss) -> Experiment:
    (a, _), y = _data(64, 0)
    (ta, _), ty = _data(32, 1)
    return Experiment("drop", dropout_net, (a, y), (ta, ty), loss=loss, metric=accuracy,
                      generator=dict(depth=1), train=dict(lr=0.05, batch=16, epochs=3), key="v1")


@pytest.mark.parametrize("how", ["signal", pytest.param("exception", marks=pytest.mark.slow)])
def test_a_resumed_run_with_dropout_is_bit_identical_to_an_uninterrupted_one(tmp_path, how):
    """Interrupted in epoch 2 (a real SIGINT: checkpointed mid-epoch; an exception from the
    loss: resumed from the end of epoch 1), then resumed: the same metrics and the same exported
    weights bit for bit, which needs the dropout masks after the interruption to be the ones the
    uninterrupted run drew (before torch's RNG state was checkpointed, they were not)."""
    args = dict(models="diffqas,classical", progress=False)
    straight = _dropout_experiment(F.cross_entropy)
    straight.run(tmp_path / "straight", **args)
    steps = {"n": 0}

    def interrupting(outputs, targets):        # 4 steps an epoch: stop in epoch 2
        steps["n"] += torch.is_grad_enabled()
        if steps["n"] == 6:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt
        return F.cross_entropy(outputs, targets)

    interrupting.__name__ = "cross_entropy"
    with pytest.raises(KeyboardInterrupt):
        _dropout_experiment(interrupting).run(tmp_path / "resumed", **args)
    assert [(r["model"], r["epoch"]) for r in _rows(tmp_path / "resumed")] == [("diffqas", 1)]
    _dropout_experiment(interrupting).run(tmp_path / "resumed", resume=True, progress=False)
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    for model in ("diffqas", "classical"):
        a = torch.load(tmp_path / "straight" / "models" / model / "model.pt")
        b = torch.load(tmp_path / "resumed" / "models" / model / "model.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), model
