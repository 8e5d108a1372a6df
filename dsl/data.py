"""The `data` statement: a built-in data set or a user's own file, and which options each takes.

    data mnist classes [1, 5]                      built-in images (classify)
    data bessel window 4 points 1000               a built-in series and its generator's options
    data npz "digits.npz" classes all split 0.8    arrays x, y [, x_test, y_test] (classify)
    data folder "pets" normalize [0.5, 0.5]        one sub-folder of images per class (classify)
    data cifar10 "cifar" classes [3, 5]            torchvision's cifar-10-batches-py files (classify)
    data csv "sunspots.csv" column SUNACTIVITY     one column of a CSV file with a header (forecast)
    data csv "w.csv" columns [t, p] target p       several inputs per step, one target (forecast)
    data npy "series.npy" [target K]               a NumPy array (forecast)

A file source's path is the quoted string after its name (FILE_SOURCES); where it is looked for
and how it is read is qtc.tasks.data.sources' work, at run time (`--data-root` is a run option).
Here the statement is checked on its own: which options a source takes, located at the option.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from qtc.dsl.located import Stmt
from qtc.errors import SpecError

# file source -> the task kind it feeds
FILE_SOURCES = {"npz": "classify", "folder": "classify", "cifar10": "classify",
                "csv": "forecast", "npy": "forecast"}
# What each source takes besides its file. Built-in sets are checked by their task kind.
SOURCE_OPTIONS = {
    "npz": ("classes", "split", "limit"),
    "folder": ("classes", "normalize", "split", "limit"),
    "cifar10": ("classes", "normalize", "limit"),
    "csv": ("column", "columns", "target", "window", "split", "drop_last", "scale"),
    "npy": ("target", "window", "split", "drop_last", "scale"),
}
FILE_FIELDS = ("file", "column", "columns", "target")     # only file sources have these (as written)
WORDS = {"true": True, "false": False}


class DataStmt(Stmt):
    """`data mnist classes [1, 5] normalize [0.5, 0.5]` / `data bessel points 1000` /
    `data csv "sunspots.csv" column SUNACTIVITY window 8` / ..."""
    positional: tuple[str, ...] = ("dataset",)
    keywords: ClassVar[dict[str, str]] = {"column": "column_name"}   # `column` is a position
    dataset: str
    file: str | None = None            # a file source's path, as written (FILE_SOURCES)
    # `classes [c1, ..., cK]` (K >= 2 distinct labels; c1 is output 0) or `classes all`
    classes: tuple[Annotated[int, Field(ge=0)], ...] | Literal["all"] | None = None
    normalize: tuple[float, Annotated[float, Field(gt=0)]] = (0.5, 0.5)   # mean, std
    limit: Annotated[int, Field(ge=1)] | None = None   # the first N examples of each split (RANGES["limit"])
    download: bool = False
    window: Annotated[int, Field(ge=1, le=10_000)] = 4
    split: Annotated[float, Field(gt=0, lt=1)] = 0.67
    drop_last: bool = False
    column_name: str | None = None     # csv `column NAME`: the series to forecast
    columns: tuple[str, ...] | None = None   # csv: several inputs per time step (with `target`)
    target: str | Annotated[int, Field(ge=0)] | None = None   # csv: a column name; npy: an index
    options: dict[str, Any] = {}      # a built-in series' generator options; `scale` of a file series

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_word(cls, v):
        if isinstance(v, str) and v != "all":
            raise ValueError("expected a list of class labels, e.g. [1, 5], or 'all'")
        return v

    @field_validator("classes")
    @classmethod
    def _classes(cls, v):
        if isinstance(v, tuple):
            if len(v) < 2:
                raise ValueError("a classifier needs at least two classes, e.g. [1, 5] (or 'all')")
            twice = sorted({c for c in v if v.count(c) > 1})
            if twice:
                raise ValueError(f"class {twice[0]} is named twice; each class is one output")
        return v

    @field_validator("column_name", "target", mode="before")
    @classmethod
    def _name(cls, v):
        if isinstance(v, list):
            raise ValueError("expected one column name (several inputs: `columns [a, b] target b`)")
        return v

    @classmethod
    def take_positional(cls, values: dict, rest: list, where: dict, at: dict) -> None:
        """A file source's quoted path, right after the source's name (`data csv "x.csv"`)."""
        source = values.get("dataset")
        if source not in FILE_SOURCES:
            return
        if not rest or not getattr(rest[0], "quoted", False):
            what = "folder" if source in ("folder", "cifar10") else "file"
            example = {"npz": '"digits.npz"', "folder": '"images"', "cifar10": '"cifar"',
                       "csv": '"series.csv" column value', "npy": '"series.npy"'}[source]
            loc = rest[0].position() if rest else at
            raise SpecError(f"'data {source}' needs its {what}, in double quotes", **loc,
                            hint=f"e.g. data {source} {example}")
        where["file"] = rest[0]
        values["file"] = rest.pop(0).value


def option_value(value):
    """A data-set option's value as the generator takes it: the words true and false as booleans
    (`scale false` turns scaling off; the word itself would be a true value)."""
    return WORDS.get(value, value) if isinstance(value, str) else value


def check(stmt: DataStmt, where: dict) -> None:
    """A file source takes only its own options (SOURCE_OPTIONS), located at the option;
    `scale` is true or false. Built-in sets take none of the file sources' fields."""
    source = stmt.dataset
    words = {field: word for word, field in DataStmt.keywords.items()}
    where = {words.get(k, k): atom for k, atom in where.items()}
    given = [k for k in where if k not in ("dataset", "file")]
    if source not in FILE_SOURCES:
        for name in given:
            if name in FILE_FIELDS[1:]:
                raise where[name].error(
                    f"'{name}' is an option of a data file (csv, npy), not of the data set "
                    f"'{source}'", "e.g. data csv \"series.csv\" column value")
        return
    allowed = SOURCE_OPTIONS[source]
    for name in given:
        if name not in allowed:
            raise where[name].error(f"'data {source}' takes no option '{name}'",
                                    f"its options: {', '.join(allowed)}")
    scale = stmt.options.get("scale", True)
    if not isinstance(scale, bool):
        raise where["scale"].error(f"'scale' is true or false, got {scale!r}",
                                   "scale true: min-max to [-1, 1]; scale false: the raw values")
    if stmt.columns is not None and stmt.column_name is not None:
        raise where["columns"].error("give `column NAME` or `columns [...]` with a `target`, not both")
    if stmt.columns is not None and stmt.target is None:
        raise where["columns"].error("several input `columns` need a `target` column to predict",
                                     f"e.g. target {stmt.columns[0] if stmt.columns else 'value'}")
    if source == "csv" and isinstance(stmt.target, int):
        raise where["target"].error("a csv target is a column name from the header")
    if source == "npy" and stmt.target is not None and not isinstance(stmt.target, int):
        raise where["target"].error("an npy target is a column index (0, 1, ...)")


def scale_of(stmt: DataStmt) -> bool:
    """Whether a file series is min-max scaled to [-1, 1] (`scale`, default true)."""
    return bool(stmt.options.get("scale", True))
