"""Run one hostile-input case and classify what happened.

A case is a command line (`qtc ...`, with `{tmp}` standing for a scratch folder) plus the files
it needs there. It runs three ways: in-process (`qtc.cli.main`, cheap: the default test), in a
forked child under a time and an address-space limit (the figures, where a case may still hang
or blow up on the code under test), and as a real `python -m qtc` subprocess under the same
limits (a sample, in the test). A verdict is one of VERDICTS.

A case may first make a folder to attack (`before`: qtc commands that must succeed, e.g. a run
to resume or a sweep to report on), then edit it by hand (`edits`: a file's new text, or an
(old, new) replacement in it; None deletes it) and plant symbolic links (`links`). Every case
gets {tmp}/elsewhere/ holding a secret: a case that changes anything there, or prints the
secret, is 'unsafe'; one that exits 0 with fewer metrics rows in {tmp}/run than `before` left
is 'lost'.
"""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = ("clean", "unclean", "traceback", "hang", "blowup", "silent", "unsafe", "lost")
SECRET = "TOPSECRET the first line of a file outside every folder qtc owns\n"
ELSEWHERE = "elsewhere"   # {tmp}/elsewhere/: where links lead; nothing in it may change
TIME_LIMIT = 120            # seconds; no case needs more than a few
MEMORY_LIMIT = 8 << 30      # bytes of address space (torch alone maps ~2 GiB)


@dataclass(frozen=True)
class Case:
    """`argv` after `qtc`; `files` written under {tmp}; `at`: text on the spec line (of the first
    file) the error must point at, or None when the message need not be located."""
    name: str
    argv: tuple[str, ...]
    code: int
    fragment: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    at: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    before: tuple[tuple[str, ...], ...] = ()
    edits: dict[str, str | tuple[str, str] | None] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def materialise(self, tmp: Path) -> list[str]:
        """Write the files, run `before`, apply the edits and links; the argv to run."""
        (tmp / ELSEWHERE).mkdir(parents=True, exist_ok=True)
        (tmp / ELSEWHERE / "secret.qs").write_text(SECRET)
        for name, text in self.files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        for argv in self.before:
            _prepare(self.name, [a.replace("{tmp}", str(tmp)) for a in argv])
        rows = tmp / "run" / "metrics.json"
        if self.before and rows.is_file():
            (tmp / ".rows-before").write_text(str(len(json.loads(rows.read_text()))))
        for name, edit in self.edits.items():
            path = tmp / name
            if edit is None:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            elif isinstance(edit, tuple):
                assert edit[0] in path.read_text(), (self.name, edit[0])
                path.write_text(path.read_text().replace(edit[0], edit[1], 1))
            else:
                path.write_text(edit)
        for name, target in self.links.items():
            path = tmp / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(tmp / target)
        (tmp / ".elsewhere-before").write_text(json.dumps(_snapshot(tmp / ELSEWHERE)))
        return [a.replace("{tmp}", str(tmp)) for a in self.argv]

    def environment(self, tmp: Path) -> dict[str, str]:
        return {k: v.replace("{tmp}", str(tmp)) for k, v in self.env.items()}

    def expected_line(self) -> int | None:
        """1-based line of `at` in the first file, or None."""
        if self.at is None:
            return None
        text = next(iter(self.files.values()))
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for k, line in enumerate(text.splitlines(), 1):
            if self.at in line:
                return k
        raise ValueError(f"case {self.name}: {self.at!r} is in none of its spec's lines")


def _prepare(name: str, argv: list[str]) -> None:
    """One `before` command, in this process and quietly; it must succeed."""
    from qtc.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"case {name}: preparing with qtc {' '.join(argv)} failed: {err.getvalue()}")


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder`: a file's text (hex for bytes), a link's target, a folder."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = ("link:" + os.readlink(p) if p.is_symlink() else "dir" if p.is_dir()
                    else p.read_bytes().hex())
    return out


@dataclass
class Outcome:
    code: int | str          # the exit status, or "hang" / "blowup" / "traceback"
    err: str = ""


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    """`env` set for the case; the whole environment restored after (qtc run sets QTC_BACKEND)."""
    old = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


def run_inprocess(case: Case, tmp: Path) -> Outcome:
    """qtc.cli.main on the case; an escaping exception is a 'traceback' outcome."""
    from qtc.cli import main
    argv = case.materialise(tmp)
    err, out = io.StringIO(), io.StringIO()
    with _environment(case.environment(tmp)), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except MemoryError:
            return Outcome("blowup", traceback.format_exc())
        except BaseException:  # noqa: BLE001 - exactly what the corpus hunts for
            return Outcome("traceback", err.getvalue() + traceback.format_exc())
    return Outcome(code, err.getvalue())


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _child(case: Case, tmp: Path, conn) -> None:
    os.setsid()  # its own process group: a hang is killed with everything it started
    _limits()
    try:
        conn.send(run_inprocess(case, tmp))
    finally:
        conn.close()
        os._exit(0)


def run_forked(case: Case, tmp: Path, timeout: float = TIME_LIMIT) -> Outcome:
    """run_inprocess in a forked child under the limits; a child still running after `timeout`
    is killed ('hang'), one that dies without answering blew up."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(case, tmp, child))
    proc.start()
    child.close()
    if not parent.poll(timeout):
        _kill(proc.pid)
        proc.join()
        return Outcome("hang")
    try:
        result = parent.recv()
    except EOFError:
        result = Outcome("blowup", f"child died (exit {proc.exitcode})")
    proc.join(10)
    return result


def _kill(pid: int) -> None:
    """SIGKILL the child's process group: the child and whatever it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_subprocess(case: Case, tmp: Path, timeout: float = TIME_LIMIT) -> Outcome:
    """`python -m qtc` on the case under the limits, in its own session (killed whole on a hang)."""
    argv = case.materialise(tmp)
    env = {**os.environ, **case.environment(tmp)}
    try:
        proc = subprocess.run([sys.executable, "-m", "qtc", *argv], capture_output=True, text=True,
                              timeout=timeout, env=env, preexec_fn=_limits, start_new_session=True,
                              cwd=tmp)
    except subprocess.TimeoutExpired:
        return Outcome("hang")
    if proc.returncode < 0 or "MemoryError" in proc.stderr:
        return Outcome("blowup", proc.stderr)
    if "Traceback (most recent call last)" in proc.stderr:
        return Outcome("traceback", proc.stderr)
    return Outcome(proc.returncode, proc.stderr)


def verdict(case: Case, outcome: Outcome, tmp: Path) -> tuple[str, str]:
    """(verdict, why): 'clean' when the exit code, the message and (for spec cases) the
    file:line:col location are all as expected; 'unsafe' and 'lost' come first."""
    marker = tmp / ".elsewhere-before"
    if marker.is_file() and json.loads(marker.read_text()) != _snapshot(tmp / ELSEWHERE):
        return "unsafe", f"a file outside the folders qtc owns changed: {outcome.err[-800:]}"
    if SECRET.split()[0] in outcome.err:
        return "unsafe", f"a file outside the folders qtc owns was echoed: {outcome.err[-800:]}"
    before, rows = tmp / ".rows-before", tmp / "run" / "metrics.json"
    if outcome.code == 0 and before.is_file() and rows.is_file() and \
            len(json.loads(rows.read_text())) < int(before.read_text()):
        return "lost", f"metrics rows {before.read_text()} -> {len(json.loads(rows.read_text()))}"
    if isinstance(outcome.code, str):
        return outcome.code, outcome.err[-2000:]
    if outcome.code == 0 and case.code != 0:
        return "silent", "exit 0"
    if "Traceback (most recent call last)" in outcome.err:
        return "traceback", outcome.err[-2000:]
    if outcome.code != case.code:
        return "unclean", f"exit {outcome.code}, expected {case.code}: {outcome.err[-800:]}"
    if case.fragment not in outcome.err:
        return "unclean", f"no {case.fragment!r} in: {outcome.err[-800:]}"
    line = case.expected_line()
    if line is not None:
        spec = re.escape(str(tmp / next(iter(case.files))))
        if not re.search(rf"^{spec}:{line}:\d+: error: ", outcome.err, re.M):
            return "unclean", f"not located at line {line}: {outcome.err[-800:]}"
    return "clean", ""
