"""The package's shape: imports point one way (dsl -> compiler -> runtime -> tasks -> cli), and
the wheel's package list and package data cover every folder and data file the code needs."""
from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent          # the folder that is the `qtc` package
NOT_PACKAGE = {"tests", "bench", "docs", ".git", ".venv", "build", "out", "runs"}
# Layer of each top-level module or folder: a module may import its own layer or lower ones.
# qtc/__init__.py (qtc.compile) runs programs, so it sits with the runtime.
LAYERS = {"errors": 0, "specs": 0, "dsl": 1, "compiler": 2, "runtime": 3, "": 3, "tasks": 4,
          "cli": 5, "compile_cmd": 5, "__main__": 6}
# Upward imports another branch is removing; each entry must still occur (so it is deleted
# when the import goes): issue 10's tasks half makes the sweep stop importing the CLI.
PENDING: set[tuple[str, str]] = set()


def package_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py")
                  if not NOT_PACKAGE & set(p.relative_to(ROOT).parts[:1]))


def layer_of(module: str) -> int | None:
    """The layer of a `qtc...` module name; None for modules outside the package."""
    parts = module.split(".")
    if parts[0] != "qtc":
        return None
    top = parts[1] if len(parts) > 1 else ""
    assert top in LAYERS, f"qtc.{top} has no layer: add it to LAYERS in tests/test_layout.py"
    return LAYERS[top]


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of the file names (also imports inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            out |= {f"{node.module}.{alias.name}" if node.module == "qtc" else node.module
                    for alias in node.names}
    return out


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for path in package_files():
        rel = path.relative_to(ROOT)
        name = "qtc." + ".".join(rel.with_suffix("").parts)
        mine = layer_of(name.removesuffix(".__init__") if rel.name == "__init__.py" else name)
        for module in imported_modules(path):
            theirs = layer_of(module)
            if theirs is not None and theirs > mine:
                found.add((rel.as_posix(), module))
    return found


def test_imports_point_one_way():
    found = upward_imports()
    unexpected = sorted(found - PENDING)
    assert not unexpected, "upward imports (dsl -> compiler -> runtime -> tasks -> cli):\n" + \
        "\n".join(f"  {f} imports {m}" for f, m in unexpected)
    assert PENDING <= found, f"no longer needed, delete from PENDING: {sorted(PENDING - found)}"


def test_the_import_check_sees_an_upward_import(tmp_path, monkeypatch):
    (tmp_path / "dsl").mkdir()
    (tmp_path / "dsl" / "bad.py").write_text("def f():\n    from qtc.runtime import backends\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert upward_imports() == {("dsl/bad.py", "qtc.runtime")}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_wheel_lists_every_package_folder():
    """Every folder with an __init__.py is a package of the wheel and nothing else is: a
    sub-folder left out works in a checkout but is missing from the installed wheel."""
    folders = {"qtc" + "".join("." + part for part in p.parent.relative_to(ROOT).parts)
               for p in ROOT.rglob("__init__.py")
               if not NOT_PACKAGE & set(p.relative_to(ROOT).parts[:1])}
    setup = _pyproject()
    assert set(setup["packages"]) == folders
    for pkg, folder in setup["package-dir"].items():
        assert (ROOT / folder / "__init__.py").is_file() and pkg == ("qtc" if folder == "." else f"qtc.{folder}")


def test_the_wheel_ships_every_data_file_the_code_reads():
    data = _pyproject()["package-data"]
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if path.suffix not in (".lark", ".h", ".c", ".qs", ".task") or NOT_PACKAGE & set(rel.parts[:1]):
            continue
        pkg = "qtc" + "".join("." + part for part in rel.parent.parts)
        assert any(fnmatch.fnmatch(path.name, g) for g in data.get(pkg, [])), f"{rel} is not package data"
