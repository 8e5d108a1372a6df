"""The README's Python experiment (qtc.experiment.Experiment) at a longer budget, over 3 seeds:
docs/results/mnist_python.md. Run from the checkout's root (../shared/data/mnist-10k beside it):

    .venv/bin/python docs/results/mnist_python.py /tmp/mnist_python
"""
import gzip
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qtc.experiment import Experiment

MNIST = "../shared/data/mnist-10k/"


def idx(name):
    data = gzip.open(MNIST + name).read()
    shape = np.frombuffer(data, ">u4", data[3], 4)
    return torch.from_numpy(np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(shape).copy())


def images(name, n):
    return F.avg_pool2d(idx(name)[:n, None].float() / 255, 4).flatten(1)


def net():
    return nn.Sequential(nn.Linear(49, 16), nn.ReLU(), nn.Linear(16, 10))


def accuracy(outputs, targets):
    return (outputs.argmax(1) == targets).float().mean()


experiment = Experiment(
    "mnist_python", net,
    train_data=(images("train-images-idx3-ubyte.gz", 8000), idx("train-labels-idx1-ubyte.gz")[:8000]),
    test_data=(images("t10k-images-idx3-ubyte.gz", 2000), idx("t10k-labels-idx1-ubyte.gz")[:2000]),
    loss=F.cross_entropy, metric=accuracy,
    space="hadamard_ent_rot.qs", generator=dict(depth=10),
    train=dict(optimizer="adam", lr=0.02, batch=100, epochs=10, select="validation", validation=0.2),
    compare=("fixed", "classical"))
experiment.run(sys.argv[1], seeds=3, progress=False)
