"""Table-wide checks of compiler/gates.py: every record's flags are claims about its matrix.

The passes trust these flags (drop_trailing_diagonals: diagonal/monomial; fold: clifford/axis;
infer_real: real), so each claim is checked on the matrix itself, for many random angles.
"""
import itertools
import math

import numpy as np
import pytest

from qtc.compiler import symbolic
from qtc.compiler.gates import GATES, PAULIS, clifford_steps
from qtc.dsl.gatenames import GATES as DSL_GATES

import densesim

RNG = np.random.default_rng(1234)
ANGLES = [0.0, math.pi, -math.pi / 3, 2.5 * math.pi] + list(RNG.uniform(-4 * math.pi, 4 * math.pi, 12))
NAMES = sorted(GATES)
ATOL = 1e-12


def matrices(g):
    """The gate's matrix at every test angle (once for a fixed gate)."""
    angles = ANGLES if g.params else [0.0]
    return [np.asarray(g.matrix(t), dtype=complex) for t in angles]


def pauli_strings(k: int):
    """All k-qubit Pauli strings as (label, matrix); label[j] acts on the gate's qubit j."""
    for labels in itertools.product("IXYZ", repeat=k):
        yield "".join(labels), densesim.pauli_string(dict(enumerate(labels)), k)


def is_pauli_up_to_phase(m: np.ndarray) -> bool:
    k = int(math.log2(m.shape[0]))
    coeffs = [np.trace(p.conj().T @ m) / 2 ** k for _, p in pauli_strings(k)]
    big = [c for c in coeffs if abs(c) > 1e-9]
    return len(big) == 1 and abs(abs(big[0]) - 1) < 1e-9


def maps_paulis_to_paulis(u: np.ndarray) -> bool:
    """Clifford: U P U^dag is a Pauli (up to phase) for X, Y, Z on each wire (so for all)."""
    k = int(math.log2(u.shape[0]))
    for wire, p in itertools.product(range(k), "XYZ"):
        pm = densesim.pauli_string({wire: p}, k)
        if not is_pauli_up_to_phase(u @ pm @ u.conj().T):
            return False
    return True


def is_diagonal(m):
    return np.allclose(m - np.diag(np.diag(m)), 0, atol=ATOL)


def is_monomial(m):
    nz = np.abs(m) > 1e-9
    return bool((nz.sum(0) == 1).all() and (nz.sum(1) == 1).all())


def is_real(m):
    return np.allclose(m.imag, 0, atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_record_is_well_formed(name):
    g = GATES[name]
    assert g.arity in (1, 2) and g.params in (0, 1)
    assert name == g.name or (name, g.name) == ("cx", "cnot"), "only 'cx' is an alias"
    for m in matrices(g):
        assert m.shape == (2 ** g.arity, 2 ** g.arity)
    if g.params:
        assert g.axis in ("X", "Y", "Z") and g.arity == 1, "a parametrised gate is a rotation"
        assert g.inverse is None
    else:
        assert g.inverse in GATES, "every fixed gate names its inverse"


@pytest.mark.parametrize("name", NAMES)
def test_every_matrix_is_unitary_for_random_angles(name):
    for m in matrices(GATES[name]):
        np.testing.assert_allclose(m.conj().T @ m, np.eye(len(m)), atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_every_inverse_is_right(name):
    g = GATES[name]
    if g.params:  # R(t) R(-t) = 1
        for t in ANGLES:
            np.testing.assert_allclose(g.matrix(-t) @ g.matrix(t), np.eye(2), atol=ATOL)
    else:
        inv = GATES[g.inverse]
        assert inv.arity == g.arity and GATES[inv.inverse].name == g.name
        np.testing.assert_allclose(inv.matrix() @ g.matrix(), np.eye(2 ** g.arity), atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_flags_are_true_of_the_matrix(name):
    g = GATES[name]
    for m in matrices(g):
        assert not g.real or is_real(m), f"{name} is flagged real but has complex entries"
        assert not g.diagonal or is_diagonal(m), f"{name} is flagged diagonal"
        assert not g.monomial or is_monomial(m), f"{name} is flagged monomial"
        assert not g.clifford or maps_paulis_to_paulis(m), f"{name} is flagged Clifford"
    assert not g.diagonal or g.monomial, "a diagonal matrix is monomial"


@pytest.mark.parametrize("name", NAMES)
def test_flags_are_complete(name):
    """A property the matrix has at every angle should be flagged, or a pass misses work."""
    g = GATES[name]
    ms = matrices(g)
    assert g.real == all(is_real(m) for m in ms), name
    assert g.diagonal == all(is_diagonal(m) for m in ms), name
    assert g.monomial == all(is_monomial(m) for m in ms), name
    assert g.clifford == all(maps_paulis_to_paulis(m) for m in ms), name


@pytest.mark.parametrize("name", [n for n in NAMES if GATES[n].axis])
def test_axis_is_right(name):
    """R(t) = exp(-i t P / 2) for rotations; a fixed gate with an axis is a phase times such a
    rotation (the fold pass drops it when P stabilises the state)."""
    g = GATES[name]
    p = densesim.PAULI[g.axis]
    if g.params:
        for t in ANGLES:
            np.testing.assert_allclose(g.matrix(t), densesim.rotation_expm(p, t), atol=ATOL)
            np.testing.assert_allclose(densesim.rotation(p, t), densesim.rotation_expm(p, t), atol=ATOL)
    else:
        m = g.matrix()
        c0, c1 = np.trace(m) / 2, np.trace(p @ m) / 2
        np.testing.assert_allclose(m, c0 * np.eye(2) + c1 * p, atol=ATOL)


def test_t_is_a_phase_times_rz_quarter_turn():
    t = GATES["t"].matrix()
    np.testing.assert_allclose(t, np.exp(1j * math.pi / 8) * GATES["rz"].matrix(math.pi / 4), atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_matrices_match_the_textbook(name):
    """Conventions: two-qubit index = b0 + 2*b1 with b0 the gate's first qubit (the control)."""
    g = GATES[name]
    angles = ANGLES if g.params else [None]
    for t in angles:
        np.testing.assert_allclose(g.matrix(t if t is not None else 0.0), densesim.gate_matrix(name, t),
                                   atol=ATOL)


def test_cnot_flips_the_second_qubit_when_the_first_is_one():
    m = GATES["cnot"].matrix()
    # |b0=1, b1=0> = index 1 -> |1, 1> = index 3; |b0=0, b1=1> = index 2 stays
    assert m[3, 1] == 1 and m[2, 2] == 1 and m[0, 0] == 1 and m[1, 3] == 1


def test_flag_checks_can_fail():
    """The property checks themselves reject wrong claims."""
    assert not is_real(GATES["y"].matrix())
    assert not is_diagonal(GATES["h"].matrix())
    assert not is_monomial(GATES["h"].matrix())
    assert not maps_paulis_to_paulis(GATES["t"].matrix())
    assert not maps_paulis_to_paulis(GATES["rx"].matrix(0.3))
    assert maps_paulis_to_paulis(GATES["rx"].matrix(math.pi / 2))


# --- the derived views, each checked against the matrix --------------------------------------

def lowering_matrix(g, t: float) -> np.ndarray:
    """The matrix the kernels apply: the lowering's table, then its frame permutation."""
    low, k = g.lowering, 2 ** g.arity
    if low.kind == "dense":
        first = np.array([[symbolic.value(e, t) for e in row] for row in low.table])
    elif low.kind == "diag":
        first = np.diag([symbolic.value(e, t) for e in low.table])
    else:
        first = np.eye(k)
    perm = np.zeros((k, k))
    for x in range(k):
        perm[low.frame(x) if low.frame else x, x] = 1
    return perm @ first


def step_matrix(steps, arity: int) -> np.ndarray:
    """The product of h / s / cnot steps on the gate's own qubits."""
    out = np.eye(2 ** arity, dtype=complex)
    for name, *local in steps:
        small = {"h": densesim.H, "s": densesim.S, "cnot": densesim.gate_matrix("cnot")}[name]
        out = densesim.full_matrix(small, tuple(local), arity) @ out
    return out


def equal_up_to_phase(a: np.ndarray, b: np.ndarray) -> bool:
    k = np.argmax(abs(b.ravel()))
    phase = a.ravel()[k] / b.ravel()[k]
    return abs(abs(phase) - 1) < 1e-9 and np.allclose(a, phase * b, atol=1e-9)


def test_the_dsl_knows_every_gate_of_the_table_with_its_signature():
    assert {n: (g.arity, g.params) for n, g in GATES.items()} == \
        {n: (s.arity, s.params) for n, s in DSL_GATES.items()}


@pytest.mark.parametrize("name", NAMES)
def test_kernel_lowering_is_the_matrix(name):
    """Table then frame permutation = the gate's matrix, at every test angle; a diagonal gate
    has no frame, a frame-only gate no table."""
    g = GATES[name]
    for t in (ANGLES if g.params else [0.0]):
        np.testing.assert_allclose(lowering_matrix(g, t), g.matrix(t), atol=ATOL)
    assert not g.diagonal or g.lowering.frame is None
    assert (g.lowering.kind == "dense") == (not g.monomial), "only non-monomial gates are dense"


@pytest.mark.parametrize("name", [n for n in NAMES if GATES[n].params])
def test_rotation_generator_is_its_pauli(name):
    g = GATES[name]
    gen = g.lowering.generator
    if g.lowering.kind == "diag":
        got = np.diag([symbolic.value(e) for e in gen])
    else:
        got = np.array([[symbolic.value(e) for e in row] for row in gen])
    np.testing.assert_allclose(got, PAULIS[g.axis], atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_clifford_steps_are_the_matrix_up_to_phase(name):
    g = GATES[name]
    if g.params:
        for k in range(-4, 9):
            t = k * math.pi / 2
            steps = clifford_steps(g, t)
            assert steps is not None, f"{name}({k} pi/2) is Clifford"
            assert equal_up_to_phase(step_matrix(steps, 1), g.matrix(t)), (name, k)
        for t in (0.3, math.pi / 4, math.pi / 2 + 1e-6):
            assert clifford_steps(g, t) is None
        assert clifford_steps(g, None) is None, "a trainable angle is never Clifford"
    elif g.clifford:
        assert equal_up_to_phase(step_matrix(clifford_steps(g), g.arity), g.matrix())
    else:
        assert clifford_steps(g) is None


@pytest.mark.parametrize("name", NAMES)
def test_hadamard_basis_form_is_the_matrix(name):
    """GateDef.xform: in the H basis the gate is its phases then its frame permutation, up to a
    global phase, at every test angle; None exactly when H^k M H^k is not monomial (a rotation
    about Y or Z: at angle 0 it is the identity, so other angles decide)."""
    g = GATES[name]
    k = 2 ** g.arity
    hk = np.eye(1)
    for _ in range(g.arity):
        hk = np.kron(hk, densesim.H)
    bits = np.arange(k)
    if g.xform is None:
        assert not all(is_monomial(hk @ m @ hk) for m in matrices(g)), name
        return
    for t in (ANGLES if g.params else [1.0]):
        conjugated = hk @ np.asarray(g.matrix(t), dtype=complex) @ hk
        phase = np.zeros(k)
        for S, coef in g.xform.phases:
            phase += coef * t * (1 - 2 * (np.array([bin(int(v)).count("1") for v in bits & S]) & 1))
        perm = np.zeros((k, k))
        for x in range(k):
            perm[g.xform.frame(x) if g.xform.frame else x, x] = 1
        assert equal_up_to_phase(perm @ np.diag(np.exp(1j * phase)), conjugated), (name, t)
    assert (g.xform is not None) == (name in ("x", "y", "z", "cnot", "cx", "swap", "rx"))

