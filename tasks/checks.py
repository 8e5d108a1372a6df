"""What a task spec decided that its grammar cannot check, checked when the task is loaded.

A data set or class that does not exist, a window that does not fit the network's input, an
environment gymnasium does not know: each of these would otherwise surface later (when the data
is read, the first batch runs, a worker starts) as an error with no place in the spec. Here each
one is a SpecError at the spec line that caused it, raised by `load_task` before any data is
made or any run folder written, so `qtc compile` finds them too.
"""
from __future__ import annotations

from qtc.dsl.task import TaskSpec
from qtc.errors import SpecError, did_you_mean


def check_task(built) -> None:
    """Raise a located SpecError for the first thing the spec decided that cannot work."""
    {"classify": _classify, "forecast": _forecast, "a3c": _a3c}[built.spec.kind](built)


def _error(spec: TaskSpec, at, message: str, hint: str | None = None) -> SpecError:
    """`message` at `at` (a statement, layer or network; None: the task's first line)."""
    line, column = (at.line, at.column) if at is not None and at.line else (1, 1)
    return SpecError(message, file=spec.file, source=spec.source, line=line, column=column, hint=hint)


def _first_net(built):
    return built.nets["net"] if "net" in built.nets else next(iter(built.nets.values()))


def _check_io(built, name: str, want_in: tuple, want_out: tuple, why: str) -> None:
    """The network `name` takes `want_in` and gives `want_out`."""
    spec, net = built.spec, built.nets[name]
    if tuple(net.input_shape) != want_in:
        raise _error(spec, spec.networks[name].layers[0],
                     f"network '{name}' takes input {list(net.input_shape)} but {why} gives "
                     f"{list(want_in)}", f"write 'input {list(want_in)}'")
    if tuple(net.output_shape) != want_out:
        raise _error(spec, spec.networks[name].layers[-1],
                     f"network '{name}' gives output {list(net.output_shape)} but {why} needs "
                     f"{list(want_out)}")


# --- classify -------------------------------------------------------------------------------
def _classify(built) -> None:
    from qtc.tasks.data.images import CLASSES, DATASETS
    spec, data = built.spec, built.spec.data
    example = "'data mnist classes [1, 5]' (or fashion_mnist)"
    if data is None:
        raise _error(spec, None, "a classify task needs a 'data' statement", f"e.g. {example}")
    if data.dataset not in DATASETS:
        raise _error(spec, data, f"unknown image data set '{data.dataset}'",
                     did_you_mean(data.dataset, DATASETS))
    if data.classes is None:
        raise _error(spec, data, "a classify task needs its two classes", f"e.g. {example}")
    absent = [c for c in data.classes if c not in CLASSES]
    if absent:
        raise _error(spec, data, f"class {absent[0]} does not exist in {data.dataset} "
                     f"(classes {CLASSES[0]}..{CLASSES[-1]})")
    if data.classes[0] == data.classes[1]:
        raise _error(spec, data, f"the two classes must differ, got {list(data.classes)}")
    name = _first_net(built).name
    _check_io(built, name, (1, 28, 28), (2,), f"{data.dataset}'s binary classification")


# --- forecast -------------------------------------------------------------------------------
def _forecast(built) -> None:
    from qtc.tasks.data import series as S
    from qtc.tasks.kinds.forecast import load_series
    spec, data = built.spec, built.spec.data
    if data is None:
        raise _error(spec, None, "a forecast task needs a 'data' statement",
                     "e.g. 'data bessel window 4 split 0.67'")
    if data.dataset not in S.NAMES:
        raise _error(spec, data, f"unknown time-series data set '{data.dataset}'",
                     did_you_mean(data.dataset, S.NAMES))
    load_series(built)  # every option named and in range; sizes bounded by series.MAX_POINTS
    name = _first_net(built).name
    _check_io(built, name, (data.window, 1), (1,), f"the data's 'window {data.window}'")


# --- a3c ------------------------------------------------------------------------------------
def _a3c(built) -> None:
    from qtc.tasks.engines.a3c.algorithm import OBS_SIZE
    spec = built.spec
    if spec.env is None:
        raise _error(spec, None, "an a3c task needs an 'env' statement",
                     "e.g. 'env MiniGrid-Empty-5x5-v0'")
    actions = _env_actions(spec)
    missing = [n for n in ("actor", "critic") if n not in built.nets]
    if missing:
        raise _error(spec, next(iter(spec.networks.values())),
                     f"an a3c task needs networks named actor and critic; missing {', '.join(missing)} "
                     f"(found {', '.join(built.nets)})", "write 'network actor { ... }'")
    _check_io(built, "actor", (OBS_SIZE,), (actions,), f"{spec.env.id}'s flattened 7x7x3 view "
              f"and its {actions} actions")
    _check_io(built, "critic", (OBS_SIZE,), (1,), f"{spec.env.id}'s view and one value")


def _env_actions(spec: TaskSpec) -> int:
    """The number of actions of the spec's env, after checking gymnasium knows its id. Only the
    registry is read: no environment is made and no entry-point module imported."""
    import gymnasium
    import minigrid  # noqa: F401 - registers the MiniGrid-* ids
    from minigrid.core.actions import Actions

    env = spec.env
    if env.id not in gymnasium.registry:
        grids = [k for k in gymnasium.registry if k.startswith("MiniGrid-")]
        raise _error(spec, env, f"gymnasium has no environment '{env.id}'",
                     did_you_mean(env.id, grids) or "MiniGrid ids look like 'MiniGrid-Empty-5x5-v0'")
    if not gymnasium.registry[env.id].id.startswith("MiniGrid-"):
        raise _error(spec, env, f"'{env.id}' is not a MiniGrid environment; the a3c task reads "
                     "MiniGrid's 7x7x3 view", "e.g. 'env MiniGrid-Empty-5x5-v0'")
    return len(Actions)
