"""What a run folder records for the reader of a result (issue 30): how many examples it trained
and tested on, and candidate labels that name only what differs between candidates."""
from __future__ import annotations

import json

from qtc.compiler.pipeline import lower
from qtc.dsl.space import parse_space
from qtc.tasks.build import load_task
from qtc.tasks.runs import runner

def test_the_run_folder_records_its_example_counts(tiny, tmp_path):
    built = load_task(tiny)
    options = runner.resolve_options(built, models="classical", epochs=1, max_batches=1, backend="reference",
                                     progress=False, select=("validation", 0.25))
    rundir = runner.start(built, options, tmp_path / "run")
    runner.run(built, options, rundir)
    counts = json.loads((tmp_path / "run" / "examples.json").read_text())
    # narma5's 300 points, windows of 4, split 0.67: 198 training windows, the rest for testing
    assert counts["train"] == 198 and counts["test"] > 0
    assert counts["fit"] + counts["validation"] == counts["train"] and counts["validation"] > 0


def test_a_fixed_init_is_not_in_every_candidate_label():
    text = """space one_init
qubits 3
depth 2
init  = nothing
layer = choose { RY: ry(q, theta[layer, q]) for q in all | RX: rx(q, theta[layer, q]) for q in all }
tie layers
"""
    assert lower(parse_space(text), 3, 2).labels == ("RY", "RX")
