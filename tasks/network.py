"""Target networks written in a task spec, run functionally on a flat parameter vector.

The flat vector is cut, in declaration order, into each layer's tensors (weight then bias).
`TargetNet.module()` builds the same network from plain torch.nn layers, and `torch_source()`
writes a stand-alone Python file that rebuilds it without qtc (for exported models).

Every layer kind is one `LayerDef` in `LAYERS` (Stim's gate table, for layers): how its spec
line becomes a `LayerPlan` (shapes checked, parameters laid out) and the plan's views: `run` on
generated weights, the torch.nn `module` with its constructor arguments (the exported source
text is that constructor call, so the two cannot drift apart), and torch's init bound.
tests/test_network.py checks the views agree for every kind.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from qtc.dsl.task import Layer, NetworkSpec
from qtc.errors import SpecError, did_you_mean
from qtc.runtime.generator import DTYPE, output_scale

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerPlan:
    kind: str
    params: tuple[tuple[str, Shape], ...]  # (name, shape) in flat order
    opts: dict = field(default_factory=dict)
    in_shape: Shape = ()
    out_shape: Shape = ()

    def __hash__(self):
        return hash((self.kind, self.params, self.in_shape, self.out_shape))


class TargetNet:
    """A network plan: shapes checked at construction; `forward(flat, x)` is functional."""

    def __init__(self, spec: NetworkSpec):
        self.name, self.spec = spec.name, spec
        layers = list(spec.layers)
        if not layers or layers[0].kind != "input":
            at = layers[0] if layers else spec
            raise SpecError(f"network '{spec.name}' must start with its input shape",
                            line=at.line, column=at.column, hint="e.g. 'input [1, 28, 28]'")
        self.input_shape = _input_shape(layers[0])
        shape, plans = self.input_shape, []
        for layer in layers[1:]:
            plan = _plan(layer, shape)
            plans.append(plan)
            shape = plan.out_shape
        self.plans: tuple[LayerPlan, ...] = tuple(plans)
        self.run_order = _order(self.plans)
        self.output_shape = shape
        self.param_shapes = [(f"{i}.{name}", s) for i, p in enumerate(plans) for name, s in p.params]
        self.num_params = sum(math.prod(s) for _, s in self.param_shapes)

    def tensor_sizes(self) -> list[int]:
        """The parameter tensors' sizes in flat order (the generator's `index tensor` input)."""
        return [math.prod(shape) for _, shape in self.param_shapes]

    dtype = DTYPE      # its weights' (the generator's): a spec network is float32

    def fresh_state(self) -> None:
        """A spec network's state is its flat parameter vector alone (a Python model's may hold
        frozen parameters and buffers: ModuleNet.fresh_state)."""
        return None

    def init_stds(self) -> list[tuple[int, float]]:
        """(size, std) per parameter tensor, in flat order: the std torch's default init gives it
        (U(-b, b), std b/sqrt(3); b = 1/sqrt(fan_in) for conv2d and linear, 1/sqrt(hidden) for
        the LSTM weight). What `absurd_tensors` compares generated weights with."""
        return [(math.prod(shape), LAYERS[plan.kind].init_bound(plan) / math.sqrt(3))
                for plan in self.plans for _, shape in plan.params]

    def absurd_tensors(self, flat: torch.Tensor, factor: float = 10.0) -> list[str]:
        """Tensors of `flat` that are non-finite or whose std is over `factor` x torch's init std."""
        out = []
        for (name, _), chunk, (size, std) in zip(self.param_shapes, flat.detach().split(
                [size for size, _ in self.init_stds()]), self.init_stds()):
            spread = float(chunk.std()) if size > 1 else float(chunk.abs().max())
            if not math.isfinite(spread) or spread > factor * std:
                out.append(f"{name} (std {spread:.3g}, torch's init {std:.3g})")
        return out

    def init_scale_for(self, flat: torch.Tensor, bound_offsets: bool = False) -> float:
        """The factor s for which this network on `flat * s` has the output scale torch's default
        init gives it (runtime.generator.output_scale; `bound_offsets` there). Generated weights
        are far from iid (a smooth function of the index bits), so matching each tensor's std is
        not enough: their coherent sums make the outputs ~300x too large."""
        return output_scale(self.forward, lambda: self.flatten_module(self.module()), flat,
                            self.input_shape, bound_offsets=bound_offsets)

    def record(self) -> dict:
        """Plain data that rebuilds this network (a3c.net_from_record): no pickle needed."""
        return {"network": self.spec.model_dump(mode="json")}

    # --- running --------------------------------------------------------------------------
    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if flat.shape != (self.num_params,):
            raise ValueError(f"network '{self.name}' takes {self.num_params} parameters, got {tuple(flat.shape)}")
        out, k = {}, 0
        for name, shape in self.param_shapes:
            size = math.prod(shape)
            out[name] = flat[k:k + size].view(shape)
            k += size
        return out

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = self.unflatten(flat)
        for i in self.run_order:
            plan = self.plans[i]
            x = LAYERS[plan.kind].run(plan, {n: params[f"{i}.{n}"] for n, _ in plan.params}, x)
        return x

    __call__ = forward

    # --- classical counterpart ------------------------------------------------------------
    def module(self) -> nn.Module:
        """The same network as plain torch.nn modules (default torch initialisation)."""
        return nn.Sequential(*[LAYERS[p.kind].build(p) for p in self.plans])

    def flatten_module(self, module: nn.Module) -> torch.Tensor:
        state = module.state_dict()
        return torch.cat([state[name].reshape(-1) for name, _ in self.param_shapes])

    def state_dict(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.unflatten(flat).items()}

    def torch_source(self) -> str:
        """A stand-alone Python module: `build()` returns the network, `load(path)` loads it."""
        lines = ["# Generated by qtc: the trained classical network, runnable with torch alone.",
                 "import math", "", "import torch", "from torch import nn", "", "",
                 inspect.getsource(LSTMLast), "", inspect.getsource(lstm_last), "",
                 "def build():",
                 f"    \"\"\"Network '{self.name}': input {list(self.input_shape)} -> output "
                 f"{list(self.output_shape)}.\"\"\"",
                 "    return nn.Sequential("]
        lines += [f"        {LAYERS[p.kind].source(p)}," for p in self.plans]
        lines += ["    )", "", "",
                  "def load(path='model.pt'):",
                  "    net = build()",
                  "    net.load_state_dict(torch.load(path, map_location='cpu'))",
                  "    return net.eval()", ""]
        return "\n".join(lines)

    def describe(self) -> str:
        rows = [f"network {self.name}: input {list(self.input_shape)}"]
        for i, p in enumerate(self.plans):
            count = sum(math.prod(s) for _, s in p.params)
            rows.append(f"  {i:2d} {p.kind:8s} {str(list(p.in_shape)):>14s} -> {str(list(p.out_shape)):<14s}"
                        f" {count:>9,d} params")
        rows.append(f"  total {self.num_params:,d} parameters")
        return "\n".join(rows)


# --- the LSTM layer: a cell run over the time axis, its last hidden state out -----------------
# (written once: the exported source copies both with inspect.getsource)

class LSTMLast(nn.Module):
    """LSTM over (batch, time, features) -> last hidden state; gates i, f, g, o stacked."""

    def __init__(self, inputs, hidden):
        super().__init__()
        self.hidden = hidden
        self.weight = nn.Parameter(torch.empty(4 * hidden, inputs + hidden))
        self.bias = nn.Parameter(torch.zeros(4 * hidden))
        bound = 1 / math.sqrt(hidden)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x):
        return lstm_last(x, self.weight, self.bias, self.hidden)


def lstm_last(x, weight, bias, hidden):
    """One LSTM cell (gates i, f, g, o stacked in `weight`) run over x's time axis."""
    h = x.new_zeros(x.shape[0], hidden)
    c = x.new_zeros(x.shape[0], hidden)
    for t in range(x.shape[1]):
        z = torch.nn.functional.linear(torch.cat([x[:, t], h], dim=1), weight, bias)
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h


# --- the layer table ---------------------------------------------------------------------------

def _fan_in_bound(plan: LayerPlan) -> float:
    """torch's default uniform bound for a layer's weight and bias: 1/sqrt(fan_in)."""
    return 1 / math.sqrt(math.prod(plan.params[0][1][1:]))


@dataclass(frozen=True)
class LayerDef:
    """One layer kind: the spec line's plan and the plan's views (see the module docstring)."""
    plan: Callable[[Layer, Shape], LayerPlan]                    # shapes checked, params laid out
    run: Callable[[LayerPlan, dict, torch.Tensor], torch.Tensor]  # forward on generated weights
    module: type[nn.Module]                                      # the same layer in torch.nn
    arguments: Callable[[LayerPlan], tuple[tuple, dict]] = lambda plan: ((), {})   # its constructor's
    init_bound: Callable[[LayerPlan], float] = _fan_in_bound     # torch's init, for parametrised kinds

    def build(self, plan: LayerPlan) -> nn.Module:
        """The torch.nn module of `plan` (torch's default initialisation)."""
        args, kwargs = self.arguments(plan)
        return self.module(*args, **kwargs)

    def source(self, plan: LayerPlan) -> str:
        """`build`'s constructor call as Python text (torch's classes as `nn.X`)."""
        args, kwargs = self.arguments(plan)
        owner = "nn." if self.module.__module__.startswith("torch.") else ""
        text = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{owner}{self.module.__name__}({', '.join(text)})"


def _conv2d(layer: Layer, shape: Shape) -> LayerPlan:
    cin, cout, o = _io(layer)
    k, s, p = o.get("kernel", 3), o.get("stride", 1), o.get("padding", 0)
    if len(shape) != 3 or shape[0] != cin:
        raise _mismatch(layer, f"[{cin}, H, W]", shape)
    h, w = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
    if h < 1 or w < 1 or k < 1 or s < 1:
        raise layer.error(f"kernel {k} does not fit the input {list(shape)}")
    return LayerPlan(layer.kind, (("weight", (cout, cin, k, k)), ("bias", (cout,))),
                     {"stride": s, "padding": p}, shape, (cout, h, w))


def _pool(layer: Layer, shape: Shape) -> LayerPlan:
    kind = layer.kind
    if not layer.args or not isinstance(layer.args[0].value, int) or layer.args[0].value < 1:
        raise layer.error(f"'{kind}' needs a window size", f"e.g. '{kind} 2'")
    k = layer.args[0].value
    s = _opts(layer, layer.args[1:], ("stride",)).get("stride", k)
    if len(shape) != 3 or shape[1] < k or shape[2] < k:
        raise _mismatch(layer, f"[C, H, W] with H, W >= {k}", shape)
    return LayerPlan(kind, (), {"kernel": k, "stride": s}, shape,
                     (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1))


def _flatten(layer: Layer, shape: Shape) -> LayerPlan:
    _no_args(layer)
    return LayerPlan(layer.kind, (), {}, shape, (math.prod(shape),))


def _linear(layer: Layer, shape: Shape) -> LayerPlan:
    cin, cout, _ = _io(layer)
    if shape != (cin,):
        raise _mismatch(layer, f"[{cin}]", shape)
    return LayerPlan(layer.kind, (("weight", (cout, cin)), ("bias", (cout,))), {}, shape, (cout,))


def _lstm(layer: Layer, shape: Shape) -> LayerPlan:
    cin, hidden, _ = _io(layer)
    if len(shape) != 2 or shape[1] != cin:
        raise _mismatch(layer, f"[time, {cin}]", shape)
    return LayerPlan(layer.kind, (("weight", (4 * hidden, cin + hidden)), ("bias", (4 * hidden,))),
                     {"hidden": hidden}, shape, (hidden,))


def _elementwise(layer: Layer, shape: Shape) -> LayerPlan:
    _no_args(layer)
    return LayerPlan(layer.kind, (), {}, shape, shape)


def _conv2d_arguments(plan: LayerPlan) -> tuple[tuple, dict]:
    cout, cin, k, _ = plan.params[0][1]
    return (cin, cout, k), {"stride": plan.opts["stride"], "padding": plan.opts["padding"]}


def _linear_arguments(plan: LayerPlan) -> tuple[tuple, dict]:
    cout, cin = plan.params[0][1]
    return (cin, cout), {}


def _pooling(function) -> Callable:
    return lambda plan, p, x: function(x, plan.opts["kernel"], plan.opts["stride"])


def _pool_arguments(plan: LayerPlan) -> tuple[tuple, dict]:
    return (plan.opts["kernel"],), {"stride": plan.opts["stride"]}


def _activation(function, module: type[nn.Module]) -> LayerDef:
    return LayerDef(_elementwise, lambda plan, p, x: function(x), module)


LAYERS: dict[str, LayerDef] = {
    "conv2d": LayerDef(
        _conv2d,
        lambda plan, p, x: F.conv2d(x, p["weight"], p["bias"], stride=plan.opts["stride"],
                                    padding=plan.opts["padding"]),
        nn.Conv2d, _conv2d_arguments),
    "maxpool": LayerDef(_pool, _pooling(F.max_pool2d), nn.MaxPool2d, _pool_arguments),
    "avgpool": LayerDef(_pool, _pooling(F.avg_pool2d), nn.AvgPool2d, _pool_arguments),
    "flatten": LayerDef(_flatten, lambda plan, p, x: x.flatten(1), nn.Flatten),
    "linear": LayerDef(_linear, lambda plan, p, x: F.linear(x, p["weight"], p["bias"]), nn.Linear,
                       _linear_arguments),
    "lstm": LayerDef(_lstm, lambda plan, p, x: lstm_last(x, p["weight"], p["bias"], plan.opts["hidden"]),
                     LSTMLast, lambda plan: ((plan.in_shape[1], plan.opts["hidden"]), {}),
                     init_bound=lambda plan: 1 / math.sqrt(plan.opts["hidden"])),
    # (the LSTM's bias starts at 0 in LSTMLast, so the weight's bound stands for both)
    "relu": _activation(F.relu, nn.ReLU),
    "tanh": _activation(torch.tanh, nn.Tanh),
    "sigmoid": _activation(torch.sigmoid, nn.Sigmoid),
}
LAYER_KINDS = tuple(LAYERS)


# --- planning helpers ----------------------------------------------------------------------------

def _plan(layer: Layer, shape: Shape) -> LayerPlan:
    if layer.kind not in LAYERS:
        raise layer.error(f"unknown layer '{layer.kind}'", did_you_mean(layer.kind, LAYER_KINDS + ("input",)))
    return LAYERS[layer.kind].plan(layer, shape)


def _input_shape(layer: Layer) -> Shape:
    vals = [a.value for a in layer.args]
    if len(vals) == 1 and isinstance(vals[0], list):
        vals = vals[0]
    if not vals or not all(isinstance(v, int) and v > 0 for v in vals):
        raise layer.error("input needs a shape of positive integers", "e.g. 'input [1, 28, 28]'")
    return tuple(vals)


def _io(layer: Layer) -> tuple[int, int, dict]:
    """Parse `IN -> OUT [key value ...]`."""
    a = layer.args
    if len(a) < 3 or a[1].value != "->" or not all(isinstance(v.value, int) and v.value > 0 for v in (a[0], a[2])):
        raise layer.error(f"'{layer.kind}' needs 'IN -> OUT' with positive integers",
                          f"e.g. '{layer.kind} 512 -> 160'")
    return a[0].value, a[2].value, _opts(layer, a[3:])


def _opts(layer: Layer, atoms, allowed=("kernel", "stride", "padding")) -> dict:
    out = {}
    atoms = list(atoms)
    while atoms:
        key = atoms.pop(0)
        if key.value not in allowed or not atoms:
            raise SpecError(f"unexpected {key.value!r} in '{layer.kind}'", line=key.line,
                            column=key.column, hint=did_you_mean(str(key.value), allowed))
        val = atoms.pop(0)
        least = 0 if key.value == "padding" else 1  # a zero kernel or stride divides by zero
        if not isinstance(val.value, int) or val.value < least:
            kind = "a non-negative" if least == 0 else "a positive"
            raise SpecError(f"'{key.value}' needs {kind} integer", line=val.line, column=val.column)
        out[key.value] = val.value
    return out


def _mismatch(layer: Layer, expected: str, shape) -> SpecError:
    return layer.error(f"'{layer.kind}' expects {expected} but the previous layer gives shape "
                       f"{list(shape)}")


def _no_args(layer: Layer) -> None:
    if layer.args:
        raise layer.error(f"'{layer.kind}' takes no arguments")


def _order(plans: tuple[LayerPlan, ...]) -> list[int]:
    """The order the layers run in: as written, except that `relu ; maxpool` runs as `maxpool ;
    relu`. The two are the same function (relu is non-decreasing, so it commutes with a max; the
    gradients agree too, but at exact ties), and relu then touches a quarter of the values:
    FashionMNIST's CNN trains 7% faster (one thread, batch 100)."""
    order = list(range(len(plans)))
    for i in range(len(plans) - 1):
        if plans[order[i]].kind == "relu" and plans[order[i + 1]].kind == "maxpool":
            order[i], order[i + 1] = order[i + 1], order[i]
    return order
