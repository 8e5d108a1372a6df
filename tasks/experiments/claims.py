"""Every number a results page quotes, found in the run outputs committed beside it (issue 32).

A page declares its sources in an HTML comment, paths relative to the page (globs allowed):

    <!-- sources: table2_authors/* table2_authors_bessel/table2.csv -->

and every result number in its text must be in one of those files, as written there or rounded
as the page rounds it (`found`: within half a unit of the quoted number's last digit; a
percentage may be a fraction there, 92.8% = 0.928). Which numbers are results (`quoted`):

- a number with a decimal point or an exponent (0.668, 9.2e-05, 1.76x, 92.8%); whole numbers
  are counts, sizes, seeds, epochs, dates and ids, and a bare power of ten (1e-3, 1e-7) is a
  setting (a learning rate, --perturb): exempt;
- not in code (fenced blocks, `inline`), comments or link targets (commands, paths, hashes);
- not a version or dotted id (1.9.1), and not a time, size or speed (a number followed by s, ms,
  min, h, GB, MB, GiB, MiB, KB, x faster / slower ...): timings are the machine's, not the method's,
  and are kept with their hardware in the pages that measure them;
- not on a line that marks itself `<!-- not a result -->` (the paper's own figures, a quoted
  spec value): the exemption is written where the number is.

`check(root)` runs over docs/results/*.md and README.md; `markdown` writes the list
(docs/results/claims_check.md) of pages that declare no sources and numbers a declaring page
quotes that are not in its sources. `python -m qtc.tasks.experiments.claims [ROOT] [--write]`.
"""
from __future__ import annotations

import bisect
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

SOURCES = re.compile(r"<!--\s*sources:\s*(.*?)-->", re.S)
NOT_A_RESULT = "<!-- not a result -->"
LIST = "docs/results/claims_check.md"
# a number: digits with thousands commas, a fraction, an exponent; what follows it decides
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?([eE][-+]?\d+)?(?![\w.]*\.\d)")
UNIT = re.compile(r"\s?(?:s|ms|µs|us|ns|min|h|hours?|seconds?|minutes?|GB|MB|KB|kB|GiB|MiB|KiB|"
                  r"TB|Hz|GHz|it/s|steps?/s|B)\b|\s?x (?:faster|slower)|\s?(?:s|ms)/")
FENCED = re.compile(r"```.*?```|`[^`\n]*`", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`|<!--.*?-->|\]\([^)]*\)|https?://\S+", re.S)
SOURCE_SUFFIXES = {".csv", ".json", ".md", ".txt"}
POWER_OF_TEN = re.compile(r"1[eE][-+]?\d+")     # 1e-3, 1e-7: a setting (a rate, --perturb), not a result


@dataclass
class PageCheck:
    page: str
    sources: list[str] = field(default_factory=list)     # declared, as written
    missing_sources: list[str] = field(default_factory=list)
    quoted: int = 0                                        # result numbers on the page
    not_found: list[tuple[int, str]] = field(default_factory=list)   # (line, number as quoted)

    @property
    def declared(self) -> bool:
        return bool(self.sources)

    @property
    def passes(self) -> bool:
        return (self.declared or not self.quoted) and not self.missing_sources and not self.not_found


def quoted(text: str) -> list[tuple[int, str, Decimal, bool]]:
    """(line, text, value, is a percentage) of every result number of a page's text."""
    out = []
    blanked = CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    for n, (line, raw) in enumerate(zip(blanked.splitlines(), text.splitlines()), 1):
        if NOT_A_RESULT in raw:
            continue
        for m in NUMBER.finditer(line):
            whole, frac, exp = m.groups()
            if not frac and not exp:
                continue
            after = line[m.end():]
            if UNIT.match(after) or re.match(r"\.\d", after):
                continue
            token = m.group()
            if POWER_OF_TEN.fullmatch(token):
                continue
            out.append((n, token, Decimal(token.replace(",", "")), after.startswith("%")))
    return out


def values_of(files: list[Path]) -> list[float]:
    """Every number written in the source files, sorted (ints, floats, exponents; JSON, CSV, md)."""
    found = set()
    pattern = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
    for f in files:
        for m in pattern.finditer(f.read_text(errors="replace")):
            try:
                found.add(abs(float(m.group())))
            except ValueError:
                pass
    return sorted(found)


def found(value: Decimal, percent: bool, values: list[float]) -> bool:
    """Whether a quoted number is one of `values` as the page rounds it: within half a unit of
    its last digit (and, for a percentage, the same as a fraction)."""
    half = Decimal(1).scaleb(value.as_tuple().exponent) / 2
    candidates = [(value, half)] + ([(value / 100, half / 100)] if percent else [])
    for v, h in candidates:
        lo, hi = float(v - h) * (1 - 1e-12), float(v + h) * (1 + 1e-12)
        i = bisect.bisect_left(values, lo)
        if i < len(values) and values[i] <= hi:
            return True
    return False


def check_page(page: Path, root: Path) -> PageCheck:
    text = page.read_text()
    res = PageCheck(str(page.relative_to(root)))
    files: list[Path] = []
    for decl in SOURCES.findall(FENCED.sub("", text)):     # a declaration shown as code is not one
        for pat in decl.split():
            res.sources.append(pat)
            hits = sorted(p for p in page.parent.glob(pat) if p.is_file() and p.suffix in SOURCE_SUFFIXES)
            if not hits:
                res.missing_sources.append(pat)
            files += hits
    numbers = quoted(text)
    res.quoted = len(numbers)
    if res.declared:
        values = values_of(files)
        res.not_found = [(n, tok) for n, tok, v, pct in numbers if not found(v, pct, values)]
    return res


def pages(root: Path) -> list[Path]:
    """The pages checked: README.md and docs/results/*.md, less the generated list itself."""
    root = Path(root)
    return [root / "README.md"] + sorted(p for p in (root / "docs" / "results").glob("*.md")
                                         if p != root / LIST)


def check(root: Path | str) -> list[PageCheck]:
    root = Path(root)
    return [check_page(p, root) for p in pages(root)]


def markdown(results: list[PageCheck]) -> str:
    """docs/results/claims_check.md: which pages pass, which declare no sources, which numbers are
    not in the declared outputs (each once, in the page's order; no line numbers or counts, so
    that an edit elsewhere on a page leaves the list as it is)."""
    ok = [r for r in results if r.passes]
    undeclared = [r for r in results if not r.declared and r.quoted]
    short = [r for r in results if r.declared and not r.passes]
    L = ["# Claims check: the numbers each results page quotes, found in its committed outputs", "",
         "Generated by `python -m qtc.tasks.experiments.claims --write` (qtc.tasks.experiments.claims "
         "says the rules); `tests/test_claims.py` fails when this list is not what the check finds. "
         "A page declares its sources in a comment `<!-- sources: FOLDER/* FILE.csv -->`; a "
         "result number is one with a fraction or an exponent that is not code, a version or a "
         "timing.", "",
         "## Pages that pass", ""]
    L += [f"- {r.page}" + (f": sources {' '.join(r.sources)}" if r.declared
                          else " (quotes no result numbers)") for r in ok] or ["- none"]
    L += ["", "## Pages that quote numbers and declare no sources", "",
          "Their numbers come from runs whose outputs were not committed (or not declared): each "
          "is to be redone by `qtc regenerate` (specs/regenerate.toml) or given its sources.", ""]
    L += [f"- {r.page}" for r in undeclared] or ["- none"]
    L += ["", "## Numbers not found in the declared sources", ""]
    for r in short:
        L += [f"### {r.page} (sources {' '.join(r.sources)})", ""]
        if r.missing_sources:
            L += ["Declared sources that do not exist: " + ", ".join(r.missing_sources), ""]
        if r.not_found:
            L += [", ".join(dict.fromkeys(tok for _, tok in r.not_found)), ""]
    if not short:
        L += ["- none", ""]
    return "\n".join(L).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    write = "--write" in args
    args = [a for a in args if a != "--write"]
    root = Path(args[0]) if args else Path(".")
    text = markdown(check(root))
    if write:
        (root / LIST).write_text(text)
        print(f"wrote {root / LIST}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
