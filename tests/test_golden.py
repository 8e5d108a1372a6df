"""Golden output of `qtc compile` for every spec in specs/.

For each spec, `qtc.cli.compile.write_outputs(spec, out_dir=tmp)` runs and *every* file it
writes is compared with `tests/golden/<spec file name>/<file>`:
- text files up to GOLDEN_MAX_BYTES are kept whole (report.txt, program.ir): review their diff;
- larger files and every kernel source (kernels.cu; kernels_lib.cu, the compact rendering's CPU
  library) are pinned by `<file>.sha256` (digest, bytes, lines): kernels.cu is megabytes of
  generated C at 17 qubits, and the compact ones repeat compact.h, too much to keep per spec. So is an output that is a static compiler
  source written out whole (the channel form's kernels.cu is compiler/csrc/channel.c, the sampled
  form's sampled.c; kernels_phase.c,
for programs with phase forms, is compiler/csrc/phase.c): no copy of it. To review a change to it, read the diff
  of the kernel text goldens below, or run `qtc compile` before and after and diff.
Three tiny programs also keep their whole kernel source as text (`tests/golden/kernels/`),
and two of them in the compact rendering too (`*-compact.cu`: compiler/render/compact.py),
with the static C files (compiler/csrc/prelude.h, host.c, and compact.h in the
compact ones) cut out: those are reviewed as files; what is left is everything the renderer
generates.
On a mismatch the new output is written beside the golden as `<file>.new` (git ignores *.new)
and the test fails naming both paths. A golden file that is no longer produced fails too.

    QTC_UPDATE_GOLDEN=1 pytest tests/test_golden.py     # rewrite the goldens, then review
                                                         # `git diff tests/golden` and commit

The kernel renderer (compiler/render/) writes kernels.cu and the cost model at the end of
report.txt: every change to the renderer or the scheduler changes those goldens, so regenerate
them (command above) in the same commit as the renderer change. Spaces with `qubits auto` and
no default size are compiled at AUTO_QUBITS qubits.
"""
import hashlib
import os
import sys
from pathlib import Path

import pytest

import qtc
from qtc.cli.compile import write_outputs
from qtc.compiler.csrc import source
from qtc.compiler.pipeline import to_kernels
from qtc.compiler.target import Target
from qtc.dsl.space import parse_space

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").iterdir() if p.suffix in (".qs", ".task"))
GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_MAX_BYTES = 256 * 1024
AUTO_QUBITS = 6
NOT_SPECS = {"kernels", "report"}   # golden folders of the kernel texts and of test_report_golden.py
UPDATE = os.environ.get("QTC_UPDATE_GOLDEN") == "1"
TEXT_KERNELS = [("hadamard_ent_rot", 2, 1, "unrolled"), ("hardware_efficient", 3, 1, "unrolled"),
                ("untied_two_layer", 2, 1, "unrolled"), ("hadamard_ent_rot", 2, 1, "compact"),
                ("hardware_efficient", 3, 1, "compact")]
STATIC_C = {"unrolled": ("prelude.h", "host.c"),
            "compact": ("prelude.h", "compact.h", "host.c")}
# static compiler sources that `qtc compile` may write out whole (the channel form's kernels):
# reviewed as files, so a golden pins such an output by digest, not by a second copy
STATIC_SOURCES = ("channel.c", "phase.c", "sampled.c")


def digest_text(data: bytes) -> str:
    lines = data.count(b"\n")
    return f"sha256 {hashlib.sha256(data).hexdigest()}\nbytes {len(data)}\nlines {lines}\n"


def is_static_source(data: bytes) -> bool:
    return any(data == source(s).encode() for s in STATIC_SOURCES)


def golden_form(name: str, data: bytes) -> tuple[str, bytes]:
    """(golden file name, golden content) for an output file."""
    kernel = name.startswith("kernels") and name.endswith(".cu")
    if len(data) <= GOLDEN_MAX_BYTES and not is_static_source(data) and not kernel:
        return name, data
    return name + ".sha256", digest_text(data).encode()


def compile_size(spec: Path) -> dict:
    if spec.suffix == ".qs" and parse_space(spec).qubits is None:
        return {"qubits": AUTO_QUBITS}
    return {}


def test_every_spec_has_a_golden_folder():
    names = {p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name not in NOT_SPECS} if GOLDEN.is_dir() else set()
    specs = {s.name for s in SPECS}
    if not UPDATE:
        assert names == specs, (f"golden folders without a spec: {sorted(names - specs)}; "
                                f"specs without goldens: {sorted(specs - names)} "
                                "(QTC_UPDATE_GOLDEN=1 pytest tests/test_golden.py)")


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_compile_output_matches_golden(spec, tmp_path, monkeypatch):
    monkeypatch.delenv("QTC_RENDERING", raising=False)   # the goldens are the cost model's choice
    out = write_outputs(str(spec), out_dir=tmp_path, **compile_size(spec))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f.name for f in out.files), "write_outputs reports what it wrote"
    assert out.report == (tmp_path / "report.txt").read_text()
    folder = GOLDEN / spec.name
    expected = {}  # golden name -> (golden content, output file)
    for f in out.files:
        gname, content = golden_form(f.name, f.read_bytes())
        expected[gname] = (content, f)
    _compare(spec.name, folder, {g: (c, f.name, f.read_bytes()) for g, (c, f) in expected.items()})


def _compare(what: str, folder: Path, expected: dict[str, tuple[bytes, str, bytes]]) -> None:
    """golden name -> (golden content, output name, output content): every golden matches, or
    the output is written beside it as `<output>.new` and the test fails naming both."""
    if UPDATE:
        _rewrite(folder, {g: c for g, (c, _, _) in expected.items()})
        return
    problems = []
    for gname, (content, oname, output) in expected.items():
        path, new = folder / gname, folder / (oname + ".new")
        if path.is_file() and path.read_bytes() == content:
            new.unlink(missing_ok=True)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        new.write_bytes(output)  # the whole output, also beside a digest golden
        state = "differs from" if path.is_file() else "has no golden"
        problems.append(f"{what}: output {state} {path} (new output: {new})")
    stale = sorted(p.name for p in folder.glob("*") if not p.name.endswith(".new") and p.name not in expected)
    problems += [f"{what}: golden {folder / s} is no longer produced" for s in stale]
    assert not problems, "\n".join(problems + ["rewrite with: QTC_UPDATE_GOLDEN=1 pytest tests/test_golden.py"])


def test_no_golden_is_a_copy_of_a_static_source():
    copies = [p for p in GOLDEN.rglob("*") if p.is_file() and is_static_source(p.read_bytes())]
    assert not copies, f"golden copies of compiler sources (pin them by digest): {copies}"


def generated_part(text: str, rendering: str) -> str:
    """The kernel source with each static C file replaced by a one-line marker."""
    for name in STATIC_C[rendering]:
        static = source(name)
        assert text.count(static) == 1, f"{name} appears once, whole, in the kernel source"
        text = text.replace(static, f"// <qtc/compiler/csrc/{name}: {static.count(chr(10))} lines>\n")
    return text


def test_tiny_kernels_match_their_text_goldens():
    expected = {}
    for spec, n, L, rendering in TEXT_KERNELS:
        prog = qtc.compile(ROOT / "specs" / f"{spec}.qs", qubits=n, depth=L)
        text = to_kernels(prog, Target(rendering=rendering)).text
        name = f"{spec}-n{n}-L{L}" + ("-compact" if rendering == "compact" else "") + ".cu"
        data = generated_part(text, rendering).encode()
        expected[name] = (data, name, data)
    _compare("kernel text", GOLDEN / "kernels", expected)


def _rewrite(folder: Path, expected: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if p.name not in expected:
            p.unlink()
    for gname, content in expected.items():
        (folder / gname).write_bytes(content)


@pytest.mark.skipif(UPDATE, reason="rewriting the goldens")
def test_mismatch_writes_new_file_and_names_both(tmp_path, monkeypatch):
    """The mechanism itself: a changed golden fails, and the .new file holds the real output."""
    spec = ROOT / "specs" / "untied_two_layer.qs"
    fake = tmp_path / "golden"
    folder = fake / spec.name
    folder.mkdir(parents=True)
    for p in (GOLDEN / spec.name).iterdir():
        if not p.name.endswith(".new"):
            (folder / p.name).write_bytes(p.read_bytes())
    (folder / "program.ir").write_text("not the program\n")
    monkeypatch.setattr(sys.modules[__name__], "GOLDEN", fake)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AssertionError) as info:
        test_compile_output_matches_golden(spec, out, monkeypatch)
    message = str(info.value)
    assert str(folder / "program.ir") in message and str(folder / "program.ir.new") in message
    assert (folder / "program.ir.new").read_text().startswith("program untied_two_layer qubits 4 depth 2")
    assert "report.txt" not in message, "only the changed file is named"
