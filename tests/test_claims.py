"""Every number a results page quotes is in the outputs committed beside it (issue 32;
qtc.tasks.experiments.claims): the list docs/results/claims_check.md is what the check finds, a
page's declared sources exist, and a page quoting a number its sources lack fails."""
from __future__ import annotations

from pathlib import Path

import pytest

from qtc.tasks.experiments import claims

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def today():
    return claims.check(ROOT)


def test_the_claims_list_is_what_the_check_finds(today):
    listed = (ROOT / claims.LIST).read_text()
    assert claims.markdown(today) == listed, (
        "docs/results/claims_check.md is not what the check finds: a page quotes a number its "
        "sources lack (or no longer does). Add the outputs or the source declaration, or, to "
        "record it, run: python -m qtc.tasks.experiments.claims --write")


def test_every_declared_source_exists(today):
    assert {r.page: r.missing_sources for r in today if r.missing_sources} == {}


def test_the_pages_that_declare_sources_today_are_checked(today):
    by = {r.page: r for r in today}
    assert by["docs/results/mnist_python.md"].passes and by["docs/results/cluster.md"].passes
    assert by["docs/results/table2.md"].declared and by["docs/results/table2.md"].quoted > 100


def _page(tmp_path: Path, text: str, source: str = "value\n0.66812\n9.2015e-05\n0.928\n1.83\n") -> claims.PageCheck:
    results = tmp_path / "docs" / "results"
    (results / "run").mkdir(parents=True, exist_ok=True)
    (results / "run" / "summary.csv").write_text(source)
    page = results / "page.md"
    page.write_text(text)
    return claims.check_page(page, tmp_path)


@pytest.mark.parametrize("quoted", ["0.668", "0.67", "0.6681", "9.2e-05", "9.20e-05", "92.8%", "1.83x"])
def test_a_number_in_the_sources_as_the_page_rounds_it_is_found(tmp_path, quoted):
    r = _page(tmp_path, f"<!-- sources: run/* -->\nDiffQAS-QT: {quoted} against the median.\n")
    assert r.passes and r.quoted == 1, r


@pytest.mark.parametrize("quoted", ["0.671", "0.6680", "9.3e-05", "93.8%", "1.84x", "0.8"])
def test_a_page_quoting_a_number_absent_from_its_sources_fails(tmp_path, quoted):
    r = _page(tmp_path, f"<!-- sources: run/* -->\n| DiffQAS-QT | {quoted} |\n")
    number = quoted.rstrip("%x")
    assert not r.passes and r.not_found == [(2, number)]
    assert f"### docs/results/page.md (sources run/*)\n\n{number}\n" in claims.markdown([r])


def test_a_declaration_shown_as_code_is_not_one(tmp_path):
    r = _page(tmp_path, "Declare them: `<!-- sources: nowhere/* -->`.\n")
    assert not r.declared and r.passes


def test_numbers_that_are_not_results_are_exempt(tmp_path):
    text = ("<!-- sources: run/* -->\n"
            "Seeds 0, 1, 2; 100 epochs; 1,781 parameters; 2026-12-07; scikit-learn 1.9.1.\n"
            "Took 3.7 s (12.5 min, 1.5 h) on 2 cores; 4.2 GB; lr 1e-3, --perturb 1e-7.\n"
            "`qtc run --epochs 2.5` and\n```\n0.123 in a block\n```\n[link](a/0.5.md)\n"
            "The paper's value 0.000036. <!-- not a result -->\n")
    r = _page(tmp_path, text)
    assert r.quoted == 0 and r.passes


def test_a_page_with_result_numbers_and_no_sources_does_not_pass(tmp_path):
    r = _page(tmp_path, "DiffQAS-QT reached 0.668.\n")
    assert not r.declared and r.quoted == 1 and not r.passes
    assert "- docs/results/page.md" in claims.markdown([r]).split("## Numbers not found")[0]


def test_a_declared_source_that_is_missing_fails(tmp_path):
    r = _page(tmp_path, "<!-- sources: run/* gone/summary.csv -->\n0.668\n")
    assert r.missing_sources == ["gone/summary.csv"] and not r.passes
