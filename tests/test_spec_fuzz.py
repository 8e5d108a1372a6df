"""Property: random mutations of the shipped specs (characters or tokens deleted, inserted or
replaced) never raise anything but SpecError from parse_space / parse_task / compile.

Derandomized (the same examples on every run) and bounded, so it is quick and reproducible;
raise MAX_EXAMPLES locally to search harder.
"""
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qtc
from qtc.compiler.gates import GATES
from qtc.dsl.space import KEYWORDS, parse_space
from qtc.dsl.task import STATEMENTS, parse_task
from qtc.errors import SpecError
from qtc.tasks.build import Built

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPACE_TEXTS = [p.read_text() for p in sorted(SPECS.glob("*.qs"))]
TASK_TEXTS = [(SPECS / f).read_text() for f in ("mnist_1v5.task", "bessel.task", "minigrid_5x5.task")]
MAX_EXAMPLES = 300

VOCABULARY = sorted(set(KEYWORDS) | set(GATES) | set(STATEMENTS)) + [
    "theta[layer, q]", "theta[", "for q in all", "for q in 0 .. n - 1", "..", "step", "choose {", "}", "{",
    "|", ";", ":", "=", "(", ")", "[", "]", ",", "->", "#", "\n", "q", "n", "pi", "layer", "ent", "cyc",
    "0", "1", "-1", "2.5", "1e9", "1e999", "99999999", "0.0", "[1, 5]", "[]", '"x"', "auto", "linear",
    "conv2d", "maxpool", "input", "lstm", "relu", "flatten", "network", "kernel", "stride", "padding",
]
CHARS = "(){}[];:|,.=+-*/%#\n \t0123456789abcnqxyz_\"'>"
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?|\S")


@st.composite
def mutation(draw, text: str) -> str:
    kind = draw(st.sampled_from(["delete", "insert_char", "insert_token", "replace_token", "swap_lines"]))
    i = draw(st.integers(0, len(text)))
    if kind == "delete":
        return text[:i] + text[i + draw(st.integers(1, 12)):]
    if kind == "insert_char":
        return text[:i] + draw(st.text(CHARS, min_size=1, max_size=3)) + text[i:]
    if kind == "insert_token":
        return text[:i] + " " + draw(st.sampled_from(VOCABULARY)) + " " + text[i:]
    if kind == "swap_lines":
        lines = text.split("\n")
        a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[a], lines[b] = lines[b], lines[a]
        return "\n".join(lines)
    tokens = list(TOKEN.finditer(text))
    tok = tokens[draw(st.integers(0, len(tokens) - 1))]
    return text[:tok.start()] + draw(st.sampled_from(VOCABULARY)) + text[tok.end():]


@st.composite
def mutated(draw, texts):
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 4))):
        text = draw(mutation(text))
    return text


FUZZ = settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(mutated(SPACE_TEXTS))
def test_mutated_spaces_raise_only_spec_errors(text):
    try:
        space = parse_space(text)
        qtc.compile(space, qubits=3, depth=2)      # small: the size does not matter for errors
        qtc.compile(text, qubits=4, depth=1)
    except SpecError as err:
        assert str(err).startswith(("<spec>:", "<spec>: error:")), str(err)


@FUZZ
@given(mutated(TASK_TEXTS))
def test_mutated_tasks_raise_only_spec_errors(text):
    try:
        built = Built(parse_task(text))
        built.nets  # noqa: B018 - the network shape checks
    except SpecError as err:
        assert str(err).startswith("<spec>"), str(err)


def test_the_mutator_does_produce_errors_and_valid_specs():
    """Guard against a fuzzer that only ever makes valid (or only hopeless) specs."""
    outcomes = set()

    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(mutated(SPACE_TEXTS))
    def probe(text):
        try:
            qtc.compile(text, qubits=3, depth=2)
            outcomes.add("ok")
        except SpecError as err:
            outcomes.add("syntax" if "unexpected" in err.message else "semantic")

    probe()
    assert outcomes == {"ok", "syntax", "semantic"}


@pytest.mark.parametrize("text", SPACE_TEXTS)
def test_unmutated_spaces_compile(text):
    assert qtc.compile(text, qubits=3, depth=2).weight_labels
