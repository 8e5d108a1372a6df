"""A corpus of malformed specs (tests/specs_bad/): each one raises qtc.errors.SpecError located at
the right `file:line:col`, with the source line, a caret under the column and, for misspelt
names, a did-you-mean hint; and `qtc compile <file>` exits with code 2 and no traceback.

`qtc compile` runs in-process (qtc.cli.main) for every file, and as a real subprocess
(`python -m qtc compile`) for every .qs file and a sample of .task files: a .task subprocess
imports torch (1.5 s of CPU each), and the in-process run already covers main()'s handling.
QTC_FULL_CLI=1 runs every .task file as a subprocess as well.
"""
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import qtc
from qtc.cli import main
from qtc.errors import SpecError
from qtc.tasks.build import load_task

BAD = Path(__file__).resolve().parent / "specs_bad"
ROOT = Path(__file__).resolve().parent.parent

# file -> (line, column, message fragment, hint fragment or None[, file the error is in])
EXPECTED = {
    # --- search spaces: syntax
    "syntax_unclosed_choice.qs": (5, 1, "unexpected 'layer', expected '|' or '}'", None),
    "syntax_bad_character.qs": (3, 9, "unexpected character '$'", None),
    "syntax_end_of_file.qs": (4, 54, "unexpected end of file, expected 'nothing' or a name", None),
    "misspelt_keyword.qs": (3, 1, "unexpected 'dpeth', expected 'angles', 'depth'", "did you mean 'depth'?"),
    "empty.qs": (1, 1, "unexpected end of file, expected 'space'", None),
    # --- search spaces: names, gates, patterns
    "unknown_gate.qs": (4, 18, "unknown gate 'rxx'", "did you mean 'rx'?"),
    "unknown_pattern.qs": (6, 24, "unknown pattern 'cyk'", "did you mean 'cyc'?"),
    "unknown_name.qs": (4, 28, "unknown name 'k'", "layer, n, pi, q"),
    "unknown_weight_norm.qs": (5, 9, "unknown weight normalisation 'sofmax'", "did you mean 'softmax'?"),
    "angles_unknown.qs": (5, 8, "unknown angle initialisation 'gaussian'", "constant, normal, uniform, zeros"),
    "angles_arity.qs": (5, 1, "'normal' takes 2 argument(s), got 1", None),
    "wrong_arity.qs": (4, 9, "gate 'cnot' takes 2 argument(s) (qubit, qubit), got 1", None),
    "wrong_arity_angle.qs": (4, 9, "gate 'ry' takes 2 argument(s) (qubit, angle), got 1", None),
    "angle_as_qubit.qs": (4, 12, "argument 1 of 'ry' is a qubit, not an angle", None),
    "pattern_recursion.qs": (5, 13, "pattern 'a' refers to itself", None),
    "pattern_named_like_gate.qs": (4, 9, "'h' is a gate or keyword and cannot name a pattern", None),
    "layer_in_pattern.qs": (5, 8, "pattern 'rot' uses 'layer' or theta, which 'init' does not have",
                            "exist only in the 'layer' statement"),
    "loop_hides_builtin.qs": (4, 32, "loop variable 'n' hides a built-in name", None),
    "no_layer.qs": (1, 7, "the space has no 'layer' statement", "layer = choose"),
    # --- search spaces: duplicates
    "duplicate_pattern.qs": (5, 9, "pattern 'ent' is defined twice", "its own name"),
    "duplicate_statement.qs": (5, 1, "'depth' is given twice (first on line 3)", None),
    "duplicate_label.qs": (5, 18, "two alternatives of one choice are both labelled 'R'", "label them apart"),
    "duplicate_init_label.qs": (4, 37, "two alternatives of one choice are both labelled 'H'", "label them apart"),
    # --- search spaces: sizes and values (some found only at expansion, with n known)
    "depth_zero.qs": (3, 1, "depth must be between 1 and 10000, got 0", None),
    "qubits_too_many.qs": (2, 8, "qubits must be between 1 and 30, got 31", None),
    "limit_zero.qs": (5, 1, "limit must be between 1 and 65536, got 0", None),
    "qubits_auto_no_size.qs": (2, 1, "'qubits auto' but nothing gives the size", "--qubits N"),
    "qubit_out_of_range.qs": (4, 28, "qubit index 4 is out of range for 4 qubits (0..3)", "loop range"),
    "same_qubit_twice.qs": (5, 9, "gate 'cz' touches qubit 0 twice (cz(0, 0) with q = 0)", None),
    "too_many_candidates.qs": (8, 1, "the space has 2,147,483,648 candidates, more than the limit of 4,096",
                               "tie the layers"),
    "theta_in_init.qs": (4, 14, "theta[...] is only available inside the 'layer' statement", None),
    "theta_other_layer.qs": (4, 15, "theta[1, 0] is outside this layer's angles theta[0, 0..2]", None),
    "step_zero.qs": (4, 41, "the step must not be zero", None),
    "division_by_zero.qs": (4, 57, "division by zero in '(n // (n - 3))'", None),
    "fractional_qubit.qs": (4, 51, "the qubit index must be a whole number, got 0.5", None),
    # --- search spaces: the issue-18 forms and the size bounds
    "range_against_step.qs": (4, 41, "the range 2 .. 0 runs against its step 1", "step -1"),
    "theta_used_twice.qs": (4, 33, "an angle may use theta only once", "2 * theta[layer, q] + pi / 2"),
    "theta_not_affine.qs": (4, 31, "'(theta[layer, q] // 2)' is not affine in theta", "scaled, negated"),
    "theta_in_range.qs": (4, 46, "theta[...] is a trainable angle and cannot stand in a loop range", None),
    "theta_index_too_big.qs": (4, 15, "the third index of theta[layer, q, 16] is 16, outside 0..15", None),
    "choice_in_sequence.qs": (5, 63, "pattern 'ent' is a choice and can only be a whole slot", "alone"),
    "weights_list_length.qs": (5, 1, "'weights init' lists 3 value(s) but the space has 2 candidates",
                               "one value per candidate"),
    "division_by_zero_layer.qs": (4, 56, "division by zero in '(pi / (layer - 1))' (at layer = 1)", None),
    "limit_too_high.qs": (5, 1, "limit must be between 1 and 65536, got 1000000", None),
    "loop_hides_outer.qs": (4, 31, "loop variable 'i' hides an outer loop variable", None),
    "deep_expression.qs": (4, 30, "the expression nests more than 64 levels deep", "unary minuses"),
    "long_line.qs": (4, 4097, "line 4 has 6,012 characters, more than 4,096", "several lines"),
    "pattern_chain_too_deep.qs": (36, 15, "pattern 'p32' nests 33 patterns deep, more than 32", "fewer patterns"),
    # --- tasks: syntax and statements
    "task_empty.task": (1, 35, "unexpected end of file, expected 'task'", None),
    "task_syntax_header.task": (1, 13, "unexpected 'classify', expected ':'", None),
    "task_unclosed_network.task": (6, 45, "unexpected end of file, expected '}'", None),
    "task_unclosed_list.task": (2, 25, "unexpected end of line, expected ',' or ']'", None),
    "task_unknown_kind.task": (1, 10, "unknown task kind 'clasify'", "did you mean 'classify'?"),
    "task_unknown_statement.task": (7, 1, "unknown statement 'trian'", "did you mean 'train'?"),
    "task_duplicate_statement.task": (8, 1, "'train' is given twice (first on line 7)", None),
    "task_duplicate_network.task": (7, 1, "network 'actor' is defined twice", None),
    "task_no_train.task": (1, 1, "the task has no 'train' statement", None),
    "task_no_network.task": (1, 1, "the task has no network", None),
    "task_missing_positional.task": (7, 1, "'train' needs its optimizer", None),
    # --- tasks: options and their values
    "task_unknown_option.task": (7, 20, "unknown option 'bach' for 'train'", "did you mean 'batch'?"),
    "task_option_without_value.task": (7, 39, "option 'seed' needs a value", None),
    "task_option_not_a_number.task": (7, 15, "'train' option 'lr': Input should be a valid number", None),
    "task_option_not_allowed.task": (7, 47, "'generator' option 'mapping': expected 'linear' or 'mlp' "
                                     "(got 'cubic')", None),
    "task_bad_optimizer.task": (7, 7, "'train' option 'optimizer': expected 'adam', 'rmsprop' or 'sgd' "
                                "(got 'adamw')", None),
    "task_option_negative.task": (7, 37, "'train' option 'epochs': must be at least 1 (got 0)", None),
    "task_option_list_length.task": (2, 20, "'data' option 'classes': a classifier needs at least two "
                                     "classes, e.g. [1, 5] (or 'all') (got [1])", None),
    "task_classes_output_width.task": (6, 3, "network 'net' gives output [2] but mnist with 3 classes "
                                       "(one output each) needs [3]", None),
    "task_generator_index.task": (7, 45, "'generator' option 'index': expected 'bits' or 'tensor' "
                                  "(got 'weights')", None),
    "task_generator_depth_zero.task": (7, 37, "'generator' option 'depth': depth must be between 1 and 10000 (got 0)",
                                       None),
    "task_generator_depth_huge.task": (7, 37, "'generator' option 'depth': depth must be between 1 and 10000 (got 1000000000)", None),
    # --- tasks: networks
    "task_shape_mismatch.task": (8, 3, "'linear' expects [500] but the previous layer gives shape [512]", None),
    "task_conv_channels.task": (5, 3, "'conv2d' expects [3, H, W] but the previous layer gives shape "
                                "[1, 28, 28]", None),
    "task_missing_input.task": (4, 3, "network 'net' must start with its input shape", "input [1, 28, 28]"),
    "task_bad_input_shape.task": (4, 3, "input needs a shape of positive integers", None),
    "task_unknown_layer.task": (5, 19, "unknown layer 'rleu'", "did you mean 'relu'?"),
    "task_layer_syntax.task": (5, 3, "'linear' needs 'IN -> OUT' with positive integers", None),
    "task_activation_args.task": (5, 19, "'relu' takes no arguments", None),
    "task_kernel_too_big.task": (5, 3, "kernel 29 does not fit the input [1, 28, 28]", None),
    "task_stride_zero.task": (5, 33, "'stride' needs a positive integer", None),
    "task_pool_stride_zero.task": (5, 20, "'stride' needs a positive integer", None),
    # --- tasks: the generator
    "task_target_too_big.task": (11, 1, "target has 108,866 parameters but 12 qubits give only 4,096",
                                 "at least 17"),
    "task_missing_space.task": (7, 1, "search space file 'no_such_space.qs' not found", None),
    "task_untied_too_large.task": (14, 1, "the space has 128 candidates, more than the limit of 64", None,
                                   "untied_two_layer.qs"),
    # --- tasks: sampled search (`search sampled K`)
    "task_sampled_tied_space.task": (8, 39, "'search sampled' draws one choice per position of an untied "
                                     "space, but 'hadamard_ent_rot.qs' ties its layers",
                                     "hadamard_ent_rot_per_layer_softmax.qs"),
    "task_sampled_raw_weights.task": (8, 49, "'search sampled' draws from softmax distributions, but "
                                      "'hadamard_ent_rot_per_layer.qs' has 'weights raw per position'",
                                      "weights softmax per position"),
    "task_sampled_without_k.task": (8, 57, "'search sampled' needs the number of architectures drawn per step",
                                    "search sampled K"),
    "task_sampled_zero.task": (8, 72, "'generator' option 'samples': must be at least 1 (got 0)", None),
    "task_samples_without_sampled.task": (8, 57, "'samples' applies only with search sampled", "search sampled K"),
    "task_search_misspelt.task": (8, 64, "'search smapled' takes no number after it (only 'search sampled' "
                                  "does)", "did you mean 'sampled'?"),
    # --- the generator's centring
    "task_center_unknown.task": (8, 46, "'generator' option 'center': center must be true (the whole vector), "
                                 "false or tensor", None),
    # --- the learning-rate schedule of `train`
    "task_schedule_step_without_n.task": (8, 38, "'schedule step' needs the number of epochs between two "
                                          "decays", "schedule step 10 gamma 0.5"),
    "task_schedule_unknown.task": (8, 47, "'train' option 'schedule': expected 'constant', 'cosine' or "
                                   "'step' (got 'linear')", None),
    "task_schedule_gamma_with_cosine.task": (8, 54, "'gamma' applies only with schedule step, not with "
                                             "schedule cosine", "train schedule cosine takes:"),
    "task_schedule_gamma_above_one.task": (8, 60, "'train' option 'gamma': must be below 1.0 (got 1.5)", None),
    "task_schedule_warmup_too_long.task": (8, 54, "'warmup 5' is not shorter than the training's 5 epochs",
                                           "a fraction such as 0.5"),
    "task_schedule_step_beyond.task": (8, 38, "'schedule step 5' would never decay the rate within the "
                                       "training's 5 epochs", "write N below 5"),
    "task_schedule_cosine_number.task": (8, 47, "'schedule cosine' takes no number after it (only "
                                         "'schedule step' does)", None),
}
TASK_SAMPLE = ["task_unclosed_list.task", "task_unknown_option.task", "task_shape_mismatch.task",
               "task_target_too_big.task", "task_missing_space.task", "task_stride_zero.task"]
if os.environ.get("QTC_FULL_CLI") == "1":  # every .task file as a subprocess too (~1 min more)
    TASK_SAMPLE = sorted(n for n in EXPECTED if n.endswith(".task"))
HEADER = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): error: ")


def test_corpus_is_complete_and_large():
    files = {p.name for p in BAD.iterdir() if p.suffix in (".qs", ".task")}
    assert files == set(EXPECTED), "every file in specs_bad/ has an expectation and vice versa"
    assert sum(f.endswith(".qs") for f in files) >= 15 and sum(f.endswith(".task") for f in files) >= 15


def compile_spec(path: Path):
    """What `qtc compile` does, through the Python API."""
    if path.suffix == ".qs":
        return qtc.compile(path)
    return load_task(path).program


def expectation(name):
    line, col, message, hint, *where = EXPECTED[name]
    return line, col, message, hint, (where[0] if where else name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_spec_raises_a_located_spec_error(name):
    line, col, message, hint, where = expectation(name)
    with pytest.raises(SpecError) as info:
        compile_spec(BAD / name)
    err = info.value
    text = str(err)
    head = HEADER.match(text)
    assert head, text
    assert Path(head["file"]).name == where and (int(head["line"]), int(head["col"])) == (line, col), text
    assert message in text.splitlines()[0], text
    # the source line, then a caret under the column
    source = Path(head["file"]).read_text().splitlines()[line - 1]
    lines = text.splitlines()
    assert lines[1] == "    " + source.replace("\t", " "), text
    assert lines[2] == "    " + " " * (col - 1) + "^", text
    if hint:
        assert lines[-1].startswith("hint: ") and hint in lines[-1], text
    assert (err.line, err.column) == (line, col)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_qtc_compile_exits_2_with_the_error_and_no_traceback(name, tmp_path, capsys, monkeypatch):
    line, col, message, _, where = expectation(name)
    monkeypatch.chdir(BAD)  # relative file names, as a user would type them
    code = main(["compile", name, "-o", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err and out == ""
    head = HEADER.match(err)
    assert head and Path(head["file"]).name == where and (int(head["line"]), int(head["col"])) == (line, col)
    assert not any(tmp_path.iterdir()), "nothing is written for a bad spec"


def _run_cli(name: str, out_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qtc", "compile", name, "-o", str(out_dir)], cwd=BAD,
                          capture_output=True, text=True, timeout=120)


def test_qtc_compile_subprocess_exits_2_without_traceback(tmp_path):
    names = sorted(n for n in EXPECTED if n.endswith(".qs")) + TASK_SAMPLE
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: _run_cli(n, tmp_path / n), names))
    failures = []
    for name, r in zip(names, results):
        line, col, message, _, where = expectation(name)
        head = HEADER.match(r.stderr)
        ok = (r.returncode == 2 and "Traceback" not in r.stderr and head is not None
              and Path(head["file"]).name == where and (int(head["line"]), int(head["col"])) == (line, col)
              and message in r.stderr)
        if not ok:
            failures.append(f"{name}: exit {r.returncode}\n{r.stderr}")
    assert not failures, "\n".join(failures)


def test_the_error_points_into_the_space_file_when_the_task_sizes_it():
    """A task's depth can make its space too large: the error names the space file and the
    line of its 'untie layers', which is what the user can change (or the task's depth)."""
    with pytest.raises(SpecError) as info:
        compile_spec(BAD / "task_untied_too_large.task")
    assert info.value.file == str(ROOT / "specs" / "untied_two_layer.qs")


def test_spec_text_without_a_file_is_located_as_spec():
    with pytest.raises(SpecError) as info:
        qtc.compile("space s\nqubits 3\ndepth 2\nlayer = rxx(0, theta[layer, 0])\n")
    assert str(info.value).startswith("<spec>:4:9: error: unknown gate 'rxx'")


def test_missing_file_is_a_spec_error():
    with pytest.raises(SpecError, match="no such spec file"):
        qtc.compile(BAD / "does_not_exist.qs")


def test_bits_01_is_the_word_not_the_number_1(tiny):
    """`bits 01` once parsed as the integer 1 and was refused ("expected 'pm1' or '01' (got 1)"),
    in a spec and in --set alike; `bits 1` is still refused; a zero-led integer where a number is
    expected still reads as that number."""
    assert load_task(tiny.read_text().replace("bits pm1", "bits 01")).spec.generator.bits == "01"
    assert load_task(tiny, {"generator.bits": "01"}).spec.generator.bits == "01"
    with pytest.raises(SpecError, match="01"):
        load_task(tiny.read_text().replace("bits pm1", "bits 1"))
    assert load_task(tiny.read_text().replace("window 4", "window 04")).spec.data.window == 4
