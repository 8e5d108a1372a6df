"""The five forecasting data sets of the paper (Table II), generated in plain numpy.

    bessel      J2(x) on linspace(2, 100, 1000)                          min-max to [-1, 1]
    damped_shm  theta' of a damped pendulum, t = linspace(0, 20, 240)    min-max to [-1, 1]
    delayed_qc  sum_k exp(-10 (x-2k)^2) exp(-x/16), x = arange(-2, 20, .01) min-max to [-1, 1]
    narma5      NARMA-5 driven by a product of three sines, T = 300      no scaling
    narma10     NARMA-10, same input                                     no scaling

`generate(name, **options)` returns a `Series`; every constant is a keyword option whose default
is the paper's (authors' code) value. `windows(series)` cuts it into the window-of-4 protocol.

NARMA window convention: x = u[t : t+w] and the target is y[t+w], the step *after* the window,
exactly as for the scalar series (and as the authors' `transform_data_single_predict` does with
separate input and target sequences). This is also the only choice in which the newest input
matters: y[t+w] = ... + 1.5 u[t+w-n] u[t+w-1] + 0.1 uses the last window element u[t+w-1],
whereas y[t+w-1] (aligned with the last element) does not depend on u[t+w-1] at all.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from qtc.errors import QtcError, did_you_mean

NAMES = ("bessel", "damped_shm", "delayed_qc", "narma5", "narma10")
# Bounds checked before any array is made: a spec cannot ask for more memory or time than this.
MAX_POINTS = 1_000_000         # points of a series (the paper uses at most 2,200)
MAX_EVALUATIONS = 20_000_000   # cells of Bessel's integral, points x nodes (about 160 MB)
MAX_STEPS = 2_000_000          # RK4 substeps of damped_shm (a few seconds)


@dataclass(frozen=True, eq=False)
class Series:
    """One forecasting data set: model inputs, targets and the axis they are sampled on.

    For the scalar series `inputs` and `targets` are the same array (predict the next value of
    the series from the previous ones); for NARMA `inputs` is u and `targets` is y.
    `np.asarray(series)` gives the targets.
    """

    name: str
    inputs: np.ndarray
    targets: np.ndarray
    axis: np.ndarray
    # the raw (min, max) each part was min-max scaled from ("series" for the scalar ones,
    # "inputs" and "targets" for a scaled NARMA); empty: unscaled
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    # what `axis` is, for a plot's x label: Bessel's argument x, the pendulum's time t, ...
    axis_label: str = "time step"

    def __len__(self) -> int:
        return len(self.targets)

    def __array__(self, dtype=None, copy=None):
        return self.targets if dtype is None else self.targets.astype(dtype)


class Windows(NamedTuple):
    """Time-ordered split of the sliding windows: x is (N, window, 1), y is (N, 1), float32."""

    x_train: "object"
    y_train: "object"
    x_test: "object"
    y_test: "object"


# --------------------------------------------------------------------------------------------
# Numerical building blocks
# --------------------------------------------------------------------------------------------

def bessel_j(order: int, x) -> np.ndarray:
    """J_order(x) for an integer order, from Bessel's integral J_n(x) = <cos(n t - x sin t)>.

    The integrand is a smooth 2 pi-periodic function, so the trapezoidal rule over one period is
    spectrally accurate: with M points its error is sum_{k != 0} J_{n + kM}(x), negligible
    (below 1e-30) once M - n exceeds about twice |x|. Cost is M evaluations per point.
    """
    x = np.asarray(x, dtype=np.float64)
    n = int(order)
    m = _bessel_nodes(float(np.max(np.abs(x))) if x.size else 0.0, n)
    tau = 2.0 * np.pi * np.arange(m) / m
    phase = n * tau - x[..., None] * np.sin(tau)
    return np.cos(phase).mean(axis=-1)


def _bessel_nodes(reach: float, order: int) -> int:
    """Trapezoidal nodes for J_order on |x| <= reach (see bessel_j)."""
    return 2 * (int(math.ceil(reach)) + abs(int(order))) + 64


def rk4(f: Callable[[float, tuple], tuple], y0, times, max_step: float) -> np.ndarray:
    """Integrate y' = f(t, y) with classical RK4, returning y at every entry of `times`.

    Each interval between output times is cut into equal substeps no longer than `max_step`,
    so outputs fall exactly on step boundaries (no interpolation error). Plain floats: for a
    two-dimensional system this is several times faster than numpy arrays.
    """
    y = tuple(float(v) for v in y0)
    out = [y]
    for t0, t1 in zip(times[:-1], times[1:]):
        steps = max(1, int(math.ceil((t1 - t0) / max_step)))
        h = (t1 - t0) / steps
        for i in range(steps):
            y = _rk4_step(f, t0 + i * h, y, h)
        out.append(y)
    return np.array(out, dtype=np.float64)


def _rk4_step(f, t: float, y: tuple, h: float) -> tuple:
    k1 = f(t, y)
    k2 = f(t + h / 2, tuple(a + h / 2 * b for a, b in zip(y, k1)))
    k3 = f(t + h / 2, tuple(a + h / 2 * b for a, b in zip(y, k2)))
    k4 = f(t + h, tuple(a + h * b for a, b in zip(y, k3)))
    return tuple(a + h / 6 * (b + 2 * c + 2 * d + e) for a, b, c, d, e in zip(y, k1, k2, k3, k4))


def min_max(values: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Affine map of `values` onto [-1, 1] (sklearn's MinMaxScaler, as the authors used), and the
    raw (min, max) it maps from (an exported model's inputs need them)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if not hi > lo:
        raise QtcError(f"cannot min-max scale a constant series (every value is {lo})")
    return -1.0 + 2.0 * (values - lo) / (hi - lo), (lo, hi)


# --------------------------------------------------------------------------------------------
# The generators: keyword-only options, defaults = the paper's / authors' values
# --------------------------------------------------------------------------------------------

def _bessel(*, points: int = 1000, start: float = 2.0, stop: float = 100.0, order: int = 2,
            scale: bool = True) -> Series:
    _need_points("bessel", "points", points)
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool):
        raise QtcError(f"bessel: order must be an integer, got {order!r}")
    nodes = _bessel_nodes(max(abs(start), abs(stop)), order)
    if points * nodes > MAX_EVALUATIONS:
        raise QtcError(f"bessel: points {points:,} x {nodes:,} integration nodes (order {order}, "
                       f"|x| up to {max(abs(start), abs(stop)):g}) exceeds the bound of "
                       f"{MAX_EVALUATIONS:,} evaluations; use fewer points, a lower order or a smaller range")
    x = np.linspace(start, stop, int(points))
    values = bessel_j(order, x)
    return _scalar("bessel", values, x, scale, f"x (the argument of J{order})")


def _damped_shm(*, points: int = 240, duration: float = 20.0, damping: float = 0.15,
                gravity: float = 9.81, theta0: float = 0.0, omega0: float = 3.0,
                max_step: float = 1e-3, scale: bool = True) -> Series:
    _need_points("damped_shm", "points", points)
    if not max_step > 0:
        raise QtcError(f"damped_shm: max_step must be > 0, got {max_step}")
    if duration / max_step > MAX_STEPS:
        raise QtcError(f"damped_shm: duration {duration:g} / max_step {max_step:g} is more than "
                       f"{MAX_STEPS:,} integration steps; use a larger max_step")
    t = np.linspace(0.0, duration, int(points))

    def pendulum(_t, y):  # theta'' = -b theta' - g sin(theta)
        return (y[1], -damping * y[1] - gravity * math.sin(y[0]))

    state = rk4(pendulum, (theta0, omega0), t.tolist(), max_step)
    return _scalar("damped_shm", state[:, 1], t, scale, "time t (s)")  # the series is theta'


def _delayed_qc(*, start: float = -2.0, stop: float = 20.0, step: float = 0.01, pulses: int = 11,
                spacing: float = 2.0, sharpness: float = 10.0, decay: float = 16.0,
                scale: bool = True) -> Series:
    if not step > 0:
        raise QtcError(f"delayed_qc: step must be > 0, got {step}")
    _need_points("delayed_qc", "(stop - start) / step", max(0, math.ceil((stop - start) / step)))
    x = np.arange(start, stop, step)  # np.arange as in the authors' code: 2200 points
    values = np.zeros_like(x)
    for k in range(int(pulses)):
        values += np.exp(-sharpness * (x - spacing * k) ** 2) * np.exp(-x / decay)
    return _scalar("delayed_qc", values, x, scale, "time x")


def narma_input(length: int, period: float = 300.0,
                freqs: tuple = (2.11, 3.73, 4.11), amplitude: float = 0.1) -> np.ndarray:
    """u_t = 0.1 (sin(2 pi 2.11 t/T) sin(2 pi 3.73 t/T) sin(2 pi 4.11 t/T) + 1), t = 0..length-1."""
    t = np.arange(int(length), dtype=np.float64)
    wave = np.ones_like(t)
    for f in freqs:
        wave *= np.sin(2.0 * np.pi * f * t / period)
    return amplitude * (wave + 1.0)


def narma(u: np.ndarray, order: int, y0: float = 0.196, alpha: float = 0.3, beta: float = 0.05,
          gamma: float = 1.5, delta: float = 0.1) -> np.ndarray:
    """NARMA-n targets y_0..y_{T-1} for inputs u_0..u_{T-1}; values before t = 0 are zero.

    y_{t+1} = alpha y_t + beta y_t sum_{j<n} y_{t-j} + gamma u_{t-n+1} u_t + delta.
    """
    y = np.zeros(len(u), dtype=np.float64)
    if len(y):
        y[0] = y0
    for t in range(len(u) - 1):
        memory = y[max(0, t - order + 1): t + 1].sum()
        u_old = u[t - order + 1] if t - order + 1 >= 0 else 0.0
        y[t + 1] = alpha * y[t] + beta * y[t] * memory + gamma * u_old * u[t] + delta
    return y


def _narma(name: str, default_order: int):
    def build(*, order: int = default_order, length: int = 300, period: float = 300.0,
              freqs: tuple = (2.11, 3.73, 4.11), amplitude: float = 0.1, y0: float = 0.196,
              alpha: float = 0.3, beta: float = 0.05, gamma: float = 1.5, delta: float = 0.1,
              scale: bool = False) -> Series:
        _need_points(name, "length", length)
        if not isinstance(order, (int, np.integer)) or not 1 <= order <= length:
            raise QtcError(f"{name}: order must be an integer between 1 and the length {length}, "
                           f"got {order!r}")
        u = narma_input(length, period, freqs, amplitude)
        y = narma(u, int(order), y0, alpha, beta, gamma, delta)
        ranges = {}
        if scale:  # the paper does not scale NARMA; offered for experiments
            (u, ranges["inputs"]), (y, ranges["targets"]) = min_max(u), min_max(y)
        return Series(name, u, y, np.arange(len(u), dtype=np.float64), ranges)
    build.__name__ = f"_{name}"
    return build


def _scalar(name: str, values: np.ndarray, axis: np.ndarray, scale: bool, axis_label: str) -> Series:
    if not scale:
        values = np.asarray(values, dtype=np.float64)
        return Series(name, values, values, axis, axis_label=axis_label)
    values, span = min_max(values)
    return Series(name, values, values, axis, {"series": span}, axis_label)


def _need_points(name: str, option: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 3 <= value <= MAX_POINTS:
        raise QtcError(f"{name}: {option} must be an integer between 3 and {MAX_POINTS:,}, got {value!r}")


_GENERATORS = {
    "bessel": _bessel,
    "damped_shm": _damped_shm,
    "delayed_qc": _delayed_qc,
    "narma5": _narma("narma5", 5),
    "narma10": _narma("narma10", 10),
}

_DESCRIPTIONS = {
    "bessel": "Bessel J{order}(x), x = linspace({start:g}, {stop:g}, {points}){scaled}",
    "damped_shm": "damped pendulum theta'' = -{damping:g} theta' - {gravity:g} sin theta, "
                  "theta(0) = {theta0:g}, theta'(0) = {omega0:g}; series theta' on "
                  "linspace(0, {duration:g}, {points}){scaled}",
    "delayed_qc": "delayed quantum control: sum_(k<{pulses}) exp(-{sharpness:g} (x - {spacing:g}k)^2)"
                  " exp(-x/{decay:g}), x = arange({start:g}, {stop:g}, {step:g}){scaled}",
    "narma5": "NARMA-{order}: sine-product input u (T = {period:g}), {length} steps, "
              "y0 = {y0:g}; inputs u, target y{scaled}",
}
_DESCRIPTIONS["narma10"] = _DESCRIPTIONS["narma5"]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def generate(name: str, **options) -> Series:
    """The data set `name` (one of NAMES) as a Series of float64 arrays.

    Options override the paper's constants, e.g. generate("bessel", points=3000) or
    generate("narma10", length=500). Scalar series are min-max scaled to [-1, 1] unless
    scale=False; NARMA is unscaled unless scale=True.
    """
    builder = _GENERATORS[_known(name)]
    _check_options(name, builder, options)
    return builder(**options)


def describe(name: str, **options) -> str:
    """One line saying what `name` is (with the given options applied), for run reports."""
    builder = _GENERATORS[_known(name)]
    _check_options(name, builder, options)
    values = _defaults(builder) | options
    values["scaled"] = "; min-max to [-1, 1]" if values["scale"] else "; unscaled"
    return f"{name}: " + _DESCRIPTIONS[name].format(**values)


def windows(series: Series, window: int = 4, train_fraction: float = 0.67,
            drop_last: bool = False) -> Windows:
    """Sliding windows x = inputs[t:t+window] -> y = targets[t+window], split in time order.

    Returns (x_train, y_train, x_test, y_test) as float32 torch tensors, x of shape
    (N, window, 1) (N, window, k for k input columns), y of shape (N, 1). The first int(train_fraction * N) windows train, the
    rest test (no shuffling), as in the authors' code. N = len(series) - window; drop_last=True
    reproduces the authors' loop `range(len - window - 1)`, which leaves out the final window.
    """
    import torch  # only here: the generators stay numpy-only

    n_windows = _count_windows(series, window, drop_last)
    if not (isinstance(train_fraction, (int, float)) and 0.0 < train_fraction < 1.0):
        raise QtcError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}")
    n_train = int(train_fraction * n_windows)
    if not 0 < n_train < n_windows:
        raise QtcError(f"train_fraction {train_fraction} of {n_windows} windows leaves "
                       f"{n_train} for training and {n_windows - n_train} for testing; both must "
                       "be non-empty (use more points or a fraction nearer 0.5)")
    starts = np.arange(n_windows)[:, None] + np.arange(window)[None, :]
    inputs = np.asarray(series.inputs)
    x = inputs[starts] if inputs.ndim == 2 else inputs[starts][..., None]   # (N, window, features)
    x = torch.from_numpy(x.astype(np.float32))
    y = torch.from_numpy(np.asarray(series.targets)[window:window + n_windows, None]
                         .astype(np.float32))
    return Windows(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------

def _known(name: str) -> str:
    if name in _GENERATORS:
        return name
    hint = did_you_mean(str(name), NAMES) or "expected one of: " + ", ".join(NAMES)
    raise QtcError(f"unknown time-series data set {name!r}; {hint}")


def _defaults(builder) -> dict:
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()}


def _check_options(name: str, builder, options: dict) -> None:
    allowed = _defaults(builder)
    for key in options:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or "options: " + ", ".join(allowed)
            raise QtcError(f"{name}: unknown option {key!r}; {hint}")


def _count_windows(series: Series, window: int, drop_last: bool) -> int:
    if not isinstance(series, Series):
        raise QtcError(f"windows() expects a Series from generate(), got {type(series).__name__}")
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 1:
        raise QtcError(f"window must be a positive integer, got {window!r}")
    if len(series) < window + 2 + int(drop_last):
        raise QtcError(f"{series.name} has {len(series)} points but a window of {window} needs at "
                       f"least {window + 2 + int(drop_last)} (one training and one test window)")
    return len(series) - window - int(drop_last)
