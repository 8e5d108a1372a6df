"""Fixtures and test data shared by several test modules."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Runs train their models one at a time in the test process unless a test asks for --jobs N:
# tests that patch the engine (a fake Ctrl-C, a poisoned loss) must reach the training, and a
# spawned worker per run would cost each smoke run seconds (tests/test_parallel_runs.py runs
# the workers).
os.environ["QTC_JOBS"] = "1"

# every gate of compiler/gates.py, constant and theta angles, all three rotation axes
ALL_GATES = """space allgates
qubits 3
depth 2
init = choose { h(q) for q in all | nothing }
layer = choose { rx(q, theta[layer, q]) for q in all | ry(q, theta[layer, q]) for q in all
               | rz(q, theta[layer, q]) for q in all } ;
        cnot(0, 1) ; cz(1, 2) ; swap(0, 2) ; y(1) ; s(0) ; sdg(1) ; t(2) ; tdg(0) ; x(2) ; z(0) ;
        h(1) ; rx(2, 0.3) ; ry(0, -1.1) ; rz(1, 0.7) ; cx(2, 0)
tie layers
"""

# the smallest forecast task that trains end to end in a second (narma5, an LSTM of 4, a small
# generator): test_cli, test_runs and test_records run it
TINY = """task tiny : forecast
data narma5 window 4 split 0.67
network {
  input [4, 1]
  lstm 1 -> 4
  linear 4 -> 1
}
generator hadamard_ent_rot.qs depth 2 mapping linear bits pm1 rescale qt
train rmsprop lr 0.01 alpha 0.99 eps 1e-8 batch 10 epochs 3 seed 0
compare classical
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    """TINY as tmp_path/tiny.task."""
    path = tmp_path / "tiny.task"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small states: one thread is faster, and far faster on a busy machine (no spin-waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
