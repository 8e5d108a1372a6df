"""`--set statement.option=value`: a .task spec's options changed from the command line.

A setting is applied to the parsed spec and its statement validated again by its own model
(qtc.dsl.task.STATEMENTS), so it obeys exactly the rules the same option obeys in the spec
file; its errors name the setting ("--set train.lr=x: ...") instead of a place in the file.
"""
from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from qtc.dsl import data as data_clauses
from qtc.dsl.task import (STATEMENTS, DataStmt, Stmt, TaskSpec, pydantic_message, setting_value,
                          spec_problems, statement_keyword)
from qtc.errors import SpecError, did_you_mean


def parse_setting(text: str) -> tuple[str, str]:
    """'train.lr=3e-4' -> ('train.lr', '3e-4'); the value is checked when it is applied."""
    path, eq, value = text.partition("=")
    if not eq or not path.strip() or not value.strip():
        raise SpecError(f"--set {text!r}: expected STATEMENT.OPTION=VALUE, e.g. train.lr=3e-4",
                        file="<command line>")
    return path.strip(), value.strip()


def with_settings(spec: TaskSpec, settings: dict[str, str]) -> TaskSpec:
    """The spec with every `statement.option = value` applied, each statement validated again by
    its own model: a setting obeys exactly the rules the same option obeys in a spec file."""
    updates: dict[str, Stmt] = {}
    for path, text in settings.items():
        key, name = _setting_path(path)
        stmt = updates.get(key) or getattr(spec, key)
        if stmt is None:
            raise _setting_error(path, text, f"the task has no '{key}' statement to change",
                                 f"add a line '{key} ...' to {spec.file or 'the spec'}")
        try:
            value = setting_value(text)
        except SpecError as err:
            raise _setting_error(path, text, f"cannot read the value: {err.message}") from None
        updates[key] = _with_option(stmt, name, value, path, text)
    new = spec.model_copy(update=updates)
    for problem in spec_problems(new)[:1]:    # the spec's own were refused when it was parsed
        mine = {p: t for p, t in settings.items() if p.partition(".")[0] == problem.statement}
        shown = ", ".join(f"{p}={t}" for p, t in (mine or settings).items())
        raise SpecError(f"--set {shown}: {problem.message}", file="<command line>",
                        hint=problem.hint or None)
    return new


def _setting_path(path: str) -> tuple[str, str]:
    key, dot, name = path.partition(".")
    if key not in STATEMENTS:
        raise _setting_error(path, None, f"no statement '{key}'", _close(key, STATEMENTS),
                             f"statements: {', '.join(STATEMENTS)}")
    options = _options(STATEMENTS[key])
    if not dot or not name:
        raise _setting_error(path, None, "name an option: STATEMENT.OPTION=VALUE",
                             f"'{key}' options: {', '.join(options)}")
    if name not in options and STATEMENTS[key] is not DataStmt:   # data sets take their own options
        raise _setting_error(path, None, f"'{key}' has no option '{name}'", _close(name, options),
                             f"'{key}' options: {', '.join(options)}")
    return key, name


def _close(word: str, options) -> str | None:
    """'did you mean ...?' only (the hint lists every allowed name itself)."""
    hint = did_you_mean(word, options)
    return hint if hint and hint.startswith("did you mean") else None


def _options(model: type[Stmt]) -> list[str]:
    shown = {field: word for word, field in model.keywords.items()}      # data's `column`
    return [shown.get(f, f) for f in model.model_fields if f not in ("line", "column", "positional", "options")]


def _with_option(stmt: Stmt, name: str, value: Any, path: str, text: str) -> Stmt:
    model = type(stmt)
    name = model.keywords.get(name, name)
    # only what the statement was given (its defaults stay defaults: dsl.applies asks what was given)
    values = stmt.model_dump(include=stmt.model_fields_set - {"line", "column", "positional"})
    if f"*{name}" in model.model_fields["positional"].default and not isinstance(value, list):
        value = [value]                                  # a variadic option is always a list
    if name in model.model_fields and name not in ("line", "column"):
        values[name] = value
    else:
        values["options"] = {**values.get("options", {}), name: data_clauses.option_value(value)}
    try:
        new = model(**values, line=stmt.line, column=stmt.column)
    except ValidationError as err:
        first = err.errors()[0]
        raise _setting_error(path, text, f"'{statement_keyword(model)}' option '{first['loc'][0]}': "
                             f"{pydantic_message(first)}") from None
    if model is DataStmt:         # which options the data source takes, as in a spec file
        given = new.model_fields_set - {"line", "column", "positional", "dataset", "file", "options"}
        try:
            data_clauses.check(new, {f: new for f in given | set(new.options) | {name}})
        except SpecError as err:
            raise _setting_error(path, text, err.message, err.hint) from None
    got = getattr(new, name, new.model_dump().get("options", {}).get(name))
    if any(isinstance(v, float) and not math.isfinite(v) for v in (got if isinstance(got, tuple) else [got])):
        raise _setting_error(path, text, f"'{name}' must be a finite number")     # 'inf' reads as one
    return new


def _setting_error(path: str, text: str | None, message: str, *hints: str | None) -> SpecError:
    shown = path if text is None else f"{path}={text}"
    return SpecError(f"--set {shown}: {message}", file="<command line>",
                     hint="; ".join(h for h in hints if h) or None)
