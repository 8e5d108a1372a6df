"""The generator's tail in one C pass on the CPU: rescale, linear mapping, output factor and
centring from the ensemble's probabilities P to the target weights (compiler/csrc/mapping.c),
as one autograd node.

The same function in torch ops (QTGenerator._rescaled and _generated) is some twenty ops and as
many autograd nodes, each a few microseconds of dispatch on 6,000 values: 0.36 ms of CPU per
generator and step under load, against 0.06 ms here (docs/results/speed.md; an A3C update runs
two generators). It is what the cpu backend's generators run; the reference and cuda backends,
and the MLP mapping, keep the torch ops. The two agree to rounding (sums in double here: not bit
for bit; tests/test_network.py checks 1e-12 in float64).
"""
from __future__ import annotations

import functools

import torch

from qtc.compiler.csrc import source
from qtc.runtime.cache import CPU_FLAGS
from qtc.runtime.launch import HostLibrary

FLAGS = CPU_FLAGS + ("-fno-math-errno",)     # tanh and pow on glibc's vector functions
C_REAL = {torch.float32: "float", torch.float64: "double"}


@functools.lru_cache(maxsize=2)
def _library(dtype: torch.dtype) -> HostLibrary:
    """mapping.c built for `dtype`, once per machine (runtime/cache.py keys it by text and flags)."""
    return HostLibrary(f"typedef {C_REAL[dtype]} real;\n" + source("mapping.c"), FLAGS, tag="mapping")


class LinearTail(torch.autograd.Function):
    """out = tail(P; weight, bias) (mapping.c's formula): P (2^n,), weight (1, nb + 1) and bias
    (1,) the mapping's nn.Linear, bits (nb, count) its fixed inputs, transposed (a row per
    input: the C loops run along rows); `rescale` (qt or none),
    `center`, (scale, beta, alpha) the rescale's constants, `factor` the output factor."""

    @staticmethod
    def forward(ctx, P, weight, bias, bits, rescale: bool, center: bool, constants: tuple, factor: float):
        nb, count = bits.shape
        P, w, b = P.detach().contiguous(), weight.detach().contiguous(), bias.detach().contiguous()
        xr, x, t, out = (torch.empty(count, dtype=P.dtype) for _ in range(4))
        _library(P.dtype).call("qtc_map_forward", count=count, nb=nb, rescale=int(rescale), center=int(center),
                               scale=constants[0], beta=constants[1], alpha=constants[2], factor=factor, P=P,
                               bits=bits, w=w, b=b, xr=xr, x=x, t=t, out=out)
        ctx.save_for_backward(w, xr, x, t, bits)
        ctx.meta = (len(P), rescale, center, constants, factor)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        w, xr, x, t, bits = ctx.saved_tensors
        dim, rescale, center, constants, factor = ctx.meta
        nb, count = bits.shape
        gP = torch.zeros(dim, dtype=w.dtype)
        gw, gb = torch.empty(nb + 1, dtype=w.dtype), torch.empty(1, dtype=w.dtype)
        _library(w.dtype).call("qtc_map_backward", count=count, nb=nb, rescale=int(rescale), center=int(center),
                               scale=constants[0], beta=constants[1], alpha=constants[2], factor=factor,
                               go=grad.detach().to(w.dtype).contiguous(), bits=bits, w=w, xr=xr, x=x, t=t,
                               gP=gP, gw=gw, gb=gb)
        return gP, gw.view(1, -1), gb, None, None, None, None, None
