"""qtc.experiment.Experiment with what a network holds besides its trainable parameters, and
with inputs that are not float32 (synthetic data, no ../shared needed):

- parameters with requires_grad=False (a frozen pretrained part: transfer learning, partial QT)
  stay the model's own in every model, QT and classical, and in the exports;
- buffers (BatchNorm's running statistics) move in training, are each model's own, are
  checkpointed, resumed bit for bit and exported at the selected epoch;
- integer inputs (token ids for nn.Embedding), a float64 network, integer and float inputs
  side by side;
- the first-step warning does not call torch's own init absurd (a LayerNorm, a two-value bias).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qtc.errors import QtcError
from qtc.experiment import Experiment

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def accuracy(outputs, targets):
    return (outputs.argmax(1) == targets).float().mean()


def _blobs(n: int, seed: int, width: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g)
    return x, ((x[:, 0] - x[:, 1]) > 0).long()


def _load(folder: Path, build):
    spec = importlib.util.spec_from_file_location("exported", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder / "model.pt", build=build)


def _rows(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((folder / "metrics.json").read_text())]


# --- frozen parameters ------------------------------------------------------------------------
torch.manual_seed(7)
PRETRAINED = nn.Linear(6, 8)          # stands for a pretrained feature extractor


def transfer():
    body = nn.Linear(6, 8)
    body.load_state_dict(PRETRAINED.state_dict())
    body.requires_grad_(False)
    return nn.Sequential(body, nn.Tanh(), nn.Linear(8, 2))


def test_frozen_parameters_stay_the_models_own_in_every_model_and_export(tmp_path):
    exp = Experiment("transfer", transfer, _blobs(64, 0), _blobs(32, 1), loss=F.cross_entropy,
                     metric=accuracy, generator=dict(depth=1), train=dict(lr=0.05, batch=16, epochs=2))
    net = exp.built.main_net
    assert [n for n, _ in net.param_shapes] == ["2.weight", "2.bias"] and net.num_params == 18
    done = exp.run(tmp_path, models="diffqas,fixed:0,classical", progress=False)
    x, y = _blobs(32, 1)
    for model in done:
        folder = tmp_path / "models" / model.replace(":", "_")
        state = torch.load(folder / "model.pt")
        assert torch.equal(state["0.weight"], PRETRAINED.weight) and torch.equal(state["0.bias"], PRETRAINED.bias)
        plain = _load(folder, transfer)
        assert float(accuracy(plain(x), y)) == pytest.approx(done[model]["test_accuracy"], abs=1e-6)
    assert "18 parameters" in net.describe()


# --- buffers: BatchNorm ---------------------------------------------------------------------
def batchnorm():
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _bn_experiment(loss=F.cross_entropy) -> Experiment:
    return Experiment("bn", batchnorm, _blobs(64, 0), _blobs(32, 1), loss=loss, metric=accuracy,
                      generator=dict(depth=1), key="v1",
                      train=dict(lr=0.05, batch=16, epochs=3, select="validation", validation=0.25))


def test_batchnorm_statistics_are_each_models_own_resumed_bit_for_bit_and_exported(tmp_path):
    """Interrupted in epoch 2 and resumed: the metrics and every exported tensor, running
    statistics included, are the uninterrupted run's; each model's statistics counted its own
    steps (3 a epoch: 48 examples fit, 16 validate) up to its selected epoch; the export
    evaluates to the reported test accuracy."""
    args = dict(models="diffqas,classical", progress=False)
    done = _bn_experiment().run(tmp_path / "straight", **args)
    steps = {"n": 0}

    def interrupting(outputs, targets):
        steps["n"] += torch.is_grad_enabled()
        if steps["n"] == 5:
            raise KeyboardInterrupt
        return F.cross_entropy(outputs, targets)

    interrupting.__name__ = "cross_entropy"
    with pytest.raises(KeyboardInterrupt):
        _bn_experiment(interrupting).run(tmp_path / "resumed", **args)
    _bn_experiment(interrupting).run(tmp_path / "resumed", resume=True, progress=False)
    assert _rows(tmp_path / "resumed") == _rows(tmp_path / "straight")
    selected = json.loads((tmp_path / "straight" / "selection.json").read_text())
    x, y = _blobs(32, 1)
    for model in ("diffqas", "classical"):
        a = torch.load(tmp_path / "straight" / "models" / model / "model.pt")
        b = torch.load(tmp_path / "resumed" / "models" / model / "model.pt")
        assert list(a) == list(batchnorm().state_dict()) and all(torch.equal(a[k], b[k]) for k in a), model
        assert int(a["1.num_batches_tracked"]) == 3 * selected[model]["epoch"], model
        assert not torch.equal(a["1.running_mean"], torch.zeros(8)), model
        plain = _load(tmp_path / "straight" / "models" / model, batchnorm)
        assert float(accuracy(plain(x), y)) == pytest.approx(done[model]["test_accuracy"], abs=1e-6)


# --- inputs that are not float32 --------------------------------------------------------------
def _tokens(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 20, (n, 6), generator=g)
    return t, ((t < 5).sum(1) >= 2).long()


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.lstm, self.out = nn.Embedding(20, 4), nn.LSTM(4, 4, batch_first=True), nn.Linear(4, 2)

    def forward(self, tokens):
        h, _ = self.lstm(self.emb(tokens))
        return self.out(h[:, -1])


def test_integer_token_inputs_reach_an_embedding_as_integers(tmp_path):
    exp = Experiment("tokens", Tagger, _tokens(48, 0), _tokens(24, 1), loss=F.cross_entropy,
                     metric=accuracy, generator=dict(depth=1), train=dict(lr=0.05, batch=16, epochs=1))
    assert exp.built.kind.train.tensors[0].dtype == torch.int64
    assert "input [6] int64" in exp.built.main_net.describe()
    done = exp.run(tmp_path, models="diffqas,classical", progress=False)
    assert "- input: int64, shape (N, 6)" in (tmp_path / "models" / "diffqas" / "README.md").read_text()
    x, y = _tokens(24, 1)
    plain = _load(tmp_path / "models" / "diffqas", Tagger)
    assert float(accuracy(plain(x), y)) == pytest.approx(done["diffqas"]["test_accuracy"], abs=1e-6)
    # the same tokens as floats: the embedding's own complaint, with what to do
    with pytest.raises(QtcError, match=r"does not run on the data's input \[6\].*indices.*hint: .*integer tensor \(x.long\(\)\)"):
        Experiment("tokens", Tagger, (x.float(), y), (x.float(), y), loss=F.cross_entropy, metric=accuracy)
    with pytest.raises(QtcError, match=r"train_data's inputs are \[6\] integer each, test_data's \[6\]"):
        Experiment("tokens", Tagger, (x, y), (x.float(), y), loss=F.cross_entropy, metric=accuracy)
    with pytest.raises(QtcError, match=r"inputs x of type bool are not numbers; hint: .*integer tensor"):
        Experiment("tokens", Tagger, (x > 3, y), (x, y), loss=F.cross_entropy, metric=accuracy)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    with pytest.raises(QtcError, match=r"train_data: a DataLoader; give its Dataset \(train_data=loader.dataset\)"):
        Experiment("tokens", Tagger, loader, (x, y), loss=F.cross_entropy, metric=accuracy)


class TiedLM(nn.Module):
    """The next token from the mean embedding, the output layer tied to the embedding."""
    def __init__(self):
        super().__init__()
        self.emb, self.out = nn.Embedding(20, 4), nn.Linear(4, 20, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, tokens):
        return self.out(self.emb(tokens).mean(1))


def test_tied_weights_are_one_generated_tensor_under_both_names(tmp_path):
    """named_parameters names a tied weight once: the output layer ran (and, classically,
    trained) on its own stale copy, and the export's two keys disagreed."""
    x, _ = _tokens(48, 0)
    tx, _ = _tokens(24, 1)
    exp = Experiment("tied", TiedLM, (x, x[:, 0]), (tx, tx[:, 0]), loss=F.cross_entropy,
                     metric=accuracy, generator=dict(depth=1), train=dict(lr=0.05, batch=16, epochs=1))
    assert exp.built.main_net.param_shapes == [("emb.weight", (20, 4))]
    done = exp.run(tmp_path, models="diffqas,classical", progress=False)
    for model in done:
        state = torch.load(tmp_path / "models" / model / "model.pt")
        assert torch.equal(state["emb.weight"], state["out.weight"]), model
        plain = _load(tmp_path / "models" / model, TiedLM)
        assert float(accuracy(plain(tx), tx[:, 0])) == pytest.approx(done[model]["test_accuracy"], abs=1e-6)


def test_a_float64_network_trains_in_float64(tmp_path):
    exp = Experiment("f64", lambda: nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2)).double(),
                     _blobs(32, 0), _blobs(16, 1), loss=F.cross_entropy, metric=accuracy,
                     generator=dict(depth=1), train=dict(lr=0.05, batch=16, epochs=1))
    assert exp.built.main_net.dtype == torch.float64
    assert exp.built.kind.train.tensors[0].dtype == torch.float64      # float32 data meets the network
    source = exp.built.sources("diffqas")["net"]
    assert source().dtype == torch.float64
    exp.run(tmp_path, models="diffqas,classical", progress=False)
    for model in ("diffqas", "classical"):
        assert torch.load(tmp_path / "models" / model / "model.pt")["0.weight"].dtype == torch.float64
    assert "- input: float64, shape (N, 6)" in (tmp_path / "models" / "classical" / "README.md").read_text()


class Mixed(nn.Module):
    """A category code and a feature vector."""
    def __init__(self):
        super().__init__()
        self.emb, self.lin, self.out = nn.Embedding(5, 3), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, code, features):
        return self.out(torch.tanh(self.emb(code[:, 0]) + self.lin(features)))


def _mixed(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    code, feats = torch.randint(0, 5, (n, 1), generator=g), torch.randn(n, 4, generator=g)
    return (code, feats), ((code[:, 0] % 2 == 0) ^ (feats[:, 0] > 0)).long()


def test_integer_and_float_inputs_side_by_side(tmp_path):
    exp = Experiment("mixed", Mixed, _mixed(48, 0), _mixed(24, 1), loss=F.cross_entropy,
                     metric=accuracy, generator=dict(depth=1), train=dict(lr=0.05, batch=16, epochs=1))
    inputs = exp.built.main_net.inputs
    assert inputs.dtypes == (torch.int64, torch.float32) and inputs.shapes == ((1,), (4,))
    (code, feats), y = _mixed(24, 1)
    packed = exp.built.kind.test.tensors[0]
    assert packed.dtype == torch.float64            # both travel in one tensor; each comes back its own
    back = inputs.unpack(packed)
    assert torch.equal(back[0], code) and torch.equal(back[1], feats)
    done = exp.run(tmp_path, models="diffqas,classical", progress=False)
    readme = (tmp_path / "models" / "classical" / "README.md").read_text()
    assert "`net(x1, x2)`, tensors (x1 int64, x2 float32) of shapes x1 (N, 1); x2 (N, 4)" in readme
    plain = _load(tmp_path / "models" / "classical", Mixed)
    assert float(accuracy(plain(code, feats), y)) == pytest.approx(done["classical"]["test_accuracy"], abs=1e-6)


# --- the first-step warning -------------------------------------------------------------------
def test_torchs_own_init_is_not_called_absurd():
    """A LayerNorm's weight (all ones) and bias (all zeros) and a two-value bias whose draws
    happen to agree have spreads of 0 or nearly: compared with their own, any sensible value was
    'far from torch's init scale' (the classical model of a two-output network was warned)."""
    def layernorm():
        return nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 2))
    exp = Experiment("ln", layernorm, _blobs(16, 0), _blobs(8, 1), loss=F.cross_entropy, metric=accuracy)
    net = exp.built.main_net
    for seed in range(20):
        torch.manual_seed(seed)
        assert net.absurd_tensors(net.flatten_module(net.module())) == [], seed
    assert net.absurd_tensors(net.initial * 1000)        # a blown-up start is still caught
