"""Experiments over many runs: sweeps, seeded repeats, the paper's Table II and their reports."""
