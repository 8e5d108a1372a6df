"""Target networks from the shipped task specs, the parameter report, and the QT generator.

- parameter counts: CNN 108,866, LSTM 1,781, actor 6,023, critic 5,825 (the paper's figures);
- the report's trainable totals: 286 = 255 + 12 + 19, 135 = 110 + 12 + 13, 157 = 130 + 12 + 15;
- TargetNet.forward on a flat vector = the exported nn.Module with state_dict(flat) = the
  stand-alone torch_source() run without qtc; the same for every layer kind of the LAYERS
  table, one small network each (a new kind must bring its example);
- QTGenerator: shapes, gradients to theta / weights / mapping, state_dict round trip, and the
  fixed-candidate baseline's frozen one-hot weights.
"""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

import qtc
from qtc.runtime import reference
from qtc.runtime.generator import GeneratorOptions, QTGenerator, qubits_for
from qtc.dsl.task import GeneratorStmt, Stmt, parse_task
from qtc.errors import QtcError
from qtc.tasks.build import load_task
from qtc.tasks.network import LAYER_KINDS, LAYERS, TargetNet

SPECS = Path(__file__).resolve().parent.parent / "specs"
COUNTS = {"mnist_1v5": {"net": 108_866}, "fmnist_1v5": {"net": 108_866}, "fmnist_5v7": {"net": 108_866},
          "bessel": {"net": 1_781}, "damped_shm": {"net": 1_781}, "delayed_qc": {"net": 1_781},
          "narma5": {"net": 1_781}, "narma10": {"net": 1_781}, "narma5_sampled": {"net": 1_781},
          "damped_shm_sampled": {"net": 1_781}, "bessel_sampled": {"net": 1_781},
          "delayed_qc_sampled": {"net": 1_781}, "narma10_sampled": {"net": 1_781},
          "minigrid_5x5": {"actor": 6_023, "critic": 5_825}, "minigrid_6x6": {"actor": 6_023, "critic": 5_825},
          "mnist_10": {"net": 5_874}, "fmnist_10": {"net": 5_874},
          "cartpole": {"actor": 226, "critic": 193}}
TOTALS = {"mnist_1v5": "286 = 255 + 12 + 19", "fmnist_5v7": "286 = 255 + 12 + 19",
          "bessel": "135 = 110 + 12 + 13", "narma10": "135 = 110 + 12 + 13",
          "minigrid_5x5": "157 = 130 + 12 + 15", "mnist_10": "1046 = 585 + 12 + 449"}
NETWORKS = [("mnist_1v5", "net"), ("bessel", "net"), ("minigrid_5x5", "actor"), ("minigrid_5x5", "critic")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


_built = {}


def built(task: str):
    if task not in _built:
        _built[task] = load_task(SPECS / f"{task}.task")
    return _built[task]


def test_every_shipped_task_is_counted():
    assert {p.stem for p in SPECS.glob("*.task")} == set(COUNTS)


@pytest.mark.parametrize("task", sorted(COUNTS))
def test_parameter_counts_of_the_shipped_specs(task):
    nets = built(task).nets
    assert {name: net.num_params for name, net in nets.items()} == COUNTS[task]
    for net in nets.values():  # the count is also the exported module's
        assert sum(p.numel() for p in net.module().parameters()) == net.num_params


@pytest.mark.parametrize("task", sorted(TOTALS))
def test_parameter_report_prints_the_trainable_totals(task):
    b = built(task)
    report = b.parameter_report()
    lines = [line for line in report.splitlines() if "total trainable" in line]
    assert len(lines) == len(b.nets)
    for line in lines:
        assert line.split("total trainable")[1].strip() == TOTALS[task], report
    total = int(TOTALS[task].split(" = ")[0])
    for net in b.nets.values():  # the report's sum is what the generator really trains
        gen = QTGenerator(b.program, net.num_params, GeneratorOptions.of(b.spec.generator),
                          tensors=net.tensor_sizes())
        assert sum(p.numel() for p in gen.parameters() if p.requires_grad) == total


def test_qubits_are_the_ceiling_log2_of_the_largest_network():
    assert [qubits_for(p) for p in (108_866, 1_781, 6_023, 5_825)] == [17, 11, 13, 13]
    assert (built("mnist_1v5").program.qubits, built("mnist_1v5").program.depth) == (17, 15)
    assert (built("bessel").program.qubits, built("bessel").program.depth) == (11, 10)
    assert (built("minigrid_5x5").program.qubits, built("minigrid_5x5").program.depth) == (13, 10)


# --- TargetNet vs its exported forms ----------------------------------------------------------
def _inputs(net, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randn(net.num_params, generator=g, dtype=torch.float64) * 0.2
    x = torch.randn((batch,) + net.input_shape, generator=g, dtype=torch.float64)
    return flat, x


@pytest.mark.parametrize("task,name", NETWORKS)
def test_forward_equals_the_exported_module(task, name):
    net = built(task).nets[name]
    flat, x = _inputs(net)
    want = net.forward(flat, x)
    assert want.shape == (3,) + net.output_shape
    module = net.module().double()
    module.load_state_dict(net.state_dict(flat))
    torch.testing.assert_close(module(x), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(net.flatten_module(module), flat, rtol=0, atol=0)


@pytest.mark.parametrize("task,name", NETWORKS)
def test_gradients_equal_the_exported_modules_though_relu_and_maxpool_swap(task, name):
    net = built(task).nets[name]
    flat, x = _inputs(net, seed=2)
    flat.requires_grad_(True)
    net.forward(flat, x).square().sum().backward()
    module = net.module().double()
    module.load_state_dict(net.state_dict(flat))
    module(x).square().sum().backward()
    want = torch.cat([p.grad.reshape(-1) for p in module.parameters()])
    torch.testing.assert_close(flat.grad, want, rtol=1e-12, atol=1e-12)


def test_relu_then_maxpool_runs_as_maxpool_then_relu():
    net = built("mnist_1v5").nets["net"]
    kinds = [net.plans[i].kind for i in net.run_order]
    assert kinds[:6] == ["conv2d", "maxpool", "relu", "conv2d", "maxpool", "relu"]


@pytest.mark.parametrize("task,name", NETWORKS)
def test_forward_equals_the_standalone_source_run_without_qtc(task, name, tmp_path, monkeypatch):
    net = built(task).nets[name]
    flat, x = _inputs(net, seed=1)
    source = net.torch_source()
    assert "qtc" not in "\n".join(line for line in source.splitlines() if "import" in line)
    namespace = {"__name__": "exported"}
    monkeypatch.setitem(sys.modules, "qtc", None)  # any `import qtc` in the source would fail
    exec(compile(source, str(tmp_path / "model.py"), "exec"), namespace)
    module = namespace["build"]().double()
    module.load_state_dict(net.state_dict(flat))
    torch.testing.assert_close(module(x), net.forward(flat, x), rtol=0, atol=1e-12)
    # load(path) of a saved state_dict, in float32 as a user would
    torch.save(net.state_dict(flat.float()), tmp_path / "model.pt")
    loaded = namespace["load"](str(tmp_path / "model.pt"))
    assert not loaded.training
    torch.testing.assert_close(loaded(x.float()), net.forward(flat.float(), x.float()), rtol=1e-4, atol=1e-5)


def test_forward_rejects_a_flat_vector_of_the_wrong_size():
    net = built("bessel").nets["net"]
    with pytest.raises(ValueError, match="1781 parameters"):
        net.forward(torch.zeros(1780), torch.zeros(1, 4, 1))


def test_lstm_matches_torch_lstm_cell():
    """The hand-written LSTM (gates i, f, g, o; one bias per gate) is torch's LSTM cell."""
    net = built("bessel").nets["net"]
    flat, x = _inputs(net, seed=2)
    weight, bias = net.unflatten(flat)["0.weight"], net.unflatten(flat)["0.bias"]
    cell = torch.nn.LSTMCell(1, 20).double()
    with torch.no_grad():
        cell.weight_ih.copy_(weight[:, :1])
        cell.weight_hh.copy_(weight[:, 1:])
        cell.bias_ih.copy_(bias)
        cell.bias_hh.zero_()
    h = c = torch.zeros(3, 20, dtype=torch.float64)
    for t in range(x.shape[1]):
        h, c = cell(x[:, t], (h, c))
    head = net.unflatten(flat)
    want = torch.nn.functional.linear(h, head["1.weight"], head["1.bias"])
    torch.testing.assert_close(net.forward(flat, x), want, rtol=0, atol=1e-12)


# --- the QT generator -----------------------------------------------------------------------------
def small_generator(seed=0, fixed=None, tensors=None, **options):
    torch.manual_seed(seed)
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=5, depth=2)
    return QTGenerator(prog, 20, GeneratorOptions.given(backend="reference", **options), fixed=fixed,
                       dtype=torch.float64, tensors=tensors)


def test_generator_options_are_the_generator_statement_s_own_options():
    """GeneratorOptions.of takes every option of the `generator` statement by name (its space,
    qubits and depth are the compiler's): an option added to one and not the other fails here."""
    compiler = {"space", "qubits", "depth"}
    options = set(GeneratorStmt.model_fields) - set(Stmt.model_fields) - compiler
    assert options == {f.name for f in dataclasses.fields(GeneratorOptions)}
    assert GeneratorOptions.given() == GeneratorOptions.of(GeneratorStmt(space="any.qs"))


def test_a_task_s_generator_options_reach_its_generator(tiny):
    """Built.sources builds each generator from the spec's statement; --backend replaces its backend."""
    built = load_task(tiny, {"generator.mapping": "mlp", "generator.hidden": "3", "generator.gamma": "0.2",
                             "generator.center": "false"})
    gen = built.sources("fixed:2", backend="reference")["net"]
    want = dataclasses.replace(GeneratorOptions.of(built.spec.generator), backend="reference")
    assert gen.options == want and (want.mapping, want.hidden, want.gamma, want.center) == ("mlp", 3, 0.2, False)
    assert gen.mapping[0].out_features == 3


def test_generator_forward_shape_and_probabilities():
    gen = small_generator()
    out = gen()
    assert out.shape == (20,) and out.dtype == torch.float64
    assert abs(float(out.detach().mean())) < 1e-12, "centred like the original QT code"
    p = gen.probabilities()
    want = gen.weights @ reference.candidate_probabilities(gen.program, gen.theta)
    torch.testing.assert_close(p, want, rtol=0, atol=1e-12)


def test_the_linear_mapping_is_nn_linear_on_bits_and_x():
    """QTGenerator._mapped: bits @ w[:n] + x w[n] + b, the function (and gradients) of the
    mapping's nn.Linear on [bits, x], without building that input."""
    gen = small_generator()
    x = torch.randn(20, dtype=torch.float64, requires_grad=True)
    r = torch.randn(20, dtype=torch.float64)
    grads = []
    for out in (gen._mapped(x), gen.mapping(torch.cat([gen.bits, x[:, None]], 1)).squeeze(1)):
        grads.append((out.detach(), *torch.autograd.grad(out @ r, (x, gen.mapping.weight, gen.mapping.bias))))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


needs_cpu = pytest.mark.skipif("cpu" not in qtc.runtime.backends.available_backends(), reason="no C++ compiler")


def _tails(gen, P, r):
    """(output, d/dP, d/dweight, d/dbias) of sum(r * gen._tail(P)), in C and in torch ops."""
    out = []
    for c in (True, False):
        gen._c_tail = c
        leaves = (P.detach().clone().requires_grad_(), gen.mapping.weight, gen.mapping.bias)
        y = gen._tail(leaves[0])
        out.append((y.detach(), *torch.autograd.grad((y * r).sum(), leaves)))
    return out


@needs_cpu
@pytest.mark.parametrize("rescale,center,scale_at,index", [
    ("qt", True, "mapping", "bits"), ("qt", False, "output", "bits"), ("none", True, "output", "tensor"),
    ("none", False, "mapping", "bits"), ("qt", True, "output", "tensor"), ("qt", "tensor", "mapping", "tensor"),
    ("qt", "tensor", "output", "bits")])
def test_the_c_tail_is_the_torch_ops_tail(rescale, center, scale_at, index):
    """The cpu backend's generator runs rescale, mapping, factor and centring as one C pass
    (runtime/mapping.py): output and gradients (P, the mapping's weight and bias) equal the
    torch ops' to 1e-12 in float64, P's beyond the target's weights zero, negative P clamped
    (its gradient zero) as torch's clamp does; in float32 to float32 rounding."""
    torch.manual_seed(0)
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=5, depth=2)
    opts = GeneratorOptions.given(backend="cpu", rescale=rescale, center=center, scale_at=scale_at, index=index)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        gen = QTGenerator(prog, 20, opts, dtype=dtype, tensors=[12, 8], calibrate=lambda flat: 0.7)
        P = gen.probabilities().detach()
        P[3] = -P[3] - 1e-3                            # a negative probability: clamped to 0
        r = torch.randn(20, dtype=dtype)
        assert gen._c_tail is True                     # decided by the calibration's gen()
        (c, *gc), (t, *gt) = _tails(gen, P, r)
        assert c.dtype == dtype
        torch.testing.assert_close(c, t, rtol=tol, atol=tol)
        for a, b in zip(gc, gt):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, float(b.abs().max())))
        assert not gc[0][20:].any() and (rescale == "none" or gc[0][3] == 0)


@needs_cpu
def test_the_c_tail_propagates_nan_and_is_the_cpu_backend_s_alone():
    """A NaN probability gives NaN weights in C as in torch (no value silently replaced); the
    reference backend and the MLP mapping keep the torch ops."""
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=5, depth=2)
    gen = QTGenerator(prog, 20, GeneratorOptions.given(backend="cpu"), dtype=torch.float64)
    gen()
    assert gen._c_tail is True
    P = gen.probabilities().detach()
    P[5] = float("nan")
    (c, *_), (t, *_) = _tails(gen, P, torch.ones(20, dtype=torch.float64))
    assert c.isnan().all() and t.isnan().all()
    for options in ({"backend": "reference"}, {"backend": "cpu", "mapping": "mlp"}):
        other = QTGenerator(prog, 20, GeneratorOptions.given(**options), dtype=torch.float64)
        other()
        assert other._c_tail is False


def test_a_constant_candidate_alone_rescales_its_probabilities_once():
    """Configs whose program is an exact constant (H-ent-RX: index 0) keep their rescaled
    probabilities; the output and the mapping's gradients equal the step-by-step path's, theta
    gets none (nothing depends on it). A simulated candidate (H-ent-RY) keeps computing them."""
    r = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for k, constant in ((0, True), (1, False)):
        gen = small_generator(fixed=k)
        assert (gen.constant_x is not None) == constant
        (gen() * r).sum().backward()
        step_by_step = small_generator(fixed=k)
        step_by_step.constant_x = None
        (step_by_step() * r).sum().backward()
        assert torch.equal(gen().detach(), step_by_step().detach())
        assert torch.equal(gen.mapping.weight.grad, step_by_step.mapping.weight.grad)
        assert (gen.theta.grad is None) == constant
    assert "constant_x" not in small_generator(fixed=0).state_dict()


def test_task_generator_outputs_one_value_per_target_parameter():
    b = built("bessel")
    torch.manual_seed(0)
    gen = b.sources("diffqas", backend="reference")["net"]
    out = gen()
    assert out.shape == (1_781,) and torch.isfinite(out).all()
    y = b.nets["net"].forward(out, torch.zeros(2, 4, 1))  # the generated weights run the network
    assert y.shape == (2, 1)


def test_gradients_flow_to_theta_weights_and_mapping():
    gen = small_generator()
    r = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (gen() * r).sum().backward()
    assert gen.theta.grad is not None and gen.theta.grad.abs().sum() > 0
    assert gen.weights.grad is not None and gen.weights.grad.abs().sum() > 0
    assert gen.mapping.weight.grad.abs().sum() > 0
    # the mapping's bias cancels in `out - out.mean()`: zero gradient with center, not without
    assert float(gen.mapping.bias.grad.abs().sum()) < 1e-12
    free = small_generator(center=False)
    (free() * r).sum().backward()
    assert free.mapping.bias.grad.abs().sum() > 1e-6


def test_mlp_mapping_has_its_parameter_count_and_gradients():
    gen = small_generator(mapping="mlp", hidden=4)
    assert gen.trainable_counts() == {"angles": 10, "structural weights": 12, "mapping": 6 * 4 + 4 + 4 + 1}
    gen().pow(2).sum().backward()
    assert all(p.grad is not None for p in gen.mapping.parameters())


def test_index_tensor_tells_the_mapping_which_tensor_and_nothing_else():
    """`index tensor`: the mapping's input beside x is the one-hot of the weight's tensor (in the
    `bits` encoding), one column per tensor; under a constant circuit (config 1: x is the same for
    every weight) each tensor is then one value repeated, where the index bits draw a pattern."""
    sizes = [3, 12, 5]
    gen = small_generator(mapping="mlp", hidden=4, index="tensor", tensors=sizes)
    assert gen.trainable_counts()["mapping"] == (3 + 1) * 4 + 4 + 4 + 1
    want = torch.tensor([[1.0, -1, -1]] * 3 + [[-1.0, 1, -1]] * 12 + [[-1.0, -1, 1]] * 5, dtype=torch.float64)
    assert torch.equal(gen.bits, want)
    assert torch.equal(small_generator(index="tensor", tensors=sizes, bits="01").bits, (want + 1) / 2)
    with torch.no_grad():
        by_tensor = small_generator(fixed=0, index="tensor", tensors=sizes)().split(sizes)
        by_bits = small_generator(fixed=0)().split(sizes)
    assert all(len(set(chunk.tolist())) == 1 for chunk in by_tensor)
    assert len({round(float(chunk[0]), 12) for chunk in by_tensor}) == 3, "each tensor its own value"
    assert len(set(by_bits[1].tolist())) > 1
    with pytest.raises(QtcError, match="index tensor needs the sizes of the target's tensors"):
        small_generator(index="tensor")
    with pytest.raises(QtcError, match=r"summing to 20\); got \[3, 12\]"):
        small_generator(index="tensor", tensors=[3, 12])


def test_center_tensor_subtracts_each_tensor_s_own_mean():
    """`center tensor`: every tensor of the target has mean 0 (not only the whole vector), the
    same weights as the uncentred generator less each tensor's mean, except a one-element tensor
    (a regression output's bias), which keeps its value; gradients flow through it; the segments
    are not saved; the sizes are required, as for `index tensor`."""
    sizes = [3, 11, 1, 5]
    r = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    gen = small_generator(center="tensor", tensors=sizes)
    free = small_generator(center=False, tensors=sizes)
    free.load_state_dict(gen.state_dict())
    out, raw = gen(), free()
    for got, want in zip(out.split(sizes), raw.split(sizes)):
        if len(want) == 1:
            assert float(got) == float(want) != 0
            continue
        assert abs(float(got.mean())) < 1e-15
        torch.testing.assert_close(got, want - want.mean(), rtol=0, atol=1e-15)
    assert float(raw[:3].mean()) != pytest.approx(0, abs=1e-6), "the test needs offsets to remove"
    (out * r).sum().backward()
    assert gen.theta.grad.abs().sum() > 0 and gen.weights.grad.abs().sum() > 0
    assert gen.mapping.bias.grad is not None, "it moves the one-element tensor"
    assert set(gen.state_dict()) == {"theta", "weights", "mapping.weight", "mapping.bias"}
    with pytest.raises(QtcError, match="center tensor needs the sizes of the target's tensors"):
        small_generator(center="tensor")


def test_state_dict_round_trips():
    a, b = small_generator(seed=0), small_generator(seed=1)
    assert not torch.equal(a.theta, b.theta)
    state = a.state_dict()
    assert set(state) == {"theta", "weights", "mapping.weight", "mapping.bias"}, "bits is not saved"
    b.load_state_dict(state)
    torch.testing.assert_close(b(), a(), rtol=0, atol=0)


def test_fixed_candidate_baseline_has_frozen_one_hot_weights():
    gen = small_generator(fixed=3)
    assert "weights" not in dict(gen.named_parameters())
    torch.testing.assert_close(gen.weights, torch.eye(12, dtype=torch.float64)[3])
    assert gen.trainable_counts()["structural weights"] == 0
    probs = reference.candidate_probabilities(gen.program, gen.theta)[3]
    torch.testing.assert_close(gen.probabilities(), probs, rtol=0, atol=1e-12)
    opt = torch.optim.SGD(gen.parameters(), lr=1.0)
    gen().pow(2).sum().backward()
    opt.step()
    torch.testing.assert_close(gen.weights, torch.eye(12, dtype=torch.float64)[3])
    again = small_generator(seed=5, fixed=3)
    again.load_state_dict(gen.state_dict())
    torch.testing.assert_close(again(), gen(), rtol=0, atol=0)


def test_task_fixed_models_are_the_twelve_candidates_in_table_i_order():
    b = built("bessel")
    models = b.models()
    assert models == ["diffqas"] + [f"fixed:{k}" for k in range(12)] + ["classical"]
    assert b.model_label("fixed:0") == "config 1 (H-ent-RX)"
    gen = b.sources("fixed:7", backend="reference")["net"]
    assert gen.fixed == 7 and float(gen.weights.sum()) == 1.0 and float(gen.weights[7]) == 1.0


def test_softmax_weights_normalise_but_a_fixed_candidate_stays_one_hot():
    prog = qtc.compile(SPECS / "hardware_efficient.qs", qubits=4, depth=2)
    assert prog.weights.norm == "softmax" and prog.weights.init == (0.0,) * 4
    gen = QTGenerator(prog, 16, GeneratorOptions.given(backend="reference"), dtype=torch.float64)
    torch.testing.assert_close(gen.structural_weights(), torch.full((4,), 0.25, dtype=torch.float64))
    fixed = QTGenerator(prog, 16, GeneratorOptions.given(backend="reference"), dtype=torch.float64, fixed=2)
    torch.testing.assert_close(fixed.structural_weights(), torch.eye(4, dtype=torch.float64)[2])


# --- every layer kind's views agree (the LAYERS table, tasks/network.py) -------------------
# One small network per layer kind: the input it needs, then the layer.
LAYER_EXAMPLES = {"conv2d": ("[2, 6, 6]", "conv2d 2 -> 3 kernel 3 stride 2 padding 1"),
                  "maxpool": ("[2, 6, 6]", "maxpool 2"),
                  "avgpool": ("[2, 6, 6]", "avgpool 3 stride 1"),
                  "flatten": ("[2, 3, 3]", "flatten"),
                  "linear": ("[5]", "linear 5 -> 3"),
                  "lstm": ("[4, 2]", "lstm 2 -> 3"),
                  "relu": ("[5]", "relu"), "tanh": ("[5]", "tanh"), "sigmoid": ("[5]", "sigmoid")}


def _one_layer(kind: str) -> TargetNet:
    shape, layer = LAYER_EXAMPLES[kind]
    spec = parse_task(f"task t : forecast\nnetwork {{\n  input {shape}\n  {layer}\n}}\n"
                      "train adam lr 1e-3 batch 10 epochs 1 seed 0\n")
    return TargetNet(spec.networks["net"])


def test_every_layer_kind_has_an_example():
    assert set(LAYER_EXAMPLES) == set(LAYERS) == set(LAYER_KINDS)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_layer_kinds_module_and_exported_source_compute_its_forward(kind, monkeypatch):
    net = _one_layer(kind)
    assert [p.kind for p in net.plans] == [kind]
    torch.manual_seed(0)
    module = net.module().double()
    if net.num_params:
        flat = net.flatten_module(module)              # the module's own (default-init) weights,
        flat = flat + 0.1 * torch.randn_like(flat)     # moved off torch's init
        module.load_state_dict(net.state_dict(flat))
    else:
        flat = torch.zeros(0, dtype=torch.float64)
    x = torch.randn(3, *net.input_shape, dtype=torch.float64)
    want = net.forward(flat, x)
    assert want.shape == (3, *net.output_shape)
    assert torch.equal(module(x), want)
    namespace = {"__name__": "exported"}
    monkeypatch.setitem(sys.modules, "qtc", None)       # the source runs without qtc
    exec(compile(net.torch_source(), "model.py", "exec"), namespace)
    exported = namespace["build"]().double()
    assert repr(exported) == repr(module)               # the same layers, the same arguments
    exported.load_state_dict(net.state_dict(flat))
    assert torch.equal(exported(x), want)
    if net.num_params:                                  # torch's init bound, as init_stds says
        bound = LAYERS[kind].init_bound(net.plans[0])
        torch.manual_seed(1)
        weights = net.module().state_dict()[f"0.{net.plans[0].params[0][0]}"]
        assert weights.abs().max() <= bound and weights.abs().max() > 0.8 * bound
