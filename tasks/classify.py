"""Binary image classification (paper Figs. 5-7): MNIST / FashionMNIST, a QT-generated CNN."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from qtc.errors import QtcError
from qtc.tasks.build import Built
from qtc.tasks.images import load_binary
from qtc.tasks.rundir import RunDir
from qtc.tasks.supervised import Supervised, train_all


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    return {"accuracy": float((outputs.argmax(1) == targets).float().mean())}


def run(built: Built, rundir: RunDir, opts) -> dict:
    data = built.spec.data
    if data is None or data.classes is None:
        raise QtcError(f"{built.spec.file}: a classify task needs 'data <mnist|fashion_mnist> classes [A, B]'")
    train, test = load_binary(data.dataset, tuple(data.classes), data_root=opts.data_root,
                              normalize=tuple(data.normalize), download=opts.download, limit=opts.limit)
    net = next(iter(built.nets.values()))
    if net.output_shape != (2,):
        raise QtcError(f"the network's output shape is {list(net.output_shape)}, a binary classifier needs [2]")
    task = Supervised(train=train, test=test, loss=F.cross_entropy, scores=accuracy)
    return train_all(built, rundir, opts, task)
