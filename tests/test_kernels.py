"""The kernel compiler: frames and schedule invariants, deterministic source, nvcc on the GPU
text, the build cache (atomic, self-checking) and the fallback when no C++ compiler exists."""
from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import qtc
from qtc.compiler.gates import GATES
from qtc.compiler.ir import Angle
from qtc.compiler.cost import cost_report
from qtc.compiler.pipeline import to_kernels
from qtc.compiler.schedule import Pass, parity, plan_program, schedule, to_stored_coordinates
from qtc.compiler.target import Target
from qtc.errors import QtcError
from qtc.runtime import backends, cache

from conftest import ALL_GATES

SPECS = Path(__file__).resolve().parents[1] / "specs"
PAPER = SPECS / "hadamard_ent_rot.qs"
TINY = 'extern "C" int qtc_answer(void) { return 42; }\n'


def kernel_source(prog, dtype="float64", rendering="auto"):
    return to_kernels(prog, Target(dtype=dtype, rendering=rendering)).text


# --- frames: the lowered circuit, run in stored coordinates, is the circuit -------------------

def _stored_simulation(circuit, n, theta):
    """A tiny numpy interpreter of the lowered ops: returns psi_true = psi_stored o f."""
    from qtc.compiler.symbolic import fold_constant
    low = to_stored_coordinates(circuit, n)
    y = np.arange(2 ** n)
    psi = np.zeros(2 ** n, complex)
    psi[0] = 1
    for op in low.ops:
        labels = [np.array([parity(r & v) ^ f for v in y]) for r, f in zip(op.rows, op.flips)]
        if isinstance(op.angle, Angle):
            c, s = np.cos(theta[op.angle.layer, op.angle.qubit] / 2), np.sin(theta[op.angle.layer, op.angle.qubit] / 2)
        else:
            c = s = None
        ev = lambda part: sum(v * {"1": 1, "c": c, "s": s}[k] for k, v in part)  # noqa: E731
        val = lambda e: ev(e[0]) + 1j * ev(e[1])  # noqa: E731
        if op.kind == "dense":
            m = fold_constant(op.table, op.angle, True)
            lab = labels[0]
            psi = np.array([val(m[lab[i]][lab[i]]) * psi[i] + val(m[lab[i]][1 - lab[i]]) * psi[i ^ op.d]
                            for i in range(2 ** n)])
        else:
            ph = fold_constant(op.table, op.angle, False)
            idx = sum(lb << k for k, lb in enumerate(labels))
            psi = psi * np.array([val(ph[i]) for i in idx])
    f = np.array([_apply_frame(low.cols, low.shift, x) for x in range(2 ** n)])
    return psi[f]


def _apply_frame(cols, shift, x):
    y = shift
    for q, c in enumerate(cols):
        if x >> q & 1:
            y ^= c
    return y


@pytest.mark.parametrize("source,n", [(PAPER, 4), (ALL_GATES, 3), (SPECS / "clifford_t.qs", 4)])
def test_lowered_circuit_equals_reference(source, n):
    import torch
    from qtc.runtime.reference import simulate
    prog = qtc.compile(source, qubits=n, depth=2)
    theta = torch.linspace(-2, 2.5, 2 * n, dtype=torch.float64).reshape(2, n)
    for circ in prog.source:
        want = simulate(circ, n, theta).numpy()
        got = _stored_simulation(circ, n, theta.numpy())
        assert np.allclose(got, want, atol=1e-12)


def test_frames_absorb_every_permutation():
    prog = qtc.compile(PAPER, qubits=6, depth=3)
    for circ in prog.source:
        low = to_stored_coordinates(circ, 6)
        assert not any(op.gate in ("cnot", "swap", "x") for op in low.ops)
        # M is invertible and rows are the rows of its inverse
        for q in range(6):
            for j in range(6):
                assert parity(low.rows[q] & low.cols[j]) == (q == j)


# --- schedule -----------------------------------------------------------------------------

def test_schedule_keeps_order_of_non_commuting_ops():
    prog = qtc.compile(ALL_GATES, qubits=3, depth=2)
    for circ in prog.nodes:
        if not hasattr(circ, "ops"):
            continue
        ops = to_stored_coordinates(circ, 3).ops
        flat = [op for p in schedule(ops, 1, 1) for op in p.ops]
        assert sorted(map(id, flat)) == sorted(map(id, ops))
        pos = {id(op): i for i, op in enumerate(flat)}
        for i in range(len(ops)):
            for j in range(i + 1, len(ops)):
                if not ops[i].commutes(ops[j]):
                    assert pos[id(ops[i])] < pos[id(ops[j])]


def test_passes_fit_their_tiles():
    plan = plan_program(qtc.compile(PAPER, qubits=11, depth=4), Target())
    high = ~((1 << plan.lanes) - 1)
    for c in plan.circuits:
        for p in c.fwd + c.bwd:
            assert p.rank <= 4
            for op in p.ops:
                if op.kind == "dense":
                    p.coords(op.d & high)   # raises when the direction is outside the tile
            offs = p.offsets()
            assert len(set(offs)) == len(offs) == 1 << p.rank
    # the paper space at (11, 4): the four RY circuits simulated, the two RX ones in closed
    # phase form, the rest exact constants
    assert len(plan.circuits) == 4 and len(plan.constants) == 2 and len(plan.phases) == 2
    assert all(c.real for c in plan.circuits)


def test_pass_coords_rejects_outside_direction():
    p = Pass(basis=(0b1000,), ops=())
    assert p.coords(0b1000) == 1
    with pytest.raises(AssertionError):
        p.coords(0b10000)


# --- source text ------------------------------------------------------------------------------

def test_kernel_source_is_deterministic():
    a = kernel_source(qtc.compile(PAPER, qubits=5, depth=2))
    b = kernel_source(qtc.compile(PAPER, qubits=5, depth=2))
    assert a == b
    assert "typedef double real;" in a and "qtc_fwd_0" in a and "qtc_bwd_0" in a
    f32 = kernel_source(qtc.compile(PAPER, qubits=5, depth=2), "float32")
    assert "typedef float real;" in f32 and "cosf" in f32
    with pytest.raises(QtcError, match="float16"):
        kernel_source(qtc.compile(PAPER, qubits=5, depth=2), "float16")


def test_cost_report():
    prog = qtc.compile(PAPER, qubits=11, depth=10)
    text = cost_report(prog, to_kernels(prog, Target()))
    assert text == cost_report(prog, to_kernels(qtc.compile(PAPER, qubits=11, depth=10), Target()))
    assert "simulated circuits: 4; exact constants: 2" in text
    assert text.count("phase form [") == 2 and "110 terms; 6 Walsh-Hadamard transforms of 2048" in text
    lines = {ln.split(":")[0]: ln for ln in text.splitlines()}
    moved = int(lines["bytes per step"].split()[3])
    flops = int(lines["flops per step"].split()[3])
    # every pass moves at least one state: 4 circuits x (>= 10 passes) x 2^11 x 8 bytes x 2
    assert moved > 4 * 10 * 2 ** 11 * 8 * 2
    # at least the forward rotations of the 4 real circuits (110 rotations, 2^11 elements) and
    # the phase forms' transforms (6 x 11 stages of 2^11 adds each)
    assert flops > 110 * 2 ** 11 * 3 * 4 + 2 * 6 * 11 * 2 ** 11
    assert "H100" in text


# --- nvcc on the same text -------------------------------------------------------------------

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("rendering", ["unrolled", "compact"])
@pytest.mark.parametrize("arch,dtype", [("sm_80", "float64"), ("sm_90", "float32")])
def test_nvcc_compiles_the_gpu_text(tmp_path, arch, dtype, rendering):
    src = tmp_path / "k.cu"
    src.write_text(kernel_source(qtc.compile(ALL_GATES, qubits=4, depth=1), dtype, rendering))
    out = subprocess.run([NVCC, "--ptx", f"-arch={arch}", str(src), "-o", str(tmp_path / "k.ptx")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    ptx = (tmp_path / "k.ptx").read_text()
    for name in ("qtc_init", "qtc_fwd_0", "qtc_out", "qtc_binit", "qtc_bwd_0"):
        assert f".entry {name}(" in ptx


# --- the two renderings ------------------------------------------------------------------------

def test_auto_renders_unrolled_when_small_and_compact_above_the_size_threshold(monkeypatch):
    from qtc.compiler import cost
    prog = qtc.compile(PAPER, qubits=5, depth=2)
    small = to_kernels(prog, Target())
    assert small.target.rendering == "unrolled" and "qtc_f0_c0" in small.text
    assert cost.unrolled_bytes(small.plan) < cost.UNROLLED_MAX_BYTES
    monkeypatch.setattr(cost, "UNROLLED_MAX_BYTES", cost.unrolled_bytes(small.plan) - 1)
    big = to_kernels(prog, Target())
    assert big.target.rendering == "compact" and "qtc_f0_c0" not in big.text
    assert "rendering: compact, " in cost_report(prog, big)
    assert big.target.key != small.target.key, "the rendering is part of the kernel cache key"
    assert to_kernels(prog, Target(rendering="unrolled")).text == small.text, "forcing one wins"


def test_auto_weighs_the_unrolled_build_against_the_steps_the_run_will_take(monkeypatch):
    """(13, 10), the A3C size: compact for the default 2,000 steps, unrolled for the 100,000
    generator steps of a 50,000-episode run; the steps name the target only while undecided."""
    from qtc.compiler import cost
    from qtc.compiler.pipeline import plan_program
    import torch

    from qtc.runtime import kernels
    plan = plan_program(qtc.compile(PAPER, qubits=13, depth=10), Target())
    assert cost.with_rendering(plan, Target()).rendering == "compact"
    assert cost.with_rendering(plan, Target(steps=4)).rendering == "compact"
    assert cost.with_rendering(plan, Target(steps=100_000)).rendering == "unrolled"
    assert Target(steps=7).key.endswith("/auto/steps7") and Target().key.endswith("/auto")
    assert Target(rendering="compact", steps=7).key == Target(rendering="compact").key
    seen = []
    monkeypatch.setattr(kernels, "compiled", lambda prog, target: seen.append(target) or 1 / 0)
    prog = qtc.compile(PAPER, qubits=3, depth=1)
    for steps in (123, None):
        with pytest.raises(ZeroDivisionError):
            prog.probabilities(torch.zeros(prog.angle_shape), torch.ones(12), backend="cpu", steps=steps)
    assert [t.steps for t in seen] == [123, None]
    with pytest.raises(QtcError, match="steps must be >= 1"):
        Target(steps=0)


def test_unrolled_size_estimate_is_within_a_third_of_the_real_size():
    from qtc.compiler.cost import unrolled_bytes
    for n, depth in ((9, 3), (11, 4)):   # smaller: the fixed part of the source (prelude, host) dominates
        r = to_kernels(qtc.compile(PAPER, qubits=n, depth=depth), Target(rendering="unrolled"))
        assert 0.75 < unrolled_bytes(r.plan) / len(r.text) < 1.33


def test_compact_source_grows_only_by_its_op_tables_with_depth():
    """At 17 qubits: the unrolled source would be ~6.5 MB at depth 15; the compact one is a
    fixed part plus under 60 bytes per op and per pass (table records, a GPU kernel stub per pass),
    ~0.28 MB there."""
    from qtc.compiler.cost import unrolled_bytes
    sizes, ops = [], []
    for depth in (5, 15, 30):
        r = to_kernels(qtc.compile(PAPER, qubits=17, depth=depth), Target(rendering="compact"))
        sizes.append(len(r.text))
        ops.append(sum(len(p.ops) for c in r.plan.circuits for p in c.fwd + c.bwd)
                   + sum(len(c.fwd) + len(c.bwd) for c in r.plan.circuits))
        if depth == 15:
            assert unrolled_bytes(r.plan) > 20 * len(r.text)
    assert (sizes[2] - sizes[0]) / (ops[2] - ops[0]) < 60


def test_rendering_is_checked_where_it_is_chosen():
    from qtc.settings import settings
    assert settings({}).rendering == "auto" and settings({"QTC_RENDERING": "compact"}).rendering == "compact"
    with pytest.raises(QtcError, match="QTC_RENDERING must be one of auto, unrolled, compact, got 'fast'"):
        settings({"QTC_RENDERING": "fast"})
    with pytest.raises(QtcError, match="rendering must be one of"):
        Target(rendering="rolled")


def test_qtc_compile_reports_the_rendering_and_refuses_a_bad_one(tmp_path, monkeypatch, capsys):
    from qtc.cli import main
    out = tmp_path / "out"
    assert main(["compile", str(PAPER), "--qubits", "4", "--depth", "2", "--rendering", "compact",
                 "-o", str(out)]) == 0
    assert "rendering: compact, " in capsys.readouterr().out
    assert "qtc_fpass_run" in (out / "kernels.cu").read_text()
    monkeypatch.setenv("QTC_RENDERING", "fast")
    assert main(["compile", str(PAPER), "--qubits", "4", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "QTC_RENDERING must be one of auto, unrolled, compact, got 'fast'" in err
    assert "Traceback" not in err and not (tmp_path / "bad").exists()


@pytest.mark.skipif(cache.find_compiler() is None, reason="no C++ compiler")
def test_the_runtime_renders_as_the_environment_says(monkeypatch):
    import torch
    from qtc.runtime import kernels
    prog = qtc.compile(PAPER, qubits=4, depth=2)
    theta = torch.full((2, 4), 0.3, dtype=torch.float64)
    weights = torch.full((12,), 1 / 12, dtype=torch.float64)
    monkeypatch.setenv("QTC_RENDERING", "compact")
    P = prog.probabilities(theta, weights, backend="cpu")
    built = [comp for (pid, _), (_, comp) in kernels._compiled.items() if pid == id(prog)]
    assert [c.rendered.target.rendering for c in built] == ["compact"]
    monkeypatch.delenv("QTC_RENDERING")
    torch.testing.assert_close(P, prog.probabilities(theta, weights, backend="cpu"), rtol=0, atol=1e-14)


# --- build cache --------------------------------------------------------------------------------

needs_cxx = pytest.mark.skipif(cache.find_compiler() is None, reason="no C++ compiler")


def _load(path):
    import ctypes
    return ctypes.CDLL(str(path)).qtc_answer()


@needs_cxx
def test_cache_hit_does_not_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("QTC_CACHE_DIR", str(tmp_path))
    first = cache.build_shared(TINY)
    assert _load(first) == 42

    def boom(*a, **k):
        raise AssertionError("compiled again")
    monkeypatch.setattr(cache.subprocess, "run", boom)
    assert cache.build_shared(TINY) == first


@needs_cxx
@pytest.mark.parametrize("damage", ["truncate", "garbage", "index", "missing"])
def test_corrupt_entry_is_rebuilt_not_loaded(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("QTC_CACHE_DIR", str(tmp_path))
    obj = cache.build_shared(TINY)
    index = next(tmp_path.glob("*.json"))
    if damage == "truncate":
        obj.write_bytes(obj.read_bytes()[:100])
    elif damage == "garbage":
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0xFF
        obj.write_bytes(bytes(data))
    elif damage == "index":
        index.write_text("{not json")
    else:
        obj.unlink()
    assert cache.lookup(tmp_path, index.stem) is None
    again = cache.build_shared(TINY)
    assert _load(again) == 42
    meta = json.loads(index.read_text())
    assert again.stat().st_size == meta["size"]


def _build_in_child(directory):
    import os
    os.environ["QTC_CACHE_DIR"] = directory
    from qtc.runtime import cache as c
    return str(c.build_shared(TINY + "// concurrent\n"))


@needs_cxx
def test_concurrent_builds_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_build_in_child, [str(tmp_path)] * 2)
    assert paths[0] == paths[1]
    assert _load(paths[0]) == 42
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".build-*"))


@needs_cxx
def test_compile_error_is_a_qtc_error(tmp_path, monkeypatch):
    from qtc.errors import QtcError
    monkeypatch.setenv("QTC_CACHE_DIR", str(tmp_path))
    with pytest.raises(QtcError, match="compiling the kernels failed"):
        cache.build_shared("this is not C++\n")


def test_auto_falls_back_to_reference_without_a_compiler(monkeypatch, capsys):
    import qtc.runtime.kernels as kernels
    monkeypatch.delenv("QTC_BACKEND", raising=False)
    monkeypatch.setattr(kernels, "find_compiler", lambda: None)
    monkeypatch.setattr(backends, "_noticed", set())
    assert backends.resolve("auto") == "reference"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reference" in err
    with pytest.raises(qtc.errors.QtcError, match="not available"):
        backends.resolve("cpu")


@needs_cxx
def test_compiler_lookup_follows_cxx(monkeypatch):
    """find_compiler is asked on every step and remembers its PATH search, but per value of
    $CXX: changing CXX changes the answer."""
    import shutil
    monkeypatch.setenv("CXX", "no-such-compiler-qtc")
    assert cache.find_compiler() == (shutil.which("g++") or shutil.which("c++"))
    if shutil.which("c++"):
        monkeypatch.setenv("CXX", "c++")
        assert cache.find_compiler() == shutil.which("c++")


def test_backends_registered():
    assert {"reference", "cpu", "cuda"} <= set(backends.BACKENDS)
    if cache.find_compiler():
        assert backends.resolve("auto") in ("cpu", "cuda") or backends.settings().backend != "auto"


def every_gate_space() -> str:
    """One candidate per gate of the table, each between trainable rotations so that no pass
    folds or drops it: the renderer has to emit every gate's lowering."""
    def call(name):
        g = GATES[name]
        args = ["0", "1"][:g.arity] + (["theta[layer, 0]"] if g.params else [])
        return f"g_{name}: {name}({', '.join(args)})"
    alts = " | ".join(call(name) for name in sorted(GATES))
    return (f"space every_gate\nqubits 2\ndepth 1\nlayer = ry(q, theta[layer, q]) for q in all ; "
            f"h(1) ; choose {{ {alts} }} ; rx(q, theta[layer, q]) for q in all\n")


@needs_cxx
def test_gate_table_fully_supported():
    """Every gate of the table goes through the renderer and the cpu kernels, and each
    candidate alone gives the reference's probabilities and gradients."""
    import torch
    prog = qtc.compile(every_gate_space())
    simulated = [node for node in prog.nodes if hasattr(node, "ops")]
    assert len(simulated) == len(GATES), "no candidate folded or merged"
    for node in simulated:
        name = prog.labels[node.members[0]].split("-")[2].removeprefix("g_")
        assert name in [op.gate for op in node.ops], f"{name} survived the passes"
    theta = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    g = torch.linspace(-1, 2, 4, dtype=torch.float64)
    for c, label in enumerate(prog.labels):
        onehot = torch.zeros(len(prog.labels), dtype=torch.float64)
        onehot[c] = 1
        got, want = [], []
        for backend, out in (("cpu", got), ("reference", want)):
            t = theta.clone().requires_grad_()
            P = prog.probabilities(t, onehot, backend=backend)
            (P @ g).backward()
            out += [P.detach(), t.grad]
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=label)


def test_launch_arguments_bind_by_name_to_the_rendered_signature():
    """The launchers pass their tensors by name; every kernel they launch takes only names
    they have, and a missing one is an error naming the kernel and the parameter."""
    from qtc.runtime.launch import bind
    r = to_kernels(qtc.compile(PAPER, qubits=4, depth=2), Target())
    sig = r.signature
    forward = {"st": 0, "th": 1, "wn": 2, "P": 3}          # what both launchers supply
    backward = {"st": 0, "lam": 1, "th": 2, "wn": 3, "g": 4, "gth": 5, "gw": 6}
    assert bind(sig, "qtc_out", forward) == (0, 2, 3)
    assert bind(sig, "qtc_bwd_0", backward) == (0, 1, 2, 5)
    for name in r.kernels["forward"]:
        bind(sig, name, forward)
    for name in r.kernels["backward"]:
        bind(sig, name, backward)
    assert [p for _, p in r.signature["qtc_backward"]] == ["st", "lam", "th", "wn", "g", "gth", "gw", "mode"]
    assert r.signature["qtc_threads"] == (("int", "k"),)
    with pytest.raises(RuntimeError, match=r"qtc_binit\(.*\) launched without g, gw"):
        bind(sig, "qtc_binit", forward | {"lam": 1})
    with pytest.raises(RuntimeError, match=r"qtc_threads\(k\) has no parameter mode"):
        bind(sig, "qtc_threads", {"k": 1, "mode": 0}, exact=True)   # HostLibrary.call's check
