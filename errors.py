"""User-facing errors: the CLI prints them without a traceback and exits non-zero."""
from __future__ import annotations

import errno
import traceback


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


# errno -> (what happened, what to do), for the OSErrors a run can meet outside the spec.
_OS_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space or write elsewhere"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or write elsewhere"),
    errno.EFBIG: ("the file grew beyond the size allowed", "write elsewhere or raise the limit"),
    errno.EROFS: ("the file system is read-only", "write elsewhere"),
    errno.EACCES: ("permission denied", "fix the permissions or write elsewhere"),
    errno.EPERM: ("operation not permitted", "fix the permissions or write elsewhere"),
    errno.ENOTDIR: ("a file stands where a folder is needed", "remove it or choose another path"),
    errno.EEXIST: ("a file stands where a folder is needed", "remove it or choose another path"),
    errno.EISDIR: ("a folder stands where a file is needed", "remove it or choose another path"),
}


def os_error_message(err: OSError, where: str = "a run's folder: -o DIR; the kernel cache: "
                     "QTC_CACHE_DIR") -> str:
    """The path, what went wrong and what to do, for an OSError met outside the spec; `where`
    says which setting chooses another place."""
    what, todo = _OS_ERRORS.get(err.errno, (err.strerror or str(err), "check the path"))
    path = f" {err.filename}" if err.filename else ""
    return f"error: cannot use{path}: {what}\nhint: {todo} ({where})"


def describe_error(err: BaseException) -> str:
    """An error reported from another process (a sweep trial, a training worker): a QtcError's
    own message, else the exception with the last frames of its traceback."""
    if isinstance(err, QtcError):
        return str(err)
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    return f"{type(err).__name__}: {err}\n" + "".join(tb[-6:])
