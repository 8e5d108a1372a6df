"""A network written in Python (an nn.Module factory) behind the interface of a spec's TargetNet.

The supervised engine runs a target network functionally on a flat parameter vector
(`forward(flat, x)`), builds its classical counterpart (`module()`, `flatten_module`), calibrates
the generator's initial scale (`init_scale_for`) and exports it (`state_dict(flat)`,
`torch_source()`). `ModuleNet` gives a Python experiment's network (qtc.experiment) the same
views, with torch.func.functional_call, as qtc.QTModel runs one's own network: the flat vector
holds the parameters with requires_grad (generated, or classically trained); what else the
module holds is its own state -- parameters with requires_grad=False (a frozen pretrained
part, partial QT) and buffers (BatchNorm's running statistics) -- in a module whose generated
parameters became non-persistent buffers (runtime.model.held, QTModel's form).

Each model of a run has its own such state (`fresh_state`: the factory's module, drawn under
the model's seed, so the frozen parts of every model of a seed are the same): the run attaches
it to the model's parameter source (tasks.build.NET_STATE), so that the checkpoint, resume, the
selected epoch's snapshot and the export carry it with the weights, and runs the network on it
(`on(state)`). The inputs are runtime.model.Inputs: float inputs in the network's dtype
(float32 or float64, as the factory builds it), integer ones (token ids) as int64, several
packed side by side in one tensor that the engine indexes, limits and splits as one.
"""
from __future__ import annotations

import copy
import inspect
import math
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from qtc.errors import QtcError
from qtc.runtime.generator import output_scale
from qtc.runtime.model import Inputs, buffers_kept, check_runs, held, tied, trainable, with_tied

Shape = tuple[int, ...]


class ModuleNet:
    """The network `factory()` builds, run on flat parameter vectors (TargetNet's interface).

    `examples`: a batch of each positional input of its forward (N, ...), e.g. the training
    data's: their shapes, whether each is float or integer, and the integer rows the
    calibration draws from (runtime.model.Inputs). `input_shape` is what the engine's tensors
    hold per example (Inputs.packed_shape). The module runs in train mode while gradients are
    recorded (training steps) and in eval mode otherwise (evaluation, calibration, export), so
    dropout acts and BatchNorm's running statistics move only in training."""

    def __init__(self, factory: Callable[[], nn.Module], examples: tuple[torch.Tensor, ...], name: str = "net"):
        self.name, self.factory = name, factory
        module = self.module()
        generated = trainable(module)
        if not generated:
            raise QtcError(f"the model ({type(module).__name__}) has no parameters with "
                           "requires_grad to generate (those without stay the network's own)")
        self.dtype = next(iter(generated.values())).dtype
        if self.dtype not in (torch.float32, torch.float64):
            raise QtcError(f"the model's parameters are {str(self.dtype).removeprefix('torch.')}: an "
                           "experiment trains float32 or float64 networks (.float() or .double() in the factory)")
        self.inputs = Inputs.of(examples, self.dtype, "the data")
        self.input_shape = self.inputs.packed_shape
        self.param_shapes = [(n, tuple(p.shape)) for n, p in generated.items()]
        self.num_params = sum(math.prod(s) for _, s in self.param_shapes)
        self.initial = self.flatten_module(module)
        self._keys = list(module.state_dict())      # the export's order: the module's own
        self._aliases = tied(module, generated)     # tied weights: one generated tensor, every name
        self._scales = _init_scales(self.initial, self.tensor_sizes())
        held(module, generated)
        self.template = module                      # the state forward runs on, unless on(...)
        self.output_shape = self._probe()

    # --- the classical counterpart: torch's own module --------------------------------------
    def tensor_sizes(self) -> list[int]:
        """The parameter tensors' sizes in flat order (the generator's `index tensor` input)."""
        return [math.prod(shape) for _, shape in self.param_shapes]

    def module(self) -> nn.Module:
        """A fresh module from the factory (torch's initialisation, from the global RNG)."""
        module = self.factory()
        if not isinstance(module, nn.Module):
            raise QtcError(f"the model factory returned {type(module).__name__}, not a "
                           "torch.nn.Module")
        return module

    def flatten_module(self, module: nn.Module) -> torch.Tensor:
        """The values of `module`'s trainable parameters (a fresh factory module's), in flat order."""
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n, _ in self.param_shapes])

    # --- a model's own state: frozen parameters and buffers ----------------------------------
    def fresh_state(self) -> nn.Module:
        """The factory's module in the held form, for one model: drawn from a fork of torch's
        RNG, so the draws of the model's own initialisation are those of a network without
        state, and every model of a seed gets the same frozen parameters and buffers."""
        with torch.random.fork_rng(devices=[]):
            module = self.module()
        generated = trainable(module)
        if [(n, tuple(p.shape)) for n, p in generated.items()] != self.param_shapes:
            raise QtcError("the model factory built a network of other trainable parameters than "
                           "its first call did: it must build the same network every time")
        held(module, generated)
        return module

    def on(self, state: nn.Module) -> "ModuleNet":
        """This network running on `state` (a model's fresh_state, or its restored copy)."""
        view = copy.copy(self)
        view.template = state
        return view

    # --- running on a flat vector ------------------------------------------------------------
    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if flat.shape != (self.num_params,):
            raise ValueError(f"the model takes {self.num_params} parameters, got {tuple(flat.shape)}")
        chunks = flat.split([math.prod(s) for _, s in self.param_shapes])
        return {n: c.view(s) for (n, s), c in zip(self.param_shapes, chunks)}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.template.train(torch.is_grad_enabled())
        return functional_call(self.template, with_tied(self.unflatten(flat.to(self.dtype)), self._aliases),
                               self.inputs.unpack(x))

    __call__ = forward

    def init_scale_for(self, flat: torch.Tensor, bound_offsets: bool = False) -> float:
        """As TargetNet's: the factor that gives the network torch's output scale (and, with
        `bound_offsets`, no larger offsets between outputs) on `flat * s`; integer inputs are
        drawn from the data (Inputs.probe)."""
        with buffers_kept(self.template):
            return output_scale(self.forward, lambda: self.flatten_module(self.module()), flat,
                                self.inputs.probe, bound_offsets=bound_offsets)

    def absurd_tensors(self, flat: torch.Tensor, factor: float = 10.0) -> list[str]:
        """Tensors of `flat` that are non-finite or whose spread is over `factor` x that of the
        factory's own initialisation (the engine's first-step warning)."""
        out = []
        for (name, _), chunk, scale in zip(self.param_shapes, self.unflatten(flat.detach()).values(), self._scales):
            spread = float(chunk.std()) if chunk.numel() > 1 else float(chunk.abs().max())
            if not math.isfinite(spread) or spread > factor * scale:
                out.append(f"{name} (std {spread:.3g}, torch's init {scale:.3g})")
        return out

    # --- export --------------------------------------------------------------------------------
    def state_dict(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The module's state_dict holding `flat` and the state it runs on (its frozen
        parameters and buffers), in the module's own order."""
        state = {k: v.detach().clone() for k, v in self.template.state_dict().items()}
        state.update({k: v.detach().clone() for k, v in with_tied(self.unflatten(flat), self._aliases).items()})
        return {k: state[k] for k in self._keys}

    def torch_source(self) -> str:
        """model.py beside model.pt: `load(path, build)` puts the weights into `build()`, the
        experiment's own factory (importable by its module and name when it has them)."""
        module, name = getattr(self.factory, "__module__", None), getattr(self.factory, "__qualname__", "")
        importable = module not in (None, "__main__", "builtins") and name.isidentifier()
        default = (f"    if build is None:\n        from {module} import {name} as build\n" if importable else
                   "    if build is None:\n        raise TypeError('pass build=: the function or class "
                   f"that builds the network ({name or 'the experiment model'}, defined in a script)')\n")
        return "\n".join([
            "# Generated by qtc: the trained network of a Python experiment (qtc.experiment), runnable",
            "# with torch and the code that defines the network; no qtc needed.",
            "import torch", "", "",
            "def load(path='model.pt', build=None):",
            f"    \"\"\"The network ({module}.{name}: {self.inputs_text()} -> output "
            f"{list(self.output_shape)}) holding the trained weights.\"\"\"",
            default.rstrip("\n"),
            "    net = build()",
            "    net.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))",
            "    return net.eval()", ""])

    def describe(self) -> str:
        return (f"network {self.name}: {type(self.template).__name__}, {self.inputs_text()} "
                f"-> output {list(self.output_shape)}, {self.num_params:,d} parameters")

    def inputs_text(self) -> str:
        """`input [49]`, `input [12] int64`, or `inputs [4], [2] (forward(x1, x2))`."""
        return f"input{'s' if len(self.inputs.shapes) > 1 else ''} {self.inputs.describe()}"

    # --- checks ------------------------------------------------------------------------------
    def _probe(self) -> Shape:
        """The output shape on a batch of two zero inputs, in train mode (its running
        statistics kept as they were); a network that does not take the data's inputs, or
        returns other than one tensor, is a clear error here."""
        with torch.enable_grad(), buffers_kept(self.template):     # (forward: train mode)
            out = check_runs(lambda *args: self.forward(self.initial, self.inputs.pack(args)),
                             self.inputs, f"the model ({type(self.template).__name__})",
                             f"the data's {self.inputs_text()} (one example)")
        if not isinstance(out, torch.Tensor):
            raise QtcError(f"the model returns {type(out).__name__}; an experiment's model returns "
                           "one tensor (batch, ...)")
        return tuple(out.shape[1:])


def _init_scales(initial: torch.Tensor, sizes: list[int]) -> list[float]:
    """Per parameter tensor, the spread its generated values are compared with: the root mean
    square of the factory's initial values, and no less than that of the whole network (a
    LayerNorm's zero bias, a two-value bias whose draws happen to agree: its own would call any
    sensible value absurd)."""
    whole = float(initial.pow(2).mean().sqrt())
    return [max(float(chunk.pow(2).mean().sqrt()), whole) for chunk in initial.split(sizes)]


def source_digest(obj) -> dict:
    """What fingerprints a Python callable (the model factory, the loss, the metric): its module
    and qualified name, and the sha256 of its source text where inspect finds it, else of its
    code object's bytecode and constants (a function defined in exec'd text or a REPL). What it
    calls is not followed: a changed helper or global goes unseen (give Experiment a `key`)."""
    import hashlib
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj) else type(obj)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(obj).__name__)}"
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        text = repr((code.co_code, code.co_consts, code.co_names)) if code is not None else repr(obj)
    if target is not obj:
        text += "\n" + repr(obj)          # a callable object: its settings (repr) too
    return {"name": name, "sha256": hashlib.sha256(text.encode()).hexdigest()}
