"""The spec's optimizer (`train adam|rmsprop|sgd ...`) and learning-rate schedule (`schedule`,
`warmup`), one builder each for every engine."""
from __future__ import annotations

import math

import torch


def make_optimizer(train, params, **extra) -> torch.optim.Optimizer:
    """The optimizer `train` names over `params`; `extra` goes to its constructor (foreach=...)."""
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, betas=tuple(train.betas), eps=train.eps,
                                weight_decay=train.weight_decay, **extra)
    if train.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=train.lr, alpha=train.alpha, eps=train.eps,
                                   momentum=train.momentum, weight_decay=train.weight_decay, **extra)
    return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum,
                           weight_decay=train.weight_decay, **extra)


def lr_factor(train, step: int, steps: int, per_epoch: int) -> float:
    """The multiplier of `train.lr` for optimizer step `step` (0-based) of a run of `steps`
    steps, `per_epoch` an epoch: the decay (cosine from 1 at step 0 towards 0 at `steps`;
    `step N`: gamma to the number of whole N-epoch blocks done) times the warm-up's linear ramp
    ((step + 1) / W over the first W = warmup x per_epoch steps, at least one)."""
    factor = 1.0
    if train.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * step / steps))
    elif train.schedule == "step":
        factor = train.gamma ** (step // (train.every * per_epoch))
    if train.warmup is not None:
        ramp = max(1, round(train.warmup * per_epoch))
        factor *= min(1.0, (step + 1) / ramp)
    return factor


def make_schedule(train, optim: torch.optim.Optimizer, steps: int,
                  per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The scheduler that sets every step's rate (`lr_factor`; stepped after each optimizer
    step, its state saved in the checkpoints beside the optimizer's), or None for the constant
    rate: then the optimizer is left exactly as it was before schedules existed."""
    if train.schedule == "constant" and train.warmup is None:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optim, lambda step: lr_factor(train, step, steps, per_epoch))
