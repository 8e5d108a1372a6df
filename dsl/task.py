"""Task specs (.task): grammar in task.lark, parsed into validated pydantic models.

A statement is `keyword positional... key value ...`; which keywords exist, their positional
arguments and their options are declared by the pydantic models below (STATEMENTS), so a new
option is one new field. Networks are `network [name] { layer ... }` blocks.
"""
from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from lark import Token, Transformer, v_args
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from qtc.dsl.common import parse_spec, parse_text, pos, transform
from qtc.errors import SpecError, did_you_mean

TASK_KINDS = ("classify", "forecast", "a3c")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")     # a task name becomes a folder name
ENV_ID = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")   # [namespace/]name[-vN], no module


class Atom(BaseModel):
    """A value with its position in the spec."""
    model_config = ConfigDict(frozen=True)
    value: Any
    line: int | None = None
    column: int | None = None


class Stmt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    line: int | None = None
    column: int | None = None
    positional: tuple[str, ...] = ()  # class-level: names of positional arguments


# --- statements ---------------------------------------------------------------------------
class DataStmt(Stmt):
    """`data mnist classes [1, 5] normalize [0.5, 0.5]` / `data bessel points 1000` / ..."""
    positional: tuple[str, ...] = ("dataset",)
    dataset: str
    classes: tuple[int, int] | None = None
    normalize: tuple[float, float] = (0.5, 0.5)
    limit: int | None = None           # keep the first N examples of each split (smoke runs)
    download: bool = False
    window: int = 4
    split: float = 0.67
    drop_last: bool = False
    options: dict[str, Any] = {}      # data-set specific generator options (series)


class GeneratorStmt(Stmt):
    """`generator hadamard_ent_rot.qs depth 15 mapping linear bits pm1 rescale qt`"""
    positional: tuple[str, ...] = ("space",)
    space: str
    qubits: int | Literal["auto"] = "auto"
    depth: int | None = None
    mapping: Literal["linear", "mlp"] = "linear"
    hidden: int = 16                  # width of the 'mlp' mapping
    init_scale: float = 1.0           # multiplies the calibrated initial scale (QTGenerator: torch's output scale)
    bits: Literal["pm1", "01"] = "pm1"
    rescale: Literal["qt", "none"] = "qt"
    gamma: float = 0.1
    beta: float = 0.8
    alpha: float = 0.3
    center: bool = True               # subtract the mean of the mapped outputs (original QT code)
    backend: str = "auto"

    @field_validator("space")
    @classmethod
    def _space(cls, v):
        # Only a .qs file beside the task (or bundled): a spec must not read other files.
        p = PurePosixPath(v.replace("\\", "/"))
        if p.suffix != ".qs" or p.is_absolute() or ".." in p.parts or ":" in v:
            raise ValueError("the search space must be a .qs file named relative to the task's "
                             "folder (no absolute path, no '..'), e.g. hadamard_ent_rot.qs")
        return v

    @field_validator("depth")
    @classmethod
    def _depth(cls, v):
        if v is not None and v < 1:
            raise ValueError("depth must be at least 1")
        return v

    @field_validator("qubits")
    @classmethod
    def _qubits(cls, v):
        if v != "auto" and not 1 <= v <= 30:
            raise ValueError("qubits must be 'auto' or between 1 and 30")
        return v


class TrainStmt(Stmt):
    """`train adam lr 1e-3 batch 100 epochs 30 seed 0`"""
    positional: tuple[str, ...] = ("optimizer",)
    optimizer: Literal["adam", "rmsprop", "sgd"]
    lr: float = 1e-3
    batch: int = 100
    epochs: int = 10
    episodes: int = 1000
    seed: int = 0
    alpha: float = 0.99
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0

    @field_validator("lr", "batch", "epochs", "episodes")
    @classmethod
    def _positive(cls, v):
        if v <= 0:
            raise ValueError("must be positive")
        return v


class CompareStmt(Stmt):
    """`compare fixed classical`: baselines run next to DiffQAS-QT."""
    positional: tuple[str, ...] = ("*models",)
    models: tuple[Literal["fixed", "classical"], ...] = ()


class EnvStmt(Stmt):
    """`env MiniGrid-Empty-5x5-v0 max_steps 100`"""
    positional: tuple[str, ...] = ("id",)
    id: str
    max_steps: int | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        # gymnasium imports the module of a "module:Env-v0" id: a spec must not run code.
        if not ENV_ID.fullmatch(v):
            raise ValueError("an environment id is [namespace/]Name-vN (letters, digits, '_', "
                             "'-', '.'); a 'module:' part is not allowed")
        return v


class A3CStmt(Stmt):
    """`a3c workers 2 gamma 0.9 n_steps 5 entropy 0 window 1000`"""
    workers: int | None = None
    gamma: float = 0.9
    n_steps: int = 5
    entropy: float = 0.0
    window: int = 1000


class ReportStmt(Stmt):
    """`report epochs [1, 15, 30, 100]`: which epochs get prediction plots (forecasting)."""
    epochs: tuple[int, ...] = ()


STATEMENTS: dict[str, type[Stmt]] = {
    "data": DataStmt, "generator": GeneratorStmt, "train": TrainStmt, "compare": CompareStmt,
    "env": EnvStmt, "a3c": A3CStmt, "report": ReportStmt,
}


# --- networks -----------------------------------------------------------------------------
class Layer(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: str
    args: tuple[Atom, ...] = ()
    line: int | None = None
    column: int | None = None

    def error(self, message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, line=self.line, column=self.column, hint=hint)


class NetworkSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    layers: tuple[Layer, ...]
    line: int | None = None
    column: int | None = None


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    kind: Literal["classify", "forecast", "a3c"]
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
    line: int | None = None
    column: int | None = None

    @property
    def folder(self) -> Path:
        return Path(self.file).parent if self.file else Path.cwd()

    def space_path(self) -> Path:
        """The generator's .qs file, relative to the task file (or the bundled specs)."""
        p = Path(self.generator.space)
        for base in (self.folder, Path(__file__).resolve().parent.parent / "specs"):
            if (base / p).is_file():
                return base / p
        return self.folder / p


# --- parse tree -> models -----------------------------------------------------------------
@v_args(meta=True)
class _ToAtoms(Transformer):
    def number(self, meta, c):
        text = str(c[0])
        value = int(text) if text.lstrip("+-").isdigit() else float(text)
        return Atom(value=value, **pos(c[0]))

    def string(self, meta, c):
        return Atom(value=str(c[0])[1:-1], **pos(c[0]))

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
    tree = parse_text("task.lark", text, tuple(STATEMENTS) + ("network", "task"))
    fields: dict[str, Any] = {"networks": {}, "file": file, "source": text}
    for kind, payload in (transform(_ToAtoms(), c) for c in tree.children):
        if kind == "header":
            name, task_kind = payload
            if not PLAIN_NAME.fullmatch(str(name)):
                raise SpecError(f"task name '{name}' is not a plain name: it names run folders, so "
                                "it may use only letters, digits, '_' and '-'", **pos(name),
                                hint=f"e.g. 'task {re.sub(r'[^A-Za-z0-9_-]+', '_', str(name))} : ...'")
            if str(task_kind) not in TASK_KINDS:
                raise SpecError(f"unknown task kind '{task_kind}'", **pos(task_kind),
                                hint=did_you_mean(str(task_kind), TASK_KINDS))
            fields.update(name=str(name), kind=str(task_kind), **pos(name))
        elif kind == "network":
            if payload.name in fields["networks"]:
                raise SpecError(f"network '{payload.name}' is defined twice", line=payload.line,
                                column=payload.column, hint="name them apart: network actor { ... }")
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
    return TaskSpec(**fields)


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
            raise SpecError(f"'{_keyword(model)}' needs its {name}", **p,
                            hint=f"write: {_keyword(model)} <{name}> ...")
        where[name], values[name] = rest[0], rest.pop(0).value
    known = [f for f in model.model_fields if f not in ("line", "column", "positional", *values)]
    while rest:
        key = rest.pop(0)
        if not isinstance(key.value, str) or key.value not in known:
            if model is DataStmt and isinstance(key.value, str) and rest:
                where[key.value] = rest[0]  # data-set specific option, checked by the task
                values.setdefault("options", {})[key.value] = rest.pop(0).value
                continue
            raise SpecError(f"unknown option {key.value!r} for '{_keyword(model)}'", line=key.line,
                            column=key.column, hint=did_you_mean(str(key.value), known))
        if not rest:
            raise SpecError(f"option '{key.value}' needs a value", line=key.line, column=key.column)
        where[key.value] = rest.pop(0)
        values[key.value] = where[key.value].value
        if key.value in ("options",):
            raise SpecError("'options' is not an option name", line=key.line, column=key.column)
    for name, value in values.items():
        for v in (value if isinstance(value, list) else [value]):
            if isinstance(v, float) and not math.isfinite(v):
                atom = where.get(name)
                raise SpecError(f"'{name}' must be a finite number, got {v}",
                                **({"line": atom.line, "column": atom.column} if atom else p))
    try:
        return model(**values, **p)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        atom = where.get(field)
        if isinstance(atom, list):  # variadic: the offending item, else the first
            k = first["loc"][1] if len(first["loc"]) > 1 and isinstance(first["loc"][1], int) else 0
            atom = atom[k] if k < len(atom) else None
        at = {"line": atom.line, "column": atom.column} if atom else p
        got = f" (got {atom.value!r})" if atom is not None else ""
        raise SpecError(f"'{_keyword(model)}' option '{field}': {_pydantic_message(first)}{got}",
                        **at) from None


def _keyword(model: type[Stmt]) -> str:
    return next(k for k, m in STATEMENTS.items() if m is model)


def _pydantic_message(e: dict) -> str:
    msg = e.get("msg", "invalid value")
    ctx = e.get("ctx") or {}
    if e.get("type") == "literal_error" and "expected" in ctx:
        return f"expected {ctx['expected']}"
    if e.get("type") == "missing" and len(e.get("loc", ())) > 1:
        return "too few items"
    return msg.removeprefix("Value error, ")
