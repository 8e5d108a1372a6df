"""Checks of values a spec and the command line share: seeds, a selection rule for a task
kind, a backend's name, a finite number (dsl.task's statements use them; so do the CLI,
runner and sweep), and pydantic's errors in a spec's words."""
from __future__ import annotations

import math

from qtc.errors import did_you_mean

MAX_SEED = 2 ** 32 - 1      # torch and numpy seeds are 32-bit
MAX_SEEDS = 10_000          # seeds of one command: a run folder each, checked before any is made
BACKENDS = ("auto", "cpu", "cuda", "reference")    # what a spec or --backend names (runtime.backends runs them)
# words people use for a backend under another name: no 'did you mean cpu' for 'gpu'
BACKEND_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "cupy": "cuda", "host": "cpu", "ref": "reference"}


def select_problem(kind: str, rule: str, fraction: float | None) -> str | None:
    """What is wrong with selection rule `rule` (and its fraction) for a task of `kind`, or None.

    Classification and forecasting hold out a fraction of the training data; an a3c task's
    validation set is its evaluation episodes, and it has no per-checkpoint training loss.
    """
    if kind != "a3c":
        if rule == "validation" and fraction is None:
            return ("'select validation' needs the fraction of the training data to hold out, "
                    "e.g. 'select validation 0.2'")
        return None
    if rule == "train":
        return ("'select train' is not defined for a3c tasks (there is no training loss per "
                "checkpoint); use 'select last' or 'select validation' (evaluation episodes)")
    if fraction is not None:
        return (f"for an a3c task 'select validation' takes no fraction (got {fraction:g}): its "
                "validation set is the evaluation episodes ('a3c eval_every E eval_episodes N')")
    return None


def backend_hint(word: str) -> str | None:
    """The hint for an unknown backend name: the real name of an alias, else a close match."""
    if BACKEND_ALIASES.get(word) == "cuda":
        return "the GPU backend is called 'cuda'"
    if word in BACKEND_ALIASES:
        return f"did you mean '{BACKEND_ALIASES[word]}'?"
    return did_you_mean(word, BACKENDS)


def check_seeds(seeds) -> tuple[int, ...]:
    """A seed count K (-> 0..K-1) or a list of distinct seeds >= 0, as a tuple; ValueError else."""
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(f"a seed count must be between 1 and {MAX_SEEDS:,}, got {seeds}")
        return tuple(range(seeds))
    seeds = tuple(seeds)
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ValueError(f"seeds must name between 1 and {MAX_SEEDS:,} seeds, got {len(seeds):,}")
    if min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise ValueError(f"each seed must be between 0 and {MAX_SEED:,} (torch and numpy seeds "
                         "are 32-bit)")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed(s) {', '.join(map(str, repeated))} repeat: each seed runs once")
    return seeds


def non_finite(v) -> bool:
    """A float that is inf or nan, also when written as a word (`nan`, `inf`, `-Infinity`)."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return False
    return isinstance(v, float) and not math.isfinite(v)


def pydantic_message(e: dict) -> str:
    """A pydantic error (one of ValidationError.errors()) in the spec's words: bounds, choices."""
    msg = e.get("msg", "invalid value")
    ctx = e.get("ctx") or {}
    if e.get("type") == "literal_error" and "expected" in ctx:
        return f"expected {ctx['expected']}"
    if e.get("type") == "missing" and len(e.get("loc", ())) > 1:
        return "too few items"
    bounds = {"greater_than_equal": ("ge", "must be at least"), "greater_than": ("gt", "must be above"),
              "less_than_equal": ("le", "must be at most"), "less_than": ("lt", "must be below")}
    if e.get("type") in bounds:
        key, words = bounds[e["type"]]
        return f"{words} {ctx[key]:,}" if isinstance(ctx.get(key), int) else f"{words} {ctx.get(key)}"
    return msg.removeprefix("Value error, ")
