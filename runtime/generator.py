"""The Quantum-Train generator: circuit ensemble -> probabilities -> mapping -> target weights.

QTGenerator holds the shared angles theta (L, n) (or (L, n, K), see Program.angle_shape), the
structural weights w (C,) -- or, for a space with `weights ... per position`, (positions, max
alternatives) -- and the mapping model; forward() returns the flat vector of the target
network's p parameters:
    P = sum_c w_c p_c(theta)                              (the compiled ensemble)
    x_i = rescale(P_i), i < p                             ((beta tanh(gamma 2^(n-1) P))^alpha - mean)
    weight_i = M(bits(i), x_i)  (- mean, as the original QT code)
With `index "tensor"` the mapping is told which tensor weight i belongs to (one-hot, in the
`bits` encoding) instead of i's bits: M(onehot(t(i)), x_i). A mapping of the index bits can
draw weights by itself (an MLP over the bits is a small coordinate network: with the circuit
held constant, `mapping mlp hidden 64` reached 86% on 10-class MNIST, above DiffQAS-QT), and a
linear one gives every tensor one gain and a bits-shaped offset; told only the tensor, the
mapping gives each tensor its own scale, offset and shape of x, and every per-weight pattern
must come from the circuit (the constant circuit stays at chance).
On the cpu backend, with the linear mapping, rescale, mapping and centring run as one C pass
and one autograd node (runtime/mapping.py; equal to the torch ops to rounding).
A fixed-architecture baseline is the same module with w a frozen one-hot vector; it simulates
the program of its candidate alone (compiler.pipeline.only_candidate), which gives the same
probabilities and gradients as the ensemble under that one-hot at the cost of one candidate.

Sampled search (`search sampled K`, a program in the sampled form): w are per-position logits,
a training step (`objective`) draws K architectures, generates each one's weights and trains on
the mean of their losses (runtime/sampling.py: the expected loss over architectures, not the
loss of the mixture); forward() generates the most probable architecture's weights (what is
evaluated and exported).

The initial scale. torch's default init would give M weights of O(1), and so target weights of
std ~0.6 that a CNN turns into a first loss of ~1e5. Given a `calibrate` function (the target
network's TargetNet.init_scale_for or QTModel's, both `output_scale`), the generator multiplies
M's output layer by the factor that gives the target network, at initialisation, the output
scale torch's own init gives it, times `init_scale`. Scaling M's parameters (not its output)
keeps Adam's steps large relative to them, as the paper's hand-tuned 0.01 did; the trainable
counts are unchanged.

`scale_at "output"` instead multiplies the generated weights by that factor (a fixed buffer) and
leaves M at torch's init. Adam moves each parameter by about lr a step whatever its size: with
the factor in M's parameters (~0.005-0.01 for a 13-qubit CNN) one step at lr 1e-2 changes M's
coefficients by 100-200% of themselves, and every generated weight at once (the bits and bias
terms are shared by all); with the factor outside, by about lr of themselves, as a classical
network's weights. docs/results/ten_class_notes.md measures both; "mapping" stays the default,
the scale the bundled specs were tuned on.
"""
from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import nn

from qtc.compiler.ir import Program
from qtc.compiler.pipeline import only_candidate
from qtc.dsl.task import GeneratorStmt
from qtc.errors import QtcError
from qtc.runtime import weights as structural
from qtc.runtime.backends import probabilities, resolve
from qtc.runtime.mapping import LinearTail
from qtc.runtime.sampling import Sampler


_lock = threading.Lock()
_alone: dict[tuple[int, int], tuple] = {}   # (id(program), k) -> (weakref, program of k alone)


def qubits_for(num_params: int) -> int:
    return max(1, math.ceil(math.log2(num_params)))


def sized_qubits(space, num_params: int) -> int:
    """The qubits of a generator for `num_params` from `space` (a SearchSpace) when nothing else
    says: ceil(log2) of the count for 'qubits auto', else the space's own size."""
    need = qubits_for(num_params)
    return (need if space.qubits_auto else space.qubits) or need


def state_bytes(program: Program, samples: int = 1) -> int:
    """The bytes of vectors of 2^n values (float32, the generator's dtype) one training step of
    `program` holds at least: per simulated circuit its state and the adjoint state of the
    gradient (real and imaginary planes of a complex one), per constant or phase node its
    distribution, per architecture of a sampled step (`samples`) its float64 state, adjoint and
    scratch (12 float32 vectors) and its probabilities, and the probabilities with their
    gradient. A channel program's density matrices have their own budget (QTC_CHANNEL_MEMORY),
    checked when it is compiled."""
    vectors = 2
    for node in program.nodes:
        if node.kind == "circuit":
            vectors += 2 * (1 if node.real else 2)
        elif node.kind == "sampled":
            vectors += 14 * samples
        elif node.kind != "channel":
            vectors += 1
    return 4 * vectors << program.qubits


PROBE_BATCH = 256
DTYPE = torch.float32      # a task's generators (angles, weights, mapping); QTModel takes the network's


def output_scale(run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 reference: Callable[[], torch.Tensor], flat: torch.Tensor, input_shape, *,
                 bound_offsets: bool = False) -> float:
    """The factor s for which the network `run(weights, x)` on `flat * s` has the output scale it
    has on `reference()` (its weights as torch initialises them): the std, over a fixed batch of
    standard-normal inputs of `input_shape`, of each output's deviation from its batch mean (the
    input-dependent part; the whole std swings 4x with the reference init's biases). The global
    RNG is untouched (`reference()` draws from a forked one). `input_shape` may instead be a
    function `dtype -> the batch`, drawn under the same seed (runtime.model.Inputs.probe: integer
    inputs such as token ids are drawn from real data, not a normal distribution).

    `bound_offsets`: s is also no larger than the factor at which the outputs' offsets (the
    spread across outputs of their batch means: the input-independent preference for one class)
    reach torch's (its offsets, or its input spread where that is larger). Generated weights are
    coherent, so at the input-spread scale a 10-class CNN started with offsets 7-15x torch's, a
    first loss of 3.3-5.5 against ln 10, and training shrank every layer at once to remove them
    and stayed at chance (docs/results/ten_class_notes.md). On for QTModel and for task
    classifiers of more than two classes; off for the rest, whose bundled binary specs were
    tuned on the scale without it."""
    flat = flat.detach()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        probe = (input_shape(flat.dtype) if callable(input_shape)
                 else torch.randn(PROBE_BATCH, *input_shape, dtype=flat.dtype))
        reference_out = run(reference().to(flat.dtype), probe)
        s = solve_scale(lambda s: _input_spread(run(flat * s, probe)), _input_spread(reference_out))
        if bound_offsets and reference_out.reshape(len(probe), -1).shape[1] > 1:
            want = max(_offsets(reference_out), _input_spread(reference_out))
            s = min(s, solve_scale(lambda s: _offsets(run(flat * s, probe)), want))
        return s


def _input_spread(outputs: torch.Tensor) -> float:
    return float((outputs - outputs.mean(0)).std())


def _offsets(outputs: torch.Tensor) -> float:
    """The spread across outputs of their batch means (two or more outputs)."""
    return float(outputs.reshape(len(outputs), -1).mean(0).std())


def solve_scale(spread: Callable[[float], float], want: float, lo: float = 1e-8, hi: float = 1e4) -> float:
    """Bisection in log space for s with spread(s) = want (spread grows with s: a network's output
    grows with its weights)."""
    a, b = math.log(lo), math.log(hi)
    for _ in range(48):
        mid = (a + b) / 2
        if spread(math.exp(mid)) > want:
            b = mid
        else:
            a = mid
    return math.exp((a + b) / 2)


def candidate_program(program: Program, k: int) -> Program:
    """only_candidate(program, k), built once per process: every seed and run of a baseline
    shares it (and so its compiled kernels, which are cached by program)."""
    key = (id(program), k)
    with _lock:
        hit = _alone.get(key)
        if hit is None or hit[0]() is not program:
            hit = (weakref.ref(program), only_candidate(program, k))
            _alone[key] = hit
        return hit[1]


@dataclass(frozen=True)
class GeneratorOptions:
    """What a spec's `generator` statement says about the generator itself (its space, qubits
    and depth are the compiler's): the mapping model, the rescaling of the probabilities, the
    initial scale and the backend. dsl.task.GeneratorStmt declares, checks and defaults them;
    `of` takes them from a statement by name, so a new option is a field there, a field here
    and its use in QTGenerator, and no caller copies it (tests/test_network.py says when the
    two lists differ)."""
    mapping: str
    hidden: int
    bits: str
    index: str
    rescale: str
    gamma: float
    beta: float
    alpha: float
    center: bool | str
    init_scale: float
    backend: str
    scale_at: str
    search: str = "exact"
    samples: int | None = None

    @classmethod
    def of(cls, stmt: GeneratorStmt) -> GeneratorOptions:
        return cls(**{f.name: getattr(stmt, f.name) for f in fields(cls)})

    @classmethod
    def given(cls, **options) -> GeneratorOptions:
        """From keywords, the rest the statement's defaults, checked as a spec's are (a bad
        value is pydantic's ValidationError; QTModel turns it into a QtcError)."""
        return cls.of(GeneratorStmt(space="generator.qs", **options))


class QTGenerator(nn.Module):
    """The generator of `num_params` target weights from `program` under `options` (the spec's
    generator statement; default: its defaults). `fixed`: train candidate K alone (a frozen
    one-hot); `calibrate`: the initial scale's factor (module docstring); `steps`: the training
    steps it will run (None: the cost model's default horizon), which the kernels' "auto"
    rendering weighs the unrolled build against; `tensors`: the sizes of the target's tensors in
    flat order (summing to `num_params`), which `index "tensor"` needs; `seed`: the seed of a
    sampled search's draws (default: torch's initial seed, which a run sets to its own)."""

    def __init__(self, program: Program, num_params: int, options: GeneratorOptions | None = None, *,
                 fixed: int | None = None, calibrate: Callable[[torch.Tensor], float] | None = None,
                 dtype: torch.dtype = DTYPE, steps: int | None = None, tensors: list[int] | None = None,
                 seed: int | None = None):
        super().__init__()
        n = program.qubits
        if num_params > 2 ** n:
            raise QtcError(f"target has {num_params} parameters but {n} qubits give only {2 ** n}")
        self.program, self.num_params = program, num_params
        self.options = options = options or GeneratorOptions.given()
        self.steps = None if steps is None else max(1, int(steps))
        self.fixed = fixed
        self.theta = nn.Parameter(_angles(program, dtype))
        if fixed is None:   # (C,), or (positions, max alternatives) for per-position weights
            self.weights = nn.Parameter(structural.initial(program, dtype))
        else:
            self.register_buffer("weights", structural.one_hot(program, fixed, dtype))
        self.sampling = None
        self._c_tail: bool | None = None     # _tail in C (decided on first use)
        self._bits_rows: torch.Tensor | None = None   # bits transposed, for the C tail
        if options.search == "sampled" and fixed is None:
            if program.form != "sampled" or program.weights.norm != "softmax" or not options.samples:
                raise QtcError("search sampled needs a program in the sampled form with softmax "
                               "per-position weights, and the number of architectures per step")
            self.sampling = Sampler(program, options.samples, torch.initial_seed() if seed is None else seed)
        # a fixed candidate simulates alone; of a per-position space, under its one-hot weights
        alone = fixed is not None and bool(program.weights.fixed_candidates())
        self.simulated = candidate_program(program, fixed) if alone else program
        # an exact constant alone (configs 1, 3, 4, 6, 9, 12 of the paper space): its rescaled
        # probabilities do not depend on theta, so they are computed once (moved by .to() with
        # the module, not saved); only the mapping trains
        free = alone and all(node.kind == "constant" for node in self.simulated.nodes)
        self.register_buffer("constant_x", None, persistent=False)
        b = _index_inputs(num_params, n, options.index, tensors).to(dtype)
        # center "tensor": each weight's tensor (segment ids), and 1 / its size where it is
        # centred: a one-element tensor (a regression output's bias) is not, its mean is its value
        self.register_buffer("segments", None, persistent=False)
        self.register_buffer("segment_share", None, persistent=False)
        if options.center == "tensor":
            sizes = torch.tensor(_checked_tensors("center tensor", num_params, tensors))
            self.segments = torch.arange(len(sizes)).repeat_interleave(sizes)
            self.segment_share = torch.where(sizes > 1, 1 / sizes.to(dtype), 0)
        self.register_buffer("bits", 2 * b - 1 if options.bits == "pm1" else b, persistent=False)
        width = b.shape[1] + 1
        if options.mapping == "linear":
            self.mapping = nn.Linear(width, 1, dtype=dtype)
        else:
            self.mapping = nn.Sequential(nn.Linear(width, options.hidden, dtype=dtype), nn.Tanh(),
                                         nn.Linear(options.hidden, 1, dtype=dtype))
        if free:
            with torch.no_grad():
                self.constant_x = self._rescaled(self.probabilities())
        # scale_at "output": the generated weights times this fixed factor (saved with the module)
        self.register_buffer("output_factor", None)
        with torch.no_grad():  # the output is linear in the last layer: scaling it scales the weights
            factor = options.init_scale * (calibrate(self()) if calibrate is not None else 1.0)
            if options.scale_at == "output":
                self.output_factor = torch.tensor(factor, dtype=dtype)
            else:
                for p in self.output_layer().parameters():
                    p.mul_(factor)

    def output_layer(self) -> nn.Linear:
        """The mapping's last linear layer (the whole mapping when it is linear)."""
        return self.mapping if isinstance(self.mapping, nn.Linear) else self.mapping[-1]

    def structural_weights(self) -> torch.Tensor:
        """The ensemble's mixture as used: the space's normalisation of the trainable weights
        (runtime.weights.mixture, as Runnable.probabilities), a fixed baseline's one-hot as is."""
        return self.weights if self.fixed is not None else structural.mixture(self.program, self.weights)

    def reported_weights(self) -> list[float]:
        """The structural weights as used, one per entry of `program.weight_labels`."""
        return structural.flat(self.program, self.structural_weights())

    def architecture(self) -> str | None:
        """Per-position weights: the favourite of every position (the architecture found)."""
        return structural.architecture(self.program, self.structural_weights())

    def probabilities(self) -> torch.Tensor:
        """P of the ensemble; of a sampled search, of its most probable architecture."""
        if self.simulated is not self.program:   # its candidate alone, weight 1
            return probabilities(self.simulated, self.theta, self.weights.new_ones(1),
                                 backend=self.options.backend, steps=self.steps)
        if self.sampling is not None:
            return self._architectures(self.sampling.mode(self.structural_weights()))[0]
        return probabilities(self.program, self.theta, self.structural_weights(), backend=self.options.backend,
                             steps=self.steps)

    def _architectures(self, picks: torch.Tensor) -> torch.Tensor:
        """P of each of the (K, positions) picked architectures, (K, 2^n)."""
        W = self.sampling.one_hots(picks, self.theta.dtype)
        return probabilities(self.program, self.theta, W, backend=self.options.backend, steps=self.steps)

    def forward(self) -> torch.Tensor:
        if self.constant_x is not None:
            return self._generated(self.constant_x)
        return self._tail(self.probabilities())

    def _tail(self, P: torch.Tensor) -> torch.Tensor:
        """The target weights from the ensemble's probabilities P: rescale, mapping, factor,
        centring. On the cpu backend with the linear mapping, one C pass and one autograd node
        (runtime/mapping.py: the same function to rounding, some twenty torch ops fewer);
        otherwise the torch ops."""
        if self._c_tail is None:      # decided on first use: the backend resolves then
            self._c_tail = isinstance(self.mapping, nn.Linear) and resolve(self.options.backend) == "cpu"
        if not (self._c_tail and P.device.type == "cpu"):
            return self._generated(self._rescaled(P))
        o = self.options
        factor = 1.0 if self.output_factor is None else float(self.output_factor)
        if self._bits_rows is None or self._bits_rows.dtype != self.bits.dtype:   # (.to() may change it)
            self._bits_rows = self.bits.t().contiguous()
        whole = self.segments is None and bool(o.center)     # center "tensor": after the C pass
        out = LinearTail.apply(P, self.mapping.weight, self.mapping.bias, self._bits_rows, o.rescale == "qt", whole,
                               (o.gamma * 2 ** (self.program.qubits - 1), o.beta, o.alpha), factor)
        return out if self.segments is None else self._by_tensor(out)

    def _generated(self, x: torch.Tensor) -> torch.Tensor:
        """The target weights from the rescaled probabilities x (mapping, factor, centring)."""
        out = self._mapped(x)
        if self.output_factor is not None:
            out = out * self.output_factor
        if self.segments is not None:
            return self._by_tensor(out)
        return out - out.mean() if self.options.center else out

    def _by_tensor(self, out: torch.Tensor) -> torch.Tensor:
        """center "tensor": each tensor less its own mean (a one-element tensor as it is)."""
        sums = out.new_zeros(len(self.segment_share)).index_add_(0, self.segments, out)
        return out - (sums * self.segment_share)[self.segments]

    def objective(self, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss a training step minimises, the weights it generated): loss_of(self()) and
        self(); for a sampled search the surrogate of K drawn architectures' mean loss (its
        value that mean; runtime/sampling.py) and the first one's weights."""
        if self.sampling is None:
            flat = self()
            return loss_of(flat), flat
        return self.sampling.objective(lambda picks: self.losses(picks, loss_of), self.structural_weights())

    def losses(self, picks: torch.Tensor, loss_of) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss_of(weights of architecture k) for each of the (K, positions) picks, the first
        architecture's weights)."""
        flats = [self._tail(p) for p in self._architectures(picks)]
        return torch.stack([loss_of(f) for f in flats]), flats[0]

    def _mapped(self, x: torch.Tensor) -> torch.Tensor:
        """M(bits(i), x_i) for every i. The linear mapping as bits @ w[:n] + x w[n] + b: the
        same function as nn.Linear on [bits, x], without building the (p, n + 1) input and its
        gradient (at 17 qubits, 108,866 rows, float32, one thread: rescale and mapping 7.8 -> 2.3 ms
        a step, forward and backward)."""
        if isinstance(self.mapping, nn.Linear):
            w = self.mapping.weight[0]
            return torch.addmv(torch.addcmul(self.mapping.bias, x, w[-1]), self.bits, w[:-1])
        return self.mapping(torch.cat([self.bits, x[:, None]], 1)).squeeze(1)

    def _rescaled(self, P: torch.Tensor) -> torch.Tensor:
        """x_i = rescale(P_i), i < p (the mapping's input beside the bits)."""
        p = P[: self.num_params]
        o = self.options
        if o.rescale != "qt":
            return p
        scale = o.gamma * 2 ** (self.program.qubits - 1)
        x = (o.beta * torch.tanh(scale * p.clamp_min(0))).clamp_min(1e-30) ** o.alpha
        return x - x.mean()

    def trainable_counts(self) -> dict[str, int]:
        """Trainable parameters by part (angles, structural weights, mapping)."""
        return {"angles": self.theta.numel(),
                "structural weights": len(structural.flat(self.program, self.weights)) if self.fixed is None else 0,
                "mapping": sum(p.numel() for p in self.mapping.parameters())}


def _index_inputs(num_params: int, qubits: int, index: str, tensors: list[int] | None) -> torch.Tensor:
    """The mapping's input beside x, 0/1 per row: weight i's `qubits` index bits, or for
    `index "tensor"` the one-hot of the tensor it belongs to (one column per tensor)."""
    if index == "bits":
        return (torch.arange(num_params)[:, None] >> torch.arange(qubits)) & 1
    tensors = _checked_tensors("index tensor", num_params, tensors)
    return torch.eye(len(tensors), dtype=torch.long).repeat_interleave(torch.tensor(tensors), 0)


def _checked_tensors(option: str, num_params: int, tensors: list[int] | None) -> list[int]:
    """The target's tensor sizes in flat order, which `option` needs."""
    if tensors is None or sum(tensors) != num_params or min(tensors, default=0) < 1:
        raise QtcError(f"{option} needs the sizes of the target's tensors (summing to {num_params}); "
                       f"got {tensors}")
    return list(tensors)


class ClassicalParams(nn.Module):
    """The classical baseline: the target network's parameters held directly."""

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.flat = nn.Parameter(initial.detach().clone())

    def forward(self) -> torch.Tensor:
        return self.flat

    def objective(self, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss_of(the parameters), the parameters): what a training step minimises."""
        return loss_of(self.flat), self.flat


def _angles(program: Program, dtype) -> torch.Tensor:
    kind, args = program.angles_init
    shape = program.angle_shape
    if kind == "normal":
        return torch.randn(shape, dtype=dtype) * args[1] + args[0]
    if kind == "uniform":
        return torch.rand(shape, dtype=dtype) * (args[1] - args[0]) + args[0]
    if kind == "constant":
        return torch.full(shape, args[0], dtype=dtype)
    return torch.zeros(shape, dtype=dtype)
