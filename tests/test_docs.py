"""The docs cannot fall behind the code (issue 13): the task grammar reference in
docs/spec-language.md names every statement, option and layer the task models accept, and no doc
holds a path of the author's machine or names a repository file that does not exist."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from qtc.dsl.task import STATEMENTS
from qtc.tasks.data import series
from qtc.tasks.network import LAYER_KINDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TASKS = (ROOT / "docs" / "spec-language.md").read_text().split("\n## Tasks\n", 1)[-1]
NOT_OPTIONS = ("line", "column", "positional", "options")   # positions; `options`: the data set's own
# Files qtc's commands write (named in the docs as outputs, not files of the repository).
OUTPUTS = {"summary.md", "gpu_check.md", "spread.md"}   # files qtc writes into a run or report folder
LINK = re.compile(r"\]\(([^)\s]+)\)")
TOP = "specs|docs|tests|bench|dsl|compiler|runtime|tasks"
# a repository path (not an output given to -o/--out, not a pattern with $, *, {} or <>) or a .md name
FILE = re.compile(rf"(?<![\w./$-])(?<!-o )(?<!--out )((?:{TOP})/[\w./-]*[\w/]|[\w-]+\.md)"
                  rf"(?![\w$*{{<-]|[./][\w$*{{<])")


def _section(keyword: str) -> str:
    """The text of the Tasks section's `### \\`keyword ...\\`` subsection."""
    match = re.search(rf"\n### `{keyword}\b[^\n]*\n(.*?)(?=\n### |\Z)", TASKS, re.S)
    assert match, f"docs/spec-language.md's Tasks section has no '### `{keyword} ...`' subsection"
    return match.group(1)


@pytest.mark.parametrize("keyword", list(STATEMENTS))
def test_every_option_of_every_task_statement_has_a_row_in_the_grammar_reference(keyword):
    text = _section(keyword)
    model = STATEMENTS[keyword]
    shown = {field: word for word, field in model.keywords.items()}     # `column` of a data file
    fields = [shown.get(f, f) for f in model.model_fields if f not in NOT_OPTIONS]
    missing = [f for f in fields if f"| `{f}` |" not in text]
    assert not missing, f"'{keyword}' options missing from docs/spec-language.md: {missing}"


@pytest.mark.parametrize("name", series.NAMES)
def test_every_option_of_every_series_is_in_the_data_table(name):
    rows = [line for line in _section("data").splitlines() if line.startswith("|")]
    row = next(line for line in rows if f"`{name}`" in line.split("|")[1])
    missing = [k for k in series._defaults(series._GENERATORS[name]) if f"`{k}`" not in row]
    assert not missing, f"series '{name}' options missing from docs/spec-language.md: {missing}"


def test_every_layer_kind_is_in_the_networks_table():
    text = re.search(r"\n### Networks\n(.*?)(?=\n### )", TASKS, re.S).group(1)
    assert [k for k in LAYER_KINDS if f"`{k}" not in text] == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_doc_holds_a_path_of_the_authors_machine_or_names_a_missing_file(doc):
    text = doc.read_text()
    assert "/work/" not in text
    names = {p.name for p in ROOT.rglob("*") if ".git" not in p.parts}
    missing = [t for t in LINK.findall(text) if not t.startswith(("http:", "https:", "#"))
               and not (doc.parent / t.split("#")[0]).exists()]
    missing += [t for t in FILE.findall(text) if not (
        (ROOT / t).exists() if "/" in t else t in names or t in OUTPUTS)]
    assert not missing, f"{doc.relative_to(ROOT)} names files the repository lacks: {missing}"


def test_the_file_check_sees_a_missing_file_and_skips_outputs_and_patterns():
    text = ("see DESIGN.md and `specs/nope.task`; run `qtc run specs/bessel.task -o docs/results/new`, "
            "`specs/minigrid_${g}.task`, summary.md.")
    assert FILE.findall(text) == ["DESIGN.md", "specs/nope.task", "specs/bessel.task", "summary.md"]
