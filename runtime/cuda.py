"""The CUDA half of the compiled backend: what is missing when it cannot run, grid sizes, a
step's launches on torch's stream, CUDA-graph replay and the device's cost model.

Everything else (the kernel text, which tensor goes to which kernel argument, the autograd
Function) is shared with the CPU backend in qtc.runtime.kernels, and NVRTC compilation is
qtc.runtime.launch's DeviceModule; this module only knows how to put a list of (kernel,
arguments) launches on the GPU.

- Stream: every launch goes on torch's current stream (a CuPy ExternalStream around it), so the
  kernels are ordered after the torch work that produced their inputs and before the torch work
  that reads their outputs, with no synchronisation.
- Grid: each kernel gets the blocks its work needs (one thread per element, or per lane of a
  tile), capped at one full wave of resident blocks; the kernels loop over the rest (grid-stride
  loops), so any grid is correct and a tiny state does not launch a thousand idle blocks.
- Launch overhead: a training step is ~140 launches at 17 qubits. With QTC_CUDA_GRAPHS=1 (or
  Launcher.use_graphs = True) each launch list is captured once as a CUDA graph on static buffers and
  replayed: one graph launch plus a few copies instead of one launch per kernel.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from importlib import metadata

import numpy as np
import torch

from qtc.compiler.cost import LAUNCH_OVERHEAD_S, bytes_moved
from qtc.compiler.render import Rendered
from qtc.compiler.render.common import tiles
from qtc.compiler.target import DTYPES
from qtc.runtime.launch import BLOCK, DeviceModule, arguments, blocks_for, written

H200_BANDWIDTH = 4.3e12      # device-to-device copy measured on this workplace's H200 (bytes/s)

# --- what is missing ---------------------------------------------------------------------------


def cuda_version(v: int) -> str:
    """CUDA's integer versions (12040) as text (12.4)."""
    return f"{v // 1000}.{v % 1000 // 10}"


def cupy_distribution() -> str:
    """The installed CuPy distribution's name (cupy-cuda13x, cupy-cuda12x, cupy), or 'CuPy'."""
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name == "cupy" or name.startswith("cupy-cuda"):
            return f"{name} {dist.version}"
    return "CuPy"


def version_problem(cupy_name: str, cupy_cuda: int, driver: int) -> str | None:
    """What is wrong when CuPy's CUDA and the driver disagree (versions as CUDA integers)."""
    if driver == 0:
        return "no NVIDIA driver was found (cudaDriverGetVersion reports 0)"
    if driver // 1000 < cupy_cuda // 1000:
        return (f"{cupy_name} is built for CUDA {cuda_version(cupy_cuda)} but the NVIDIA driver "
                f"supports CUDA {cuda_version(driver)} at most: install the CuPy build for CUDA "
                f"{driver // 1000} (cupy-cuda{driver // 1000}x) or a newer driver")
    return None


@lru_cache(maxsize=1)
def problem() -> str | None:
    """Why the cuda backend cannot run on this machine, naming what is missing; None if it can."""
    try:
        import cupy
    except ImportError:
        return ("CuPy is not installed: install the build for your CUDA driver, "
                "pip install 'qtc[gpu]' (cupy-cuda13x, for CUDA 13)")
    except Exception as e:   # noqa: BLE001 - a broken CuPy raises anything at import
        return f"{cupy_distribution()} is installed but fails to import: {type(e).__name__}: {e}"
    if not torch.cuda.is_available():
        built = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        return f"torch {torch.__version__} ({built}) sees no CUDA GPU"
    try:
        found = version_problem(cupy_distribution(), cupy.cuda.runtime.runtimeGetVersion(),
                                cupy.cuda.runtime.driverGetVersion())
        if found:
            return found
        cupy.cuda.nvrtc.getVersion()
    except Exception as e:   # noqa: BLE001 - CUDA errors come in several classes
        return f"{cupy_distribution()} cannot use the GPU: {type(e).__name__}: {e}"
    return None


def available() -> bool:
    return problem() is None


# --- grids and the cost model ------------------------------------------------------------------


def kernel_threads(rendered: Rendered) -> dict[str, int]:
    """Threads each kernel can use: one per state element (init), one per basis state (the
    gathers), one per lane of the largest tile count among the circuits that have that pass."""
    plan = rendered.plan
    work = {"qtc_init": plan.size, "qtc_out": 1 << plan.n, "qtc_binit": 1 << plan.n}
    for kind, attr in (("forward", "fwd"), ("backward", "bwd")):
        for j, name in enumerate(n for n in rendered.kernels[kind] if n not in work):
            work[name] = max(tiles(plan, getattr(c, attr)[j]) for c in plan.circuits
                             if j < len(getattr(c, attr))) << plan.lanes
    return work


def graph_copies(rendered: Rendered) -> int:
    """Copies in and out of the static buffers of a step replayed as CUDA graphs: every argument
    of a phase's kernels in, the ones they write out (launch.arguments, launch.written)."""
    return sum(len(arguments(rendered.signature, names)) + len(written(rendered.signature, names))
               for names in rendered.kernels.values())


def predicted_step(rendered: Rendered, *, bandwidth: float = H200_BANDWIDTH,
                   launch_s: float = LAUNCH_OVERHEAD_S, graph: bool = False) -> dict:
    """The cost model's time for one forward + backward step: the bytes the passes move at
    `bandwidth`, plus the launches' host overhead (as graphs: two graph launches and the copies
    in and out of their static buffers, graph_copies)."""
    moved = bytes_moved(rendered.plan, DTYPES[rendered.target.dtype][1])["total"]
    launches = 2 + graph_copies(rendered) if graph else rendered.launches
    return {"bytes": moved, "memory_s": moved / bandwidth, "launches": launches,
            "launch_s": launches * launch_s, "total_s": moved / bandwidth + launches * launch_s}


# --- a step's launches ------------------------------------------------------------------------


class Launcher:
    """The rendered program compiled by NVRTC for the current GPU, and its launches.

    `run(launches, tensors, writes)` puts each (kernel name, argument indices) of `launches` on
    torch's current stream with `tensors` (CUDA, contiguous) as arguments; `writes` are the
    indices of the tensors the kernels write."""

    def __init__(self, rendered: Rendered, *, graphs: bool = False):
        self.use_graphs = graphs      # replay each launch list as a CUDA graph (QTC_CUDA_GRAPHS)
        self.module = DeviceModule(rendered.text, rendered.kernels["forward"] + rendered.kernels["backward"])
        self.cupy, self.device, self.kernels = self.module.cupy, self.module.device, self.module.kernels
        self.compile_seconds = self.module.compile_seconds
        self.grid = {name: blocks_for(k, self.module.wave) for name, k in kernel_threads(rendered).items()}
        self.graphs: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def run(self, launches, tensors, writes) -> None:
        for i, t in enumerate(tensors):
            if t.device != self.device or not t.is_contiguous():
                raise ValueError(f"kernel argument {i} must be a contiguous tensor on {self.device}, "
                                 f"got {'a strided' if t.device == self.device else t.device} tensor")
        if self.use_graphs:
            self._replay(tuple(launches), tensors, writes)
        else:
            self._launch(launches, tensors)

    def _launch(self, launches, tensors) -> None:
        """One launch per kernel, on torch's current stream (raw pointers: no DLPack per call)."""
        cp = self.cupy
        ptrs = [np.uint64(t.data_ptr()) for t in tensors]
        with cp.cuda.Device(self.device.index), self.module.stream():
            for name, use in launches:
                self.kernels[name]((self.grid[name],), (BLOCK,), tuple(ptrs[i] for i in use))

    def _replay(self, launches: tuple, tensors, writes) -> None:
        """The launch list as a CUDA graph, captured once on static copies of the arguments:
        copy in, replay, copy the written arguments out (all on torch's current stream)."""
        key = (launches, tuple((t.shape, t.dtype) for t in tensors))
        with self._lock:
            if key not in self.graphs:
                self.graphs[key] = self._capture(launches, tensors)
            graph, statics = self.graphs[key]
            for s, t in zip(statics, tensors):
                s.copy_(t)
            graph.replay()
            for i in writes:
                tensors[i].copy_(statics[i])

    def _capture(self, launches, tensors):
        statics = [torch.empty_like(t) for t in tensors]
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device), torch.cuda.graph(graph):
            self._launch(launches, statics)     # torch's current stream is the capture stream
        return graph, statics
