"""Messages that point right (issue 30): each mistake a user made in a day, and what qtc says.

Each error names what the user wrote (the --grid they gave, the --set that made a statement
wrong, the folder that does not exist), at the place they wrote it, with a hint that is itself
valid; a closed stdout pipe exits 141 however it was met.
"""
from __future__ import annotations

import os

import pytest

from qtc import cli, specs
from qtc.dsl.task import parse_task
from qtc.errors import QtcError, SpecError
from qtc.tasks.build import load_task
from qtc.tasks.experiments.sweep import parse_grid, plan

NARMA = specs.path("narma5.task").read_text()


def _data_line(line: str) -> str:
    return "\n".join(line if t.startswith("data ") else t for t in NARMA.splitlines())


def test_the_data_hint_lists_only_real_option_names():
    with pytest.raises(SpecError) as err:
        parse_task(_data_line("data narma5 window 4 8"))
    assert "options" not in err.value.hint.split(":")[0] and "options," not in err.value.hint
    assert "window" in err.value.hint
    # a quoted path where an option name goes is said as that, at the path
    with pytest.raises(SpecError) as err:
        parse_task(_data_line('data narma5 window 4 "sine.csv" 8'))
    assert "stands where an option name goes" in err.value.message
    assert err.value.column == len('data narma5 window 4 ') + 1


def test_a_bad_grid_value_is_named_as_the_grid():
    grid = parse_grid(["train.lr=1e-3,abc"])
    with pytest.raises(SpecError) as err:
        plan([str(specs.path("narma5.task"))], [0], "classical", grid=grid)
    assert err.value.message.startswith("--grid train.lr=1e-3,abc: the value 'abc'")
    assert "--set" not in err.value.message


def test_a_setting_that_makes_a_statement_wrong_is_pointed_at():
    for classes in ("[1, 1]", "[1, 12]"):     # the statement's own check; the task kind's
        with pytest.raises(SpecError) as err:
            load_task(specs.path("mnist_1v5.task"), {"data.classes": classes})
        assert err.value.file == "<command line>" and err.value.line is None
        assert err.value.message.startswith(f"--set data.classes={classes}: ")
    assert "mnist_1v5.task:3" in err.value.hint      # where the statement it changed stands


def test_an_absolute_space_path_says_spaces_are_relative():
    text = NARMA.replace("generator hadamard_ent_rot.qs", "generator /home/me/hadamard_ent_rot.qs")
    with pytest.raises(SpecError) as err:
        parse_task(text)
    assert "spaces are relative to the task's folder" in err.value.message
    assert err.value.column == len("generator ") + 1


def test_resume_of_a_missing_folder_says_no_such_folder(tmp_path, capsys):
    assert cli.main(["run", "--resume", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_stdout_closed_sees_a_pipe_without_reader():
    r, w = os.pipe()
    saved = os.dup(1)
    try:
        os.dup2(w, 1)
        assert not cli.stdout_closed()
        os.close(r)
        assert cli.stdout_closed()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)


def test_a_closed_pipe_met_by_a_worker_exits_141(monkeypatch):
    """`qtc run ... | head -1` with --jobs: the worker that wrote first reports the BrokenPipeError
    as text; the exit status is still 141, not the failure's 2 (nor 1 for a bare EPIPE)."""
    monkeypatch.setattr(cli, "_closed_pipe", lambda: 141)    # keep pytest's stdout as it is

    def fails(err):
        def command(_args):
            raise err
        return command
    monkeypatch.setattr(cli, "stdout_closed", lambda: True)
    monkeypatch.setattr(cli, "_report", fails(QtcError("training failed: classical: BrokenPipeError: "
                                                       "[Errno 32] Broken pipe")))
    assert cli.main(["report", "x"]) == 141
    monkeypatch.setattr(cli, "_report", fails(OSError(32, "Broken pipe")))
    assert cli.main(["report", "x"]) == 141
    monkeypatch.setattr(cli, "stdout_closed", lambda: False)
    monkeypatch.setattr(cli, "_report", fails(QtcError("training failed: BrokenPipeError in a file")))
    assert cli.main(["report", "x"]) == 2
