"""The compiler passes: verify() after each one, and each pass's claim checked numerically.

Claims: dropping trailing diagonals keeps every probability; a folded constant equals the
simulated distribution for any theta; merged candidates really were identical; circuits marked
real have real statevectors. Plus the paper space's six folded candidates, Table I order, and
the stabilizer tableau against dense simulation on random Clifford circuits.
"""
import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import qtc
from qtc.compiler.expand import expand
from qtc.compiler.gates import GATES, clifford_steps
from qtc.compiler.ir import Angle, Circuit, Constant, IRError, Op, PerCandidate, PhaseForm, verify
from qtc.compiler.passes import hadamard_phase_form, infer_real
from qtc.compiler.pipeline import PASSES, lower
from qtc.compiler.stabilizer import Tableau
from qtc.dsl.space import parse_space
from qtc.runtime import reference

import densesim

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPACES = sorted(p.name for p in SPECS.glob("*.qs"))
SIZES = [(2, 1), (3, 2), (5, 3), (6, 2)]
# untied_two_layer enumerates (2 x 2)^depth layer choices under its limit of 64: depth <= 2
CASES = [(s, n, L) for s in SPACES for n, L in SIZES if s != "untied_two_layer.qs" or L <= 2]
TABLE_I = ["H-ent-RX", "H-ent-RY", "H-ent-RZ", "H-cyc-RX", "H-cyc-RY", "H-cyc-RZ",
           "none-ent-RX", "none-ent-RY", "none-ent-RZ", "none-cyc-RX", "none-cyc-RY", "none-cyc-RZ"]
TOL = 1e-12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def thetas(prog, count=3, seed=0):
    """Angles that are anything but small: zeros, then uniform in (-3 pi, 3 pi)."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.zeros(prog.angle_shape, dtype=torch.float64)]
    out += [(torch.rand(prog.angle_shape, generator=g, dtype=torch.float64) * 2 - 1) * 3 * math.pi
            for _ in range(count - 1)]
    return out


def node_probabilities(node, n, theta):
    if isinstance(node, Constant):
        return reference.constant_distribution(node, n)
    if isinstance(node, PhaseForm):
        return torch.from_numpy(densesim.phase_form_probabilities(node, n, theta.numpy()))
    return reference.simulate(node, n, theta).abs() ** 2


def stages(space_file, n, depth):
    """The program after expand and after each pass, in pipeline order: {name: Program}."""
    prog = expand(parse_space(SPECS / space_file), n, depth)
    out = {"expand": prog}
    for p in PASSES:
        prog = p(prog)
        out[p.__name__] = prog
    return out


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-n{c[1]}-L{c[2]}")
def staged(request):
    return stages(*request.param)


# --- verify ---------------------------------------------------------------------------------
@pytest.mark.parametrize("space,n,depth", CASES)
def test_verify_passes_after_every_pass(space, n, depth):
    prog = lower(parse_space(SPECS / space), n, depth, check=True)
    assert prog.passes == tuple(p.__name__ for p in PASSES)
    verify(expand(parse_space(SPECS / space), n, depth))


def test_verify_rejects_broken_programs_and_names_the_pass():
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=4, depth=2)
    circ = next(c for c in prog.nodes if isinstance(c, Circuit))
    i = prog.nodes.index(circ)

    def broken(node=None, circuits=None):
        nodes = list(prog.nodes) if circuits is None else circuits
        if node is not None:
            nodes[i] = node
        return prog.with_nodes(nodes, "my_pass")

    cases = {
        "qubit out of range": broken(dataclasses.replace(circ, ops=circ.ops + (Op("h", (4,)),))),
        "bad op": broken(dataclasses.replace(circ, ops=circ.ops + (Op("cnot", (1, 1)),))),
        "angle mismatch": broken(dataclasses.replace(circ, ops=circ.ops + (Op("rx", (0,)),))),
        "angle out of range": broken(dataclasses.replace(circ, ops=(Op("rx", (0,), Angle(2, 0)),))),
        "complex gate": broken(dataclasses.replace(circ, ops=(Op("rx", (0,), 0.1),), real=True)),
        "candidates covered": broken(circuits=[c for c in prog.nodes if c is not circ]),
        "bad constraint": broken(Constant(members=circ.members, constraints=((0, 1),))),
    }
    for what, bad in cases.items():
        with pytest.raises(IRError, match="after my_pass") as err:
            verify(bad)
        assert what in str(err.value), (what, str(err.value))


# --- each pass's claim ------------------------------------------------------------------------
def _assert_same_probabilities(prog_before, prog_after, n, thetas_):
    """Every candidate's distribution through its node is the same before and after a pass."""
    before = {m: node for node in prog_before.nodes for m in node.members}
    after = {m: node for node in prog_after.nodes for m in node.members}
    for theta in thetas_:
        for m in range(len(prog_after.labels)):
            a = node_probabilities(before[m], n, theta)
            b = node_probabilities(after[m], n, theta)
            err = float((a - b).abs().max())
            assert err < TOL, f"{prog_after.passes[-1]} changed {prog_after.labels[m]} by {err:.3g}"


def _is_subsequence(short, long) -> bool:
    it = iter(long)
    return all(any(x == y for y in it) for x in short)


def test_drop_trailing_diagonals_keeps_probabilities(staged):
    before, after = staged["expand"], staged["drop_trailing_diagonals"]
    n = after.qubits
    _assert_same_probabilities(before, after, n, thetas(after))
    for b, a in zip(before.nodes, after.nodes):
        assert _is_subsequence(a.ops, b.ops)
        assert all(GATES[op.gate].diagonal for op in b.ops if op not in a.ops)
        # maximal: no diagonal gate is left with only monomial gates after it
        for k, op in enumerate(a.ops):
            if GATES[op.gate].diagonal:
                assert not all(GATES[o.gate].monomial for o in a.ops[k + 1:]), (a, op)


def test_folded_constants_equal_simulation_for_any_theta(staged):
    before, after = staged["drop_trailing_diagonals"], staged["fold_clifford_constants"]
    n = after.qubits
    _assert_same_probabilities(before, after, n, thetas(after, count=4, seed=1))
    # every candidate's distribution once per theta (a per-layer space has thousands of them)
    sources = ([reference.candidate_probabilities(after, theta) for theta in thetas(after, count=3, seed=2)]
               if any(isinstance(a, Constant) for a in after.nodes) else [])
    for b, a in zip(before.nodes, after.nodes):
        if isinstance(a, Constant):  # exact: compare with the unoptimised source, too
            for src in sources:
                diff = src[a.members[0]] - reference.constant_distribution(a, n)
                assert float(diff.abs().max()) < TOL
            assert all(GATES[op.gate].clifford or GATES[op.gate].axis for op in b.ops)
        else:  # only rotations that were global phases went
            assert _is_subsequence(a.ops, b.ops)
            assert all(GATES[op.gate].axis for op in b.ops if op not in a.ops)


def test_phase_forms_equal_simulation_for_any_theta(staged):
    before, after = staged["fold_clifford_constants"], staged["hadamard_phase_form"]
    n = after.qubits
    _assert_same_probabilities(before, after, n, thetas(after, count=4, seed=5))
    for b, a in zip(before.nodes, after.nodes):
        # exactly the circuits whose every gate is a permutation times phases in the H basis
        eligible = isinstance(b, Circuit) and b.ops and all(GATES[op.gate].xform for op in b.ops)
        assert isinstance(a, PhaseForm) == bool(eligible), (b, a)
        if isinstance(a, PhaseForm):
            assert a.members == b.members and len(a.terms) == len({(m, g) for m, g, _ in a.terms})
            assert all(0 < m < 2 ** n and c != 0 for m, _, c in a.terms)


def test_the_paper_spaces_rx_circuits_are_phase_forms():
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=5, depth=3)
    phases = [prog.label_of(c) for c in prog.nodes if isinstance(c, PhaseForm)]
    assert phases == ["none-ent-RX", "none-cyc-RX"]
    # one term per rotation: 15 RX gates, none cancelling or merging
    assert all(len(c.terms) == 15 for c in prog.nodes if isinstance(c, PhaseForm))


def test_merged_circuits_really_are_identical(staged):
    before, after = staged["hadamard_phase_form"], staged["merge_duplicates"]
    n = after.qubits
    _assert_same_probabilities(before, after, n, thetas(after, seed=3))
    old = {m: node for node in before.nodes for m in node.members}
    keys = set()
    for node in after.nodes:
        originals = [old[m] for m in node.members]
        first = originals[0]
        for o in originals[1:]:
            if isinstance(first, Constant):
                assert isinstance(o, Constant) and o.constraints == first.constraints
            elif isinstance(first, PhaseForm):
                assert isinstance(o, PhaseForm) and o.terms == first.terms
            else:
                assert isinstance(o, Circuit) and o.ops == first.ops
        key = (node.constraints if isinstance(node, Constant) else
               node.terms if isinstance(node, PhaseForm) else node.ops)
        assert key not in keys, "two nodes left that should have merged"
        keys.add(key)
    for theta in thetas(after, seed=4):
        src = reference.candidate_probabilities(after, theta)
        for node in after.nodes:
            for m in node.members[1:]:
                assert float((src[m] - src[node.members[0]]).abs().max()) < TOL


def test_real_circuits_have_real_statevectors(staged):
    prog = staged["infer_real"]
    n = prog.qubits
    for node in prog.nodes:
        if not isinstance(node, Circuit):
            continue
        assert node.real == all(GATES[op.gate].real for op in node.ops)
        if node.real:
            for theta in thetas(prog, seed=5):
                state = reference.simulate(node, n, theta)
                assert float(state.imag.abs().max()) == 0.0, prog.label_of(node)
                dense = densesim.statevector(node, n, theta.numpy())
                assert np.abs(dense.imag).max() < TOL


def test_a_complex_circuit_does_have_imaginary_amplitudes():
    """The real-statevector check above can fail: RX circuits are complex (the compiler puts
    the paper's in closed phase form; this is the circuit itself)."""
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=4, depth=2)
    node = infer_real(prog.with_nodes([prog.source[prog.labels.index("none-ent-RX")]], "x")).nodes[0]
    assert not node.real
    state = reference.simulate(node, 4, thetas(prog, seed=6)[1])
    assert float(state.imag.abs().max()) > 1e-3


# --- the paper space ----------------------------------------------------------------------------
def test_paper_space_candidates_are_in_table_i_order():
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs")
    assert prog.candidates == TABLE_I
    assert (prog.qubits, prog.depth) == (17, 15)
    assert prog.weights.init == (1 / 12,) * 12


def _paper_circuit(label: str, n: int, depth: int) -> tuple[Op, ...]:
    """Table I written by hand: H once (or not), then per layer the entangler and rotations."""
    init, ent, rot = label.split("-")
    ops = [Op("h", (q,)) for q in range(n)] if init == "H" else []
    for layer in range(depth):
        if ent == "ent":
            ops += [Op("cnot", (q, q + 1)) for q in range(0, n - 1, 2)]
            ops += [Op("cnot", (q, q + 1)) for q in range(1, n - 1, 2)]
        else:
            ops += [Op("cnot", (q, (q + 1) % n)) for q in range(n)]
        ops += [Op(rot.lower(), (q,), Angle(layer, q)) for q in range(n)]
    return tuple(ops)


@pytest.mark.parametrize("n,depth", [(2, 1), (5, 3), (11, 10)])
def test_paper_space_expands_to_the_hand_written_circuits(n, depth):
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=n, depth=depth)
    for label, src in zip(prog.labels, prog.source):
        assert src.ops == _paper_circuit(label, n, depth), label


@pytest.mark.parametrize("n,depth", [(2, 1), (3, 2), (4, 15), (7, 3), (11, 10), (13, 10), (17, 15)])
def test_paper_space_folds_exactly_six_candidates(n, depth):
    prog = qtc.compile(SPECS / "hadamard_ent_rot.qs", qubits=n, depth=depth)
    folded = {prog.labels[m]: node for node in prog.nodes if isinstance(node, Constant)
              for m in node.members}
    assert sorted(folded) == sorted(["H-ent-RX", "H-ent-RZ", "H-cyc-RX", "H-cyc-RZ",
                                     "none-ent-RZ", "none-cyc-RZ"])
    for label, node in folded.items():
        dist = reference.constant_distribution(node, n)
        if label.startswith("H-"):  # uniform over all 2^n outcomes
            assert node.constraints == ()
            assert float((dist - 2.0 ** -n).abs().max()) == 0.0
        else:  # a delta on |0...0>
            assert len(node.constraints) == n
            assert float(dist[0]) == 1.0 and float(dist.sum()) == 1.0
    circuits = [c for c in prog.nodes if isinstance(c, Circuit)]
    assert all(c.real for c in circuits)
    assert {prog.labels[c.members[0]] for c in circuits} == {"H-ent-RY", "H-cyc-RY", "none-ent-RY", "none-cyc-RY"}
    # the RX circuits in closed form; at (2, 1) their forms are equal (the CNOTs act on |00>)
    phases = [c for c in prog.nodes if isinstance(c, PhaseForm)]
    assert sorted(prog.labels[m] for c in phases for m in c.members) == ["none-cyc-RX", "none-ent-RX"]
    assert len(phases) == (1 if (n, depth) == (2, 1) else 2)
    assert len(prog.nodes) == 4 + 2 + len(phases)  # the two constants are shared


# --- the stabilizer tableau ---------------------------------------------------------------------
CLIFFORD = sorted(name for name, g in GATES.items() if g.clifford)


def random_clifford(n: int, length: int, rng: random.Random) -> Circuit:
    ops = []
    for _ in range(length):
        name = rng.choice([g for g in CLIFFORD if GATES[g].arity <= n])
        ops.append(Op(name, tuple(rng.sample(range(n), GATES[name].arity))))
    return Circuit(members=(0,), ops=tuple(ops))


def tableau_of(circuit: Circuit, n: int) -> Tableau:
    tab = Tableau.zero_state(n)
    for op in circuit.ops:
        tab.apply(clifford_steps(GATES[op.gate], op.angle), op.qubits)
    return tab


def test_every_clifford_gate_is_in_the_random_circuits():
    assert {"h", "s", "sdg", "x", "y", "z", "cnot", "cx", "cz", "swap"} <= set(CLIFFORD)


def test_tableau_distribution_matches_dense_simulation_on_random_clifford_circuits():
    rng = random.Random(2024)
    for trial in range(300):
        n = rng.randint(1, 5)
        circuit = random_clifford(n, rng.randint(0, 40), rng)
        dist = reference.constant_distribution(
            Constant(members=(0,), constraints=tableau_of(circuit, n).distribution()), n).numpy()
        dense = densesim.probabilities(circuit, n, np.zeros((1, n)))
        assert np.abs(dist - dense).max() < 1e-12, (trial, circuit.ops)


def test_tableau_stabilises_matches_pauli_expectations_on_random_clifford_circuits():
    rng = random.Random(7)
    seen = set()
    for trial in range(200):
        n = rng.randint(1, 4)
        circuit = random_clifford(n, rng.randint(0, 30), rng)
        tab, psi = tableau_of(circuit, n), densesim.statevector(circuit, n, np.zeros((1, n)))
        for q in range(n):
            for axis in "XYZ":
                expectation = np.vdot(psi, densesim.pauli_string({q: axis}, n) @ psi).real
                # a stabilizer state's Pauli expectation is 0 or +-1
                assert min(abs(expectation), abs(abs(expectation) - 1)) < 1e-9
                assert tab.stabilises(axis, q) == (abs(expectation) > 0.5), (trial, q, axis, circuit.ops)
                seen.add(tab.stabilises(axis, q))
    assert seen == {True, False}


def test_equal_clifford_distributions_get_equal_constraints():
    """merge_duplicates compares constants by their constraints: the form must be canonical."""
    rng = random.Random(11)
    by_distribution: dict = {}
    for _ in range(300):
        circuit = random_clifford(3, rng.randint(0, 20), rng)
        constraints = tableau_of(circuit, 3).distribution()
        key = tuple(np.round(densesim.probabilities(circuit, 3, np.zeros((1, 3))), 9))
        assert by_distribution.setdefault(key, constraints) == constraints
    assert len(by_distribution) > 10


def test_rotation_about_a_stabiliser_is_a_global_phase():
    """What fold relies on: if +-P_q stabilises |psi>, R_P(t)|psi> = e^(i phi)|psi>."""
    rng = random.Random(5)
    for _ in range(50):
        n = rng.randint(1, 4)
        circuit = random_clifford(n, rng.randint(0, 20), rng)
        tab, psi = tableau_of(circuit, n), densesim.statevector(circuit, n, np.zeros((1, n)))
        for q in range(n):
            for axis in "XYZ":
                r = densesim.full_matrix(densesim.rotation(densesim.PAULI[axis], 1.234), (q,), n)
                overlap = abs(np.vdot(psi, r @ psi))
                assert (overlap > 1 - 1e-9) == tab.stabilises(axis, q)


QUARTER_TURNS = """space quarter_turns
qubits 3
depth 1
layer = choose { a: rx(q, pi / 2) for q in all | b: ry(q, pi) for q in all | c: rz(q, -pi / 2) for q in all } ;
        h(0) ; cnot(q, q + 1) for q in 0 .. n - 2 ;
        choose { a: rx(q, pi / 2) for q in all | b: ry(q, 3 * pi / 2) for q in all | c: rz(q, pi) for q in all } ;
        cz(0, 2) ;
        choose { a: ry(q, pi / 2) for q in all | b: rx(q, -pi) for q in all | c: rx(q, 5 * pi / 2) for q in all }
"""


def test_rotations_by_quarter_turns_are_clifford_and_fold_exactly():
    """Issue 18: every candidate of a space of rotations by multiples of pi/2 is Clifford; all
    27 fold into exact constants equal to dense simulation."""
    prog = qtc.compile(QUARTER_TURNS)
    assert len(prog.labels) == 27
    assert all(isinstance(node, Constant) for node in prog.nodes)
    for i, src in enumerate(prog.source):
        node = next(nd for nd in prog.nodes if i in nd.members)
        exact = reference.constant_distribution(node, 3).numpy()
        np.testing.assert_allclose(exact, densesim.probabilities(src, 3, np.zeros((1, 3))), atol=1e-12)


def test_phase_form_of_every_hadamard_basis_gate_with_shifts_and_constants():
    """x, y, z (frames with shifts, constant phases), cnot, swap and rx with scaled, shifted and
    constant angles, in one circuit: the closed form equals the dense simulation for any theta,
    and the compiled program (cpu kernels) gives the reference's probabilities and gradients."""
    n, L = 4, 2
    a = lambda layer, q, **kw: Angle(layer, q, **kw)   # noqa: E731
    ops = (Op("x", (1,)), Op("rx", (0,), a(0, 0)), Op("cnot", (0, 1)), Op("z", (2,)),
           Op("rx", (1,), a(0, 1, scale=-2.0, shift=0.3)), Op("swap", (1, 3)), Op("y", (0,)),
           Op("rx", (3,), 0.7), Op("cnot", (3, 2)), Op("rx", (2,), a(1, 2)), Op("x", (3,)),
           Op("cnot", (2, 0)), Op("rx", (0,), a(1, 0, scale=0.5)), Op("rx", (3,), a(1, 3)))
    src = Circuit(members=(0,), ops=ops)
    prog = qtc.compiler.ir.Program(name="xbasis", qubits=n, depth=L, labels=("all",), source=(src,),
                                   nodes=(src,), weights=PerCandidate(labels=("all",), init=(1.0,)))
    form = hadamard_phase_form(prog).nodes[0]
    assert isinstance(form, PhaseForm) and any(not isinstance(t[1], Angle) for t in form.terms)
    for theta in thetas(prog, count=4, seed=9):
        dense = densesim.probabilities(src, n, theta.numpy())
        np.testing.assert_allclose(densesim.phase_form_probabilities(form, n, theta.numpy()), dense, atol=TOL)
    from qtc.runtime.backends import Runnable
    run = Runnable.of(qtc.compiler.pipeline.optimise(prog))
    assert [type(c) for c in run.nodes] == [PhaseForm]
    g = torch.linspace(-1, 1, 2 ** n, dtype=torch.float64)
    out = {}
    for backend in ("reference", "cpu"):
        t = thetas(prog, count=2, seed=10)[1].requires_grad_()
        P = run.probabilities(t, torch.ones(1, dtype=torch.float64), backend=backend)
        out[backend] = (P.detach(), torch.autograd.grad(P @ g, t)[0])
    for x, y in zip(out["cpu"], out["reference"]):
        assert float((x - y).abs().max()) < 1e-12
