"""Every example in README.md and docs/spec-language.md is executed (issue 30), so a reader who
copies one gets what the text promises, and an example the code has left behind fails here.

Each fenced block is an example of a kind this module knows, told by its info string or, for a
bare block, by its first word; a block of no known kind fails (write `text` after the fence for
one that is not an example: a grammar, a folder tree). New blocks are covered as they are added:

- `python`: executed in the repository root;
- `bash` / `sh`: every command checked by the tool it names: `qtc ...` through qtc's own
  `main` with the training steps stubbed (the arguments, the spec, its `--set` / `--grid`, the
  data and every check a run makes before training; `qtc compile` runs for real); `bash FILE`
  syntax-checked; `python FILE` and `ray` against their `--help`; in the slow tier the
  training commands run for real on a tiny budget;
- a bare block starting `space` or `task`: parsed and checked (a space compiled small, a task
  loaded as `qtc run` loads it); a spec block whose introduction names a file of `specs/` must
  also be made of that file's statements;
- a bare block starting `qtc`: the command-line synopsis, every flag an option of its command.

Inline `qtc ...` commands in the prose with concrete arguments (a spec of `specs/`, no
placeholder) get the same dry check as a block's."""
from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/spec-language.md")
FENCE = re.compile(r"^```([\w-]*)\s*$")
SPEC_FILE = re.compile(r"\bspecs/[\w-]+\.(?:qs|task)\b")
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?:[.:/=].*)?|[A-Z]\w*\.(?:task|qs))$|\.\.\.")
BUDGET = {"run": ("--epochs", "1", "--max-batches", "2", "--limit", "64"),
          "sweep": ("--epochs", "1", "--max-batches", "2", "--limit", "64")}


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    lang: str       # the info string; "inline" for a command in the prose
    text: str
    before: str     # the paragraph introducing it

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(text: str, doc: str) -> list[Example]:
    """The fenced blocks of a Markdown text, each with the paragraph before it."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        start = FENCE.match(lines[i])
        if not start:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{doc}:{i + 1}: a code fence that is never closed"
        para = "\n".join(lines[:i]).rstrip().rsplit("\n\n", 1)[-1]
        out.append(Example(doc, i + 1, start.group(1), "\n".join(lines[i + 1:end]) + "\n", para))
        i = end + 1
    return out


def inline_commands(text: str, doc: str) -> list[Example]:
    """`qtc ...` spans of the prose with concrete arguments: a spec of specs/, no placeholder."""
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out = []
    for m in re.finditer(r"`(qtc [a-z][^`]*)`", prose):
        cmd = " ".join(m.group(1).split())
        words = shlex.split(cmd.split("|")[0])
        if SPEC_FILE.search(cmd) and not any(PLACEHOLDER.search(w) for w in words):
            out.append(Example(doc, prose.count("\n", 0, m.start()) + 1, "inline", cmd, ""))
    return out


def kind(ex: Example) -> str:
    """What an example is (its check), or an AssertionError saying how to mark it."""
    if ex.lang in ("python", "text", "inline"):
        return ex.lang
    if ex.lang in ("bash", "sh"):
        return "commands"
    first = next((ln.split()[0] for ln in ex.text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if ex.lang == "" and first in ("space", "task", "qtc"):
        return {"space": "space", "task": "task", "qtc": "synopsis"}[first]
    if ex.lang == "" and SPEC_FILE.search(ex.before):
        return "fragment"
    raise AssertionError(f"{ex}: a code block of no known kind (info string '{ex.lang}', first word "
                         f"'{first}'): make it a spec (`space ...`, `task ...`), a ```python or "
                         "```bash example, a fragment introduced by its specs/ file, or mark it ```text")


def examples() -> list[Example]:
    out = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        out += blocks(text, doc) + inline_commands(text, doc)
    return out


EXAMPLES = examples()


def of_kind(*kinds: str) -> list:
    return [pytest.param(ex, id=str(ex)) for ex in EXAMPLES if _kind_or_none(ex) in kinds]


def _kind_or_none(ex: Example) -> str | None:
    try:
        return kind(ex)
    except AssertionError:
        return None


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------

def statements(text: str) -> list[str]:
    """A spec's statements without comments, whitespace collapsed: a line starting in column 0
    starts one, indented lines continue it."""
    out: list[str] = []
    for line in text.splitlines():
        code = line.split("#", 1)[0].rstrip()
        if not code.strip():
            continue
        if code[0].isspace() and out:
            out[-1] += " " + code.strip()
        else:
            out.append(code.strip())
    return [" ".join(s.split()) for s in out]


def check_spec(ex: Example) -> None:
    """A whole spec parses and passes every check of its loading; a block introduced by a file of
    specs/ is made of that file's statements."""
    from qtc.compiler.pipeline import lower
    from qtc.dsl.space import parse_space
    from qtc.tasks.build import load_task
    k = kind(ex)
    if k == "space":
        space = parse_space(ex.text, file=str(ex))
        lower(space, 4, 2)              # expanded and optimised, small: every pattern, range and label
    elif k == "task":
        load_task(ex.text)              # the networks, the generator's space and qubits, the kind's checks
    named = SPEC_FILE.findall(ex.before)
    if k == "fragment" or named:
        assert named, f"{ex}: a spec fragment must be introduced by the file it is taken from"
        path = ROOT / named[0]
        assert path.is_file(), f"{ex}: its introduction names {named[0]}, which does not exist"
        theirs = statements(path.read_text())
        missing = [s for s in statements(ex.text) if s not in theirs]
        assert not missing, f"{ex}: statements not in {named[0]} (the doc shows it otherwise): {missing}"
        (parse_space if path.suffix == ".qs" else load_task)(path)


@pytest.mark.parametrize("ex", of_kind("space", "task", "fragment"))
def test_spec_examples_parse_and_match_their_files(ex):
    check_spec(ex)


# --------------------------------------------------------------------------------------------
# Python
# --------------------------------------------------------------------------------------------

def run_python(ex: Example) -> None:
    code = compile(ex.text, str(ex), "exec")
    exec(code, {"__name__": "__doc_example__"})


@pytest.mark.parametrize("ex", of_kind("python"))
def test_python_examples_run(ex, monkeypatch, one_torch_thread):
    monkeypatch.chdir(ROOT)
    run_python(ex)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def commands(text: str) -> list[list[list[str]]]:
    """A shell block's commands: lines joined at a trailing backslash, comments dropped, split at
    `&&` / `;` (a pipe keeps its first command), redirections dropped. An optional group
    `[--flag V1 | V2 ...]` gives the command once without it and once with each alternative.
    Each command comes as its variants' argument lists."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        opt = re.search(r"\[(--[\w-]+)\s+([^\]]*)\]", line)
        variants = [line]
        if opt:
            bare = line[:opt.start()] + line[opt.end():]
            variants = [bare] + [f"{bare.split('#')[0]} {opt.group(1)} {alt.strip()}"
                                 for alt in opt.group(2).split("|")]
        split = [_split(v) for v in variants]
        for i in range(len(split[0])):
            out.append([variant[i] for variant in split])
    return out


def _split(line: str) -> list[list[str]]:
    """One shell line's commands as argument lists (see `commands`)."""
    words = shlex.split(line, comments=True)
    cmds, cur, skip, piped = [], [], False, False
    for w in words + ["&&"]:
        if w in ("&&", ";", "||"):
            if cur:
                cmds.append(cur)
            cur, skip, piped = [], False, False
        elif skip or piped:
            skip = False
        elif w == "|":
            piped = True                 # what reads the output is not the example
        elif re.fullmatch(r"\d?>>?|<", w):
            skip = True                  # `2> log`: the file name follows
        elif not re.fullmatch(r"\d?>>?\S+", w):
            cur.append(w)
    return cmds


def program(argv: list[str]) -> tuple[str, list[str]]:
    """(the tool, its arguments): `qtc`, `bash`, `python` (a script), `pytest`, `ray` or another."""
    head, rest = argv[0].rsplit("/", 1)[-1], argv[1:]
    if head.startswith("python") and rest[:2] == ["-m", "qtc"]:
        return "qtc", rest[2:]
    if head.startswith("python") and rest[:2] == ["-m", "pytest"]:
        return "pytest", rest[2:]
    return ("python" if head.startswith("python") else head), rest


def check_qtc(args: list[str], tmp: Path, monkeypatch, capsys) -> None:
    """`qtc ARGS` through qtc's main with the training stubbed: everything a run checks before
    it trains (a folder made under `tmp`, never in the repository); compile runs for real."""
    from qtc import cli
    from qtc.tasks.experiments import regenerate, seeded, sweep, table2
    from qtc.tasks.runs import runner
    stubbed = []
    monkeypatch.setattr(runner, "run", lambda *a, **k: stubbed.append("run"))
    monkeypatch.setattr(seeded, "run_seeds", lambda *a, **k: stubbed.append("seeds") or 0)
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: stubbed.append("sweep") or 0)
    monkeypatch.setattr(table2, "run_table2", lambda *a, **k: stubbed.append("table2") or 0)
    monkeypatch.setattr(regenerate, "regenerate", lambda *a, **k: stubbed.append("regenerate") or 0)
    monkeypatch.chdir(ROOT)
    argv = redirected(args, tmp)
    try:
        rc = cli.main(argv)
    except SystemExit as stop:          # argparse: an unknown flag or a bad value
        rc = stop.code
    err = capsys.readouterr().err
    if rc == 2 and re.search(r"data not found|no usable \w+ data set", err):
        pytest.skip(f"the data set of `qtc {' '.join(args)}` is not installed here")
    assert rc == 0, f"qtc {' '.join(args)}: exit {rc}\n{err}"
    if args[0] in ("run", "sweep", "table2") or (args[0] == "regenerate" and "--plan" not in args):
        assert stubbed, f"qtc {' '.join(args)}: exit 0 without reaching its training"


def parse_qtc(args: list[str]) -> None:
    """`qtc ARGS` parsed by qtc's own parser (argparse exits on an unknown flag or a bad value)."""
    from qtc import cli
    try:
        cli.parser().parse_args(args)
    except SystemExit as stop:
        raise AssertionError(f"qtc {' '.join(args)}: refused by the parser (exit {stop.code})") from None


def redirected(args: list[str], tmp: Path) -> list[str]:
    """The arguments with every output folder under `tmp` (a given -o/--out replaced)."""
    out, it = [], iter(args)
    for a in it:
        if a in ("-o", "--out", "--output"):
            next(it, None)
            continue
        out.append(a)
    if out and out[0] in ("run", "compile", "sweep", "table2", "report", "regenerate"):
        out += ["-o", str(tmp / "out")]
    return out


@functools.lru_cache(maxsize=None)
def help_text(argv: tuple[str, ...]) -> str:
    """A tool's --help output (asked once per test process: `ray` takes seconds to start)."""
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr[-2000:]}"
    return done.stdout


def check_command(variants: list[list[str]], tmp: Path, monkeypatch, capsys) -> None:
    """One command of an example, every variant, by the tool it names."""
    for i, argv in enumerate(variants):
        tool, args = program(argv)
        if tool == "qtc" and i:          # an optional group's alternative: its flag and value
            parse_qtc(args)
        elif tool == "qtc":
            check_qtc(args, tmp, monkeypatch, capsys)
        elif tool == "bash":
            assert (ROOT / args[0]).is_file(), f"bash {args[0]}: no such file"
            done = subprocess.run(["bash", "-n", args[0]], cwd=ROOT, capture_output=True, text=True)
            assert done.returncode == 0, f"bash -n {args[0]}: {done.stderr}"
        elif tool in ("python", "ray"):
            help_of = ((sys.executable, args[0], "--help") if tool == "python"
                       else (str(Path(sys.executable).with_name("ray")), *args[:1], "--help"))
            if tool == "python":
                assert (ROOT / args[0]).is_file(), f"python {args[0]}: no such file"
            elif not Path(help_of[0]).exists():
                pytest.skip("ray is not installed")
            text = help_text(help_of)
            unknown = [a for a in args if a.startswith("--") and a.split("=")[0] not in text]
            assert not unknown, f"{tool} {' '.join(args)}: not in its --help: {unknown}"
        elif tool == "pytest":
            flags = [a for a in args if a.startswith("-")]
            assert set(flags) <= {"-q", "-m", "-x", "-v"}, f"pytest {' '.join(args)}: check its flags"
        else:
            raise AssertionError(f"a command of tool '{tool}' ({' '.join(argv)}): teach "
                                 "tests/test_doc_examples.py how to check it")


@pytest.mark.parametrize("ex", of_kind("commands", "inline"))
def test_command_examples_pass_every_check_before_training(ex, tmp_path, monkeypatch, capsys, one_torch_thread):
    for i, variants in enumerate(commands(ex.text)):
        check_command(variants, tmp_path / f"c{i}", monkeypatch, capsys)


def training(ex: Example) -> list[list[str]]:
    """The qtc commands of a block that train, with no placeholder (a cluster address)."""
    out = []
    for variants in commands(ex.text):
        tool, args = program(variants[0])
        if tool == "qtc" and args and args[0] in BUDGET and not any(PLACEHOLDER.search(a) for a in args):
            out.append(args)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("ex", [p for p in of_kind("commands") if training(p.values[0])])
def test_training_commands_run_on_a_tiny_budget(ex, tmp_path):
    for i, args in enumerate(training(ex)):
        argv = redirected(args, tmp_path / f"c{i}")
        argv += [x for flag, value in zip(BUDGET[args[0]][::2], BUDGET[args[0]][1::2])
                 if flag not in args for x in (flag, value)]
        done = subprocess.run([sys.executable, "-m", "qtc", *argv, "--no-progress"], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"qtc {' '.join(argv)}: exit {done.returncode}\n{done.stderr[-3000:]}"


# --------------------------------------------------------------------------------------------
# The synopsis
# --------------------------------------------------------------------------------------------

def synopsis_problems(text: str) -> list[str]:
    """Flags of the synopsis that their command does not take."""
    from qtc import cli
    subs = next(a for a in cli.parser()._actions if a.dest == "command").choices
    top = cli.parser()._option_string_actions
    problems, command = [], None
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if code.startswith("qtc "):
            word = code.split()[1]
            command = None if word.startswith("-") else word
            if command is not None and command not in subs:
                problems.append(f"unknown command 'qtc {command}'")
                continue
        known = subs[command]._option_string_actions if command in subs else top
        problems += [f"qtc {command or ''} {flag}" for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", code)
                     if flag not in known]
    return problems


@pytest.mark.parametrize("ex", of_kind("synopsis"))
def test_the_synopsis_names_only_flags_its_commands_take(ex):
    assert synopsis_problems(ex.text) == []


# --------------------------------------------------------------------------------------------
# The examples' own checks
# --------------------------------------------------------------------------------------------

def test_every_code_block_is_an_example_of_a_known_kind():
    unknown = []
    for ex in EXAMPLES:
        try:
            kind(ex)
        except AssertionError as err:
            unknown.append(str(err))
    assert not unknown, "\n".join(unknown)
    assert {kind(ex) for ex in EXAMPLES} >= {"python", "commands", "space", "task", "synopsis", "inline"}


WRONG = '''Run it:

```bash
.venv/bin/qtc run specs/bessel.task --epochz 3
```

A search space (`specs/hadamard_ent_rot.qs`):

```
space hadamard_ent_rot
qubits auto 17
depth 15
pattern ent = cnot(q, q + 1) for q in 0 .. n - 2 step 2
init = choose { H: h(q) for q in all | none: nothing }
layer = ent ; ry(q, theta[layer, q]) for q in all
```

```
task t : classify
data fashion_mnist classes [1, 5]
network {
  input [1, 28, 28]
  flatten
  linear 784 -> 3
}
train adam
```

Then `qtc run specs/bessel.task --set train.lr=abc`.

And:

```
a prose line in a fence
```

```python
assert 1 + 1 == 3
```

```
qtc run SPEC [--epochz N]
```
'''


def test_a_wrong_example_of_every_kind_fails(tmp_path, monkeypatch, capsys):
    found = blocks(WRONG, "wrong.md") + inline_commands(WRONG, "wrong.md")
    by_kind: dict[str, list[Example]] = {}
    for ex in found:
        by_kind.setdefault(_kind_or_none(ex), []).append(ex)
    assert set(by_kind) == {"commands", "space", "task", "inline", None, "python", "synopsis"}
    with pytest.raises(AssertionError, match="--epochz"):      # an option qtc run does not take
        check_command(commands(by_kind["commands"][0].text)[0], tmp_path, monkeypatch, capsys)
    with pytest.raises(AssertionError, match="statements not in specs/hadamard_ent_rot.qs"):
        check_spec(by_kind["space"][0])                        # the doc shows the file otherwise
    with pytest.raises(Exception, match="output"):             # 3 outputs for 2 classes
        check_spec(by_kind["task"][0])
    with pytest.raises(AssertionError, match="train.lr"):     # a --set value the spec refuses
        check_command(commands(by_kind["inline"][0].text)[0], tmp_path, monkeypatch, capsys)
    with pytest.raises(AssertionError, match="no known kind"):
        kind(by_kind[None][0])
    with pytest.raises(AssertionError):
        run_python(by_kind["python"][0])
    assert synopsis_problems(by_kind["synopsis"][0].text) == ["qtc run --epochz"]
