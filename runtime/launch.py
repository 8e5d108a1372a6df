"""One way to call compiled C from Python: by parameter name, against the signature read off the
source.

Three C sources are launched: the program kernels (compiler/render), the phase forms' CPU
kernels (compiler/csrc/phase.c) and the channel form's kernels (compiler/csrc/channel.c). Each
states its entry points' parameters in its own text; `signatures` (the renderer's parser) reads
them and `bind` orders a call's named values by them, so no launcher passes an argument in the
wrong place or leaves one out. `HostLibrary` is a g++ build called through ctypes, with the
argument types taken from the signature; `DeviceModule` an NVRTC build whose kernels go on
torch's current stream.
"""
from __future__ import annotations

import ctypes
import re
import time

import numpy as np
import torch

from qtc.compiler.render.common import signatures
from qtc.errors import QtcError
from qtc.runtime.cache import CPU_FLAGS, build_shared

BLOCK = 256                  # threads per block: whole warps, a multiple of every lane group
NVRTC_OPTIONS = ("--std=c++14",)
# the C scalar types of the entry points' parameters, for ctypes and for CuPy's launch arguments
CTYPES = {"int": ctypes.c_int, "long": ctypes.c_long, "float": ctypes.c_float, "double": ctypes.c_double}
NUMPY = {"int": np.int32, "long": np.int64, "float": np.float32, "double": np.float64}
_REAL = re.compile(r"^typedef (\w+) real;", re.M)

Signature = dict[str, tuple[tuple[str, str], ...]]


def bind(signature: Signature, kernel: str, values: dict, *, exact: bool = False) -> tuple:
    """The arguments of `kernel` in the order its definition lists them, taken by name from
    `values` (which may hold more, unless `exact`): the one place where launch arguments meet
    the source."""
    params = [name for _, name in signature[kernel]]
    missing = [p for p in params if p not in values]
    if missing:
        raise RuntimeError(f"kernel {kernel}({', '.join(params)}) launched without {', '.join(missing)}")
    unknown = [v for v in values if v not in params] if exact else []
    if unknown:
        raise RuntimeError(f"kernel {kernel}({', '.join(params)}) has no parameter {', '.join(unknown)}")
    return tuple(values[p] for p in params)


def arguments(signature: Signature, kernels) -> tuple[str, ...]:
    """Every parameter of `kernels`, each once, in the order they first appear."""
    return tuple(dict.fromkeys(name for k in kernels for _, name in signature[k]))


def written(signature: Signature, kernels) -> tuple[str, ...]:
    """The parameters `kernels` may write: their pointers to non-const data."""
    return tuple(dict.fromkeys(name for k in kernels for ctype, name in signature[k]
                               if ctype.endswith("*") and not ctype.startswith("const ")))


def real_type(text: str) -> str:
    """The C type that `real` stands for in `text` (its typedef), or "real" when it has none."""
    found = _REAL.search(text)
    return found.group(1) if found else "real"


def scalar_type(ctype: str, real: str, table: dict, kernel: str):
    """The launch type in `table` (CTYPES or NUMPY) of a scalar parameter of C type `ctype`;
    `real` is the type the source's typedef gives `real`."""
    ctype = real if ctype == "real" else ctype
    if ctype not in table:
        raise TypeError(f"kernel {kernel}: no launch type for its C parameter type '{ctype}'")
    return table[ctype]


def _pointer(value) -> int:
    return value.data_ptr() if isinstance(value, torch.Tensor) else value


class HostLibrary:
    """A C++ source built by g++ (runtime/cache.py: once per text, flags and tag, `library`
    linked in) and loaded with ctypes. `call(name, **named)` runs one entry point with its
    arguments bound by name; a tensor passes its data pointer."""

    def __init__(self, text: str, flags: tuple[str, ...] = CPU_FLAGS, tag: str = "", library: str = ""):
        self.signature, self.real = signatures(text), real_type(text)
        self.lib = ctypes.CDLL(str(build_shared(text, flags=flags, tag=tag, library=library)))
        self._functions: dict[str, tuple] = {}

    def call(self, name: str, **named) -> None:
        """`bind`'s contract (every parameter given, nothing else), checked by a count and the
        lookups themselves: the same arguments as bind(..., exact=True), without its lists on
        every call (20 calls per A3C update)."""
        fn, params = self._functions.get(name) or self._function(name)
        values = None
        if len(named) == len(params):
            try:
                values = [named[p] for p in params]
            except KeyError:
                pass
        if values is None:   # bind raises, naming what is missing or unknown
            values = bind(self.signature, name, named, exact=True)
        fn(*[v.data_ptr() if isinstance(v, torch.Tensor) else v for v in values])

    def _function(self, name: str) -> tuple:
        """The entry point with its argument types set from the signature, and its parameter
        names in order (on first use: the text may also define kernels that only the CUDA
        build has)."""
        fn = getattr(self.lib, name)
        fn.argtypes = [ctypes.c_void_p if ctype.endswith("*") else scalar_type(ctype, self.real, CTYPES, name)
                       for ctype, _ in self.signature[name]]
        self._functions[name] = hit = (fn, tuple(p for _, p in self.signature[name]))
        return hit


def blocks_for(threads: int, wave: int, block: int = BLOCK) -> int:
    """Blocks for `threads` threads: enough for one each, at most one wave of resident blocks."""
    return max(1, min(wave, -(-threads // block)))


class DeviceModule:
    """A source compiled by NVRTC for the current GPU: its kernels `names`, and one wave of
    resident blocks (the grid cap). `launch(name, threads, **named)` puts one kernel on torch's
    current stream with `threads` elements of work (grid: blocks_for), its arguments bound by
    name (a tensor passes its data pointer)."""

    def __init__(self, text: str, names):
        import cupy
        self.cupy, self.signature, self.real = cupy, signatures(text), real_type(text)
        self.device = torch.device("cuda", torch.cuda.current_device())
        t = time.perf_counter()
        with cupy.cuda.Device(self.device.index):
            try:
                module = cupy.RawModule(code=text, options=NVRTC_OPTIONS)
                self.kernels = {name: module.get_function(name) for name in names}
            except cupy.cuda.compiler.CompileException as e:
                raise QtcError(f"compiling the CUDA kernels failed (NVRTC):\n{str(e)[-4000:]}") from None
            attrs = cupy.cuda.Device(self.device.index).attributes
        self.compile_seconds = time.perf_counter() - t
        self.wave = attrs["MultiProcessorCount"] * (attrs["MaxThreadsPerMultiProcessor"] // BLOCK)

    def stream(self):
        """CuPy's view of torch's current stream on this device (a context manager)."""
        return self.cupy.cuda.ExternalStream(torch.cuda.current_stream(self.device).cuda_stream,
                                             self.device.index)

    def launch(self, name: str, threads: int, **named) -> None:
        values = bind(self.signature, name, named, exact=True)
        args = tuple(np.uint64(_pointer(v)) if ctype.endswith("*") else scalar_type(ctype, self.real, NUMPY, name)(v)
                     for (ctype, _), v in zip(self.signature[name], values))
        with self.cupy.cuda.Device(self.device.index), self.stream():
            self.kernels[name]((blocks_for(threads, self.wave),), (BLOCK,), args)
