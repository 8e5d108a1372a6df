"""Which option applies where: the one table of task kinds, optimizers and commands.

The README promises "a flag given is used or refused". An option that a task kind, an optimizer
or a mapping never reads (`betas` with rmsprop, `limit` on a series, `--episodes` on a forecast
run, a second network in a classifier) would otherwise be accepted and silently ignored, so
every option of every task statement and every run flag has a row here saying where it applies,
and one check each for specs (`spec_problems`, run by dsl.task and dsl.settings: located, or
naming the --set) and for flags (`refuse_flags`, run by the runner for qtc run, sweep, table2 and
--resume) refuses the others with what applies instead. The table is data: a new option is a
new row (tests/test_applies.py fails on a statement field without one), and the reference in
docs/spec-language.md is `markdown()`'s output (the same test compares them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from qtc.errors import QtcError

ALL = ("classify", "forecast", "a3c")
SUPERVISED = ("classify", "forecast")


@dataclass(frozen=True)
class Row:
    """Where one option applies: the task kinds, and optionally only when another option of the
    same statement has one of some values (`when`); `instead`: what does its job elsewhere."""
    kinds: tuple[str, ...] = ALL
    when: tuple[str, tuple[str, ...]] | None = None
    instead: str = ""


# --- the table ---------------------------------------------------------------------------------
# Statements (`data ...`, `env ...`): where a statement applies at all.
STATEMENTS: dict[str, Row] = {
    "data": Row(SUPERVISED, instead="an a3c task's data are its episodes: 'env ID'"),
    "generator": Row(), "train": Row(), "compare": Row(),
    "env": Row(("a3c",), instead="a classify or forecast task reads a 'data' statement"),
    "a3c": Row(("a3c",), instead="workers, discount and rollouts are A3C's; a supervised task "
               "trains with the 'train' statement's batch and epochs (--jobs: models at once)"),
    "report": Row(("forecast",), instead="prediction plots are a forecast's; classify and a3c runs "
                  "plot every epoch or episode in plots/"),
}
# Options of the statements: (statement, option) -> where. `options` of `data` are a series'
# own (points, order, ...). Positional arguments (the data set, the optimizer) always apply.
OPTIONS: dict[tuple[str, str], Row] = {
    ("data", "dataset"): Row(SUPERVISED),
    ("data", "classes"): Row(("classify",)),
    ("data", "normalize"): Row(("classify",), instead="a series is min-max scaled by its 'scale' option"),
    ("data", "limit"): Row(("classify",), instead="a series' length is its own option (e.g. "
                           "'points', 'length'); --max-batches shortens any supervised run"),
    ("data", "download"): Row(("classify",), instead="series are generated, never downloaded"),
    ("data", "window"): Row(("forecast",)),
    ("data", "split"): Row(SUPERVISED, instead="image sets come split into train and test"),
    ("data", "drop_last"): Row(("forecast",)),
    ("data", "file"): Row(SUPERVISED),       # a data file's own options: dsl.data.SOURCE_OPTIONS
    ("data", "column_name"): Row(("forecast",)), ("data", "columns"): Row(("forecast",)),
    ("data", "target"): Row(("forecast",)),
    ("data", "options"): Row(("forecast",), instead="an image set takes classes, normalize, limit, "
                             "download"),
    ("generator", "space"): Row(), ("generator", "qubits"): Row(), ("generator", "depth"): Row(),
    ("generator", "mapping"): Row(),
    ("generator", "hidden"): Row(when=("mapping", ("mlp",)), instead="the linear mapping has no "
                                 "hidden layer: write 'mapping mlp hidden N'"),
    ("generator", "init_scale"): Row(), ("generator", "bits"): Row(), ("generator", "index"): Row(), ("generator", "rescale"): Row(),
    ("generator", "gamma"): Row(when=("rescale", ("qt",))),
    ("generator", "beta"): Row(when=("rescale", ("qt",))),
    ("generator", "alpha"): Row(when=("rescale", ("qt",))),
    ("generator", "center"): Row(), ("generator", "backend"): Row(), ("generator", "scale_at"): Row(),
    ("generator", "search"): Row(SUPERVISED, instead="an a3c task searches the exact mixture of its space"),
    ("generator", "samples"): Row(SUPERVISED, when=("search", ("sampled",)),
                                  instead="the number of architectures drawn per step: write 'search sampled K'"),
    ("train", "optimizer"): Row(), ("train", "lr"): Row(),
    ("train", "batch"): Row(SUPERVISED, instead="an A3C update is 'a3c n_steps N' environment steps"),
    ("train", "epochs"): Row(SUPERVISED, instead="an a3c task's budget is 'episodes N'"),
    ("train", "episodes"): Row(("a3c",), instead="a supervised task's budget is 'epochs N'"),
    ("train", "seed"): Row(), ("train", "seeds"): Row(),
    ("train", "alpha"): Row(when=("optimizer", ("rmsprop",))),
    ("train", "eps"): Row(when=("optimizer", ("adam", "rmsprop"))),
    ("train", "betas"): Row(when=("optimizer", ("adam",))),
    ("train", "momentum"): Row(when=("optimizer", ("rmsprop", "sgd"))),
    ("train", "weight_decay"): Row(),
    ("train", "order"): Row(SUPERVISED, instead="A3C workers play episodes in their own order"),
    ("train", "select"): Row(), ("train", "validation"): Row(),
    ("train", "schedule"): Row(SUPERVISED, instead="an a3c task's workers step one shared "
                               "optimizer at the constant lr"),
    ("train", "every"): Row(SUPERVISED, when=("schedule", ("step",)),
                            instead="the epochs between decays: write 'schedule step N'"),
    ("train", "gamma"): Row(SUPERVISED, when=("schedule", ("step",)),
                            instead="the factor of 'schedule step N gamma G'"),
    ("train", "warmup"): Row(SUPERVISED, instead="an a3c task's workers step one shared optimizer "
                             "at the constant lr"),
    ("compare", "models"): Row(),
    ("env", "id"): Row(("a3c",)), ("env", "max_steps"): Row(("a3c",)),
    **{("a3c", k): Row(("a3c",)) for k in ("workers", "gamma", "n_steps", "entropy", "window",
                                           "eval_every", "eval_episodes")},
    ("report", "epochs"): Row(("forecast",)),
}
# Two options of one statement that cannot both be used: the second would be ignored.
EXCLUSIVE: dict[tuple[str, str, str], str] = {
    ("train", "seeds", "seed"): "'seeds' runs every seed it names, so 'seed' would be ignored; "
                                "name the seeds: 'seeds [7, 8]'",
}
# The networks a kind trains: a count of blocks (any name), or the names it needs.
NETWORKS: dict[str, int | tuple[str, ...]] = {"classify": 1, "forecast": 1, "a3c": ("actor", "critic")}
# Run flags (RunOptions' fields; the flag is --name-with-dashes), for qtc run, sweep, table2.
FLAGS: dict[str, Row] = {
    "models": Row(), "seed": Row(), "select": Row(), "backend": Row(), "threads": Row(),
    "tensorboard": Row(),
    "epochs": Row(SUPERVISED, instead="an a3c run's budget is --episodes"),
    "episodes": Row(("a3c",), instead="a supervised run's budget is --epochs"),
    "workers": Row(("a3c",), instead="--jobs trains a supervised task's models at once"),
    "jobs": Row(SUPERVISED, instead="an a3c task trains its models in turn, each with --workers "
                "worker processes"),
    "limit": Row(("classify",), instead="--max-batches shortens every epoch of a supervised run; "
                 "a series' length is a data option (--set data.points=300)"),
    "max_batches": Row(SUPERVISED, instead="--episodes shortens an a3c run"),
    "data_root": Row(SUPERVISED, instead="an a3c task reads no data files"),
    "download": Row(("classify",), instead="series are generated, never downloaded"),
    "perturb": Row(SUPERVISED, instead="an a3c run's initial parameters are built in every worker "
                   "process; its spread is the seeds'"),
}
SPELLED = {"column_name": "column"}     # a field whose spec word differs (dsl.data.DataStmt.keywords)
# Commands made for some kinds only.
COMMANDS: dict[str, tuple[str, ...]] = {"table2": ("forecast",)}


# --- the checks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """An option given where it does not apply: `statement` (or 'network') and `option` (None:
    the whole statement; a network's name) locate it."""
    statement: str
    option: str | None
    message: str
    hint: str


def _kinds(kinds: tuple[str, ...]) -> str:
    return " and ".join(kinds) + " tasks" if len(kinds) < len(ALL) else "every task"


def given_options(stmt) -> list[str]:
    """The options a statement was given (in the spec or by --set), not its defaults."""
    names = [n for n in type(stmt).model_fields if n in stmt.model_fields_set
             and n not in ("line", "column", "positional", "options")]
    return names + (["options"] if getattr(stmt, "options", None) else [])


def applying(kind: str, statement: str, stmt) -> list[str]:
    """The options of `statement` that apply to a `kind` task, given `stmt`'s other values."""
    return [o for (s, o), row in OPTIONS.items() if s == statement and _applies(row, kind, stmt)
            and o not in stmt.positional and f"*{o}" not in stmt.positional]


def _applies(row: Row, kind: str, stmt) -> bool:
    return kind in row.kinds and (row.when is None or getattr(stmt, row.when[0]) in row.when[1])


def spec_problems(spec) -> list[Problem]:
    """Every statement, option and network of `spec` (a TaskSpec) that its kind, optimizer or
    mapping would ignore."""
    kind, out = spec.kind, []
    for key, row in STATEMENTS.items():
        if key not in spec.model_fields_set or getattr(spec, key) is None:
            continue
        if kind not in row.kinds:
            out.append(Problem(key, None, f"a {kind} task takes no '{key}' statement (it applies to "
                               f"{_kinds(row.kinds)}): it would be ignored",
                               f"remove it; {row.instead}" if row.instead else "remove it"))
            continue
        stmt = getattr(spec, key)
        given = given_options(stmt)
        for name in given:
            row = OPTIONS[key, name]
            if kind not in row.kinds:
                what = "a series' own options" if name == "options" else f"'{SPELLED.get(name, name)}'"
                out.append(Problem(key, name, f"{what} of '{key}' does not apply to {kind} tasks "
                                   f"(only to {_kinds(row.kinds)}): it would be ignored",
                                   _instead(row, kind, key, stmt)))
            elif row.when and getattr(stmt, row.when[0]) not in row.when[1]:
                other, values = row.when
                out.append(Problem(key, name, f"'{name}' applies only with {other} "
                                   f"{' or '.join(values)}, not with {other} {getattr(stmt, other)}: "
                                   "it would be ignored", _instead(row, kind, key, stmt)))
        for (s, first, second), why in EXCLUSIVE.items():
            if s == key and first in given and second in given:
                out.append(Problem(key, second, f"'{first}' and '{second}' together: {why}",
                                   f"keep one of them in '{key}'"))
    networks, want = spec.networks, NETWORKS[kind]
    extra = list(networks)[want:] if isinstance(want, int) else [n for n in networks if n not in want]
    if extra:
        a = "an" if kind[0] in "aeiou" else "a"
        if isinstance(want, int):
            needs = f"{want} network" + "s" * (want > 1)
        else:
            missing = [n for n in want if n not in networks]
            needs = f"networks named {' and '.join(want)}" + (f"; missing {', '.join(missing)}" if missing else "")
        out.append(Problem("network", extra[0], f"{a} {kind} task trains {needs}: network '{extra[0]}' "
                           "would be ignored", "remove it or rename it (or give it its own task)"))
    return out


def _instead(row: Row, kind: str, key: str, stmt) -> str:
    takes = ", ".join(applying(kind, key, stmt))
    what = f"'{key}' in a {kind} task"
    if row.when:          # `train adam takes`, `train schedule cosine takes` (a positional is bare)
        name, value = row.when[0], getattr(stmt, row.when[0])
        what = f"{key} {value}" if name in stmt.positional else f"{key} {name} {value}"
    return "; ".join(x for x in (row.instead, f"{what} takes: {takes}") if x)


def refuse_flags(kind: str, given: Iterable[str], task: str = "") -> None:
    """Raise a QtcError for the first run flag in `given` (RunOptions field names) that a `kind`
    task does not use; every flag must have a row in FLAGS. A Python experiment (kind "python",
    qtc.experiment) is not in the table: its run() takes only keywords that apply to it (the
    supervised flags, --limit cutting its tensors)."""
    if kind == "python":
        return
    for name in given:
        row = FLAGS[name]
        if kind not in row.kinds:
            flag = "--" + name.replace("_", "-")
            this = f"{task} is a {kind} task" if task else f"this is a {kind} task"
            raise QtcError(f"{flag} does not apply to {kind} tasks (only to {_kinds(row.kinds)}; "
                           f"{this}): it would be ignored, so it is refused"
                           + (f"\nhint: {row.instead}" if row.instead else ""))


def refuse_command(command: str, kind: str, what: str) -> None:
    """Raise a QtcError unless `command` is made for `kind` tasks (`what`: the spec or folder)."""
    kinds = COMMANDS[command]
    if kind not in kinds:
        raise QtcError(f"qtc {command} runs {_kinds(kinds)}; {what} is a {kind} task"
                       f"\nhint: qtc run and qtc sweep run any task")


# --- the reference ----------------------------------------------------------------------------
def markdown() -> str:
    """The table as the markdown docs/spec-language.md holds (tests/test_applies.py compares)."""
    def cells(row: Row) -> str:
        marks = " | ".join("yes" if k in row.kinds else "-" for k in ALL)
        when = f"{row.when[0]} {' or '.join(row.when[1])}" if row.when else ""
        return f"{marks} | {when} |"

    head = "| {} | classify | forecast | a3c | only with |\n|---|---|---|---|---|"
    lines = [head.format("statement, option")]
    for key, row in STATEMENTS.items():
        lines.append(f"| `{key}` | {cells(row)}")
        for (s, o), orow in OPTIONS.items():
            if s == key:
                name = "a series' own options" if o == "options" else f"`{SPELLED.get(o, o)}`"
                lines.append(f"| &nbsp;&nbsp;{name} | {cells(orow)}")
    lines += ["", head.format("flag")]
    lines += [f"| `--{n.replace('_', '-')}` | {cells(r)}" for n, r in FLAGS.items()]
    lines += ["", head.format("command")]
    lines += [f"| `qtc {c}` | {cells(Row(k))}" for c, k in COMMANDS.items()]
    nets = "; ".join(f"{k}: {v if isinstance(v, int) else ' and '.join(v)}" for k, v in NETWORKS.items())
    excl = "; ".join(f"`{a}` with `{b}` in `{s}`" for s, a, b in EXCLUSIVE)
    return "\n".join(lines) + f"\n\nNetworks per kind: {nets}. Never together: {excl}.\n"
