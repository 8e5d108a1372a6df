"""Predictors that cost nothing, shown beside the models so a figure has a floor to beat.

Forecasting: the mean of the training targets, the window's last value, and a least-squares
linear autoregression on the same window (with an intercept), fitted on the training windows.
Classification: the training set's majority class. Each is fitted on the data the models train
on and scored on the test set with the models' own metric. A3C: a uniformly random policy,
scored by its mean reward over the evaluation episodes (the seeds `select validation` uses).
"""
from __future__ import annotations

import torch



BASELINES = "baselines.json"   # a run folder's cost-nothing baselines, for every kind

def _mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(((pred.reshape(-1) - y.reshape(-1)).double() ** 2).mean())


def _ar_design(x: torch.Tensor) -> torch.Tensor:
    """[window values..., 1] per example, in float64."""
    flat = x.reshape(len(x), -1).double()
    return torch.cat([flat, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)


def forecast_baselines(x_train, y_train, x_test, y_test, last: int | None = -1) -> dict[str, dict[str, float]]:
    """{name: {train_mse, test_mse}} of the three naive forecasters; windows x are (N, window,
    features) and `last` is the feature that is the target's own past (None: none is, and there
    is no "last value" forecaster)."""
    mean = y_train.double().mean()
    coef = torch.linalg.lstsq(_ar_design(x_train), y_train.reshape(-1, 1).double()).solution
    predictors = {
        "mean of training targets": lambda x: mean.expand(len(x)),
        "last value": lambda x: x[:, -1, last].double(),
        "linear AR (least squares)": lambda x: (_ar_design(x) @ coef).reshape(-1),
    }
    if last is None:
        del predictors["last value"]
    return {name: {"train_mse": _mse(f(x_train), y_train), "test_mse": _mse(f(x_test), y_test)}
            for name, f in predictors.items()}


def majority_baseline(y_train, y_test) -> dict[str, dict[str, float]]:
    """{'majority class': {train_accuracy, test_accuracy}}: always the most frequent training class."""
    counts = torch.bincount(y_train)
    label = int(counts.argmax())         # ties: the smaller class label
    return {"majority class": {"train_accuracy": float((y_train == label).double().mean()),
                               "test_accuracy": float((y_test == label).double().mean()),
                               "class": label}}


def random_policy_baseline(env_id: str, max_episode_steps: int | None, episodes: int,
                           seed: int = 0) -> dict[str, dict]:
    """{'random policy': {eval_reward, episodes, first_seed}}: uniformly random actions (from a
    generator seeded `seed`) on the A3C evaluation episodes."""
    from qtc.tasks.engines.a3c import envs, evaluation   # the A3C engine's environments
    env = envs.make_env(env_id, max_episode_steps)
    seeds = evaluation.eval_seeds(episodes)
    rewards = evaluation.evaluate_policy(env, evaluation.uniform(int(env.action_space.n), seed), seeds)
    env.close()
    return {"random policy": {"eval_reward": sum(rewards) / len(rewards), "episodes": episodes,
                              "first_seed": seeds[0]}}
