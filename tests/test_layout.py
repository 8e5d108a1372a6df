"""The package's shape: imports point one way (dsl -> compiler -> runtime -> tasks -> cli), every
import names qtc (the repository root is the package, so `import dsl` would load a second copy),
package data is found through importlib.resources, and the wheel's package list and package
data cover every folder and data file the code needs."""
from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent          # the folder that is the `qtc` package
NOT_PACKAGE = {"tests", "bench", "docs", ".git", ".venv", "build", "out", "runs"}
# Layer of each top-level module or folder: a module may import its own layer or lower ones.
# qtc/__init__.py (qtc.compile) runs programs, so it sits with the runtime.
LAYERS = {"errors": 0, "settings": 0, "specs": 0, "dsl": 1, "compiler": 2, "runtime": 3, "": 3, "tasks": 4,
          "cli": 5, "experiment": 5, "__main__": 6}   # experiment: the Python front over tasks, as cli is
# Upward imports another branch is removing; each entry must still occur (so it is deleted
# when the import goes). None left: the sweep no longer imports the CLI.
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


def top_level_names() -> set[str]:
    """What `import X` would find from the root without qtc's prefix: its modules and packages."""
    return ({p.stem for p in ROOT.glob("*.py")} - {"__init__", "__main__"}) | \
        {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_PACKAGE}


def bare_imports() -> list[str]:
    """Imports of a package module by its bare name (`import dsl.task`, `from errors import
    ...`), in the package, the tests and the benchmarks. Run from the root they succeed and load
    a second copy of the module beside the qtc.* one (a second GateDef, a second SpecError)."""
    bare = top_level_names()
    files = package_files() + sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in bare]
    return found


def test_every_import_names_qtc():
    assert not bare_imports(), "import these as qtc.<name>:\n  " + "\n  ".join(bare_imports())


def test_the_bare_import_check_sees_one(tmp_path, monkeypatch):
    for folder in ("dsl", "tests", "bench"):
        (tmp_path / folder).mkdir()
    (tmp_path / "dsl" / "__init__.py").write_text("")
    (tmp_path / "errors.py").write_text("")
    (tmp_path / "tests" / "test_x.py").write_text("import dsl.task\n")
    (tmp_path / "bench" / "b.py").write_text("def f():\n    from errors import SpecError\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert bare_imports() == ["tests/test_x.py:1 imports dsl.task", "bench/b.py:2 imports errors"]


def _from_this_file(node: ast.AST, names: set[str]) -> bool:
    """`node` is Path(__file__) (or Path(m.__file__)) with .parent/.parents, or a name bound to one."""
    if isinstance(node, ast.Name):
        return node.id in names
    text = ast.unparse(node)
    return "__file__" in text and (".parent" in text)


def parent_counted_data() -> list[str]:
    """Places in the package that reach a file by counting parents of the module's own path
    (`Path(__file__).parent / "x.lark"`, `Path(__file__).resolve().parents[2] / "specs"`): that
    works only while every folder maps one to one onto a package, where importlib.resources
    finds package data in any install. (Finding the checkout itself, for git, is not data.)"""
    found = []
    for path in package_files():
        tree = ast.parse(path.read_text())
        names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and
                 _from_this_file(node.value, set()) for t in node.targets if isinstance(t, ast.Name)}
        found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                  and _from_this_file(node.left, names)]
    return found


def test_package_data_is_found_through_importlib_resources():
    assert not parent_counted_data(), "use importlib.resources (qtc.specs.path for a bundled " \
        "spec):\n  " + "\n  ".join(parent_counted_data())


def test_the_parent_counting_check_sees_both_forms(tmp_path, monkeypatch):
    (tmp_path / "dsl").mkdir()
    (tmp_path / "dsl" / "a.py").write_text("from pathlib import Path\nHERE = Path(__file__).parent\n"
                                           "GRAMMAR = (HERE / 'space.lark').read_text()\n")
    (tmp_path / "b.py").write_text("import qtc\nfrom pathlib import Path\n"
                                   "S = Path(qtc.__file__).resolve().parents[0] / 'specs'\n"
                                   "ROOT = Path(qtc.__file__).resolve().parent   # a checkout, for git\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert parent_counted_data() == ["b.py:3", "dsl/a.py:3"]


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
        if (path.suffix not in (".lark", ".h", ".c", ".qs", ".task") and path.name != "py.typed") \
                or NOT_PACKAGE & set(rel.parts[:1]):
            continue
        pkg = "qtc" + "".join("." + part for part in rel.parent.parts)
        assert any(fnmatch.fnmatch(path.name, g) for g in data.get(pkg, [])), f"{rel} is not package data"


# the functions that read a shipped C file by name (qtc.compiler.csrc.source and its wrappers)
C_READERS = {"source", "c_source", "c_lines"}


def c_sources_out_of_place() -> list[str]:
    """Shipped C files outside compiler/csrc, and names of shipped C files that product code
    uses other than as the argument of a C_READERS call (a path built by hand, say)."""
    csrc = ROOT / "compiler" / "csrc"
    files = [p for p in ROOT.rglob("*") if p.suffix in (".c", ".h")
             and not NOT_PACKAGE & set(p.relative_to(ROOT).parts[:1])]
    found = [f"{p.relative_to(ROOT)} is not in compiler/csrc" for p in files if p.parent != csrc]
    shipped = {p.name for p in files}
    for path in package_files():
        tree = ast.parse(path.read_text())
        read = {id(node.args[0]) for node in ast.walk(tree)
                if isinstance(node, ast.Call) and node.args and getattr(node.func, "id", None) in C_READERS}
        found += [f"{path.relative_to(ROOT)}:{node.lineno} names {node.value} outside csrc.source"
                  for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in shipped and id(node) not in read]
    return found


def test_shipped_c_lives_in_csrc_and_is_read_through_source():
    """One folder for the C qtc ships, one way to read it (importlib.resources, which works the
    same from a checkout and from an installed wheel)."""
    assert not c_sources_out_of_place()


def test_the_c_source_check_sees_a_stray_file_and_a_path(tmp_path, monkeypatch):
    (tmp_path / "compiler" / "csrc").mkdir(parents=True)
    (tmp_path / "compiler" / "csrc" / "phase.c").write_text("")
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "stray.h").write_text("")
    (tmp_path / "runtime" / "bad.py").write_text("from pathlib import Path\n"
                                                 "TEXT = Path(__file__).with_name('phase.c')\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert sorted(c_sources_out_of_place()) == ["runtime/bad.py:2 names phase.c outside csrc.source",
                                                "runtime/stray.h is not in compiler/csrc"]


def private_imports() -> list[str]:
    """`from qtc.x import _name` in product code: a private name used outside its module."""
    found = []
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qtc"):
                found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}"
                          for alias in node.names if alias.name.startswith("_")]
    return found


def test_no_private_name_is_imported_across_modules():
    """A name another module needs is public: made public where it is defined, not reached into."""
    assert not private_imports()


def test_the_private_import_check_sees_one(tmp_path, monkeypatch):
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "bad.py").write_text("def f():\n    from qtc.compiler.render.common import _affine\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert private_imports() == ["runtime/bad.py:2 imports qtc.compiler.render.common._affine"]
