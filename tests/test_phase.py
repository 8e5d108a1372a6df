"""Phase forms at run time (runtime/phase.py): the CPU kernels (compiler/csrc/phase.c) and the
torch steps the cuda backend runs, against the closed form's definition (tests/densesim.py) and
against each other, with gradients checked by finite differences.

The programs' probabilities and gradients through every backend against the reference (which
simulates the unoptimised circuits) are in test_backends_numeric.py.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import qtc
from qtc.compiler.ir import Angle, PhaseForm
from qtc.compiler.pipeline import only_candidate
from qtc.runtime import phase
from qtc.runtime.backends import Runnable

import densesim

PAPER = Path(__file__).resolve().parent.parent / "specs" / "hadamard_ent_rot.qs"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_form(n: int, terms: int, seed: int, depth: int = 3) -> PhaseForm:
    """Terms with distinct masks or angles: plain, scaled and shifted angles, and constants."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(terms):
        mask = int(rng.integers(1, 2 ** n))
        if k % 4 == 3:
            angle = 1.0
        else:
            angle = Angle(int(rng.integers(depth)), int(rng.integers(n)),
                          scale=[1.0, -2.0, 0.5][k % 3], shift=[0.0, 0.3, -1.1][k % 3])
        out[(mask, angle)] = float(rng.normal())
    return PhaseForm(members=(0,), terms=tuple((m, a, c) for (m, a), c in out.items()))


def both(tables, theta):
    """(p, state) from the C kernels and from the torch steps."""
    return tables.forward(theta), phase._torch_forward(tables, theta)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 9, 12, 14])
def test_probabilities_are_the_closed_form(n):
    depth = 3
    form = random_form(n, terms=3 * n + 2, seed=n, depth=depth)
    tables = phase.PhaseTables(form, n)
    theta = torch.randn(depth * n, dtype=torch.float64) * 2
    (p_c, _), (p_t, _) = both(tables, theta)
    assert abs(float(p_c.sum()) - 1) < 1e-12
    torch.testing.assert_close(p_c, p_t, atol=1e-13, rtol=0)
    if n <= 9:   # the dense definition: 2^n x 2^n
        dense = densesim.phase_form_probabilities(form, n, theta.view(depth, n).numpy())
        np.testing.assert_allclose(p_c.numpy(), dense, atol=1e-13)


@pytest.mark.parametrize("n", [1, 3, 5, 10, 13])
def test_gradients_match_finite_differences_and_the_torch_steps(n):
    depth = 2
    form = random_form(n, terms=2 * n + 3, seed=100 + n, depth=depth)
    tables = phase.PhaseTables(form, n)
    g = torch.randn(2 ** n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    theta = torch.randn(depth * n, dtype=torch.float64)
    weight = 0.7
    (p, state_c), (_, state_t) = both(tables, theta)
    grad_c = torch.zeros_like(theta)
    tables.backward(state_c, g, weight, grad_c)
    grad_t = torch.zeros_like(theta)
    phase._torch_backward(tables, state_t, g, weight, grad_t)
    torch.testing.assert_close(grad_c, grad_t, atol=1e-12, rtol=0)
    loss = lambda t: weight * float(g @ tables.forward(t)[0])   # noqa: E731
    eps = 1e-6
    for i in range(theta.numel()):
        d = torch.zeros_like(theta)
        d[i] = eps
        fd = (loss(theta + d) - loss(theta - d)) / (2 * eps)
        assert abs(fd - float(grad_c[i])) < 1e-7, (i, fd, float(grad_c[i]))


def test_backward_leaves_the_forward_state_as_it_was():
    form = random_form(6, terms=10, seed=3)
    tables = phase.PhaseTables(form, 6)
    theta = torch.randn(18, dtype=torch.float64)
    _, state = tables.forward(theta)
    kept = state.clone()
    tables.backward(state, torch.randn(64, dtype=torch.float64), 1.0, torch.zeros(18, dtype=torch.float64))
    assert torch.equal(state, kept)


@pytest.mark.parametrize("n", [0, 1, 3, 8])
def test_torch_transform_is_the_hadamard_matrix(n):
    x = torch.randn(2, 2 ** n, dtype=torch.float64)
    h = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(n):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    torch.testing.assert_close(phase.wht(x), x @ h.T)


def test_phase_forms_in_a_program_match_the_reference_in_both_dtypes():
    """The paper space's RX circuits alone (a fixed baseline's program): float64 and float32,
    probabilities and gradients, against the reference on the unoptimised circuit."""
    prog = qtc.compile(PAPER, qubits=7, depth=3)
    k = prog.labels.index("none-cyc-RX")
    alone = only_candidate(prog, k)
    assert [type(c) for c in alone.nodes] == [PhaseForm]
    run = Runnable.of(alone)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        theta = (torch.randn(3, 7, dtype=torch.float64) * math.pi).to(dtype)
        out = {}
        for backend in ("reference", "cpu"):
            t = theta.clone().requires_grad_()
            P = run.probabilities(t, torch.ones(1, dtype=dtype), backend=backend)
            (grad,) = torch.autograd.grad(P @ torch.linspace(-1, 1, 128, dtype=dtype), t)
            out[backend] = (P.detach(), grad)
        assert out["cpu"][0].dtype == dtype
        for a, b in zip(out["cpu"], out["reference"]):
            assert float((a - b).abs().max()) < tol



def test_loading_the_fast_math_kernels_leaves_the_process_floating_point_alone():
    """csrc/phase.c is compiled with -ffast-math but not linked with it: linking would run
    crtfastmath's constructor, which flushes every subnormal of the process (torch's too) to 0."""
    phase._library()
    assert float(torch.tensor([1e-310], dtype=torch.float64) * 1.0) == 1e-310
    assert float(torch.tensor([1e-40], dtype=torch.float32) * 1.0) > 0
