"""The library of search spaces: where a space named by file (`generator NAME.qs`, QTModel's
`space="NAME.qs"`) is found, so that one .qs serves many tasks without copies.

A name is looked up in these folders, in this order; the first that holds the file wins:

    1. the task's own folder (a task given as text, and QTModel: the current folder)
    2. the space path: `--space-path DIR` (qtc compile, run, sweep; repeatable), then
       $QTC_SPACE_PATH (folders separated by os.pathsep, read by qtc.settings)
    3. the bundled spaces (qtc/specs/*.qs: the paper's and the examples')

The name itself stays plain (dsl.task.GeneratorStmt: a relative .qs path, no `..`), and the file
is read through the run guard (qtc.tasks.build.space_file): a link in the folder it was found in
that leads out of that folder is refused, whichever folder of the path that is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtc import specs
from qtc.settings import settings

SPACE_PATH_VARIABLE = "QTC_SPACE_PATH"


@dataclass(frozen=True)
class Place:
    """One folder a space is looked for in, and what it is (for the not-found message)."""
    folder: Path
    what: str
    bundled: bool = False


def places(folder: Path | str | None) -> list[Place]:
    """The folders a space name is looked up in, in order (the module's docstring)."""
    out = [Place(Path(folder), "the task's folder")] if folder is not None else []
    out += [Place(p, f"the space path (--space-path, ${SPACE_PATH_VARIABLE})")
            for p in settings().space_path]
    out.append(Place(specs.path(""), "the bundled spaces", bundled=True))
    return out


def find(name: str, folder: Path | str | None) -> tuple[Path, Path] | None:
    """(the file, the folder of `places` it was found in) for the space `name`, or None."""
    for place in places(folder):
        path = place.folder / name
        if place.bundled:   # the installed file itself (an editable install links to the checkout)
            path = specs.path(name)
            if path.is_file():
                return path, path.parents[len(Path(name).parts) - 1]
        elif path.is_file():
            return path, place.folder
    return None


def not_found(name: str, folder: Path | str | None) -> str:
    """The not-found message: every folder looked in, in the order they were tried."""
    looked = "; ".join(f"{p.folder} ({p.what})" for p in places(folder))
    return f"search space file '{name}' not found; looked in, in order: {looked}"
