"""runtime/launch.py: calling compiled C by parameter name, with the argument types read off the
source (the CUDA side, DeviceModule, against a recording CuPy: tests/test_cuda_path.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from qtc.compiler.render.common import signatures
from qtc.runtime import launch
from qtc.runtime.cache import find_compiler

SOURCE = """typedef float real;
extern "C" void qtc_axpy(int n, real a, const real* x, real* y) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}
extern "C" void qtc_fill(long n, double v, double* out) {
  for (long i = 0; i < n; ++i) out[i] = v;
}
"""


@pytest.fixture(scope="module")
def lib():
    if find_compiler() is None:
        pytest.skip("no C++ compiler")
    return launch.HostLibrary(SOURCE, tag="test_launch")


def test_a_call_binds_by_name_and_types_scalars_from_the_source(lib):
    x, y = torch.arange(4, dtype=torch.float32), torch.ones(4, dtype=torch.float32)
    lib.call("qtc_axpy", y=y, x=x, a=0.5, n=4)         # any order; `real` is float here
    assert y.tolist() == [1.0, 1.5, 2.0, 2.5]
    out = torch.zeros(3, dtype=torch.float64)
    lib.call("qtc_fill", out=out, n=3, v=1 / 3)        # a double keeps every bit
    assert out.tolist() == [1 / 3] * 3


def test_a_missing_or_unknown_argument_names_the_kernel_and_the_parameter(lib):
    y = torch.zeros(2, dtype=torch.float32)
    with pytest.raises(RuntimeError, match=r"qtc_axpy\(n, a, x, y\) launched without x"):
        lib.call("qtc_axpy", n=2, a=1.0, y=y)
    with pytest.raises(RuntimeError, match=r"qtc_axpy\(n, a, x, y\) has no parameter alpha"):
        lib.call("qtc_axpy", n=2, a=1.0, x=y, y=y, alpha=2.0)


def test_arguments_and_written_read_the_signature():
    sig = signatures(SOURCE)
    assert sig["qtc_axpy"] == (("int", "n"), ("real", "a"), ("const real*", "x"), ("real*", "y"))
    assert launch.arguments(sig, ["qtc_axpy", "qtc_fill"]) == ("n", "a", "x", "y", "v", "out")
    assert launch.written(sig, ["qtc_axpy", "qtc_fill"]) == ("y", "out")


def test_a_parameter_type_without_a_launch_type_is_an_error():
    with pytest.raises(TypeError, match="qtc_f: no launch type for its C parameter type 'short'"):
        launch.scalar_type("short", "double", launch.CTYPES, "qtc_f")
    assert launch.scalar_type("real", "float", launch.NUMPY, "qtc_f") is np.float32
