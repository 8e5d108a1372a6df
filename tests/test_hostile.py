"""The hostile-input corpus (tests/hostile/cases.py): every malformed spec and command line ends
with its exit code, its message and (for specs) the file:line:col of the line that caused it;
never a traceback, a hang, a blow-up or a silent run.

Every case runs in-process (qtc.cli.main: cheap). A sample, one per class, runs as a real
`python -m qtc` under a time and an address-space limit, so a hang or a blow-up there fails the
test instead of the machine. `python tests/hostile/measure.py` runs the whole corpus that way
(with the round-3 cases still open, cases.OPEN) and prints the figures. Fault injection: a full
disk under a run (RLIMIT_FSIZE), a read-only or full kernel cache (the OSError raised where the
cache writes).
"""
import errno
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))

from cases import CASES, FORECAST  # noqa: E402
from harness import run_inprocess, run_subprocess, verdict  # noqa: E402

from qtc.errors import QtcError  # noqa: E402
from qtc.runtime import cache  # noqa: E402

BY_NAME = {c.name: c for c in CASES}
SAMPLE = ("train_lr_nan", "dup_train_lr", "qs_angles_uniform_reversed", "qs_label_layer",
          "data_points_huge", "data_delayed_qc_step_tiny", "env_unknown", "net_nested_lists",
          "gen_network_needs_31_qubits", "cli_run_seed_2_32", "cli_sweep_address_dead",
          "r3_link_generator_outside", "r3_link_run_plots", "r3_metrics_emptied", "r3_not_utf8",
          "r3_seeds_spec_huge")


def test_corpus_has_150_distinct_cases_of_both_spec_kinds_and_the_cli():
    assert len(BY_NAME) == len(CASES) >= 150
    files = [next(iter(c.files), "") for c in CASES]
    assert sum(f.endswith(".task") for f in files) >= 60 and sum(f.endswith(".qs") for f in files) >= 15
    assert sum(c.name.startswith("cli_") for c in CASES) >= 40


# A case that first makes a run or a sweep to attack (`before`) costs a run: those are slow.
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c.before else c
                                  for c in CASES], ids=lambda c: c.name)
def test_hostile_input_ends_in_a_clean_located_error(case, tmp_path):
    outcome = run_inprocess(case, tmp_path)
    v, why = verdict(case, outcome, tmp_path)
    assert v == "clean", why


@pytest.mark.parametrize("name", SAMPLE)
def test_hostile_input_as_a_subprocess_under_time_and_memory_limits(name, tmp_path):
    case = BY_NAME[name]
    v, why = verdict(case, run_subprocess(case, tmp_path, timeout=120), tmp_path)
    assert v == "clean", why


def test_the_verdict_catches_a_traceback_a_silent_run_and_a_wrong_line(tmp_path):
    from harness import Case, Outcome
    case = Case("x", (), 2, "boom", {"s.task": "task t : forecast\nbad\n"}, at="bad")
    located = f"{tmp_path}/s.task:2:1: error: boom"
    assert verdict(case, Outcome(2, located), tmp_path)[0] == "clean"
    assert verdict(case, Outcome(2, located.replace(":2:", ":1:")), tmp_path)[0] == "unclean"
    assert verdict(case, Outcome(0, ""), tmp_path)[0] == "silent"
    assert verdict(case, Outcome("traceback", "Traceback"), tmp_path)[0] == "traceback"


def _file_limit(size: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    return limit


def test_a_full_output_disk_is_a_clear_error_naming_the_file(tmp_path):
    spec = tmp_path / "f.task"
    spec.write_text(FORECAST)
    proc = subprocess.run([sys.executable, "-m", "qtc", "run", str(spec), "-o", str(tmp_path / "run"),
                           "--models", "classical", "--epochs", "1", "--max-batches", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=300, preexec_fn=_file_limit(12_000))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot use {tmp_path / 'run'}" in proc.stderr and "-o DIR" in proc.stderr, proc.stderr


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_read_only_or_full_kernel_cache_names_the_folder_and_qtc_cache_dir(code, tmp_path, monkeypatch):
    monkeypatch.setenv("QTC_CACHE_DIR", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise OSError(code, "injected", str(tmp_path / "cache" / ".build-x"))

    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    with pytest.raises(QtcError) as err:
        cache.build_shared("extern \"C\" int f() { return 1; }\n")
    assert str(tmp_path / "cache") in str(err.value) and "QTC_CACHE_DIR" in str(err.value)


def test_a_read_only_cache_that_holds_the_entry_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("QTC_CACHE_DIR", str(tmp_path / "cache"))
    source = "extern \"C\" int qtc_hostile_probe() { return 7; }\n"
    built = cache.build_shared(source)

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "injected")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    assert cache.build_shared(source) == built
