"""A network written in Python (an nn.Module factory) behind the interface of a spec's TargetNet.

The supervised engine runs a target network functionally on a flat parameter vector
(`forward(flat, x)`), builds its classical counterpart (`module()`, `flatten_module`), calibrates
the generator's initial scale (`init_scale_for`) and exports it (`state_dict(flat)`,
`torch_source()`). `ModuleNet` gives a Python experiment's network (qtc.experiment) the same
views, with torch.func.functional_call over one template module, so that the engine, the
checkpoints and the exports are the ones a .task uses. A network of several inputs
(`forward(x, y)`) takes them packed side by side in one (batch, sum of sizes) tensor, as
QTModel's calibration does (runtime.model.unpack_inputs): the engine indexes, limits and splits
one tensor whatever the inputs.

What the run machinery cannot carry is refused when the network is built: parameters with
requires_grad=False (every parameter is generated or trained; for partial QT use qtc.QTModel in
one's own loop) and buffers the forward pass changes (BatchNorm's running statistics: the
checkpoint holds the generator's parameters only, so a resumed run would start from other
statistics).
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from qtc.errors import QtcError
from qtc.runtime.generator import output_scale
from qtc.runtime.model import unpack_inputs

Shape = tuple[int, ...]


class ModuleNet:
    """The network `factory()` builds, run on flat parameter vectors (TargetNet's interface).

    `inputs`: one shape (no batch axis) per positional input of its forward. `input_shape` is
    what the engine's tensors hold per example: the one input's shape, or for several their
    sizes' sum (packed side by side). The template module runs in train mode while gradients are recorded (training steps) and in
    eval mode otherwise (evaluation, calibration, export), so dropout acts only in training."""

    def __init__(self, factory: Callable[[], nn.Module], inputs: tuple[Shape, ...], name: str = "net"):
        self.name, self.factory = name, factory
        self.inputs = tuple(tuple(s) for s in inputs)
        self.input_shape = (self.inputs[0] if len(self.inputs) == 1
                            else (sum(math.prod(s) for s in self.inputs),))
        template = self.module()
        frozen = [n for n, p in template.named_parameters() if not p.requires_grad]
        if frozen:
            raise QtcError(f"the model's parameter {frozen[0]} has requires_grad=False: an "
                           "experiment generates (or, classically, trains) every parameter; hint: "
                           "for partial QT wrap the network in qtc.QTModel in your own loop")
        self.param_shapes = [(n, tuple(p.shape)) for n, p in template.named_parameters()]
        if not self.param_shapes:
            raise QtcError(f"the model ({type(template).__name__}) has no parameters to generate")
        self.num_params = sum(math.prod(s) for _, s in self.param_shapes)
        self.template = template
        self._stds = [float(p.detach().std()) if p.numel() > 1 else float(p.detach().abs().max())
                      for _, p in template.named_parameters()]
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
        return module.float()

    def flatten_module(self, module: nn.Module) -> torch.Tensor:
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n, _ in self.param_shapes])

    # --- running on a flat vector ------------------------------------------------------------
    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        if flat.shape != (self.num_params,):
            raise ValueError(f"the model takes {self.num_params} parameters, got {tuple(flat.shape)}")
        chunks = flat.split([math.prod(s) for _, s in self.param_shapes])
        return {n: c.view(s) for (n, s), c in zip(self.param_shapes, chunks)}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.template.train(torch.is_grad_enabled())
        args = (x,) if len(self.inputs) == 1 else unpack_inputs(x, self.inputs)
        return functional_call(self.template, self.unflatten(flat.to(torch.float32)), args)

    __call__ = forward

    def init_scale_for(self, flat: torch.Tensor, bound_offsets: bool = False) -> float:
        """As TargetNet's: the factor that gives the network torch's output scale (and, with
        `bound_offsets`, no larger offsets between outputs) on `flat * s`."""
        return output_scale(self.forward, lambda: self.flatten_module(self.module()), flat,
                            self.input_shape, bound_offsets=bound_offsets)

    def absurd_tensors(self, flat: torch.Tensor, factor: float = 10.0) -> list[str]:
        """Tensors of `flat` that are non-finite or whose spread is over `factor` x that of the
        factory's own initialisation (the engine's first-step warning)."""
        out = []
        for (name, _), chunk, std in zip(self.param_shapes, self.unflatten(flat.detach()).values(), self._stds):
            spread = float(chunk.std()) if chunk.numel() > 1 else float(chunk.abs().max())
            if not math.isfinite(spread) or spread > factor * max(std, 1e-12):
                out.append(f"{name} (std {spread:.3g}, torch's init {std:.3g})")
        return out

    # --- export --------------------------------------------------------------------------------
    def state_dict(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The module's state_dict holding `flat` (plus its constant buffers, if any)."""
        state = {k: v.detach().clone() for k, v in self.template.state_dict().items()}
        state.update({k: v.detach().clone() for k, v in self.unflatten(flat).items()})
        return state

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
        """`input [49]`, or `inputs [4], [2] (forward(x1, x2))`."""
        if len(self.inputs) == 1:
            return f"input {list(self.inputs[0])}"
        args = ", ".join(f"x{k + 1}" for k in range(len(self.inputs)))
        return f"inputs {', '.join(str(list(s)) for s in self.inputs)} (forward({args}))"

    # --- checks ------------------------------------------------------------------------------
    def _probe(self) -> Shape:
        """The output shape on a batch of two zero inputs; a network that does not take the data's
        shape, or whose forward changes a buffer, is a clear error here."""
        flat = self.flatten_module(self.template)
        before = {k: b.detach().clone() for k, b in self.template.named_buffers()}
        try:
            with torch.enable_grad():
                out = self.forward(flat, torch.zeros(2, *self.input_shape))
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise QtcError(f"the model ({type(self.template).__name__}) does not run on the data's "
                           f"{self.inputs_text()} (one example): {first}") from None
        changed = [k for k, b in self.template.named_buffers() if not torch.equal(b, before[k])]
        if changed:
            raise QtcError(f"the model's forward changes its buffer {changed[0]} (BatchNorm's running "
                           "statistics?): a run's checkpoint holds the generated parameters only; "
                           "hint: use a normalisation without running statistics (LayerNorm, "
                           "GroupNorm, BatchNorm(track_running_stats=False))")
        if not isinstance(out, torch.Tensor):
            raise QtcError(f"the model returns {type(out).__name__}; an experiment's model returns "
                           "one tensor (batch, ...)")
        return tuple(out.shape[1:])


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
