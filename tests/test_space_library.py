"""The library of search spaces (qtc.dsl.spaces): a task's `generator NAME.qs` is looked up in
the task's folder, then the space path (--space-path, then $QTC_SPACE_PATH), then the bundled
spaces; the not-found error lists every folder in that order; the guard still refuses a link
out of the folder the file was found in; and the resolved file's text is part of the run's
fingerprint, so a changed library space is a changed run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from qtc import cli, specs
from qtc.dsl import spaces
from qtc.errors import QtcError, SpecError
from qtc.settings import settings
from qtc.tasks.build import load_task, space_file
from qtc.tasks.runs import runner

BUNDLED = specs.path("hadamard_ent_rot.qs").read_text()


def _space(folder, name: str, depth: int):
    """A copy of the paper space at `depth`: which copy a task found shows in its program."""
    folder.mkdir(parents=True, exist_ok=True)
    text = BUNDLED.replace("depth 15", f"depth {depth}")
    assert text != BUNDLED
    (folder / name).write_text(text)
    return folder / name


def _task(folder, space: str = "lib.qs"):
    folder.mkdir(parents=True, exist_ok=True)
    text = specs.path("narma5.task").read_text().replace(
        "generator hadamard_ent_rot.qs depth 10", f"generator {space}")
    (folder / "t.task").write_text(text)
    return folder / "t.task"


def test_the_task_folder_wins_then_the_option_then_the_variable_then_the_bundled_ones(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    _space(first, "lib.qs", 3)
    _space(second, "lib.qs", 4)
    monkeypatch.setenv("QTC_SPACE_PATH", os.pathsep.join([str(first), str(second)]))
    task = _task(tmp_path / "tasks")
    assert load_task(task).program.depth == 3          # the path's first folder that has it
    _space(tmp_path / "tasks", "lib.qs", 5)
    assert load_task(task).program.depth == 5          # beside the task beats the path
    (tmp_path / "tasks" / "lib.qs").unlink()
    (first / "lib.qs").unlink()
    assert load_task(task).program.depth == 4
    # --space-path goes before $QTC_SPACE_PATH, for the command only
    _space(tmp_path / "option", "lib.qs", 6)
    args = cli.parser().parse_args(["compile", str(task), "--space-path", str(tmp_path / "option")])
    with cli._space_path(args):
        assert load_task(task).program.depth == 6
    assert load_task(task).program.depth == 4 and os.environ["QTC_SPACE_PATH"].startswith(str(first))
    # a bundled name is found last of all: a library copy of it shadows it
    bundled = load_task(_task(tmp_path / "b", "hadamard_ent_rot.qs"))
    assert bundled.program.depth == 15
    _space(second, "hadamard_ent_rot.qs", 7)
    assert load_task(_task(tmp_path / "b", "hadamard_ent_rot.qs")).program.depth == 7


def test_a_space_found_nowhere_says_where_it_looked_in_order(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    monkeypatch.setenv("QTC_SPACE_PATH", str(lib))
    task = _task(tmp_path / "tasks", "nowhere.qs")
    with pytest.raises(SpecError) as err:
        load_task(task)
    message = err.value.message
    assert message.startswith("search space file 'nowhere.qs' not found; looked in, in order: ")
    where = [str(tmp_path / "tasks"), str(lib), str(specs.path(""))]
    assert [message.index(w) for w in where] == sorted(message.index(w) for w in where)
    assert "(the task's folder)" in message and "(the bundled spaces)" in message
    assert "--space-path" in err.value.hint and (err.value.line, err.value.column) == (9, 1)


def test_a_missing_space_path_folder_is_an_error_not_a_folder_never_searched(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QTC_SPACE_PATH", str(tmp_path / "nope"))
    with pytest.raises(QtcError, match="QTC_SPACE_PATH: .*nope is not a folder"):
        settings()
    monkeypatch.delenv("QTC_SPACE_PATH")
    with pytest.raises(SystemExit) as stop:
        cli.main(["compile", str(_task(tmp_path / "t")), "--space-path", str(tmp_path / "nope")])
    assert stop.value.code == 2 and "no such folder" in capsys.readouterr().err


def test_a_link_out_of_a_library_folder_is_refused(tmp_path, monkeypatch):
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    _space(outside, "real.qs", 3)
    lib.mkdir()
    (lib / "lib.qs").symlink_to(outside / "real.qs")
    monkeypatch.setenv("QTC_SPACE_PATH", str(lib))
    with pytest.raises(SpecError, match="symbolic link") as err:
        load_task(_task(tmp_path / "tasks"))
    assert "outside" in err.value.message and err.value.line == 9


def test_the_found_spaces_text_is_in_the_fingerprint(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    _space(lib, "lib.qs", 3)
    monkeypatch.setenv("QTC_SPACE_PATH", str(lib))
    built = load_task(_task(tmp_path / "tasks"))
    assert space_file(built.spec) == lib / "lib.qs"
    options = runner.resolve_options(built, models="classical")
    before = runner.identity(built, options)
    (lib / "lib.qs").write_text((lib / "lib.qs").read_text() + "\n# edited\n")
    after = runner.identity(load_task(_task(tmp_path / "tasks")), options)
    assert before["space.sha256"] != after["space.sha256"]


def test_qtmodel_finds_its_space_on_the_path_and_says_where_it_looked(tmp_path, monkeypatch):
    import torch
    from qtc.runtime.model import QTModel
    _space(tmp_path / "lib", "lib.qs", 2)
    monkeypatch.setenv("QTC_SPACE_PATH", str(tmp_path / "lib"))
    model = QTModel(torch.nn.Linear(3, 2), "lib.qs", input_shape=(3,))
    assert model.generator.program.depth == 2
    with pytest.raises(QtcError, match="'gone.qs' not found; looked in, in order: .*lib"):
        QTModel(torch.nn.Linear(3, 2), "gone.qs", input_shape=(3,))


def test_the_lookup_order_is_what_the_docs_say():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "spec-language.md").read_text()
    assert "task's folder, then the space path" in " ".join(doc.split())
    assert [p.what for p in spaces.places(None)][-1] == "the bundled spaces"
