"""Task specs (.task): grammar in task.lark, parsed into validated pydantic models.

A statement is `keyword positional... key value ...`; which keywords exist, their positional
arguments and their options are declared by the pydantic models below (STATEMENTS), so a new
option is one new field. Networks are `network [name] { layer ... }` blocks. `--set` settings
are applied to a parsed spec by qtc.dsl.settings.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from lark import Token, Transformer, Tree, v_args
from pydantic import Field, ValidationError, field_validator

from qtc.dsl import applies
from qtc.dsl.common import parse_spec, parse_text, pos, transform
from qtc.dsl import data as data_clauses
from qtc.dsl.data import DataStmt
from qtc.dsl.located import Located, Stmt
from qtc.dsl.values import (BACKENDS, MAX_SEED, check_seeds, non_finite, pydantic_message,
                            select_problem)
from qtc.dsl.space import MAX_DEPTH, MAX_QUBITS
from qtc.errors import SpecError, did_you_mean

TASK_KINDS = ("classify", "forecast", "a3c")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")     # a task name becomes a folder name
ENV_ID = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")   # [namespace/]name[-vN], no module
MAX_LIST_DEPTH = 3          # `[[1, 2]]` is as deep as any statement needs; deeper is a mistake
MAX_NAME = 100              # a task name's characters: folder names stay far below NAME_MAX (255)
# (least, most or None) of the counts a spec and the command line both set: the statements'
# fields below and RunOptions (--epochs, --episodes, --seed, --workers, --limit) check these.
RANGES = {"epochs": (1, 1_000_000), "episodes": (1, 1_000_000_000), "seed": (0, MAX_SEED),
          "workers": (1, 256), "limit": (1, None)}

# Value types with their ranges: every option of every statement is one of these (or a choice).
Count = Annotated[int, Field(ge=1)]
Epochs, Episodes, Seed, Workers = (Annotated[int, Field(ge=RANGES[k][0], le=RANGES[k][1])]
                                   for k in ("epochs", "episodes", "seed", "workers"))
Fraction = Annotated[float, Field(ge=0, lt=1)]      # Adam's betas
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class Atom(Located):
    """A value with its position in the spec; `quoted`: written as a "string"."""
    value: Any
    quoted: bool = Field(default=False, exclude=True)


# --- statements ---------------------------------------------------------------------------
class GeneratorStmt(Stmt):
    """`generator hadamard_ent_rot.qs depth 15 mapping linear bits pm1 rescale qt [search sampled K]`

    `search sampled K` (a per-position space with `weights softmax per position`): each step
    draws K architectures from the per-position softmax distributions and trains on the mean of
    their losses (runtime/sampling.py), instead of the exact forms' one mixture of all."""
    positional: tuple[str, ...] = ("space",)
    # `search sampled K`: the number after the method is the `samples` field.
    follows: ClassVar[dict[tuple[str, str], str]] = {("search", "sampled"): "samples"}
    space: str
    qubits: int | Literal["auto"] = "auto"
    depth: int | None = None
    mapping: Literal["linear", "mlp"] = "linear"
    hidden: Annotated[int, Field(ge=1, le=4096)] = 16    # width of the 'mlp' mapping
    init_scale: float = 1.0           # multiplies the calibrated initial scale (QTGenerator: torch's output scale)
    bits: Literal["pm1", "01"] = "pm1"
    # what the mapping is told about a weight beside its x: its index bits (the paper) or only
    # which tensor it belongs to, one-hot, so that every per-weight pattern comes from the
    # circuit (runtime.generator; docs/results/ten_class_notes.md section 6)
    index: Literal["bits", "tensor"] = "bits"
    rescale: Literal["qt", "none"] = "qt"
    gamma: float = 0.1
    beta: float = 0.8
    alpha: float = 0.3
    # subtract the mean of the mapped outputs: of all of them (true, the original QT code) or of
    # each of the target's tensors (`tensor`): a generated tensor's mean is one coherent number
    # that the shared mapping moves for every weight at once, and on real (non-zero-mean) inputs
    # a negative one kills a layer (docs/results/ten_class_notes.md section 8)
    center: bool | Literal["tensor"] = True
    # where the calibrated initial scale goes: the mapping's output layer (its parameters start
    # small, so Adam's steps are large relative to them) or a fixed factor on the generated
    # weights (runtime.generator; docs/results/ten_class_notes.md)
    scale_at: Literal["mapping", "output"] = "mapping"
    backend: Literal[BACKENDS] = "auto"
    search: Literal["exact", "sampled"] = "exact"    # exact: the mixture of all candidates
    samples: Annotated[int, Field(ge=1, le=4096)] | None = None   # K of `search sampled K`

    @field_validator("space")
    @classmethod
    def _space(cls, v):
        # Only a .qs file beside the task (or bundled): a spec must not read other files.
        p = PurePosixPath(v.replace("\\", "/"))
        if p.suffix != ".qs" or p.is_absolute() or ".." in p.parts or ":" in v:
            raise ValueError("the search space must be a .qs file named relative to the task's "
                             "folder (no absolute path, no '..'), e.g. hadamard_ent_rot.qs")
        return v

    @field_validator("center", mode="before")
    @classmethod
    def _center(cls, v):
        if v in (True, False, "tensor") or str(v).lower() in ("true", "false"):
            return v
        raise ValueError("center must be true (the whole vector), false or tensor (each of the "
                         "target's tensors)")

    @field_validator("depth")
    @classmethod
    def _depth(cls, v):
        if v is not None and not 1 <= v <= MAX_DEPTH:  # refused before any layer is expanded
            raise ValueError(f"depth must be between 1 and {MAX_DEPTH}")
        return v

    @field_validator("qubits")
    @classmethod
    def _qubits(cls, v):
        if v != "auto" and not 1 <= v <= MAX_QUBITS:
            raise ValueError(f"qubits must be 'auto' or between 1 and {MAX_QUBITS}")
        return v


class TrainStmt(Stmt):
    """`train adam lr 1e-3 batch 100 epochs 30 seed 0 [seeds K | seeds [..]] [order sequential]
    [select last | train | validation F] [schedule constant | cosine | step N [gamma G]] [warmup W]`

    `select` says which epoch's checkpoint is reported and exported: the last, the one with the
    lowest training loss, or the one with the lowest loss on a validation block (the last
    fraction F of the training data, held out from training). Test data never choose. An a3c
    task takes `select last` or `select validation` with no fraction: its validation set is the
    evaluation episodes of the `a3c` statement (`eval_every`, `eval_episodes`).

    `schedule` and `warmup` (classify, forecast) set the learning rate of every optimizer step
    (qtc.tasks.engines.optim.lr_factor): constant (the default: the rate is never touched),
    cosine from lr to 0 over the run's budget, or times `gamma` every N epochs (`schedule step
    N`); `warmup W` ramps it up linearly over the first W epochs (a fraction allowed).
    """
    positional: tuple[str, ...] = ("optimizer",)
    # `select validation F`, `schedule step N`: the number after the word is that field.
    follows: ClassVar[dict[tuple[str, str], str]] = {("select", "validation"): "validation",
                                                     ("schedule", "step"): "every"}
    optimizer: Literal["adam", "rmsprop", "sgd"]
    lr: Positive = 1e-3
    batch: Annotated[int, Field(ge=1, le=10_000_000)] = 100
    epochs: Epochs = 10
    episodes: Episodes = 1000
    seed: Seed = 0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.99    # RMSprop's smoothing constant
    eps: Positive = 1e-8
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)
    momentum: NonNegative = 0.0
    weight_decay: NonNegative = 0.0
    seeds: int | tuple[int, ...] | None = None     # a count K (seeds 0..K-1) or a list
    order: Literal["shuffle", "sequential"] = "shuffle"
    select: Literal["last", "train", "validation"] = "last"
    validation: float | None = None                # F of `select validation F`
    schedule: Literal["constant", "cosine", "step"] = "constant"
    every: Epochs | None = None                    # N of `schedule step N`: epochs between decays
    gamma: Annotated[float, Field(gt=0, lt=1)] = 0.1   # `schedule step`'s factor every N epochs
    warmup: Positive | None = None                 # epochs of linear warm-up (a fraction allowed)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        return None if v is None else check_seeds(v)

    @field_validator("validation")
    @classmethod
    def _fraction(cls, v):
        if v is not None and not 0 < v < 1:
            raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), got {v}")
        return v


class CompareStmt(Stmt):
    """`compare fixed found classical`: baselines run next to DiffQAS-QT (`found`: the
    architecture it found, trained alone after it)."""
    positional: tuple[str, ...] = ("*models",)
    models: tuple[Literal["fixed", "found", "classical"], ...] = ()


class EnvStmt(Stmt):
    """`env MiniGrid-Empty-5x5-v0 max_steps 100`"""
    positional: tuple[str, ...] = ("id",)
    id: str
    max_steps: Annotated[int, Field(ge=1, le=1_000_000)] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        # gymnasium imports the module of a "module:Env-v0" id: a spec must not run code.
        if not ENV_ID.fullmatch(v):
            raise ValueError("an environment id is [namespace/]Name-vN (letters, digits, '_', "
                             "'-', '.'); a 'module:' part is not allowed")
        return v


class A3CStmt(Stmt):
    """`a3c workers 2 gamma 0.9 n_steps 5 entropy 0 window 1000 eval_every 1000 eval_episodes 10`"""
    workers: Workers | None = None
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.9     # the discount; 0 would learn nothing
    n_steps: Annotated[int, Field(ge=1, le=10_000)] = 5
    entropy: NonNegative = 0.0
    window: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    # `select validation`: every eval_every episodes, eval_episodes greedy episodes on held-out seeds
    eval_every: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1000
    eval_episodes: Annotated[int, Field(ge=1, le=100_000)] = 10


class ReportStmt(Stmt):
    """`report epochs [1, 15, 30, 100]`: which epochs get prediction plots (forecasting)."""
    epochs: tuple[Count, ...] = ()


STATEMENTS: dict[str, type[Stmt]] = {
    "data": DataStmt, "generator": GeneratorStmt, "train": TrainStmt, "compare": CompareStmt,
    "env": EnvStmt, "a3c": A3CStmt, "report": ReportStmt,
}


# --- networks -----------------------------------------------------------------------------
class Layer(Located):
    kind: str
    args: tuple[Atom, ...] = ()


class NetworkSpec(Located):
    name: str
    layers: tuple[Layer, ...]


class TaskSpec(Located):
    name: str
    # "python": a task built from Python objects (qtc.experiment), never parsed (not in TASK_KINDS)
    kind: Literal["classify", "forecast", "a3c", "python"]
    networks: dict[str, NetworkSpec]
    data: DataStmt | None = None
    generator: GeneratorStmt | None = None
    train: TrainStmt
    compare: CompareStmt = CompareStmt()
    env: EnvStmt | None = None
    a3c: A3CStmt = A3CStmt()
    report: ReportStmt = ReportStmt()
    file: str | None = None
    source: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.file).parent if self.file else Path.cwd()


# --- parse tree -> models -----------------------------------------------------------------
@v_args(meta=True)
class _ToAtoms(Transformer):
    def number(self, meta, c):
        text = str(c[0])
        digits = text.lstrip("+-")
        if digits.isdigit() and len(digits) > 1 and digits[0] == "0":
            # `bits 01` is a word that looks like a number: kept as written, so "01" is not
            # read as 1 (a field that wants an integer refuses the text with its location)
            return Atom(value=text, **pos(c[0]))
        value = int(text) if digits.isdigit() else float(text)
        return Atom(value=value, **pos(c[0]))

    def string(self, meta, c):
        return Atom(value=str(c[0])[1:-1], quoted=True, **pos(c[0]))

    def word(self, meta, c):
        return Atom(value=str(c[0]), **pos(c[0]))

    def arrow(self, meta, c):
        return Atom(value="->", **pos(c[0]))

    def list(self, meta, c):
        return Atom(value=[a.value for a in c], **pos(meta))

    def layer(self, meta, c):
        return Layer(kind=str(c[0]).lower(), args=tuple(c[1:]), **pos(meta))

    def network(self, meta, c):
        name = str(c[0]) if c and isinstance(c[0], Token) else "net"
        layers = tuple(x for x in c if isinstance(x, Layer))
        return ("network", NetworkSpec(name=name, layers=layers, **pos(meta)))

    def option(self, meta, c):
        return ("option", (c[0], list(c[1:]), pos(meta)))

    def header(self, meta, c):
        return ("header", (c[0], c[1]))


def parse_task(source, *, file: str | None = None) -> TaskSpec:
    """Parse and validate a .task spec (a path or the text). Raises SpecError."""
    return parse_spec(_build, source, file)


def _build(text: str, file: str | None) -> TaskSpec:
    try:
        tree = parse_text("task.lark", text, tuple(STATEMENTS) + ("network", "task"))
    except SpecError as err:
        raise _absolute_space(err, text) or err from None
    _check_nesting(tree)
    fields: dict[str, Any] = {"networks": {}, "file": file, "source": text}
    for kind, payload in (transform(_ToAtoms(), c) for c in tree.children):
        if kind == "header":
            name, task_kind = payload
            if not PLAIN_NAME.fullmatch(str(name)):
                raise SpecError(f"task name '{name}' is not a plain name: it names run folders, so "
                                "it may use only letters, digits, '_' and '-'", **pos(name),
                                hint=f"e.g. 'task {re.sub(r'[^A-Za-z0-9_-]+', '_', str(name))} : ...'")
            if len(str(name)) > MAX_NAME:
                raise SpecError(f"task name of {len(str(name))} characters: at most {MAX_NAME} (it "
                                "names run folders)", **pos(name), hint="use a shorter name")
            if str(task_kind) not in TASK_KINDS:
                raise SpecError(f"unknown task kind '{task_kind}'", **pos(task_kind),
                                hint=did_you_mean(str(task_kind), TASK_KINDS))
            fields.update(name=str(name), kind=str(task_kind), **pos(name))
        elif kind == "network":
            if payload.name in fields["networks"]:
                raise payload.error(f"network '{payload.name}' is defined twice",
                                    "name them apart: network actor { ... }")
            fields["networks"][payload.name] = payload
        else:
            key_tok, atoms, p = payload
            key = str(key_tok)
            if key not in STATEMENTS:
                raise SpecError(f"unknown statement '{key}'", **p,
                                hint=did_you_mean(key, list(STATEMENTS) + ["network"]))
            if key in fields:
                raise SpecError(f"'{key}' is given twice (first on line {fields[key].line})", **p)
            fields[key] = _statement(STATEMENTS[key], atoms, p)
    if not fields["networks"]:
        raise SpecError("the task has no network", line=1, column=1,
                        hint="add a block: network { input [1, 28, 28] ; ... }")
    if "train" not in fields:
        raise SpecError("the task has no 'train' statement", line=1, column=1,
                        hint="e.g. 'train adam lr 1e-3 batch 100 epochs 10 seed 0'")
    spec = TaskSpec(**fields)
    for problem in spec_problems(spec)[:1]:
        raise problem_error(spec, problem)
    return spec


def _absolute_space(err: SpecError, text: str) -> SpecError | None:
    """The parse error of `generator /abs/space.qs` (a path is not a bare word) said as what it
    is: a search space is named relative to the task's folder."""
    lines = text.splitlines()
    if err.line is None or not 0 < err.line <= len(lines) or not err.column:
        return None
    line = lines[err.line - 1]
    if not re.match(r"\s*generator\s", line) or line[err.column - 1:err.column] not in ("/", "~", "\\"):
        return None
    return SpecError("the generator's search space is an absolute path: spaces are relative to the "
                     "task's folder", line=err.line, column=err.column,
                     hint="put the .qs file beside the task (or in a folder below it) and name it "
                     "from there, e.g. 'generator hadamard_ent_rot.qs'")


def _check_nesting(tree: Tree) -> None:
    """Lists nested deeper than MAX_LIST_DEPTH are an error, found by an iterative walk before
    the (recursive) transformer could hit Python's recursion limit."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        depth += node.data == "list"
        if depth > MAX_LIST_DEPTH:
            raise SpecError(f"lists nested more than {MAX_LIST_DEPTH} deep", **pos(node.meta))
        stack.extend((c, depth) for c in node.children)


def spec_problems(spec: TaskSpec) -> list[applies.Problem]:
    """What is wrong with the statements together (also after --set changed one of them): report
    epochs the training does not reach, a selection rule the kind does not have, and any
    statement, option or network the kind, optimizer or mapping would ignore (dsl.applies)."""
    out = []
    late = [e for e in spec.report.epochs if e > spec.train.epochs]
    if late:
        out.append(applies.Problem("report", "epochs", f"'report' epoch {late[0]} is beyond the "
                                   f"training's {spec.train.epochs} epochs", "list epochs between 1 "
                                   "and the 'train' statement's epochs"))
    problem = select_problem(spec.kind, spec.train.select, spec.train.validation)
    if problem:
        out.append(applies.Problem("train", "select", problem, ""))
    if spec.kind != "a3c":           # an a3c task's schedule options are refused below (applies)
        out += schedule_problems(spec.train)
    return out + applies.spec_problems(spec)


def schedule_problems(train: TrainStmt) -> list[applies.Problem]:
    """A learning-rate schedule that would not do what it says within the training's epochs:
    `schedule step` without its N, a decay or a warm-up that the last epoch does not reach."""
    out = []
    if train.schedule == "step" and train.every is None:
        out.append(applies.Problem("train", "schedule", "'schedule step' needs the number of epochs "
                                   "between two decays of the rate", "write e.g. 'schedule step 10 "
                                   "gamma 0.5' (the rate times 0.5 every 10 epochs)"))
    elif train.schedule == "step" and train.every >= train.epochs:
        out.append(applies.Problem("train", "schedule", f"'schedule step {train.every}' would never "
                                   f"decay the rate within the training's {train.epochs} epochs",
                                   f"write N below {train.epochs}, or 'schedule constant'"))
    if train.warmup is not None and train.warmup >= train.epochs:
        out.append(applies.Problem("train", "warmup", f"'warmup {train.warmup:g}' is not shorter than "
                                   f"the training's {train.epochs} epochs: the rate would never reach "
                                   "lr", f"write fewer epochs of warm-up (a fraction such as 0.5 is "
                                   "allowed)"))
    return out


def problem_error(spec: TaskSpec, problem: applies.Problem) -> SpecError:
    """`problem` as a SpecError at the option it names (else its statement or network)."""
    at = spec.networks[problem.option] if problem.statement == "network" else getattr(spec, problem.statement)
    line, column = at.line, at.column
    name = problem.option
    if name == "options":                       # a series' own options: the first of them
        name = next(iter(at.options))
    lines = (spec.source or "").splitlines()
    if problem.statement != "network" and name and line and 0 < line <= len(lines):
        hit = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", lines[line - 1][(column or 1) - 1:])
        if hit:
            column = (column or 1) + hit.start()
    return SpecError(problem.message, line=line, column=column, hint=problem.hint or None)


def _statement(model: type[Stmt], atoms: list[Atom], p: dict) -> Stmt:
    names = model.model_fields["positional"].default
    values: dict[str, Any] = {}
    where: dict[str, Atom | list[Atom]] = {}  # field -> the atom(s) that gave its value
    rest = list(atoms)
    for name in names:
        if name.startswith("*"):  # variadic: all remaining atoms
            values[name[1:]] = [a.value for a in rest]
            where[name[1:]] = rest
            rest = []
            break
        if not rest:
            raise SpecError(f"'{statement_keyword(model)}' needs its {name}", **p,
                            hint=f"write: {statement_keyword(model)} <{name}> ...")
        where[name], values[name] = rest[0], rest.pop(0).value
    model.take_positional(values, rest, where, p)
    words = model.keywords                     # a spec word that is not its field's name
    shown = {field: word for word, field in words.items()}
    known = [shown.get(f, f) for f in model.model_fields
             if f not in ("line", "column", "positional", "options", "file", *values)]
    while rest:
        key = rest.pop(0)
        if isinstance(key.value, str) and key.value in words:
            key = key.model_copy(update={"value": words[key.value]})
        if isinstance(key.value, str) and key.value in where:
            first = where[key.value]
            raise key.error(f"option '{shown.get(key.value, key.value)}' is given twice in one '{statement_keyword(model)}' "
                            f"statement (first at column {first.column})", "keep one of them")
        if not isinstance(key.value, str) or shown.get(key.value, key.value) not in known:
            if model is DataStmt and isinstance(key.value, str) and not PLAIN_NAME.fullmatch(key.value):
                raise key.error(f"{key.value!r} stands where an option name goes: after the data set, "
                                f"'{statement_keyword(model)}' takes NAME VALUE pairs",
                                f"'{statement_keyword(model)}' options: {', '.join(known)}, and the data "
                                "set's own, e.g. 'window 8'")
            if model is DataStmt and isinstance(key.value, str) and rest:
                where[key.value] = rest[0]  # data-set specific option, checked by the task
                values.setdefault("options", {})[key.value] = data_clauses.option_value(rest.pop(0).value)
                continue
            raise key.error(f"unknown option {key.value!r} for '{statement_keyword(model)}'",
                            did_you_mean(str(key.value), known))
        if not rest:
            raise key.error(f"option '{shown.get(key.value, key.value)}' needs a value")
        where[key.value] = rest.pop(0)
        values[key.value] = where[key.value].value
        follows = getattr(model, "follows", {})
        follow = follows.get((key.value, str(values[key.value])))
        if follow and rest and isinstance(rest[0].value, (int, float)):
            where[follow] = rest.pop(0)
            values[follow] = where[follow].value
        elif rest and isinstance(rest[0].value, (int, float)) and any(k == key.value for k, _ in follows):
            # `search smapled 4`: the number belongs to a word that takes one; this one does not
            words = [w for k, w in follows if k == key.value]
            raise where[key.value].error(
                f"'{key.value} {values[key.value]}' takes no number after it (only "
                + " or ".join(f"'{key.value} {w}'" for w in words) + " does)",
                did_you_mean(str(values[key.value]), words))
        if key.value in ("options",):
            raise key.error("'options' is not an option name")
    for name, value in {**values, **values.get("options", {})}.items():
        for v in (value if isinstance(value, list) else [value]):
            if non_finite(v):
                atom = where.get(name)
                at = atom.position() if atom else p
                raise SpecError(f"'{name}' must be a finite number, got {v}", **at)
    try:
        stmt = model(**values, **p)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        atom = where.get(field)
        if isinstance(atom, list):  # variadic: the offending item, else the first
            k = first["loc"][1] if len(first["loc"]) > 1 and isinstance(first["loc"][1], int) else 0
            atom = atom[k] if k < len(atom) else None
        at = atom.position() if atom else p
        got = f" (got {atom.value!r})" if atom is not None else ""
        raise SpecError(f"'{statement_keyword(model)}' option '{shown.get(field, field)}': "
                        f"{pydantic_message(first)}{got}",
                        **at) from None
    if model is DataStmt:
        data_clauses.check(stmt, where)
    return stmt


def statement_keyword(model: type[Stmt]) -> str:
    """The keyword that introduces a statement of this model (the STATEMENTS key)."""
    return next(k for k, m in STATEMENTS.items() if m is model)


def setting_value(text: str) -> Any:
    """A value written as in a spec (`3e-4`, `sgd`, `[3, 7]`; several words make a list)."""
    tree = parse_text("task.lark", text, start="values")
    atoms = [a.value for a in transform(_ToAtoms(), tree).children]
    return atoms[0] if len(atoms) == 1 else atoms
