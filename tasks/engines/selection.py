"""Which epoch a supervised run reports, and in which order it walks the training data.

Model selection never reads test data: the rule is `last` (the final epoch), `train` (the epoch
with the lowest loss on the data it trained on) or `validation` (the lowest loss on a block held
out from training: the last fraction F of the training data -- for a series the end of the
training region, for images the end of the training set; for A3C, which takes no fraction, the
best mean reward of greedy evaluation episodes on held-out seeds: qtc.tasks.engines.a3c). The order is `shuffle` (a fresh
permutation per epoch, from the seed and the epoch only: every model of a seed sees the same
order) or `sequential` (the data's own order: the time order of a series' windows).
"""
from __future__ import annotations

import math

import torch

from qtc.errors import QtcError

RULES = ("last", "train", "validation")


def batch_order(n: int, seed: int, epoch: int, order: str) -> torch.Tensor:
    """The indices of the n training examples in the order epoch `epoch` visits them."""
    if order == "sequential":
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def validation_split(n: int, fraction: float, batch: int) -> tuple[int, int]:
    """(examples trained on, examples held out): the last ceil(fraction * n) are held out.

    Refused when the held-out block is smaller than one batch (its loss would rest on a handful
    of examples) or leaves less than one batch to train on.
    """
    held = math.ceil(fraction * n)
    if held < batch:
        raise QtcError(f"select validation {fraction}: the validation block holds {held} of {n} "
                       f"training examples, fewer than one batch ({batch}); raise the fraction or "
                       "lower the batch")
    if n - held < batch:
        raise QtcError(f"select validation {fraction}: only {n - held} of {n} training examples are "
                       f"left to train on, fewer than one batch ({batch}); lower the fraction")
    return n - held, held


def criterion(rule: str) -> str | None:
    """The metrics-row key the rule minimises (None: the last epoch)."""
    return {"last": None, "train": "train_loss", "validation": "val_loss"}[rule]


def is_better(rule: str, row: dict, best: dict | None) -> bool:
    """Whether the epoch of `row` replaces the best so far (ties keep the earlier epoch)."""
    key = criterion(rule)
    return best is None or key is None or row[key] < best[key]


def check_rule(rule: str, fraction: float | None) -> None:
    """A clear error for a rule or fraction that no spec statement could have given (whether the
    kind needs a fraction -- supervised ones do, a3c takes none -- is dsl.task.select_problem's)."""
    if rule not in RULES:
        raise QtcError(f"unknown selection rule {rule!r}: expected one of {', '.join(RULES)}")
    if rule == "validation" and fraction is not None and not 0 < fraction < 1:
        raise QtcError(f"select validation needs a fraction between 0 and 1 (exclusive), got {fraction}")
    if rule != "validation" and fraction is not None:
        raise QtcError(f"a validation fraction ({fraction}) goes only with 'select validation'")


def parse_select(words: list[str] | None) -> tuple[str, float | None] | None:
    """`--select RULE [F]` as (rule, fraction or None), checked; None when not given."""
    if not words:
        return None
    if len(words) > 2:
        raise QtcError(f"--select takes a rule and, for 'validation', a fraction; got {' '.join(words)!r}")
    rule, fraction = words[0], None
    if len(words) == 2:
        try:
            fraction = float(words[1])
        except ValueError:
            raise QtcError(f"--select {rule}: the fraction must be a number, got {words[1]!r}") from None
    check_rule(rule, fraction)
    return rule, fraction
