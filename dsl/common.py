"""Shared parsing machinery: grammar loading, Lark errors -> SpecError, positions."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import lark
from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from qtc.errors import SpecError, did_you_mean

# How terminals are shown in "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name", "INT": "an integer", "DECIMAL": "a number", "NUMBER": "a number",
    "STRING": "a string", "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'",
    "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "SEMICOLON": "';'", "COLON": "':'",
    "EQUAL": "'='", "VBAR": "'|'", "ADDOP": "'+' or '-'", "MULOP": "an operator", "_NL": "a new line",
    "NEWLINE": "a new line", "ARROW": "'->'", "MINUS": "'-'", "AUTO": "'auto'", "TIE": "'tie', 'untie'",
    "NOTHING": "'nothing'", "ALL": "'all'", "$END": "the end of the file", "DOT": "'.'",
    "WEIGHTS_INIT": "'init'",
}


@lru_cache(maxsize=None)
def grammar(name: str, start: str = "start") -> Lark:
    """The parser of a grammar file from rule `start` (a task's `values` parse `--set` values).

    strict: a shift/reduce conflict or two terminals that can match the same text is an error
    when the parser is built, not a choice Lark makes silently (needs the interegular package)."""
    text = resources.files(__package__).joinpath(name).read_text()
    return Lark(text, parser="lalr", start=start, propagate_positions=True, maybe_placeholders=False,
                strict=True)


def _describe(terminals) -> str:
    names = []
    for t in sorted(terminals):
        if t in _TERMINAL_NAMES:
            names.append(_TERMINAL_NAMES[t])
        elif t.startswith("__ANON") or t.startswith("_"):
            continue
        else:
            names.append(f"'{t.lower()}'")
    names = sorted(set(names))
    if not names:
        return "something else"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def syntax_error(err: UnexpectedInput, keywords=()) -> SpecError:
    """Turn a Lark exception into a located SpecError with what was expected."""
    line, col = getattr(err, "line", None), getattr(err, "column", None)
    hint = None
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            msg = f"unexpected end of file, expected {_describe(err.expected)}"
        else:
            shown = "end of line" if tok.type in ("_NL", "NEWLINE") else f"'{tok}'"
            msg = f"unexpected {shown}, expected {_describe(err.expected)}"
            # a misspelt keyword only where a keyword could stand (not e.g. where ':' must)
            if tok.type == "NAME" and any(t.lower() in keywords for t in err.expected):
                hint = did_you_mean(str(tok), keywords)
        if line is None or line < 0:
            line, col = None, None
    elif isinstance(err, UnexpectedCharacters):
        msg = f"unexpected character {err.char!r}"
        allowed = getattr(err, "allowed", None)
        if allowed:
            msg += f", expected {_describe(allowed)}"
    elif isinstance(err, UnexpectedEOF):
        msg = f"unexpected end of file, expected {_describe(err.expected)}"
    else:  # pragma: no cover - Lark has no other kinds today
        msg = str(err).splitlines()[0]
    return SpecError(msg, line=line, column=col, hint=hint)


MAX_SPEC_CHARS = 1 << 20   # a spec is a page of text; parsing a megabyte already takes seconds
MAX_LINE_CHARS = 4096


def check_size(text: str) -> None:
    """Refuse a spec too large to parse at once, before the parser sees it."""
    if len(text) > MAX_SPEC_CHARS:
        line = text.count("\n", 0, MAX_SPEC_CHARS) + 1
        raise SpecError(f"the spec has {len(text):,} characters, more than {MAX_SPEC_CHARS:,}", line=line,
                        column=1)
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE_CHARS:
            raise SpecError(f"line {number} has {len(line):,} characters, more than {MAX_LINE_CHARS:,}",
                            line=number, column=MAX_LINE_CHARS + 1,
                            hint="statements may span several lines: break it after an operator")


def parse_text(grammar_name: str, text: str, keywords=(), start: str = "start"):
    check_size(text)
    try:
        return grammar(grammar_name, start).parse(text)
    except UnexpectedInput as err:
        raise syntax_error(err, keywords) from None


def transform(transformer: lark.Transformer, tree):
    """Run a transformer; unwrap the VisitError Lark puts around our SpecErrors."""
    try:
        return transformer.transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc from None
        raise


def read_source(source: str | Path) -> tuple[str, str | None]:
    """(text, file name or None): `source` is a path to an existing file or the spec text."""
    if isinstance(source, Path) or ("\n" not in str(source) and len(str(source)) < 4096
                                    and Path(str(source)).suffix in (".qs", ".task")):
        path = Path(source)
        if not path.is_file():
            raise SpecError("no such spec file", file=str(path), hint="check the path (relative "
                            "to the current folder) or pass the spec text itself")
        data = path.read_bytes()
        try:
            return data.decode(), str(path)
        except UnicodeDecodeError as err:   # located at the first bad byte, shown with its line
            start = data.rfind(b"\n", 0, err.start) + 1
            line = data.count(b"\n", 0, err.start) + 1
            column = len(data[start:err.start].decode(errors="replace")) + 1
            raise SpecError(f"this file is not UTF-8 text: byte 0x{data[err.start]:02x} cannot be "
                            "decoded", file=str(path), line=line, column=column,
                            source=data.decode(errors="replace"),
                            hint="save the spec as UTF-8 (or plain ASCII)") from None
    return str(source), None


def parse_spec(build, source, file: str | None = None):
    """Read a spec (path or text) and run `build(text, file)`, locating any SpecError."""
    text, path = read_source(source)
    file = file or path
    try:
        return build(text, file)
    except SpecError as err:
        raise err.located(file, text) from None


def pos(meta) -> dict:
    """Line and column of a tree node (Lark meta or token)."""
    return {"line": getattr(meta, "line", None), "column": getattr(meta, "column", None)}
