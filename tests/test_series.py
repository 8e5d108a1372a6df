"""Tests for the five forecasting data sets (qtc.tasks.data.series)."""
import math

import numpy as np
import pytest
import torch

from qtc.errors import QtcError
from qtc.tasks.data import series as S


# ---------------------------------------------------------------- Bessel

def test_bessel_integral_matches_scipy_jv_to_1e10_on_many_points():
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(0.0, 120.0, 4001), [1e-3, 2.0, 99.999, 100.0]])
    for order in (0, 1, 2, 3, 7):
        err = np.max(np.abs(S.bessel_j(order, x) - special.jv(order, x)))
        assert err < 1e-10, (order, err)


def test_bessel_known_values_without_scipy():
    # J2(x) = 2 J1(x)/x - J0(x); J0, J1 at zeros and tabulated points (Abramowitz & Stegun)
    assert abs(S.bessel_j(0, 2.404825557695773)) < 1e-12       # first zero of J0
    assert abs(S.bessel_j(2, 5.135622301840683)) < 1e-12       # first zero of J2
    assert abs(S.bessel_j(1, 1.0) - 0.4400505857449335) < 1e-12
    x = np.linspace(2, 100, 50)
    np.testing.assert_allclose(S.bessel_j(2, x), 2 * S.bessel_j(1, x) / x - S.bessel_j(0, x),
                               atol=1e-13)


def test_bessel_series_is_scaled_j2_on_linspace_2_100_1000():
    special = pytest.importorskip("scipy.special")
    s = S.generate("bessel")
    x = np.linspace(2, 100, 1000)
    raw = special.jv(2, x)
    expected = 2 * (raw - raw.min()) / (raw.max() - raw.min()) - 1
    assert s.targets.dtype == np.float64 and s.targets.shape == (1000,)
    np.testing.assert_allclose(s.targets, expected, atol=1e-9)
    np.testing.assert_array_equal(s.axis, x)
    assert s.inputs is s.targets
    np.testing.assert_allclose(S.generate("bessel", scale=False).targets, raw, atol=1e-10)


# ---------------------------------------------------------------- damped pendulum

def test_pendulum_matches_scipy_solve_ivp():
    integrate = pytest.importorskip("scipy.integrate")
    t = np.linspace(0, 20, 240)
    ref = integrate.solve_ivp(lambda _t, y: [y[1], -0.15 * y[1] - 9.81 * np.sin(y[0])], (0, 20),
                              [0.0, 3.0], t_eval=t, method="DOP853", rtol=1e-10, atol=1e-12)
    ours = S.generate("damped_shm", scale=False)
    assert ours.targets.shape == (240,)
    np.testing.assert_array_equal(ours.axis, t)
    assert np.max(np.abs(ours.targets - ref.y[1])) < 1e-6
    assert ours.targets[0] == 3.0                                   # theta'(0)


def test_pendulum_options_change_the_physics():
    integrate = pytest.importorskip("scipy.integrate")
    t = np.linspace(0, 5, 60)
    ref = integrate.solve_ivp(lambda _t, y: [y[1], -0.5 * y[1] - 4.0 * np.sin(y[0])], (0, 5),
                              [0.3, 1.0], t_eval=t, method="DOP853", rtol=1e-10, atol=1e-12)
    ours = S.generate("damped_shm", points=60, duration=5.0, damping=0.5, gravity=4.0,
                      theta0=0.3, omega0=1.0, scale=False)
    assert np.max(np.abs(ours.targets - ref.y[1])) < 1e-6


def test_rk4_is_exact_enough_on_a_linear_oscillator():
    # x'' = -x, x(0)=0, x'(0)=1 -> x' = cos t (closed form, no scipy needed)
    t = np.linspace(0, 10, 101)
    y = S.rk4(lambda _t, y: (y[1], -y[0]), (0.0, 1.0), t.tolist(), 1e-3)
    np.testing.assert_allclose(y[:, 1], np.cos(t), atol=1e-11)
    np.testing.assert_allclose(y[:, 0], np.sin(t), atol=1e-11)


# ---------------------------------------------------------------- delayed quantum control

def test_delayed_qc_closed_form_spot_values():
    s = S.generate("delayed_qc", scale=False)
    x = np.arange(-2, 20, 0.01)
    assert s.targets.shape == (2200,)
    np.testing.assert_array_equal(s.axis, x)
    for i in (0, 1, 200, 333, 400, 1017, 2199):
        xi = x[i]
        expected = sum(math.exp(-10 * (xi - 2 * k) ** 2) * math.exp(-xi / 16) for k in range(11))
        assert abs(s.targets[i] - expected) < 1e-14, i
    # at x = 0 (index 200) the k = 0 pulse dominates: value ~ 1
    assert abs(s.targets[200] - (1 + 2 * math.exp(-40))) < 1e-12


def test_delayed_qc_scaled_has_peak_one_at_the_first_pulse():
    s = S.generate("delayed_qc")
    assert s.targets.max() == 1.0 and s.targets.min() == -1.0
    assert np.argmax(s.targets) == 200                                 # x = 0


# ---------------------------------------------------------------- NARMA

def _hand_narma(n, steps):
    """Independent plain-Python NARMA-n: explicit dicts with zeros before t = 0."""
    T = 300
    u = {t: 0.1 * (math.sin(2 * math.pi * 2.11 * t / T) * math.sin(2 * math.pi * 3.73 * t / T)
                   * math.sin(2 * math.pi * 4.11 * t / T) + 1) for t in range(T)}
    y = {0: 0.196}
    get_u = lambda t: u[t] if t >= 0 else 0.0          # noqa: E731
    get_y = lambda t: y[t] if t >= 0 else 0.0          # noqa: E731
    for t in range(steps - 1):
        total = 0.0
        for j in range(n):
            total += get_y(t - j)
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * total + 1.5 * get_u(t - n + 1) * get_u(t) + 0.1
    return [u[t] for t in range(steps)], [y[t] for t in range(steps)]


@pytest.mark.parametrize("name,n", [("narma5", 5), ("narma10", 10)])
def test_narma_first_steps_match_a_hand_loop(name, n):
    s = S.generate(name)
    u, y = _hand_narma(n, 40)
    np.testing.assert_allclose(s.inputs[:40], u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.targets[:40], y, rtol=0, atol=1e-12)
    assert s.inputs.shape == s.targets.shape == (300,)
    assert s.inputs.dtype == s.targets.dtype == np.float64


def test_narma_first_two_steps_by_arithmetic():
    s = S.generate("narma5")
    assert s.targets[0] == 0.196
    assert s.inputs[0] == pytest.approx(0.1, abs=1e-15)                # all sines are 0 at t = 0
    # y1 = 0.3 y0 + 0.05 y0 * y0 + 1.5 * u_{-4} u_0 + 0.1, u_{-4} = 0
    assert s.targets[1] == pytest.approx(0.3 * 0.196 + 0.05 * 0.196 ** 2 + 0.1, abs=1e-15)


def test_narma_orders_differ_and_are_unscaled():
    five, ten = S.generate("narma5"), S.generate("narma10")
    np.testing.assert_array_equal(five.inputs, ten.inputs)
    assert np.max(np.abs(five.targets - ten.targets)) > 1e-3
    assert 0.0 < five.targets.min() and five.targets.max() < 0.5     # raw NARMA range
    assert 0.0 < five.inputs.min() and five.inputs.max() <= 0.2
    scaled = S.generate("narma10", scale=True)
    assert scaled.targets.min() == -1.0 and scaled.targets.max() == 1.0


# ---------------------------------------------------------------- scaling and windows

@pytest.mark.parametrize("name", ["bessel", "damped_shm", "delayed_qc"])
def test_scalar_series_are_min_max_scaled_to_plus_minus_one(name):
    s = S.generate(name)
    assert s.targets.min() == -1.0 and s.targets.max() == 1.0
    raw = S.generate(name, scale=False).targets
    a = 2 / (raw.max() - raw.min())
    np.testing.assert_allclose(s.targets, a * (raw - raw.min()) - 1, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(s), s.targets)


@pytest.mark.parametrize("name,length", [("bessel", 1000), ("damped_shm", 240),
                                         ("delayed_qc", 2200), ("narma5", 300),
                                         ("narma10", 300)])
def test_window_shapes_and_time_ordered_split(name, length):
    s = S.generate(name)
    w = S.windows(s)
    n = length - 4
    n_train = int(0.67 * n)
    assert w.x_train.shape == (n_train, 4, 1) and w.y_train.shape == (n_train, 1)
    assert w.x_test.shape == (n - n_train, 4, 1) and w.y_test.shape == (n - n_train, 1)
    assert all(t.dtype == torch.float32 for t in w)
    x = torch.cat([w.x_train, w.x_test]).numpy()[..., 0]
    y = torch.cat([w.y_train, w.y_test]).numpy()[:, 0]
    for t in (0, n_train - 1, n_train, n - 1):                       # window t: inputs t..t+3
        np.testing.assert_array_equal(x[t], s.inputs[t:t + 4].astype(np.float32))
        assert y[t] == np.float32(s.targets[t + 4])                  # target: the step after


def test_narma_window_target_is_the_step_after_the_window():
    s = S.generate("narma5")
    x_train, y_train, _, _ = S.windows(s)
    np.testing.assert_array_equal(x_train[10, :, 0].numpy(), s.inputs[10:14].astype(np.float32))
    assert y_train[10, 0].item() == np.float32(s.targets[14])


def test_drop_last_reproduces_the_authors_window_count():
    s = S.generate("bessel")
    w = S.windows(s, drop_last=True)
    assert len(w.x_train) + len(w.x_test) == 1000 - 4 - 1
    assert len(w.x_train) == int(0.67 * 995)


def test_window_and_fraction_options():
    s = S.generate("damped_shm")
    w = S.windows(s, window=8, train_fraction=0.5)
    assert w.x_train.shape == (116, 8, 1) and w.x_test.shape == (116, 8, 1)
    tiny = S.generate("bessel", points=6)
    assert [len(t) for t in S.windows(tiny)] == [1, 1, 1, 1]


# ---------------------------------------------------------------- names, descriptions, errors

def test_names_and_descriptions():
    assert S.NAMES == ("bessel", "damped_shm", "delayed_qc", "narma5", "narma10")
    for name in S.NAMES:
        line = S.describe(name)
        assert line.startswith(name + ":") and "\n" not in line
    assert "NARMA-10" in S.describe("narma10") and "NARMA-5" in S.describe("narma5")
    assert "3000" in S.describe("bessel", points=3000)


def test_unknown_name_hints_the_closest():
    with pytest.raises(QtcError, match="did you mean 'narma10'"):
        S.generate("narma_10")
    with pytest.raises(QtcError, match="did you mean 'damped_shm'"):
        S.describe("damped_sm")


@pytest.mark.parametrize("call", [
    lambda: S.generate("bessel", point=1000),                  # misspelt option
    lambda: S.generate("bessel", points=2),
    lambda: S.generate("damped_shm", points=1.5),
    lambda: S.generate("delayed_qc", step=0),
    lambda: S.generate("narma5", order=0),
    lambda: S.generate("bessel", order=0, start=0.0, stop=0.0),   # constant -> cannot scale
    lambda: S.windows(S.generate("bessel", points=5)),         # points < window + 2
    lambda: S.windows(S.generate("bessel", points=20), window=0),
    lambda: S.windows(S.generate("bessel"), train_fraction=0.0),
    lambda: S.windows(S.generate("bessel"), train_fraction=1.0),
    lambda: S.windows(S.generate("bessel"), train_fraction=1.5),
    lambda: S.windows(S.generate("bessel", points=7), train_fraction=0.1),  # empty train part
    lambda: S.windows(np.zeros(10)),
])
def test_bad_values_raise_qtc_error(call):
    with pytest.raises(QtcError):
        call()


def test_misspelt_option_hint():
    with pytest.raises(QtcError, match="did you mean 'points'"):
        S.generate("bessel", point=1000)
