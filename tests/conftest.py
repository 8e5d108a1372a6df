"""Fixtures shared by several test modules."""
from __future__ import annotations

import os

import pytest
import torch

# Runs train their models one at a time in the test process unless a test asks for --jobs N:
# tests that patch the engine (a fake Ctrl-C, a poisoned loss) must reach the training, and a
# spawned worker per run would cost each smoke run seconds (tests/test_parallel_runs.py runs
# the workers).
os.environ["QTC_JOBS"] = "1"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small states: one thread is faster, and far faster on a busy machine (no spin-waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def default_expected_steps():
    """Each test starts with the cost model's default horizon: a run in an earlier test of the
    same process told runtime.kernels how many steps it expected (expect_steps)."""
    from qtc.runtime import kernels
    kernels.expect_steps(None)
    yield
