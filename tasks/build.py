"""From a TaskSpec to runnable pieces: target networks, the compiled program, the models.

A *model* of a task is one of: "diffqas" (the QT generator over the whole ensemble), "fixed:K"
(candidate K alone, structural weights frozen to a one-hot), "found" (the architecture
DiffQAS-QT found, alone, the same way) and "classical" (the target network's own parameters);
qtc.tasks.naming spells them. Every model maps network name ->
parameter source.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path

import torch

from qtc.compiler.ir import Program
from qtc.compiler.pipeline import compile_space, found_candidate
from qtc.dsl import spaces
from qtc.dsl.space import MAX_QUBITS, parse_space
from qtc.dsl.settings import with_settings
from qtc.dsl import applies
from qtc.dsl.task import TaskSpec, parse_task, problem_error
from qtc.errors import QtcError, SpecError
from qtc.settings import settings as environment   # `settings` here are --set's
from qtc.runtime.generator import (ClassicalParams, GeneratorOptions, QTGenerator, qubits_for, sized_qubits,
                                   state_bytes)
from qtc.tasks import naming
from qtc.tasks.network import TargetNet
from qtc.tasks.runs import guard


@dataclass
class Built:
    """A parsed task with its networks and compiled generator program.

    `spec` already has `settings` (`--set statement.option=value`, as given) applied; they are
    kept to be recorded, since the spec file alone no longer says how the task was run."""
    spec: TaskSpec
    settings: dict[str, str] = field(default_factory=dict)

    @cached_property
    def nets(self) -> dict[str, TargetNet]:
        try:
            return {name: TargetNet(net) for name, net in self.spec.networks.items()}
        except SpecError as err:
            raise err.located(self.spec.file, self.spec.source) from None

    @property
    def kind(self):
        """The TaskKind that checks, runs and reports this task (qtc.tasks.kinds): a spec's
        from KINDS by its `task NAME : KIND`; a Python experiment's its own (kinds/python.py)."""
        from qtc.tasks.kinds import KINDS       # (the kinds import this module)
        return KINDS[self.spec.kind]

    def space_file(self) -> Path:
        """The generator's .qs file (`space_file`)."""
        return space_file(self.spec)

    def extra_identity(self) -> dict:
        """What makes a run of this task this run besides its spec and space (runner.identity):
        nothing for a spec; a Python experiment's code and data digests."""
        return {}

    @property
    def main_net(self) -> TargetNet:
        """The network a supervised task trains: the one named `net`, else the first."""
        return self.nets["net"] if "net" in self.nets else next(iter(self.nets.values()))

    def error(self, at, message: str, hint: str | None = None) -> SpecError:
        """`message` as a SpecError at `at` (a statement, layer or network of the spec; None:
        the task's first line)."""
        spec = self.spec
        line, column = (at.line, at.column) if at is not None and at.line else (1, 1)
        changed = [f"{p}={v}" for p, v in self.settings.items()
                   if at is not None and getattr(spec, p.partition(".")[0], None) is at]
        if changed:     # a --set made this statement what it is: point at the setting
            where = f"{spec.file or 'the spec'}:{line}"
            return SpecError(f"--set {', '.join(changed)}: {message}", file="<command line>",
                             hint="; ".join(h for h in (hint, f"the statement it changes is at {where}") if h))
        return SpecError(message, file=spec.file, source=spec.source, line=line, column=column, hint=hint)

    def check_io(self, name: str, want_in: tuple, want_out: tuple, why: str) -> None:
        """Raise a located SpecError unless network `name` takes `want_in` and gives `want_out`
        (what the task kind's data or environment needs, `why`)."""
        net, layers = self.nets[name], self.spec.networks[name].layers
        if tuple(net.input_shape) != want_in:
            raise self.error(layers[0], f"network '{name}' takes input {list(net.input_shape)} but "
                             f"{why} gives {list(want_in)}", f"write 'input {list(want_in)}'")
        if tuple(net.output_shape) != want_out:
            raise self.error(layers[-1], f"network '{name}' gives output {list(net.output_shape)} "
                             f"but {why} needs {list(want_out)}")

    @cached_property
    def program(self) -> Program | None:
        gen = self.spec.generator
        if gen is None:
            return None
        space = parse_space(self.space_file())
        biggest = max(net.num_params for net in self.nets.values())
        need = qubits_for(biggest)
        if need > MAX_QUBITS:
            net = max(self.spec.networks.values(), key=lambda n: self.nets[n.name].num_params)
            raise SpecError(f"network '{net.name}' has {biggest:,} parameters: a generator for it "
                            f"needs {need} qubits, more than the {MAX_QUBITS} qtc simulates",
                            line=net.line, column=net.column, file=self.spec.file,
                            source=self.spec.source, hint="make the network smaller")
        n = gen.qubits if gen.qubits != "auto" else sized_qubits(space, biggest)
        if 2 ** n < biggest:
            raise SpecError(f"target has {biggest:,} parameters but {n} qubits give only {2 ** n:,}",
                            line=gen.line, column=gen.column, file=self.spec.file,
                            source=self.spec.source, hint=f"use 'qubits auto' or at least {need}")
        if gen.search == "sampled":
            self._check_sampled(space)
        program = compile_space(space, qubits=n, depth=gen.depth, channel_memory=environment().channel_memory,
                                form="sampled" if gen.search == "sampled" else "auto")
        self._check_memory(program, need)
        return program

    @property
    def sampled(self) -> bool:
        """Whether DiffQAS-QT is a sampled search (`search sampled K`)."""
        return self.spec.generator is not None and self.spec.generator.search == "sampled"

    def _check_sampled(self, space) -> None:
        """`search sampled K` draws architectures from per-position softmax distributions: it
        needs K and such a space (located at 'search', or at the --set that gave it)."""
        gen = self.spec.generator
        what = f"'{gen.space}'"
        if gen.samples is None:
            message, hint = ("'search sampled' needs the number of architectures drawn per step",
                             "write 'search sampled K', e.g. 'search sampled 4'")
        elif not space.weights_per_position:
            message = (f"'search sampled' draws one choice per position of an untied space, but {what} "
                       + ("ties its layers" if space.tied else "has one weight per candidate"))
            hint = ("search an untied space with per-position logits ('untie layers' and 'weights "
                    "softmax per position' in the .qs, e.g. the bundled hadamard_ent_rot_per_layer_softmax.qs), "
                    "or drop 'search sampled' to train the mixture of all candidates")
        elif space.weights_norm != "softmax":
            message = (f"'search sampled' draws from softmax distributions, but {what} has "
                       f"'weights {space.weights_norm} per position'")
            hint = "write 'weights softmax per position' in the .qs (its weights are then the logits)"
        else:
            return
        if any(p.startswith("generator.") for p in self.settings):
            raise self.error(gen, message, hint)        # names the --set
        problem = applies.Problem("generator", "search", message, hint)
        raise problem_error(self.spec, problem).located(self.spec.file, self.spec.source)

    def _check_memory(self, program: Program, need: int) -> None:
        """A generator whose state vectors would not fit QTC_STATE_MEMORY is refused when the
        spec is loaded, at its qubits, before any run folder: `qubits 30` for a 1,781-parameter
        LSTM would otherwise fail allocating gigabytes at the first step."""
        size, limit = state_bytes(program, self.spec.generator.samples or 1), environment().state_memory
        if size <= limit:
            return
        message = (f"a generator of {program.qubits} qubits holds at least {_gib(size)} of state vectors "
                   f"per training step (vectors of 2^{program.qubits} values), more than the "
                   f"{_gib(limit)} allowed (QTC_STATE_MEMORY)")
        hint = (f"its largest network needs {need} qubits ('qubits auto'), and every qubit beyond "
                "doubles the memory and the time; or raise QTC_STATE_MEMORY (bytes)")
        if any(p.startswith("generator.") for p in self.settings):
            raise self.error(self.spec.generator, message, hint)        # names the --set
        problem = applies.Problem("generator", "qubits", message, hint)   # at 'qubits' if given
        raise problem_error(self.spec, problem).located(self.spec.file, self.spec.source)

    def models(self) -> list[str]:
        """The models this task runs: DiffQAS-QT, then the requested baselines."""
        return self._models(self.spec.compare.models)

    def baseline_models(self) -> list[str]:
        """DiffQAS-QT, every fixed candidate and the classical network, whatever `compare` says."""
        return self._models(("fixed", "classical"))

    def _models(self, compare) -> list[str]:
        out = [naming.DIFFQAS] if self.program is not None else []
        out += [naming.FOUND] if "found" in compare and self.program is not None else []
        out += [naming.fixed(k) for k in range(self._fixed_count())] if "fixed" in compare else []
        if "classical" in compare or self.program is None:
            out.append(naming.CLASSICAL)
        return self._found_supported(out)

    def select_models(self, text: str) -> list[str]:
        """The models a `--models diffqas,found,fixed,fixed:K,classical` list names, checked."""
        fixed = any(w.strip().startswith("fixed") for w in text.split(","))
        if fixed and self.program is not None and not self.program.weights.fixed_candidates():
            raise QtcError(f"--models {text}: a per-position space has no fixed baselines (its "
                           f"{self.program.weights.count:,} candidates are the whole product space); "
                           "'found' trains the architecture DiffQAS-QT finds (--models diffqas,found)")
        return self._found_supported(naming.parse_models(text, self._fixed_count(), quantum=self.program is not None))

    def _found_supported(self, models: list[str]) -> list[str]:
        """`found` trains in the supervised engine (classify, forecast), after diffqas."""
        from qtc.tasks.kinds import KINDS       # (the kinds import this module)
        supervised = [k for k, kind in KINDS.items() if kind.engine == "supervised"]
        if naming.FOUND in models and self.kind.engine != "supervised":
            raise QtcError(f"model 'found' runs in {' and '.join(supervised)} tasks, not in "
                           f"{self.spec.kind} ones (train the architecture diffqas reports as a space)")
        return models

    def _fixed_count(self) -> int:
        """Fixed candidates a run may train alone: every candidate of an enumerated space; none
        of a per-position space (its candidates are the whole product space, not listed)."""
        return len(self.candidate_labels())

    def twins(self, chosen) -> dict[str, str]:
        """{model: the twin trained for it} for chosen fixed candidates whose compiled node is
        shared with an earlier chosen one (the paper space's constants: configs 1 = 3 = 4 = 6
        uniform, 9 = 12 a delta on |0...0>). They train identically, bit for bit (the same seed
        gives the same mapping init and theta cannot matter), so a run trains the first member
        and reports it for every member."""
        if self.program is None:
            return {}
        pairs = {naming.fixed(k): naming.fixed(first) for k, first in tied_candidates(self.program).items()}
        return {m: twin for m, twin in pairs.items() if m in chosen and twin in chosen}

    def candidate_labels(self) -> tuple[str, ...]:
        """The candidates' labels of an enumerated space; none of a per-position one (its
        candidates are not listed) or of a task without a generator."""
        return self.program.weights.fixed_candidates() if self.program is not None else ()

    def model_label(self, model: str) -> str:
        return naming.label(model, self.candidate_labels())

    def found_program(self, weights) -> Program:
        """The architecture DiffQAS-QT found, alone: from its structural weights as reported
        (a list aligned with the program's weight labels), every position's favourite of a
        per-position space, the largest weight's candidate of an enumerated one."""
        return found_candidate(self.program, weights)

    def sources(self, model: str, *, backend: str | None = None, found: list[float] | None = None,
                steps: int | None = None) -> dict[str, torch.nn.Module]:
        """A fresh parameter source per network for `model` (uses the global torch RNG);
        `found`: DiffQAS-QT's structural weights, which the model "found" needs; `steps`: the
        training steps the run will take (the kernels' rendering weighs its build against them).

        A network with state of its own besides the flat vector (a Python model's frozen
        parameters and buffers: ModuleNet.fresh_state) has a fresh copy of it attached to its
        source as the submodule NET_STATE: the source's state_dict, so the checkpoint, resume,
        the selected epoch's snapshot and the export, carries it with the weights, and the
        network runs on it (`net_on`)."""
        out = {}
        for name, net in self.nets.items():
            state = net.fresh_state()
            run_on = net if state is None else net.on(state)
            if model == naming.CLASSICAL:
                out[name] = ClassicalParams(net.flatten_module(net.module()))
            else:
                options = GeneratorOptions.of(self.spec.generator)
                if backend:
                    options = replace(options, backend=backend)
                fixed = naming.fixed_index(model)
                program = self.program
                if model == naming.FOUND:
                    if found is None:
                        raise QtcError("the model 'found' needs DiffQAS-QT's structural weights: "
                                       "train diffqas first (--models diffqas,found)")
                    program, fixed = self.found_program(found), 0
                out[name] = QTGenerator(program, net.num_params, options, fixed=fixed,
                                        calibrate=partial(run_on.init_scale_for,
                                                          bound_offsets=self.many_classes()),
                                        steps=steps, tensors=net.tensor_sizes(), dtype=net.dtype)
            if state is not None:
                out[name].add_module(NET_STATE, state)
        return out

    def many_classes(self) -> bool:
        """A classifier of more than two classes: its generator's initial scale also bounds the
        offsets between outputs (output_scale; docs/results/ten_class_notes.md). Binary tasks
        keep the scale their specs' init_scale was tuned on. The network's output width is K:
        the task kind checks it against the data (a data file's classes are known once read)."""
        return self.spec.kind == "classify" and self.main_net.output_shape[0] > 2   # K outputs (checked)

    def parameter_report(self) -> str:
        """Target parameters, qubits, trainable parameters by part, compression ratio."""
        rows = [f"task {self.spec.name} ({self.spec.kind})"]
        for name, net in self.nets.items():
            rows.append(f"network {name}: {net.num_params:,} target parameters")
            if self.program is None:
                continue
            gen = QTGenerator(self.program, net.num_params, GeneratorOptions.of(self.spec.generator),
                              tensors=net.tensor_sizes())
            parts = gen.trainable_counts()
            total = sum(parts.values())
            prog = self.program
            rows += [f"  qubits                {prog.qubits} (2^{prog.qubits} = {2 ** prog.qubits:,} >= "
                     f"{net.num_params:,})",
                     f"  depth                 {prog.depth}",
                     f"  angles                {parts['angles']} = {' x '.join(map(str, prog.angle_shape))}",
                     f"  structural weights    {parts['structural weights']} "
                     f"({prog.weights.describe()})",
                     f"  mapping               {parts['mapping']}",
                     f"  total trainable       {total} = {' + '.join(str(v) for v in parts.values())}",
                     f"  compression           {net.num_params / total:.1f}x "
                     f"({net.num_params:,} -> {total})"]
        return "\n".join(rows)


NET_STATE = "network_state"   # a source's submodule: its network's own state (Built.sources)


def net_on(net, source: torch.nn.Module):
    """`net` running on `source`'s copy of its state, where it has one (Built.sources)."""
    state = getattr(source, NET_STATE, None)
    return net if state is None else net.on(state)


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.3g} GiB"


def tied_candidates(program: Program) -> dict[int, int]:
    """Candidate -> the first member of its compiled node, for nodes shared by several candidates."""
    return {m: node.members[0] for node in program.nodes for m in node.members[1:]}


def space_file(spec: TaskSpec) -> Path:
    """The generator's .qs file (looked up as qtc.dsl.spaces says: the task's folder, the space
    path, the bundled spaces), read only through the guard: the file must exist, and a link in
    the folder it was found in (beside the task, in a run folder, in a space-path folder) that
    leads out of that folder is refused at the generator line, before a byte of its target is
    read or echoed (issue 29)."""
    gen = spec.generator
    found = spaces.find(gen.space, spec.folder)
    if found is None:
        raise SpecError(spaces.not_found(gen.space, spec.folder), line=gen.line, column=gen.column,
                        file=spec.file, source=spec.source,
                        hint=f"put it beside the task, or name its folder with --space-path DIR "
                             f"or ${spaces.SPACE_PATH_VARIABLE}")
    path, base = found
    try:
        return guard.inside(base, path, "read")
    except QtcError as err:                   # located at the file name on the generator line
        text = (spec.source or "").splitlines()[gen.line - 1:gen.line] if gen.line else []
        at = text[0].find(gen.space, (gen.column or 1) - 1) + 1 if text else 0
        raise SpecError(str(err), line=gen.line, column=at or gen.column, file=spec.file,
                        source=spec.source) from None


def load_task(source, settings: dict[str, str] | None = None) -> Built:
    """Parse a .task (path or text), apply `settings` (--set), and check everything its spec
    decided (shapes, data, env, qubits) now, as located spec errors, before any data is made or
    any run folder written: the checks a spec's grammar cannot make (a data set or class that
    does not exist, a window that does not fit the network, an unknown environment), which would
    otherwise surface later with no place in the spec, are its task kind's `check`."""
    settings = dict(settings or {})
    built = Built(with_settings(parse_task(source), settings), settings)
    built.nets  # noqa: B018 - validate shapes now, with spec positions
    built.program  # noqa: B018 - the generator's space and qubit count, located
    built.kind.check(built)
    return built
