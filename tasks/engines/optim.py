"""The spec's optimizer (`train adam|rmsprop|sgd ...`), one builder for every engine."""
from __future__ import annotations

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
