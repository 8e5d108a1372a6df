"""Model names, in code and on disk: every conversion between the two lives here.

A task's models are ``diffqas`` (the QT generator over the whole ensemble), ``fixed:K``
(candidate K alone), ``found`` (the architecture DiffQAS-QT's search found, trained alone after
it: every position's favourite of a per-position space, the argmax candidate of an enumerated
one) and ``classical`` (the target network's own parameters). Folder names
spell ``fixed:K`` as ``fixed_K``: a colon is not portable in file names (Windows, archivers).
"""
from __future__ import annotations

from qtc.errors import QtcError

DIFFQAS = "diffqas"
CLASSICAL = "classical"
FOUND = "found"
_FIXED = "fixed:"
_FIXED_FOLDER = "fixed_"


def fixed(k: int) -> str:
    """The model name of candidate `k` alone."""
    return f"{_FIXED}{k}"


def fixed_index(model: str) -> int | None:
    """K for ``fixed:K``; None for every other model."""
    if model.startswith(_FIXED) and model[len(_FIXED):].isdigit():
        return int(model[len(_FIXED):])
    return None


def is_fixed(model: str) -> bool:
    return fixed_index(model) is not None


def folder(model: str) -> str:
    """The model's folder name: ``fixed:K`` -> ``fixed_K``, the others as they are."""
    k = fixed_index(model)
    return model if k is None else f"{_FIXED_FOLDER}{k}"


def from_folder(name: str) -> str:
    """The inverse of `folder`."""
    rest = name.removeprefix(_FIXED_FOLDER)
    return fixed(int(rest)) if rest != name and rest.isdigit() else name


def order(model: str) -> tuple[int, int]:
    """Sort key: DiffQAS-QT, the architecture it found, the fixed candidates by index, then
    anything else."""
    if model == DIFFQAS:
        return (0, 0)
    if model == FOUND:
        return (0, 1)
    k = fixed_index(model)
    return (1, k) if k is not None else (2, 0)


def label(model: str, candidates) -> str:
    """The display name: ``DiffQAS-QT``, ``config K+1 (<candidate label>)`` or ``classical``."""
    k = fixed_index(model)
    if k is not None and k < len(candidates):
        return f"{short(model)} ({candidates[k]})"
    return short(model)


def short(model: str) -> str:
    """The display name without the candidate: ``DiffQAS-QT``, ``config K+1`` or ``classical``."""
    k = fixed_index(model)
    if k is not None:
        return f"config {k + 1}"
    return {DIFFQAS: "DiffQAS-QT", FOUND: "found architecture", CLASSICAL: "classical"}.get(model, model)


def configs(models) -> str:
    """Several models named once: ``configs 1, 9, 12`` when all are fixed candidates (1-based,
    as in the paper), else their short names joined with commas."""
    ks = [fixed_index(m) for m in models]
    if len(ks) > 1 and None not in ks:
        return "configs " + ", ".join(str(k + 1) for k in ks)
    return ", ".join(short(m) for m in models)


def tie_label(models) -> str:
    """The one legend entry of tied models: ``configs 1=3=4=6 (tie)``; with another model among
    them, their short names joined by ``=``."""
    ks = [fixed_index(m) for m in models]
    if None not in ks:
        return "configs " + "=".join(str(k + 1) for k in ks) + " (tie)"
    return " = ".join(short(m) for m in models) + " (tie)"


def parse_models(text: str, candidates: int, *, quantum: bool) -> list[str]:
    """``diffqas,found,fixed,fixed:K,classical`` -> model names (``fixed`` = every candidate), in
    order, except that ``found`` follows ``diffqas`` (it trains what that search found).

    `candidates` is the number of candidates of the task's space; `quantum` says whether the
    task has a generator at all (without one only ``classical`` exists).
    """
    out: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        k = fixed_index(word)
        if not word:
            continue
        if word in (DIFFQAS, FOUND) and quantum:
            out.append(word)
        elif word == "fixed" and quantum:
            out += [fixed(i) for i in range(candidates)]
        elif k is not None and quantum and k < candidates:
            out.append(word)
        elif word == CLASSICAL:
            out.append(CLASSICAL)
        else:
            raise QtcError(f"unknown model '{word}' in --models: expected diffqas, found, fixed, "
                           f"fixed:K (0 <= K < {candidates}; fixed:K is config K+1) or classical")
    if not out:
        raise QtcError(f"--models {text!r} names no model: expected diffqas, found, fixed, fixed:K "
                       "or classical")
    if FOUND in out and DIFFQAS not in out:
        raise QtcError(f"--models {text}: 'found' trains the architecture DiffQAS-QT finds, so it "
                       "needs diffqas in the same run (--models diffqas,found)")
    out = list(dict.fromkeys(out))
    if FOUND in out:                 # right after the search it depends on
        out.remove(FOUND)
        out.insert(out.index(DIFFQAS) + 1, FOUND)
    return out
