"""The CUDA launch path without a GPU: what a missing GPU, CuPy or driver says, the grid sized
from the state, the cost model's launch overhead, and the launches themselves against a
recording stand-in for CuPy (the kernels' text is checked by nvcc in test_kernels.py, their
numbers on a GPU by test_backends_numeric.py and bench/gpu_check.sh)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import qtc
from qtc.compiler.cost import LAUNCH_OVERHEAD_S, cost_report
from qtc.compiler.pipeline import to_kernels
from qtc.compiler.target import Target
from qtc.compiler.csrc import source
from qtc.compiler.render.common import signatures
from qtc.errors import QtcError
from qtc.runtime import backends, channel_kernels, cuda, launch

PAPER = Path(__file__).resolve().parents[1] / "specs" / "hadamard_ent_rot.qs"


def paper(n: int, depth: int):
    return qtc.compile(str(PAPER), qubits=n, depth=depth)


# --- what is missing ---------------------------------------------------------------------------

def test_cupy_built_for_a_newer_cuda_than_the_driver_names_both():
    msg = cuda.version_problem("cupy-cuda13x 14.2.0", 13000, 12040)
    assert "cupy-cuda13x 14.2.0" in msg and "CUDA 13.0" in msg and "CUDA 12.4" in msg
    assert "cupy-cuda12x" in msg


def test_matching_or_newer_driver_is_fine_and_no_driver_is_named():
    assert cuda.version_problem("cupy-cuda13x 14.2.0", 13000, 13000) is None
    assert cuda.version_problem("cupy-cuda12x 13.6.0", 12080, 13000) is None
    assert "no NVIDIA driver" in cuda.version_problem("cupy-cuda13x 14.2.0", 13000, 0)


@pytest.fixture
def fresh_problem():
    cuda.problem.cache_clear()
    yield
    cuda.problem.cache_clear()


def test_without_cupy_the_error_names_cupy_and_the_extra(monkeypatch, fresh_problem):
    monkeypatch.setitem(sys.modules, "cupy", None)       # import cupy -> ImportError
    with pytest.raises(QtcError) as err:
        backends.resolve("cuda")
    text = str(err.value)
    assert "CuPy is not installed" in text and "qtc[gpu]" in text and "cupy-cuda13x" in text
    assert "'cpu'" not in text.split("(available")[0]


def test_with_cupy_but_no_gpu_the_error_names_torch_and_the_missing_gpu(monkeypatch, fresh_problem):
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(QtcError, match="sees no CUDA GPU"):
        backends.resolve("cuda")


@pytest.mark.parametrize("word", ["gpu", "nvidia", "cupy"])
def test_gpu_is_answered_with_cuda_not_cpu(word):
    with pytest.raises(QtcError, match="the GPU backend is called 'cuda'"):
        backends.resolve(word)


# --- grids and the cost model ------------------------------------------------------------------

def test_every_kernel_gets_threads_for_its_whole_state():
    r = to_kernels(paper(6, 2), Target(device="cuda", dtype="float64"))
    plan, work = r.plan, cuda.kernel_threads(r)
    assert set(work) == set(r.kernels["forward"] + r.kernels["backward"])
    assert work["qtc_init"] == plan.size and work["qtc_out"] == work["qtc_binit"] == 1 << plan.n
    for j in range(plan.fwd_kernels):   # a pass of rank k has 2^(n-k) elements per tile lane
        ranks = [c.fwd[j].rank for c in plan.circuits if j < len(c.fwd)]
        assert work[f"qtc_fwd_{j}"] == 1 << (plan.n - min(ranks))


def test_grid_grows_with_the_state_up_to_one_wave():
    wave = 132 * 8
    assert launch.blocks_for(4, wave) == 1
    assert launch.blocks_for(1 << 14, wave) == (1 << 14) // launch.BLOCK
    assert launch.blocks_for(1 << 24, wave) == wave
    small = cuda.kernel_threads(to_kernels(paper(3, 1), Target(device="cuda", dtype="float32")))
    large = cuda.kernel_threads(to_kernels(paper(13, 1), Target(device="cuda", dtype="float32")))
    assert max(launch.blocks_for(k, wave) for k in small.values()) == 1
    assert min(launch.blocks_for(k, wave) for k in large.values()) > 1


def test_launch_overhead_is_in_the_cost_model_and_a_graph_pays_it_once():
    prog = paper(11, 10)
    r = to_kernels(prog, Target(dtype="float32"))
    launches = r.launches
    assert launches == r.plan.fwd_kernels + r.plan.bwd_kernels + 3     # + init, out, binit
    assert f"launch overhead: {launches} launches" in cost_report(prog, r)
    direct = cuda.predicted_step(r)
    graph = cuda.predicted_step(r, graph=True)
    # as graphs: every argument of a phase's kernels copied in, the ones they write copied out
    assert launch.written(r.signature, r.kernels["forward"]) == ("st", "P")
    assert set(launch.written(r.signature, r.kernels["backward"])) == {"st", "lam", "gth", "gw"}
    assert cuda.graph_copies(r) == (4 + 2) + (7 + 4) and graph["launches"] == 2 + 17
    assert direct["launch_s"] == pytest.approx(launches * LAUNCH_OVERHEAD_S)
    assert direct["memory_s"] == graph["memory_s"] > 0
    assert graph["total_s"] < direct["total_s"]


# --- launches, against a recording CuPy --------------------------------------------------------

class _Recorder:
    """Stands in for the parts of CuPy the Launcher touches; records every launch."""

    def __init__(self):
        self.launches, self.streams, self.code = [], [], None
        rec = self

        class Kernel:
            def __init__(self, name):
                self.name = name

            def __call__(self, grid, block, args):
                rec.launches.append((self.name, grid, block, tuple(int(a) for a in args),
                                     rec.streams[-1]))

        class RawModule:
            def __init__(self, code, options):
                rec.code = code

            def get_function(self, name):
                return Kernel(name)

        class Ctx:
            def __init__(self, *a):
                self.args = a

            def __enter__(self):
                if self.args and isinstance(self.args[0], int) and len(self.args) == 2:
                    rec.streams.append(self.args[0])
                return self

            def __exit__(self, *exc):
                return False

        class Device(Ctx):
            attributes = {"MultiProcessorCount": 132, "MaxThreadsPerMultiProcessor": 2048}

            def __enter__(self):
                return self

        compiler = types.SimpleNamespace(CompileException=RuntimeError)
        self.module = types.SimpleNamespace(
            RawModule=RawModule, cuda=types.SimpleNamespace(Device=Device, ExternalStream=Ctx,
                                                            compiler=compiler))


@pytest.fixture
def recorder(monkeypatch) -> _Recorder:
    """A recording CuPy in sys.modules and torch's CUDA stream faked (0xABC): launches are recorded,
    nothing runs."""
    rec = _Recorder()
    monkeypatch.setitem(sys.modules, "cupy", rec.module)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream",
                        lambda device=None: types.SimpleNamespace(cuda_stream=0xABC))
    return rec


def test_launches_go_on_torchs_stream_in_order_with_grids_from_the_state(recorder):
    rec = recorder
    r = to_kernels(paper(12, 2), Target(device="cuda", dtype="float32"))
    launcher = cuda.Launcher(r)
    assert rec.code == r.text and launcher.compile_seconds >= 0
    tensors = [torch.empty(8) for _ in range(4)]
    fwd = r.kernels["forward"]
    slots = {"st": 0, "th": 1, "wn": 2, "P": 3}
    plan = [(k, launch.bind(r.signature, k, slots)) for k in fwd]
    launcher._launch(plan, tensors)
    assert [name for name, *_ in rec.launches] == fwd
    assert {stream for *_, stream in rec.launches} == {0xABC}
    ptr = [t.data_ptr() for t in tensors]
    assert rec.launches[-1][3] == (ptr[0], ptr[2], ptr[3])
    work = cuda.kernel_threads(r)
    for name, grid, block, _, _ in rec.launches:
        assert block == (launch.BLOCK,) and grid == (launch.blocks_for(work[name], 132 * 8),)
    with pytest.raises(ValueError, match="kernel argument 0 must be a contiguous tensor on cuda:0"):
        launcher.run(plan, tensors, writes=(0, 3))


# --- the channel form (issue 15): compiler/csrc/channel.c through the same Module ----------------

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_the_channel_kernels(tmp_path, arch):
    text = source("channel.c")
    sigs = signatures(text)
    src = tmp_path / "channel.cu"
    src.write_text(text)
    out = subprocess.run([NVCC, "--ptx", f"-arch={arch}", str(src), "-o", str(tmp_path / "c.ptx")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    ptx = (tmp_path / "c.ptx").read_text()
    cuda_kernels = set(sigs) - {"qtc_ch_threads"}          # the CPU's thread setting only
    assert cuda_kernels and all(f".entry {name}(" in ptx for name in cuda_kernels)
    assert ".entry qtc_ch_threads(" not in ptx


class _Logged:
    """The CPU kernels, recording each launch's name, work and scalar arguments."""

    def __init__(self):
        self.inner, self.calls = channel_kernels.CpuKernels(), []

    def threads(self, n):
        self.inner.threads(n)

    def __call__(self, name, work, **named):
        self.calls.append((name, work, {k: v for k, v in named.items() if not isinstance(v, torch.Tensor)}))
        self.inner(name, work, **named)


def test_the_channel_form_launches_on_cuda_the_passes_the_cpu_runs(recorder):
    rec = recorder
    prog = qtc.compile(PAPER.with_name("hadamard_ent_rot_per_layer.qs"), qubits=3, depth=2)
    tab = channel_kernels.ChannelTables(prog.weights.steps, prog.qubits)
    gpu, cpu = channel_kernels.CudaKernels(), _Logged()
    assert rec.code == source("channel.c")
    theta = torch.randn(prog.angle_shape, dtype=torch.float64).numpy().reshape(-1)
    wa = tab.alt_weights(torch.rand(prog.weights.shape, dtype=torch.float64)).tolist()
    for k in (cpu, gpu):     # the recorder computes nothing: the GPU run only records its launches
        run = channel_kernels.Run(k, tab, tab.inputs(theta), wa, torch.device("cpu"))
        states = torch.empty(len(tab.steps) + 1, 2 * tab.D, dtype=torch.float64)
        channel_kernels.forward(run, states, tuple(torch.empty(2, 2 * tab.D, dtype=torch.float64)))
    assert [name for name, *_ in rec.launches] == [name for name, *_ in cpu.calls]
    assert {"qtc_ch_dense", "qtc_ch_dense_real", "qtc_ch_gather"} <= {name for name, *_ in cpu.calls}
    assert {stream for *_, stream in rec.launches} == {0xABC}
    for (name, grid, block, args, _), (_, work, scalars) in zip(rec.launches, cpu.calls):
        assert block == (launch.BLOCK,) and grid == (launch.blocks_for(work, 132 * 8),)
        sig = gpu.module.signature[name]
        assert {p: a for (ctype, p), a in zip(sig, args) if not ctype.endswith("*")} == \
            {p: int(v) for p, v in scalars.items()}


# --- the sampled form (issue 31): compiler/csrc/sampled.c through the same Module ---------------

@pytest.mark.skipif(NVCC is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_the_sampled_kernels(tmp_path, arch):
    text = source("sampled.c")
    src = tmp_path / "sampled.cu"
    src.write_text(text)
    out = subprocess.run([NVCC, "--ptx", f"-arch={arch}", str(src), "-o", str(tmp_path / "s.ptx")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    ptx = (tmp_path / "s.ptx").read_text()
    assert all(f".entry {name}(" in ptx for name in ("qtc_sp_forward", "qtc_sp_backward"))
    assert ".entry qtc_sp_threads(" not in ptx         # the CPU's thread setting only
    assert "atom.global.add.f64" in ptx                 # the gradient terms' block reduction


def test_the_sampled_form_launches_on_cuda_what_the_cpu_runs_a_block_per_architecture(recorder, monkeypatch):
    from qtc.runtime import sampled_kernels
    rec = recorder
    prog = qtc.compile(PAPER.with_name("hadamard_ent_rot_per_layer.qs"), qubits=3, depth=2)
    tab = sampled_kernels.SampledTables(prog.weights.steps, prog.qubits)
    gpu, cpu, calls = sampled_kernels.CudaKernels(), sampled_kernels.CpuKernels(), []
    assert rec.code == source("sampled.c")

    def logged(name, work, **named):
        calls.append((name, work, {k: v for k, v in named.items() if not isinstance(v, torch.Tensor)}))
        cpu(name, work, **named)

    theta = torch.randn(prog.angle_shape, dtype=torch.float64)
    choices = torch.tensor([[0, 1, 2, 0, 1], [1, 0, 0, 1, 2], [1, 1, 1, 1, 1]])
    K = len(choices)
    for k in (logged, gpu):      # the recorder computes nothing: the GPU run only records its launches
        monkeypatch.setattr(sampled_kernels, "kernels", lambda device, k=k: k)
        _, saved = sampled_kernels.apply(tab, theta, choices)
        sampled_kernels.gradients(saved, torch.ones(K, tab.dim, dtype=torch.float64), theta.numel())
    assert [name for name, *_ in rec.launches] == [name for name, *_ in calls] == ["qtc_sp_forward", "qtc_sp_backward"]
    assert {stream for *_, stream in rec.launches} == {0xABC}
    for (name, grid, block, args, _), (_, work, scalars) in zip(rec.launches, calls):
        assert work == K * launch.BLOCK and block == (launch.BLOCK,) and grid == (K,)   # a block each
        sig = gpu.module.signature[name]
        assert {p: a for (ctype, p), a in zip(sig, args) if not ctype.endswith("*")} == \
            {p: int(v) for p, v in scalars.items()}
