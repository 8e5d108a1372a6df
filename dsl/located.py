"""Located: the base of every spec model, a value that knows where in the spec text it stands.

Errors found long after parsing (at expansion, when the number of qubits is known, or when a
task is built) are raised by the model itself, so they still point at the spec text; parse_spec
fills in the file name and the source line.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from qtc.errors import SpecError


class Located(BaseModel):
    model_config = ConfigDict(frozen=True)
    line: int | None = None
    column: int | None = None

    def position(self) -> dict:
        """{"line": ..., "column": ...}, to place another model or error here."""
        return {"line": self.line, "column": self.column}

    def error(self, message: str, hint: str | None = None) -> SpecError:
        """A SpecError located here (raise it)."""
        return SpecError(message, **self.position(), hint=hint)


class Stmt(Located):
    """A task statement (`keyword positional... option value ...`): its fields are the options;
    `positional` (class-level) names the arguments before them."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    positional: tuple[str, ...] = ()
    # spec word -> field, for an option whose word is taken (`column`: every model's position)
    keywords: ClassVar[dict[str, str]] = {}

    @classmethod
    def take_positional(cls, values: dict, rest: list, where: dict, at: dict) -> None:
        """Take statement-specific positional atoms off `rest` into `values` (and their atoms into
        `where`) after the declared ones; `at` is the statement's position. None by default."""
