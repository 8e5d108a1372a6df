"""Every backend against the reference: probabilities and gradients (theta and weights), every
spec in specs/ plus a spec that uses every gate, n from 1 to 10, several depths, float32 and
float64. Written once; the `backend` fixture runs it on each available backend ("cuda" is
skipped cleanly without a GPU and CuPy)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest
import torch

import qtc
from qtc.runtime import reference
from qtc.runtime.backends import available_backends, probabilities

from conftest import ALL_GATES

SPECS = Path(__file__).resolve().parents[1] / "specs"

CASES = [  # (spec, qubits, depth): the paper space from 2 to 10 qubits, the others around it
    ("hadamard_ent_rot", 2, 1), ("hadamard_ent_rot", 3, 2), ("hadamard_ent_rot", 4, 3),
    ("hadamard_ent_rot", 5, 2), ("hadamard_ent_rot", 6, 1), ("hadamard_ent_rot", 7, 1),
    ("hadamard_ent_rot", 8, 1), ("hadamard_ent_rot", 9, 1), ("hadamard_ent_rot", 10, 1),
    ("clifford_t", 1, 1), ("clifford_t", 4, 2), ("hardware_efficient", 2, 3),
    ("hardware_efficient", 5, 2), ("untied_two_layer", 3, 2), ("allgates", 3, 2),
    ("allgates", 1, 1), ("every_form", 2, 1), ("every_form", 4, 2), ("every_form", 5, 3),
]
DTYPES = [torch.float64, torch.float32]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
# both renderings of the passes (compiler/render/unrolled.py, compact.py) on these: every gate,
# 1 to 3 lanes, real and complex circuits, tiles of rank 0 to 4, two-row diagonals (CZ)
RENDER_CASES = [("hadamard_ent_rot", 2, 1), ("hadamard_ent_rot", 5, 2), ("hadamard_ent_rot", 9, 1),
                ("clifford_t", 4, 2), ("hardware_efficient", 5, 2), ("untied_two_layer", 3, 2),
                ("allgates", 3, 2), ("allgates", 1, 1), ("every_form", 5, 3)]
AGREE = {torch.float64: 1e-12, torch.float32: 1e-5}


def _backend_params(with_reference: bool = True):
    have = [b for b in available_backends() if with_reference or b != "reference"]
    params = [pytest.param(b) for b in have]
    if "cuda" not in have:
        params.append(pytest.param("cuda", marks=pytest.mark.skip(reason="no CUDA GPU with CuPy here")))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    return request.param


@pytest.fixture(params=_backend_params(with_reference=False))
def compiled_backend(request):
    """The backends compared against the reference (the reference against itself proves nothing)."""
    return request.param


@lru_cache(maxsize=None)
def program(spec: str, n: int, depth: int):
    source = ALL_GATES.replace("qubits 3", f"qubits {n}") if spec == "allgates" else SPECS / f"{spec}.qs"
    if spec == "allgates" and n < 3:
        source = source.replace("cnot(0, 1) ; cz(1, 2) ; swap(0, 2) ; y(1) ;", "y(0) ;") \
            .replace("sdg(1) ; t(2) ; tdg(0) ; x(2) ; z(0) ;", "sdg(0) ; t(0) ; z(0) ;") \
            .replace("h(1) ; rx(2, 0.3) ; ry(0, -1.1) ; rz(1, 0.7) ; cx(2, 0)", "h(0) ; rx(0, 0.3)")
    return qtc.compile(source, qubits=n, depth=depth)


def inputs(prog, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.rand(prog.angle_shape, generator=gen, dtype=torch.float64) * 6.0 - 3.0
    weights = torch.rand(len(prog.labels), generator=gen, dtype=torch.float64) + 0.1
    g = torch.randn(2 ** prog.qubits, generator=gen, dtype=torch.float64)
    return theta, weights, g


@lru_cache(maxsize=None)
def expected(case):
    """Reference probabilities and gradients of g . P in float64."""
    prog = program(*case)
    theta, weights, g = inputs(prog)
    theta.requires_grad_()
    weights.requires_grad_()
    P = reference.probabilities(prog, theta, weights)
    (P @ g).backward()
    return P.detach(), theta.grad, weights.grad


@pytest.fixture(scope="module", autouse=True)
def prebuild():
    """Compile every case's kernels up front, two compilers at a time (cached on disk)."""
    if "cpu" not in available_backends():
        return
    from qtc.compiler.pipeline import to_kernels
    from qtc.compiler.target import Target
    from qtc.runtime.cache import build_shared
    jobs = [(program(*c), Target(dtype=d, rendering=r)) for c in CASES for d in ("float64", "float32")
            for r in ("auto",) + (("unrolled", "compact") if c in RENDER_CASES else ())]

    def build(job):
        rendered = to_kernels(*job)
        build_shared(rendered.text, tag=rendered.target.key, library=rendered.library)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(build, jobs))


def _ids(case):
    return f"{case[0]}-n{case[1]}-L{case[2]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_probabilities_and_gradients(compiled_backend, case, dtype):
    backend = compiled_backend
    prog = program(*case)
    P_ref, dtheta_ref, dw_ref = expected(case)
    theta, weights, g = inputs(prog)
    theta = theta.to(dtype).requires_grad_()
    weights = weights.to(dtype).requires_grad_()
    P = probabilities(prog, theta, weights, backend=backend)
    assert P.shape == (2 ** prog.qubits,) and P.dtype == dtype
    (P.double() @ g).backward()
    tol = TOL[dtype]
    assert (P.double() - P_ref).abs().max().item() <= tol
    assert (theta.grad.double() - dtheta_ref).abs().max().item() <= tol
    assert (weights.grad.double() - dw_ref).abs().max().item() <= tol
    assert dtheta_ref.abs().max() > 1e-3  # the comparison is not between zeros


def _run_rendering(prog, rendering: str, dtype, theta, weights, g):
    """P, dtheta, dweights of g . P on the cpu backend with the passes rendered as `rendering`."""
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import ProgramFunction, compiled
    comp = compiled(prog, Target(dtype=str(dtype).removeprefix("torch."), rendering=rendering))
    assert comp.rendered.target.rendering == rendering
    theta = theta.detach().to(dtype).clone().requires_grad_()      # fresh leaves: no grad carried over
    weights = weights.detach().to(dtype).clone().requires_grad_()
    P = ProgramFunction.apply(theta, weights, weights, comp)     # per candidate: W is the weights
    (P.double() @ g).backward()
    return P.detach().double(), theta.grad.double(), weights.grad.double()


@pytest.mark.skipif("cpu" not in available_backends(), reason="no C++ compiler")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", RENDER_CASES, ids=_ids)
def test_compact_and_unrolled_renderings_agree_with_each_other_and_the_reference(case, dtype):
    prog = program(*case)
    theta, weights, g = inputs(prog)
    ref = expected(case)
    unrolled = _run_rendering(prog, "unrolled", dtype, theta, weights, g)
    compact = _run_rendering(prog, "compact", dtype, theta, weights, g)
    for what, c, u, r in zip(("P", "dtheta", "dweights"), compact, unrolled, ref):
        assert (c - r).abs().max().item() <= TOL[dtype], f"compact {what} against the reference"
        assert (c - u).abs().max().item() <= AGREE[dtype], f"compact {what} against unrolled"
    assert ref[1].abs().max() > 1e-3  # the comparison is not between zeros


@pytest.mark.parametrize("case", [("hadamard_ent_rot", 6, 2), ("allgates", 3, 2)], ids=_ids)
def test_every_candidate_alone(compiled_backend, case):
    """One-hot weights give each candidate's own distribution p_c."""
    backend = compiled_backend
    prog = program(*case)
    theta, _, _ = inputs(prog)
    ref = reference.candidate_probabilities(prog, theta)
    for c in range(len(prog.labels)):
        onehot = torch.zeros(len(prog.labels), dtype=torch.float64)
        onehot[c] = 1
        P = probabilities(prog, theta, onehot, backend=backend)
        assert torch.allclose(P, ref[c], atol=1e-12, rtol=0), prog.labels[c]
        assert abs(P.sum().item() - 1) < 1e-12


@pytest.mark.parametrize("case", [("hadamard_ent_rot", 3, 2), ("allgates", 3, 1),
                                  ("clifford_t", 2, 2)], ids=_ids)
def test_gradcheck(backend, case):
    prog = program(*case)
    theta, weights, _ = inputs(prog, seed=3)
    theta.requires_grad_()
    weights.requires_grad_()
    assert torch.autograd.gradcheck(lambda t, w: probabilities(prog, t, w, backend=backend),
                                    (theta, weights), eps=1e-6, atol=1e-7)


def test_backward_twice(backend):
    """The graph can be differentiated twice (the kernels work on a copy of the state)."""
    prog = program("hadamard_ent_rot", 5, 2)
    theta, weights, g = inputs(prog)
    theta.requires_grad_()
    P = probabilities(prog, theta, weights, backend=backend)
    first, = torch.autograd.grad(P @ g, theta, retain_graph=True)
    second, = torch.autograd.grad(P @ g, theta)
    assert torch.equal(first, second)


@pytest.mark.skipif("cuda" not in available_backends(), reason="no CUDA GPU with CuPy here")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_cuda_graph_replay_matches_kernel_by_kernel_launches(dtype):
    """QTC_CUDA_GRAPHS=1 replays the same kernels on static buffers: same values, twice over."""
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled
    from qtc.settings import settings
    prog = program("hadamard_ent_rot", 8, 2)
    theta, weights, g = inputs(prog, seed=5)
    runs = []
    for graphs in (False, True, True):
        dt = str(dtype).removeprefix("torch.")
        compiled(prog, Target(device="cuda", dtype=dt, rendering=settings().rendering)).launcher.launcher.use_graphs = graphs
        t, w = theta.to(dtype).requires_grad_(), weights.to(dtype).requires_grad_()
        (probabilities(prog, t, w, backend="cuda").double() @ g).backward()
        runs.append(torch.cat([t.grad.flatten(), w.grad]).double())
    for other in runs[1:]:
        assert (other - runs[0]).abs().max().item() <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", [("hadamard_ent_rot", 4, 1), ("allgates", 3, 1)], ids=_ids)
def test_fixed_candidate_alone_equals_ensemble_under_one_hot(backend, case, dtype):
    """A fixed baseline simulates its candidate's program alone: same probabilities and theta
    gradients as the whole ensemble with a one-hot weight, on every backend."""
    from qtc.runtime.generator import GeneratorOptions, QTGenerator
    prog = program(*case)
    theta, _, g = inputs(prog)
    for k in range(len(prog.labels)):
        gen = QTGenerator(prog, 2 ** prog.qubits, GeneratorOptions.given(backend=backend), fixed=k, dtype=dtype)
        with torch.no_grad():
            gen.theta.copy_(theta)
        alone = gen.probabilities()
        (alone.double() @ g).backward()
        t = theta.to(dtype).clone().requires_grad_()
        whole = probabilities(prog, t, gen.weights, backend=backend)
        (whole.double() @ g).backward()
        tol = TOL[dtype]
        assert (alone - whole).abs().max().item() <= tol, prog.labels[k]
        assert (gen.theta.grad - t.grad).abs().max().item() <= tol, prog.labels[k]


def test_fixed_clifford_candidate_simulates_nothing_and_real_stays_real():
    """Candidate H-ent-RX (config 1) is a constant alone; none-ent-RY is one real circuit."""
    from qtc.compiler.ir import Circuit, Constant
    from qtc.runtime.generator import candidate_program
    prog = program("hadamard_ent_rot", 5, 2)
    first = candidate_program(prog, prog.labels.index("H-ent-RX"))
    assert [type(c) for c in first.nodes] == [Constant]
    ry = candidate_program(prog, prog.labels.index("none-ent-RY"))
    assert [(type(c), c.real) for c in ry.nodes] == [(Circuit, True)]
    assert candidate_program(prog, 3) is candidate_program(prog, 3)
