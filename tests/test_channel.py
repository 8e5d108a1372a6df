"""The full product space with per-position weights: channel form == enumeration (issue 15).

Every untied space small enough to enumerate is lowered both ways; probabilities and
gradients (theta and weights) agree to 1e-10 in float64 on the channel's reference (torch
density matrix, autograd), cpu and cuda (compiled kernels, adjoint backward; cuda skips without
CuPy and a GPU) paths, with raw weights that are unnormalised and negative.
"""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import qtc
from qtc.cli import main
from qtc.compiler.factorised import lower_factorised
from qtc.compiler.ir import PerCandidate, Program
from qtc.compiler.pipeline import found_candidate
from qtc.dsl.space import parse_space
from qtc.errors import SpecError
from qtc.runtime import cuda
from qtc.runtime import weights as structural
from qtc.runtime.backends import probabilities
from qtc.runtime.channel_kernels import ChannelTables
from qtc.runtime.generator import GeneratorOptions, QTGenerator
from qtc.tasks.runs.rundir import RESOLVED

ROOT = Path(__file__).resolve().parent.parent
PER_POSITION = "weights raw per position init 1 / C"
# every backend; cuda runs where CuPy and a GPU are (bench/gpu_check.py's channel row too)
BACKENDS = ["reference", "cpu",
            pytest.param("cuda", marks=pytest.mark.skipif(not cuda.available(), reason="no CuPy / GPU"))]

SMALL = {
    # the shipped two-layer space: init, entangler-or-nothing, RY | RZ per layer
    "untied_two_layer": (ROOT / "specs/untied_two_layer.qs").read_text()
    .replace("weights raw init 1 / C", PER_POSITION),
    # the paper's space untied at 3 qubits, depth 2: 2 x 6^2 = 72 candidates (RX, cyc wrap-around)
    "paper_untied": (ROOT / "specs/hadamard_ent_rot_per_layer.qs").read_text()
    .replace("qubits auto 11", "qubits 3").replace("depth 10", "depth 2"),
    # no init; two-qubit matrices (cz, swap), a fixed slot, constant-angle and phase gates
    "mixed_gates": f"""
space mixed_gates
qubits 3
depth 2
layer = choose {{ cz(q, q + 1) for q in 0 .. n - 2 | swap(0, n - 1) ; t(1) | x(0) ; s(n - 1) }} ;
        rx(q, theta[layer, q]) for q in all ;
        choose {{ ry(q, theta[layer, q]) for q in all | rz(0, pi / 3) ; rz(q, theta[layer, q]) for q in all }}
untie layers
{PER_POSITION}
""",
    # rotations followed by gates that do not commute with them (their traces are taken walking
    # back through the alternative), a monomial run split after a rotation, a shared angle
    "walk": f"""
space walk
qubits 3
depth 2
layer = choose {{ ry(q, theta[layer, q]) for q in all ; cnot(0, 1) ; rx(q, theta[layer, q]) for q in all |
                  h(0) ; rz(q, theta[layer, q]) for q in all ; cnot(1, 2) ; rz(2, theta[layer, 0]) ; ry(2, theta[layer, 1]) }}
untie layers
{PER_POSITION}
""",
    # issue 18's forms: a named choice as a slot, affine angles, a third angle index (theta
    # (L, n, 2)), nested loops with a condition
    "space_forms": f"""
space space_forms
qubits 3
depth 2
pattern rot = choose {{ A: ry(q, 2 * theta[layer, q] + pi / 3) for q in all | B: rx(q, -theta[layer, q, 1]) for q in all }}
init = choose {{ nothing | h(q) for q in all }}
layer = rot ; choose {{ cz(i, j) for i in all for j in i + 1 .. n - 1 step 1 if (i + j) % 2 == 1 | nothing }}
untie layers
{PER_POSITION}
""",
}


def _forms(text):
    space = parse_space(text)
    n, L = space.qubits, space.depth
    return (lower_factorised(space, n, L, form="channel"),
            lower_factorised(space, n, L, form="enumeration"))


def _tables(prog):
    """The channel kernels' tables of a per-position program's steps (whichever form it took)."""
    return ChannelTables(prog.weights.steps, prog.qubits)


def _enumerated(prog: Program) -> Program:
    """The enumeration form's candidates with a weight each (to compare one candidate alone)."""
    return dataclasses.replace(prog, weights=PerCandidate(prog.labels, (0.0,) * len(prog.labels)))


def _inputs(prog: Program, seed: int):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(prog.angle_shape, generator=g, dtype=torch.float64) * 2
    W = torch.randn(prog.weights.shape, generator=g, dtype=torch.float64)   # raw: any sign
    cot = torch.randn(2 ** prog.qubits, generator=g, dtype=torch.float64)
    return theta.requires_grad_(), W.requires_grad_(), cot


def _value_and_grads(prog, theta, W, cot, backend):
    P = probabilities(prog, theta, W, backend=backend)
    return (P, *torch.autograd.grad((P * cot).sum(), (theta, W)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_channel_equals_enumeration_in_values_and_gradients(name, backend):
    channel, enum = _forms(SMALL[name])
    theta, W, cot = _inputs(channel, seed=len(name))
    want = _value_and_grads(enum, theta, W, cot, "reference")
    got = _value_and_grads(channel, theta, W, cot, backend)
    for what, a, b in zip(("P", "dtheta", "dW"), got, want):
        assert torch.allclose(a, b, atol=1e-10, rtol=0), f"{name} {backend} {what}: {(a - b).abs().max()}"
    assert want[2].abs().sum() > 0 and want[1].abs().sum() > 0   # the check is not vacuous


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_weights_need_not_sum_to_one(backend):
    channel, enum = _forms(SMALL["untied_two_layer"])
    theta = torch.full((channel.depth, channel.qubits), 0.7, dtype=torch.float64)
    W = torch.tensor([[2.0, -0.5]] * channel.weights.shape[0], dtype=torch.float64)
    P = probabilities(channel, theta, W, backend=backend)
    cw = structural.per_candidate(channel, W)
    assert torch.isclose(P.sum(), cw.sum(), atol=1e-12)             # 1.5^5, not 1
    assert abs(float(P.sum()) - 1.5 ** 5) < 1e-10
    assert torch.allclose(P, probabilities(enum, theta, W, backend="reference"), atol=1e-10, rtol=0)


def test_adjoint_backward_passes_gradcheck():
    channel, _ = _forms(SMALL["mixed_gates"].replace("qubits 3", "qubits 2").replace("depth 2", "depth 1"))
    theta, W, _ = _inputs(channel, seed=3)
    f = lambda t, w: probabilities(channel, t, w, backend="cpu")  # noqa: E731 - kernels.Channels in ProgramFunction
    assert torch.autograd.gradcheck(f, (theta, W), eps=1e-6, atol=1e-8)


def test_a_cnot_network_or_a_layer_of_rz_is_one_pass_and_ry_h_are_real_passes():
    """The specialised kernels: a run of monomial gates is one gather over the density matrix,
    a one-qubit gate one pass over both sides (real for H and RY)."""
    channel = qtc.compile(ROOT / "specs/hadamard_ent_rot_per_layer.qs", qubits=5, depth=2)
    tab = _tables(channel)
    passes, at_end = {}, {}
    steps = channel.weights.steps
    for step in steps:
        first = tab.steps[steps.index(step)][0]
        for label, a in zip(step.labels, range(first, first + len(step.alts))):
            passes[label] = [(seg.kind, seg.real, len(seg.grads)) for seg in tab.alts[a]]
            at_end[label] = tab.ends[a][1]
    assert passes["none"] == []
    assert passes["H"] == [("dense", True, 0)] * 5
    assert passes["ent"] == passes["cyc"] == [("mono", False, 0)]
    assert passes["RZ"] == [("mono", False, 0)]
    assert passes["RY"] == [("dense", True, 0)] * 5 and passes["RX"] == [("dense", False, 0)] * 5
    # rotations on distinct qubits commute: every angle's trace is taken at the end of its
    # alternative, with the weight's, in one pass
    assert at_end == {"none": 1, "H": 1, "ent": 1, "cyc": 1, "RX": 6, "RY": 6, "RZ": 6}
    # and every gate of each alternative commutes with its rotations' generators: the backward
    # pass traces U^+ E U against the stored state, with no forward replay of the alternative
    assert all(tab.start)
    walk = _tables(_forms(SMALL["walk"])[0])
    assert walk.start.count(False) == 4 and any(seg.grads for segs in walk.alts for seg in segs)


def test_favourites_are_the_argmax_of_every_position():
    channel, enum = _forms(SMALL["untied_two_layer"])
    W = torch.zeros(channel.weights.shape, dtype=torch.float64)
    pick = [1, 0, 1, 1, 0]                       # none, chain, RZ, none, RY
    for pos, k in enumerate(pick):
        W[pos, k] = 0.9
        W[pos, 1 - k] = 0.1
    flat = structural.flat(channel, W)
    assert channel.weights.favourites(flat) == [("init", "none"), ("layer 0.0", "chain"), ("layer 0.1", "RZ"),
                                                ("layer 1.0", "none"), ("layer 1.1", "RY")]
    best = int(torch.argmax(structural.per_candidate(channel, W)))
    assert channel.weights.architecture(flat) == enum.labels[best] == "none-chain-RZ/none-RY"


def test_the_found_architecture_is_the_favourite_candidate_alone():
    channel, enum = _forms(SMALL["paper_untied"])
    W = torch.rand(channel.weights.shape, dtype=torch.float64)
    flat = structural.flat(channel, W)
    found = found_candidate(channel, flat)
    best = int(torch.argmax(structural.per_candidate(channel, W)))
    assert found.labels == (enum.labels[best],) == (channel.weights.architecture(flat),)
    theta = torch.randn(channel.depth, channel.qubits, dtype=torch.float64)
    single = torch.zeros(len(enum.labels), dtype=torch.float64)
    single[best] = 1
    assert torch.allclose(probabilities(found, theta, torch.ones(1, dtype=torch.float64), backend="cpu"),
                          probabilities(_enumerated(enum), theta, single, backend="reference"), atol=1e-12)


def test_a_fixed_candidate_is_a_one_hot_per_position():
    channel, enum = _forms(SMALL["paper_untied"])
    theta = torch.randn(channel.depth, channel.qubits, dtype=torch.float64)
    k = 41
    W = structural.one_hot(channel, k, torch.float64)
    single = torch.zeros(len(enum.labels), dtype=torch.float64)
    single[k] = 1
    assert torch.allclose(probabilities(channel, theta, W, backend="cpu"),
                          probabilities(_enumerated(enum), theta, single, backend="reference"), atol=1e-12)
    assert channel.weights.architecture(structural.flat(channel, W)) == enum.labels[k]


def test_weights_accept_a_list_per_position():
    channel, _ = _forms(SMALL["mixed_gates"])
    theta = torch.randn(channel.depth, channel.qubits, dtype=torch.float64)
    rows = [[0.2, -1.0, 0.5], [0.3, 0.7]] * channel.depth
    W = torch.tensor([[0.2, -1.0, 0.5], [0.3, 0.7, 0.0]] * channel.depth, dtype=torch.float64)
    assert torch.equal(probabilities(channel, theta, rows, backend="cpu"),
                       probabilities(channel, theta, W, backend="cpu"))
    with pytest.raises(qtc.errors.QtcError, match="has 2 alternatives, got 3"):
        probabilities(channel, theta, [[1, 2, 3]] * (2 * channel.depth), backend="cpu")


def test_the_compiler_picks_the_cheaper_form_that_fits():
    assert qtc.compile(SMALL["untied_two_layer"]).form == "enumeration"
    paper = qtc.compile(ROOT / "specs/hadamard_ent_rot_per_layer.qs", qubits=11, depth=10)
    assert paper.form == "channel" and paper.weights.count == 2 * 6 ** 10
    costs = paper.weights.costs
    assert costs.channel < costs.enumeration and not costs.enumeration_fits


def test_a_per_position_program_labels_its_weights_and_has_no_fixed_candidates():
    prog = qtc.compile(ROOT / "specs/hadamard_ent_rot_per_layer.qs", qubits=3, depth=1)
    assert prog.weight_labels == ("init: H", "init: none", "layer 0.0: ent", "layer 0.0: cyc",
                                  "layer 0.1: RX", "layer 0.1: RY", "layer 0.1: RZ")
    assert prog.form == "enumeration" and prog.weights.fixed_candidates() == () and prog.weights.count == 12
    assert prog.weights.architecture([1, 0, 1, 0, 1, 0, 0]) == "H-ent-RX" == prog.labels[0]
    channel = lower_factorised(prog.space, 3, 1, form="channel")   # its candidates are not listed
    assert channel.candidates == [] and [node.kind for node in channel.nodes] == ["channel"]
    assert channel.weight_labels == prog.weight_labels
    tied = qtc.compile(ROOT / "specs/hadamard_ent_rot.qs", qubits=3, depth=1)
    assert tied.weight_labels == tuple(tied.candidates)       # one weight per candidate there


def test_issue_18_forms_size_theta_as_the_enumeration_does():
    channel, enum = _forms(SMALL["space_forms"])
    assert channel.angle_shape == enum.angle_shape == (2, 3, 2)
    assert channel.weights.shape == (5, 2) and channel.weights.count == 2 ** 5


def test_a_per_candidate_init_list_on_per_position_weights_is_a_located_error():
    text = SMALL["untied_two_layer"].replace(PER_POSITION, "weights raw per position init [1, 2]")
    with pytest.raises(SpecError) as err:
        parse_space(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("weights"))
    assert err.value.line == line and "one initial value" in err.value.message


def test_per_position_weights_on_a_tied_space_are_a_located_error():
    text = SMALL["untied_two_layer"].replace("untie layers", "tie layers")
    with pytest.raises(SpecError) as err:
        parse_space(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("weights"))
    assert err.value.line == line and "tied" in err.value.message


def test_a_product_too_large_for_both_forms_names_both_costs_and_what_fits(tmp_path, capsys):
    spec = tmp_path / "big.qs"
    spec.write_text((ROOT / "specs/hadamard_ent_rot_per_layer.qs").read_text())
    assert main(["compile", str(spec), "--qubits", "20", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:19:1: error" in err and "120,932,352 candidates" in err
    assert "enumeration would cost" in err and "the channel form would cost" in err
    assert "fits enumeration at depth 4 or channel at qubits 11" in err
    assert "Traceback" not in err


def test_compile_reports_the_form_the_count_and_both_costs(tmp_path, capsys):
    assert main(["compile", str(ROOT / "specs/hadamard_ent_rot_per_layer.qs"), "--qubits", "4",
                 "--depth", "3", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "form: channel" in out and "candidates: 432 = 2 x 2 x 3" in out
    assert "cost enumeration: " in out and "cost channel: " in out
    assert (tmp_path / "program.ir").read_text().startswith("channel hadamard_ent_rot_per_layer")


@pytest.mark.parametrize("norm", ["raw", "softmax"])
def test_the_generator_trains_per_position_weights(norm):
    text = SMALL["mixed_gates"].replace(PER_POSITION, f"weights {norm} per position")
    prog = qtc.compile(text)
    gen = QTGenerator(prog, 6, GeneratorOptions.given(backend="cpu"), dtype=torch.float64)
    assert gen.weights.shape == prog.weights.shape == (4, 3)
    used = gen.structural_weights()
    assert torch.equal(used[~structural.mask(prog)], torch.zeros(2, dtype=torch.float64))   # padding
    if norm == "softmax":
        assert torch.allclose(used.sum(1), torch.ones(4, dtype=torch.float64))
    gen().square().sum().backward()
    assert gen.weights.grad[structural.mask(prog)].abs().sum() > 0 and gen.theta.grad.abs().sum() > 0
    assert gen.trainable_counts()["structural weights"] == 10 == len(gen.reported_weights())
    assert gen.architecture().startswith("layer 0.0 ")


def _tiny_task(tmp_path) -> Path:
    (tmp_path / "space.qs").write_text(SMALL["paper_untied"].replace("qubits 3", "qubits auto 3"))
    (tmp_path / "tiny.task").write_text(
        (ROOT / "specs/bessel.task").read_text().replace("lstm 1 -> 20", "lstm 1 -> 4")
        .replace("linear 20 -> 1", "linear 4 -> 1").replace("hadamard_ent_rot.qs depth 10", "space.qs depth 1")
        .replace("compare fixed classical", "compare classical"))
    return tmp_path / "tiny.task"


def test_fixed_baselines_of_a_per_position_space_are_a_clear_error(tmp_path, capsys):
    assert main(["run", str(_tiny_task(tmp_path)), "-o", str(tmp_path / "run"), "--models", "fixed:3"]) == 2
    err = capsys.readouterr().err
    assert "no fixed baselines" in err and "12 candidates" in err and "Traceback" not in err


def test_a_forecast_run_reports_the_architecture_found(tmp_path, capsys):
    task = _tiny_task(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(task), "-o", str(out), "--no-progress", "--epochs", "1",
                 "--max-batches", "2", "--models", "diffqas", "--backend", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "architecture found (per-position favourites): init " in printed
    row = json.loads((out / "metrics.json").read_text())[-1]
    assert row["architecture"].startswith("init ") and len(row["structural_weights"]) == 2 + 2 + 3
    program = json.loads((out / RESOLVED).read_text())["program"]
    assert program["candidates"] == [] and len(program["weights"]) == 7     # labels of the weights
    assert program["weights"][0] == "init: H"


def test_a_forecast_run_trains_the_found_architecture_beside_diffqas(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(_tiny_task(tmp_path)), "-o", str(out), "--no-progress", "--epochs", "1",
                 "--max-batches", "2", "--models", "found,diffqas", "--backend", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["diffqas", "found"]   # found after its search
    assert summary["rows"][1]["label"] == "found architecture"
    printed = capsys.readouterr().out
    assert "| found architecture | 1 |" in printed
    rows = {r["model"]: r for r in json.loads((out / "metrics.json").read_text())}
    assert "structural_weights" not in rows["found"] and rows["found"]["test_mse"] > 0
    # the favourites of diffqas's weights, as one candidate label
    favourites = rows["diffqas"]["architecture"]            # "init H; layer 0.0 ent; layer 0.1 RY"
    found = rows["found"]["architecture"]                   # "H-ent-RY"
    assert found.split("-") == [part.rsplit(" ", 1)[1] for part in favourites.split("; ")]
    assert f"found architecture: trains alone: {found}" in printed


def test_found_without_diffqas_is_a_clear_error(tmp_path, capsys):
    assert main(["run", str(_tiny_task(tmp_path)), "-o", str(tmp_path / "run"), "--models", "found"]) == 2
    err = capsys.readouterr().err
    assert "needs diffqas in the same run" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
