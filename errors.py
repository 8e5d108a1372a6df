"""User-facing errors: the CLI prints them without a traceback and exits non-zero."""
from __future__ import annotations


class QtcError(Exception):
    """An error the user can fix (bad input, missing data, ...). Printed as-is, exit code 2."""

    exit_code = 2


class SpecError(QtcError):
    """An error in a spec file, located at file:line:col, shown with the source line and a caret."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, source: str | None = None, hint: str | None = None):
        self.message, self.file, self.line, self.column = message, file, line, column
        self.source, self.hint = source, hint
        super().__init__(self.render())

    def located(self, file: str | None, source: str | None) -> "SpecError":
        """The same error, with the file name and text filled in where they were unknown."""
        return SpecError(self.message, file=self.file or file, line=self.line, column=self.column,
                         source=self.source or source, hint=self.hint)

    def render(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        out = [f"{where}: error: {self.message}"]
        if self.source is not None and self.line is not None:
            lines = self.source.splitlines()
            if 0 < self.line <= len(lines):
                text = lines[self.line - 1].replace("\t", " ")
                out += [f"    {text}", "    " + " " * max((self.column or 1) - 1, 0) + "^"]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


def did_you_mean(word: str, options) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None."""
    import difflib
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return None
