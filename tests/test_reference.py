"""runtime/reference.py against an independent dense-matrix simulator (tests/densesim.py).

For every candidate of every search space in specs/, at a few sizes with n <= 8, the reference
backend's float64 probabilities equal the dense simulation to 1e-12; they sum to one; the
Program entry point returns the weighted sum; the folded constants equal simulation.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import qtc
from qtc.compiler.factorised import lower_factorised
from qtc.compiler.ir import Circuit, Constant, PerCandidate, PhaseForm
from qtc.runtime import reference
from qtc.runtime.backends import Runnable

import densesim

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPACES = sorted(p.name for p in SPECS.glob("*.qs"))
# (qubits, depth) per space; untied_two_layer enumerates (2 x 2)^depth layer choices: depth <= 2
SIZES = {"untied_two_layer.qs": [(2, 1), (3, 2), (8, 2)]}
DEFAULT_SIZES = [(2, 1), (3, 2), (5, 3), (8, 2)]
CASES = [(s, n, L) for s in SPACES for n, L in SIZES.get(s, DEFAULT_SIZES)]
TOL = 1e-12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_space_in_specs_is_covered():
    assert {"hadamard_ent_rot.qs", "hardware_efficient.qs", "untied_two_layer.qs"} <= set(SPACES)


def random_theta(prog, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(prog.angle_shape, generator=g, dtype=torch.float64) * 2 - 1) * 2 * np.pi


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-n{c[1]}-L{c[2]}")
def case(request):
    space, n, depth = request.param
    prog = qtc.compile(SPECS / space, qubits=n, depth=depth)
    if prog.weights.kind == "position":   # per position: its candidates enumerated, a weight each
        enum = lower_factorised(prog.space, n, depth, form="enumeration")   # (channel form: test_channel)
        per_candidate = PerCandidate(enum.labels, enum.weights.candidate_products(enum.weights.init), enum.weights.norm)
        prog = Runnable.of(dataclasses.replace(enum, weights=per_candidate))
    theta = random_theta(prog, seed=n * 100 + depth)
    ref = reference.candidate_probabilities(prog, theta)
    return prog, theta, ref


def test_reference_matches_dense_simulation_for_every_candidate(case):
    prog, theta, ref = case
    assert ref.dtype == torch.float64 and ref.shape == (len(prog.labels), 2 ** prog.qubits)
    for i, src in enumerate(prog.source):
        dense = densesim.probabilities(src, prog.qubits, theta.numpy())
        err = np.max(np.abs(ref[i].numpy() - dense))
        assert err < TOL, f"candidate {i + 1} {prog.labels[i]}: max error {err:.3g}"


def test_probabilities_sum_to_one_per_candidate(case):
    _, _, ref = case
    np.testing.assert_allclose(ref.sum(1).numpy(), 1.0, atol=TOL)
    assert (ref >= 0).all()


def test_program_probabilities_is_the_weighted_sum(case):
    """Raw spaces mix with the weights as given; softmax spaces with softmax(weights), as the
    generator does (issue 18)."""
    prog, theta, ref = case
    w = torch.linspace(-0.5, 1.5, len(prog.labels), dtype=torch.float64)  # any weights, not just convex
    got = prog.probabilities(theta, w, backend="reference")
    assert got.shape == (2 ** prog.qubits,)
    mix = torch.softmax(w, 0) if prog.weights.norm == "softmax" else w
    np.testing.assert_allclose(got.numpy(), (mix @ ref).numpy(), atol=TOL)
    if prog.weights.norm == "raw":
        one_hot = torch.zeros(len(prog.labels), dtype=torch.float64)
        one_hot[-1] = 1
        np.testing.assert_allclose(prog.probabilities(theta, one_hot, backend="reference").numpy(),
                                   ref[-1].numpy(), atol=TOL)


def test_program_probabilities_normalise_like_the_generator():
    from qtc.runtime.generator import GeneratorOptions, QTGenerator
    prog = qtc.compile(SPECS / "hardware_efficient.qs", qubits=3, depth=2)
    assert prog.weights.norm == "softmax"
    gen = QTGenerator(prog, 8, GeneratorOptions.given(backend="reference"), dtype=torch.float64)
    with torch.no_grad():
        gen.weights.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5]))
    want = gen.probabilities()
    got = prog.probabilities(gen.theta, gen.weights, backend="reference")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not torch.allclose(got, prog.probabilities(gen.theta, torch.softmax(gen.weights, 0),
                                                      backend="reference"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.complex64])
@pytest.mark.parametrize("backend", ["reference", "cpu"])  # cpu: rejected before any build
def test_theta_dtype_other_than_float32_or_float64_is_a_clear_error(dtype, backend):
    from qtc.errors import QtcError
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=2, depth=1)
    theta = torch.zeros(1, 2, dtype=dtype)
    with pytest.raises(QtcError, match="float32 or float64"):
        prog.probabilities(theta, torch.full((12,), 1 / 12), backend=backend)


def test_folded_constants_equal_simulation(case):
    prog, theta, ref = case
    for node in prog.nodes:
        if isinstance(node, Constant):
            exact = reference.constant_distribution(node, prog.qubits).numpy()
            assert abs(exact.sum() - 1) < TOL
            for m in node.members:
                assert np.max(np.abs(ref[m].numpy() - exact)) < TOL, prog.labels[m]


def test_compiled_nodes_reproduce_the_ensemble(case):
    """Evaluating the *optimised* program (circuits and constants, weights summed per node)
    gives the same mixture as the unoptimised candidates."""
    prog, theta, ref = case
    w = torch.arange(1, len(prog.labels) + 1, dtype=torch.float64)
    total = torch.zeros(2 ** prog.qubits, dtype=torch.float64)
    for node in prog.nodes:
        weight = sum(w[m] for m in node.members)
        if isinstance(node, Constant):
            p = reference.constant_distribution(node, prog.qubits)
        elif isinstance(node, PhaseForm):
            p = torch.from_numpy(densesim.phase_form_probabilities(node, prog.qubits, theta.numpy()))
        else:
            p = reference.simulate(node, prog.qubits, theta).abs() ** 2
        total += weight * p
    np.testing.assert_allclose(total.numpy(), (w @ ref).numpy(), atol=1e-10)


def test_float32_theta_gives_float32_probabilities_close_to_float64():
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=4, depth=3)
    theta = random_theta(prog, 7)
    w = torch.full((12,), 1 / 12, dtype=torch.float64)
    p64 = prog.probabilities(theta, w, backend="reference")
    p32 = prog.probabilities(theta.float(), w.float(), backend="reference")
    assert p32.dtype == torch.float32
    np.testing.assert_allclose(p32.numpy(), p64.numpy(), atol=1e-6)


def test_reference_gradients_pass_gradcheck():
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=3, depth=2)
    theta = random_theta(prog, 3).requires_grad_()
    w = torch.rand(12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, v: prog.probabilities(t, v, backend="reference"), (theta, w))


def test_constant_angles_and_every_gate_kind_agree_with_dense():
    """A hand-written circuit with every gate of the table, fixed angles and theta angles."""
    from qtc.compiler.gates import GATES
    from qtc.compiler.ir import Angle, Op
    n, rng = 4, np.random.default_rng(5)
    ops = [Op("h", (q,)) for q in range(n)]
    for name in sorted(GATES):
        g = GATES[name]
        qubits = tuple(int(q) for q in rng.choice(n, g.arity, replace=False))
        angle = None
        if g.params:
            angle = Angle(int(rng.integers(2)), int(rng.integers(n))) if rng.random() < 0.5 else 0.7
        ops.append(Op(name, qubits, angle))
    circuit = Circuit(members=(0,), ops=tuple(ops * 2))
    theta = torch.tensor(rng.uniform(-3, 3, (2, n)))
    state = reference.simulate(circuit, n, theta).numpy()
    np.testing.assert_allclose(state, densesim.statevector(circuit, n, theta.numpy()), atol=TOL)


def test_dense_simulator_is_not_trivially_equal():
    """The oracle sees a wrong qubit order: swapping the wires of a CNOT changes the answer."""
    from qtc.compiler.ir import Op
    a = Circuit(members=(0,), ops=(Op("h", (0,)), Op("cnot", (0, 2))))
    b = Circuit(members=(0,), ops=(Op("h", (0,)), Op("cnot", (2, 0))))
    pa, pb = densesim.probabilities(a, 3, np.zeros((1, 3))), densesim.probabilities(b, 3, np.zeros((1, 3)))
    np.testing.assert_allclose(pa, [0.5, 0, 0, 0, 0, 0.5, 0, 0], atol=TOL)  # |000> + |101>
    assert not np.allclose(pa, pb)
