"""The space language's forms (issue 18) and its size bounds (issue 16, .qs side).

Each form compiles to the gates it says (checked op by op), the affine angles carry their scale
into the gradients (reference, against the chain rule), theta's shape is (L, n) unless a third
index is written, and every size that can be too large fails at once with a located error that
states the bound. Values and gradients of specs/every_form.qs on every backend are checked in
test_backends_numeric.py, and against the dense simulator in test_reference.py.
"""
import math

import pytest
import torch

import qtc
from qtc.errors import SpecError
from qtc.runtime import reference
from qtc.runtime.generator import QTGenerator

HEAD = "space s\nqubits 4\ndepth 2\n"
TEN = "layer = choose { " + " | ".join(f"{c}: h(0)" for c in "ABCDEFGHIJ") + " }"  # 10 alternatives


def ops(body: str, qubits: int = 4, depth: int = 1):
    prog = qtc.compile(HEAD + body, qubits=qubits, depth=depth)
    return [(op.gate, op.qubits) for op in prog.source[0].ops]


def error(body: str, **size) -> SpecError:
    with pytest.raises(SpecError) as info:
        qtc.compile(HEAD + body, **size)
    return info.value


def test_descending_range_counts_down():
    assert ops("layer = cnot(q, q - 1) for q in n - 1 .. 1") == [("cnot", (3, 2)), ("cnot", (2, 1)),
                                                                   ("cnot", (1, 0))]
    assert ops("layer = h(q) for q in 3 .. 0 step -2") == [("h", (3,)), ("h", (1,))]


def test_stepped_ranges_and_all_step():
    assert ops("layer = h(q) for q in all step 2") == [("h", (0,)), ("h", (2,))]
    assert ops("layer = h(q) for q in 1 .. n - 3 step 2 ; x(0)", qubits=3) == [("x", (0,))]  # 1 .. 0: empty
    assert "runs against its step" in error("layer = h(q) for q in 3 .. 0 step 1").message


def test_nested_loops_with_filter_follow_comprehension_order():
    got = ops("layer = cz(i, j) for i in all for j in i + 1 .. n - 1 step 1 if (i + j) % 2 == 1 or j == 3")
    want = [("cz", (i, j)) for i in range(4) for j in range(i + 1, 4) if (i + j) % 2 == 1 or j == 3]
    assert got == want


def test_named_choice_is_reusable_as_a_slot():
    prog = qtc.compile(HEAD + "pattern r = choose { A: h(0) | B: x(0) }\ninit = r\nlayer = r ; r")
    assert prog.labels == tuple(f"{a}-{b}-{c}" for a in "AB" for b in "AB" for c in "AB")


def test_layer_and_theta_in_patterns():
    prog = qtc.compile(HEAD + "pattern rot = rz(q, theta[layer, q] * layer) for q in 0 .. layer\n"
                       "layer = rot", depth=3)
    assert [str(op) for op in prog.source[0].ops] == ["rz(0) 0", "rz(theta[1,0]) 0", "rz(theta[1,1]) 1",
                                                      "rz(2*theta[2,0]) 0", "rz(2*theta[2,1]) 1",
                                                      "rz(2*theta[2,2]) 2"]


def test_theta_shape_is_two_dimensional_unless_a_third_index_is_written():
    assert qtc.compile(HEAD + "layer = ry(q, theta[layer, q]) for q in all").angle_shape == (2, 4)
    prog = qtc.compile(HEAD + "layer = ry(q, theta[layer, q, 1]) for q in all ; rz(0, theta[layer, 0])")
    assert prog.angle_shape == (2, 4, 2)
    gen = QTGenerator(prog, 10, dtype=torch.float64)
    assert gen.theta.shape == (2, 4, 2) and gen.trainable_counts()["angles"] == 16


def test_affine_angle_gradient_is_the_chain_rule():
    """P_affine(theta) = P_plain(2 theta + pi/3) for every candidate, and so is its gradient:
    dP_affine/dtheta = 2 * dP_plain/dt at t = 2 theta + pi/3."""
    body = "layer = ry(q, {a}) for q in all ; cnot(0, 1) ; rx(q, {a}) for q in all"
    affine = qtc.compile(HEAD + body.format(a="2 * theta[layer, q] + pi / 3"))
    plain = qtc.compile(HEAD + body.format(a="theta[layer, q]"))
    theta = torch.rand(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    t = (2 * theta.detach() + math.pi / 3).requires_grad_()
    g = torch.randn(16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    w = torch.ones(1, dtype=torch.float64)
    pa, pp = reference.probabilities(affine, theta, w), reference.probabilities(plain, t, w)
    assert torch.allclose(pa, pp, atol=1e-12)
    (pa @ g).backward(), (pp @ g).backward()
    assert torch.allclose(theta.grad, 2 * t.grad, atol=1e-12) and t.grad.abs().max() > 1e-3


def test_negated_angle_and_zero_scale():
    prog = qtc.compile(HEAD + "layer = rz(0, -theta[layer, 0]) ; rx(1, 0 * theta[layer, 1] + 0.5)")
    assert [str(op) for op in prog.source[0].ops[:2]] == ["rz(-theta[0,0]) 0", "rx(0.5) 1"]


def test_per_candidate_weight_init():
    prog = qtc.compile(HEAD + "layer = choose { h(0) | x(0) }\nweights softmax init [0.5, -0.5]")
    assert prog.weights.init == (0.5, -0.5)


def test_an_init_statement_may_follow_a_weights_statement_without_a_value():
    """`init` after `weights NORM` starts the init statement when '=' follows, else the weights'
    value (once a shift/reduce conflict that Lark's strict mode revealed: the statement failed)."""
    prog = qtc.compile(HEAD + "weights softmax\ninit = x(1)\nlayer = choose { h(0) | x(0) }")
    assert [op.gate for op in prog.source[0].ops][0] == "x"
    prog = qtc.compile(HEAD + "weights softmax init 2\ninit = x(1)\nlayer = choose { h(0) | x(0) }")
    assert prog.weights.init == (2.0, 2.0)


def test_messages_name_the_label_and_the_layer():
    assert "labelled 'H'" in error("init = choose { h(0) | h(0) }\nlayer = x(0)").message
    assert "(at layer = 1)" in error("layer = rz(0, pi / (layer - 1))").message


def test_pattern_diamond_is_bounded_not_exponential():
    """p_k = p_(k-1) ; p_(k-1): 2^k gates; memoised and stopped at the gate bound."""
    chain = "pattern p0 = h(0)\n" + "".join(f"pattern p{i} = p{i - 1} ; p{i - 1}\n" for i in range(1, 30))
    err = error(chain + "layer = p29")
    assert "more than 100,000 gates" in err.message and err.line is not None


@pytest.mark.parametrize("text, fragment", [
    ("layer = rz(0, " + "(" * 500 + "1" + ")" * 500 + ")", None),  # parentheses add no depth
    ("layer = rz(0, " + " + ".join(["1"] * 500) + ")", "nests more than 64 levels"),
    ("layer = rz(0, " + "-" * 500 + "1)", "nests more than 64 levels"),
    ("pattern p0 = h(0)\n" + "".join(f"pattern p{i} = p{i - 1}\n" for i in range(1, 1000)) + "layer = p999",
     "nests 33 patterns deep, more than 32"),
    ("layer = rz(0, " + "+".join(["1"] * 500_000) + ")", "more than 4,096"),
    (TEN + "\nuntie layers\nlimit 1000000", "limit must be between 1 and 65536"),
])
def test_hostile_sizes_fail_at_once_with_the_bound(text, fragment):
    if fragment is None:
        qtc.compile(HEAD + text)
        return
    err = error(text)
    assert fragment in err.message and err.line is not None


def test_product_beyond_any_limit_states_the_size_it_needs():
    err = error(TEN + "\nuntie layers", depth=6)
    assert "1,000,000 candidates" in err.message and "at most 65,536" in err.hint


def test_depth_beyond_the_bound_is_refused_before_expansion():
    err = error("layer = h(0)", depth=10 ** 9)
    assert "depth in 1..10,000" in err.message and err.line == 3
