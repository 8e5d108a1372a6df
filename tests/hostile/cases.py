"""The hostile-input corpus: malformed specs of both kinds and command-line misuses.

Each case is one mutation of a small valid spec (or one bad command line), with the exit code
and a fragment of the message it must produce. Spec cases also name the text on the line the
error must point at (file:line:col), found in the mutated spec itself.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness import Case

SPECS = Path(__file__).resolve().parents[2] / "specs"

FORECAST = """\
task f : forecast
data bessel window 4 split 0.67
network {
  input [4, 1]
  lstm 1 -> 20
  linear 20 -> 1
}
generator hadamard_ent_rot.qs depth 2 mapping linear
train rmsprop lr 0.01 alpha 0.99 eps 1e-8 batch 10 epochs 3 seed 0
report epochs [1, 3]
compare fixed classical
"""

CLASSIFY = """\
task c : classify
data mnist classes [1, 5] normalize [0.5, 0.5]
network {
  input [1, 28, 28]
  flatten
  linear 784 -> 2
}
generator hadamard_ent_rot.qs depth 2
train adam lr 1e-3 betas [0.9, 0.999] batch 100 epochs 1 seed 0
"""

A3C = """\
task a : a3c
env MiniGrid-Empty-5x5-v0 max_steps 20
network actor {
  input [147]
  linear 147 -> 7
}
network critic {
  input [147]
  linear 147 -> 1
}
generator hadamard_ent_rot.qs depth 2
train adam lr 1e-4 episodes 2 seed 0
a3c workers 1 gamma 0.9 n_steps 5 entropy 0 window 10
"""

SPACE = (SPECS / "hadamard_ent_rot.qs").read_text()

# `qtc run` with the smallest budget: a case that slips through trains for one batch (one
# episode) only. Each kind gets the flags it uses: any other flag is refused (dsl.applies).
RUN = ("run", "{tmp}/spec.task", "-o", "{tmp}/run", "--epochs", "1", "--max-batches", "1",
       "--models", "classical", "--no-progress")
RUNS = {"forecast": RUN, "classify": (*RUN, "--limit", "20"),
        "a3c": ("run", "{tmp}/spec.task", "-o", "{tmp}/run", "--episodes", "1", "--workers", "1",
                "--models", "classical", "--no-progress")}
COMPILE_QS = ("compile", "{tmp}/space.qs", "-o", "{tmp}/out")


def mutate(base: str, old: str, new: str) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def task(name: str, base: str, old: str, new: str, fragment: str, at: str | None = "",
         argv=None) -> Case:
    """A task spec with `old` replaced by `new`, run with the smallest budget for its kind; the
    error must point at the line holding `at` (default: `new`; None: not located)."""
    text = mutate(base, old, new)
    kind = re.search(r"^task \S+ : (\w+)", text, re.M)
    argv = argv or RUNS.get(kind.group(1) if kind else "", RUN)
    return Case(name, argv, 2, fragment, {"spec.task": text},
                at=(at if at != "" else new.strip().splitlines()[0]))


def space(name: str, old: str, new: str, fragment: str, at: str | None = "") -> Case:
    """The paper's space with `old` replaced by `new`, compiled."""
    return Case(name, COMPILE_QS, 2, fragment, {"space.qs": mutate(SPACE, old, new)},
                at=(at if at != "" else new.strip().splitlines()[0]))


def cli(name: str, argv: tuple[str, ...], fragment: str, code: int = 2, files=None, env=None) -> Case:
    return Case(name, argv, code, fragment, dict(files or {}), env=dict(env or {}))


F, C, A = FORECAST, CLASSIFY, A3C
TRAIN_F = "train rmsprop lr 0.01"
DATA_F = "data bessel window 4 split 0.67"
GEN = "generator hadamard_ent_rot.qs depth 2"

CASES: list[Case] = [
    # --- train: values that are not finite or not in range ---------------------------------
    task("train_lr_nan", F, "lr 0.01", "lr nan", "finite", at=TRAIN_F.replace("0.01", "nan")),
    task("train_lr_inf", F, "lr 0.01", "lr inf", "finite", at="lr inf"),
    task("train_lr_huge_literal", F, "lr 0.01", "lr 1e999", "finite", at="lr 1e999"),
    task("train_lr_negative", F, "lr 0.01", "lr -0.01", "lr", at="lr -0.01"),
    task("train_lr_zero", F, "lr 0.01", "lr 0", "lr", at="lr 0 "),
    task("train_lr_word", F, "lr 0.01", "lr fast", "lr", at="lr fast"),
    task("train_lr_list", F, "lr 0.01", "lr [0.1, 0.2]", "lr", at="lr [0.1"),
    task("train_batch_zero", F, "batch 10", "batch 0", "batch", at="batch 0"),
    task("train_batch_negative", F, "batch 10", "batch -3", "batch", at="batch -3"),
    task("train_batch_fraction", F, "batch 10", "batch 2.5", "batch", at="batch 2.5"),
    task("train_epochs_zero", F, "epochs 3", "epochs 0", "epochs", at="epochs 0"),
    task("train_epochs_negative", F, "epochs 3", "epochs -1", "epochs", at="epochs -1"),
    task("train_epochs_fraction", F, "epochs 3", "epochs 1.5", "epochs", at="epochs 1.5"),
    task("train_epochs_nan", F, "epochs 3", "epochs nan", "epochs", at="epochs nan"),
    task("train_episodes_zero", A, "episodes 2", "episodes 0", "episodes", at="episodes 0"),
    task("train_episodes_negative", A, "episodes 2", "episodes -5", "episodes", at="episodes -5"),
    task("train_seed_negative", F, "seed 0", "seed -1", "seed", at="seed -1"),
    task("train_seed_2_32", F, "seed 0", "seed 4294967296", "seed", at="seed 4294967296"),
    task("train_seed_huge", F, "seed 0", "seed 1e20", "seed", at="seed 1e20"),
    task("train_seed_nan", F, "seed 0", "seed nan", "seed", at="seed nan"),
    task("train_alpha_nan", F, "alpha 0.99", "alpha nan", "alpha", at="alpha nan"),
    task("train_alpha_above_one", F, "alpha 0.99", "alpha 1.5", "alpha", at="alpha 1.5"),
    task("train_alpha_negative", F, "alpha 0.99", "alpha -0.1", "alpha", at="alpha -0.1"),
    task("train_eps_zero", F, "eps 1e-8", "eps 0", "eps", at="eps 0"),
    task("train_eps_negative", F, "eps 1e-8", "eps -1e-8", "eps", at="eps -1e-8"),
    task("train_eps_inf", F, "eps 1e-8", "eps inf", "eps", at="eps inf"),
    task("train_betas_one_item", C, "betas [0.9, 0.999]", "betas [0.9]", "betas", at="betas [0.9]"),
    task("train_betas_above_one", C, "betas [0.9, 0.999]", "betas [1.5, 0.999]", "betas", at="betas [1.5"),
    task("train_betas_nan", C, "betas [0.9, 0.999]", "betas [0.9, nan]", "betas", at="betas [0.9, nan]"),
    task("train_betas_negative", C, "betas [0.9, 0.999]", "betas [-0.1, 0.9]", "betas", at="betas [-0.1"),
    task("train_betas_word", C, "betas [0.9, 0.999]", "betas high", "betas", at="betas high"),
    task("train_momentum_negative", F, "alpha 0.99", "alpha 0.99 momentum -1", "momentum", at="momentum -1"),
    task("train_momentum_nan", F, "alpha 0.99", "alpha 0.99 momentum nan", "momentum", at="momentum nan"),
    task("train_weight_decay_negative", F, "alpha 0.99", "alpha 0.99 weight_decay -1", "weight_decay",
         at="weight_decay -1"),
    task("train_weight_decay_inf", F, "alpha 0.99", "alpha 0.99 weight_decay inf", "weight_decay",
         at="weight_decay inf"),
    task("train_unknown_optimizer", F, "train rmsprop", "train lbfgs", "optimizer", at="train lbfgs"),
    task("train_optimizer_number", F, "train rmsprop", "train 3", "optimizer", at="train 3"),
    # --- the same option twice in one statement ---------------------------------------------
    task("dup_train_lr", F, "lr 0.01", "lr 0.01 lr 0.1", "given twice", at="lr 0.01 lr 0.1"),
    task("dup_train_seed", F, "seed 0", "seed 0 seed 1", "given twice", at="seed 0 seed 1"),
    task("dup_train_epochs", F, "epochs 3", "epochs 3 epochs 4", "given twice", at="epochs 3 epochs 4"),
    task("dup_data_window", F, "window 4", "window 4 window 4", "given twice", at="window 4 window 4"),
    task("dup_data_split", F, "split 0.67", "split 0.67 split 0.5", "given twice", at="split 0.67 split"),
    task("dup_data_series_option", F, "split 0.67", "split 0.67 points 500 points 600", "given twice",
         at="points 500 points 600"),
    task("dup_generator_depth", F, "depth 2", "depth 2 depth 3", "given twice", at="depth 2 depth 3"),
    task("dup_generator_mapping", F, "mapping linear", "mapping linear mapping mlp", "given twice",
         at="mapping linear mapping mlp"),
    task("dup_env_max_steps", A, "max_steps 20", "max_steps 20 max_steps 30", "given twice",
         at="max_steps 20 max_steps"),
    task("dup_a3c_gamma", A, "gamma 0.9", "gamma 0.9 gamma 0.8", "given twice", at="gamma 0.9 gamma"),
    task("dup_report_epochs", F, "report epochs [1, 3]", "report epochs [1] epochs [3]", "given twice",
         at="report epochs [1] epochs"),
    task("dup_data_classes", C, "classes [1, 5]", "classes [1, 5] classes [2, 3]", "given twice",
         at="classes [1, 5] classes"),
    # --- generator values ----------------------------------------------------------------------
    task("gen_depth_negative", F, "depth 2", "depth -1", "depth", at="depth -1"),
    task("gen_depth_huge", F, "depth 2", "depth 1e9", "depth", at="depth 1e9"),
    task("gen_depth_fraction", F, "depth 2", "depth 2.5", "depth", at="depth 2.5"),
    task("gen_qubits_zero", F, "depth 2", "depth 2 qubits 0", "qubits", at="qubits 0"),
    task("gen_qubits_31", F, "depth 2", "depth 2 qubits 31", "qubits", at="qubits 31"),
    task("gen_qubits_too_few", F, "depth 2", "depth 2 qubits 5", "qubits", at="qubits 5"),
    task("gen_hidden_zero", F, "mapping linear", "mapping mlp hidden 0", "hidden", at="hidden 0"),
    task("gen_hidden_huge", F, "mapping linear", "mapping mlp hidden 1000000000", "hidden",
         at="hidden 1000000000"),
    task("gen_init_scale_nan", F, "mapping linear", "mapping linear init_scale nan", "init_scale",
         at="init_scale nan"),
    task("gen_init_scale_inf", F, "mapping linear", "mapping linear init_scale inf", "init_scale",
         at="init_scale inf"),
    task("gen_gamma_nan", F, "mapping linear", "mapping linear gamma nan", "gamma", at="gamma nan"),
    task("gen_beta_inf", F, "mapping linear", "mapping linear beta inf", "beta", at="beta inf"),
    task("gen_alpha_nan", F, "mapping linear", "mapping linear alpha nan", "alpha", at="alpha nan"),
    task("gen_backend_unknown", F, "mapping linear", "mapping linear backend tpu", "backend",
         at="backend tpu"),
    task("gen_mapping_unknown", F, "mapping linear", "mapping cubic", "mapping", at="mapping cubic"),
    task("gen_bits_unknown", F, "mapping linear", "mapping linear bits 2", "bits", at="bits 2"),
    task("gen_rescale_unknown", F, "mapping linear", "mapping linear rescale log", "rescale",
         at="rescale log"),
    task("gen_center_number", F, "mapping linear", "mapping linear center 7", "center", at="center 7"),
    task("gen_space_missing", F, "hadamard_ent_rot.qs", "no_such_space.qs", "not found",
         at="no_such_space.qs"),
    task("gen_space_not_qs", F, "hadamard_ent_rot.qs depth", "spec.task depth", "must be a .qs file",
         at="spec.task depth"),
    task("gen_network_needs_31_qubits", C, "linear 784 -> 2", "linear 784 -> 2000000 ; linear 2000000 -> 2",
         "31 qubits", at="network {"),
    # --- forecast data -----------------------------------------------------------------------
    task("data_unknown_series", F, "data bessel", "data bessl", "bessl", at="data bessl"),
    task("data_series_number", F, "data bessel", "data 42", "dataset", at="data 42"),
    task("data_window_zero", F, "window 4", "window 0", "window", at="window 0"),
    task("data_window_negative", F, "window 4", "window -4", "window", at="window -4"),
    task("data_window_fraction", F, "window 4", "window 2.5", "window", at="window 2.5"),
    task("data_window_mismatch", F, "window 4", "window 8", "window 8", at="input [4, 1]"),
    task("data_window_longer_than_series", F, "window 4", "window 5000", "window", at="window 5000"),
    task("data_split_zero", F, "split 0.67", "split 0", "split", at="split 0"),
    task("data_split_one", F, "split 0.67", "split 1", "split", at="split 1"),
    task("data_split_above_one", F, "split 0.67", "split 1.5", "split", at="split 1.5"),
    task("data_split_nan", F, "split 0.67", "split nan", "split", at="split nan"),
    task("data_split_negative", F, "split 0.67", "split -0.5", "split", at="split -0.5"),
    task("data_points_two", F, "split 0.67", "split 0.67 points 2", "points", at="points 2"),
    task("data_points_huge", F, "split 0.67", "split 0.67 points 1e12", "points", at="points 1e12"),
    task("data_points_huge_int", F, "split 0.67", "split 0.67 points 10000000000", "points",
         at="points 10000000000"),
    task("data_points_word", F, "split 0.67", "split 0.67 points many", "points", at="points many"),
    task("data_bessel_order_huge", F, "split 0.67", "split 0.67 order 1000000000000", "order",
         at="order 1000000000000"),
    task("data_bessel_order_fraction", F, "split 0.67", "split 0.67 order 2.5", "order", at="order 2.5"),
    task("data_bessel_start_nan", F, "split 0.67", "split 0.67 start nan", "start", at="start nan"),
    task("data_bessel_stop_inf", F, "split 0.67", "split 0.67 stop inf", "stop", at="stop inf"),
    task("data_unknown_series_option", F, "split 0.67", "split 0.67 color 3", "color", at="color 3"),
    task("data_narma_order_zero", mutate(F, "data bessel", "data narma5"), "split 0.67",
         "split 0.67 order 0", "order", at="order 0"),
    task("data_narma_order_huge", mutate(F, "data bessel", "data narma5"), "split 0.67",
         "split 0.67 order 1000000000000", "order", at="order 1000000000000"),
    task("data_narma_length_huge", mutate(F, "data bessel", "data narma10"), "split 0.67",
         "split 0.67 length 100000000000", "length", at="length 100000000000"),
    task("data_narma_alpha_nan", mutate(F, "data bessel", "data narma5"), "split 0.67",
         "split 0.67 alpha nan", "alpha", at="alpha nan"),
    task("data_delayed_qc_step_zero", mutate(F, "data bessel", "data delayed_qc"), "split 0.67",
         "split 0.67 step 0", "step", at="step 0"),
    task("data_delayed_qc_step_tiny", mutate(F, "data bessel", "data delayed_qc"), "split 0.67",
         "split 0.67 step 1e-12", "step", at="step 1e-12"),
    task("data_damped_shm_points_huge", mutate(F, "data bessel", "data damped_shm"), "split 0.67",
         "split 0.67 points 100000000000", "points", at="points 100000000000"),
    task("data_damped_shm_max_step_zero", mutate(F, "data bessel", "data damped_shm"), "split 0.67",
         "split 0.67 max_step 0", "max_step", at="max_step 0"),
    task("data_limit_zero", F, "split 0.67", "split 0.67 limit 0", "limit", at="limit 0"),
    task("data_limit_negative", C, "normalize [0.5, 0.5]", "normalize [0.5, 0.5] limit -5", "limit",
         at="limit -5"),
    task("data_forecast_output_two", F, "linear 20 -> 1", "linear 20 -> 2", "output", at="linear 20 -> 2"),
    task("data_forecast_input_flat", F, "input [4, 1]\n  lstm 1 -> 20", "input [4]\n  linear 4 -> 20",
         "input", at="input [4]"),
    task("data_forecast_missing", F, DATA_F + "\n", "", "data", at=None),
    # --- classify data -----------------------------------------------------------------------
    task("data_unknown_image_set", C, "data mnist", "data minst", "minst", at="data minst"),
    task("data_image_set_cifar", C, "data mnist", "data cifar10", "cifar10", at="data cifar10"),
    task("data_classes_same", C, "classes [1, 5]", "classes [1, 1]", "classes", at="classes [1, 1]"),
    task("data_class_ten", C, "classes [1, 5]", "classes [1, 10]", "class", at="classes [1, 10]"),
    task("data_class_negative", C, "classes [1, 5]", "classes [-1, 5]", "class", at="classes [-1, 5]"),
    task("data_class_fraction", C, "classes [1, 5]", "classes [1.5, 5]", "classes", at="classes [1.5, 5]"),
    task("data_classes_one", C, "classes [1, 5]", "classes [1]", "classes", at="classes [1]"),
    task("data_classes_three", C, "classes [1, 5]", "classes [1, 2, 3]", "3 classes (one output each) needs [3]",
         at="linear 784 -> 2"),     # three classes are a classifier; its two outputs are not
    task("data_classes_twice", C, "classes [1, 5]", "classes [1, 5, 1]", "named twice", at="classes [1, 5, 1]"),
    task("data_classes_word", C, "classes [1, 5]", "classes alll", "or 'all'", at="classes alll"),
    task("data_classes_missing", C, " classes [1, 5]", "", "classes", at="data mnist normalize"),
    task("data_normalize_std_zero", C, "normalize [0.5, 0.5]", "normalize [0.5, 0]", "normalize",
         at="normalize [0.5, 0]"),
    task("data_normalize_std_negative", C, "normalize [0.5, 0.5]", "normalize [0.5, -1]", "normalize",
         at="normalize [0.5, -1]"),
    task("data_normalize_mean_nan", C, "normalize [0.5, 0.5]", "normalize [nan, 0.5]", "normalize",
         at="normalize [nan, 0.5]"),
    task("data_normalize_one_value", C, "normalize [0.5, 0.5]", "normalize 0.5", "normalize",
         at="normalize 0.5"),
    task("data_classify_input_rgb", C, "input [1, 28, 28]\n  flatten\n  linear 784",
         "input [3, 28, 28]\n  flatten\n  linear 2352", "input", at="input [3, 28, 28]"),
    task("data_classify_three_outputs", C, "linear 784 -> 2", "linear 784 -> 3", "output",
         at="linear 784 -> 3"),
    task("data_classify_missing", C, "data mnist classes [1, 5] normalize [0.5, 0.5]\n", "", "data", at=None),
    # --- a3c ----------------------------------------------------------------------------------
    task("env_unknown", A, "MiniGrid-Empty-5x5-v0", "NoSuchEnv-v0", "NoSuchEnv-v0", at="env NoSuchEnv-v0"),
    task("env_unknown_version", A, "MiniGrid-Empty-5x5-v0", "MiniGrid-Empty-5x5-v9",
         "MiniGrid-Empty-5x5-v9", at="env MiniGrid-Empty-5x5-v9"),
    task("env_misspelt", A, "MiniGrid-Empty-5x5-v0", "MiniGrid-Emtpy-5x5-v0", "MiniGrid-Emtpy-5x5-v0",
         at="env MiniGrid-Emtpy"),
    task("env_max_steps_zero", A, "max_steps 20", "max_steps 0", "max_steps", at="max_steps 0"),
    task("env_max_steps_negative", A, "max_steps 20", "max_steps -1", "max_steps", at="max_steps -1"),
    task("env_max_steps_huge", A, "max_steps 20", "max_steps 1e12", "max_steps", at="max_steps 1e12"),
    task("env_missing", A, "env MiniGrid-Empty-5x5-v0 max_steps 20\n", "", "env", at=None),
    task("a3c_workers_zero", A, "workers 1", "workers 0", "workers", at="workers 0"),
    task("a3c_workers_huge", A, "workers 1", "workers 100000", "workers", at="workers 100000"),
    task("a3c_gamma_zero", A, "gamma 0.9", "gamma 0", "gamma", at="gamma 0 "),
    task("a3c_gamma_above_one", A, "gamma 0.9", "gamma 1.5", "gamma", at="gamma 1.5"),
    task("a3c_gamma_nan", A, "gamma 0.9", "gamma nan", "gamma", at="gamma nan"),
    task("a3c_n_steps_zero", A, "n_steps 5", "n_steps 0", "n_steps", at="n_steps 0"),
    task("a3c_entropy_negative", A, "entropy 0", "entropy -1", "entropy", at="entropy -1"),
    task("a3c_entropy_nan", A, "entropy 0", "entropy nan", "entropy", at="entropy nan"),
    task("a3c_window_zero", A, "window 10", "window 0", "window", at="window 0"),
    task("a3c_no_critic", A, "network critic", "network value", "critic", at=None),
    task("a3c_actor_output_one", A, "linear 147 -> 7", "linear 147 -> 1", "actor", at=None),
    # --- report -------------------------------------------------------------------------------
    task("report_epoch_negative", F, "report epochs [1, 3]", "report epochs [-1, 3]", "epoch",
         at="report epochs [-1"),
    task("report_epoch_zero", F, "report epochs [1, 3]", "report epochs [0]", "epoch", at="report epochs [0]"),
    task("report_epoch_fraction", F, "report epochs [1, 3]", "report epochs [1.5]", "epoch",
         at="report epochs [1.5]"),
    task("report_epoch_nan", F, "report epochs [1, 3]", "report epochs [1, nan]", "epoch",
         at="report epochs [1, nan]"),
    task("report_epoch_beyond_training", F, "report epochs [1, 3]", "report epochs [1, 30]", "epoch",
         at="report epochs [1, 30]"),
    task("compare_unknown", F, "compare fixed classical", "compare fixed quantum", "compare",
         at="compare fixed quantum"),
    # --- networks ------------------------------------------------------------------------------
    task("net_linear_zero", C, "linear 784 -> 2", "linear 784 -> 0", "linear", at="linear 784 -> 0"),
    task("net_lstm_hidden_zero", F, "lstm 1 -> 20", "lstm 1 -> 0", "lstm", at="lstm 1 -> 0"),
    task("net_input_zero", C, "input [1, 28, 28]", "input [0, 28, 28]", "input", at="input [0, 28"),
    task("net_input_empty", C, "input [1, 28, 28]", "input []", "input", at="input []"),
    task("net_relu_argument", C, "flatten", "flatten ; relu 3", "relu", at="flatten ; relu 3"),
    task("net_empty_block", F, "network {\n  input [4, 1]\n  lstm 1 -> 20\n  linear 20 -> 1\n}",
         "network {\n}", "unexpected '}'", at="}"),
    task("net_nested_lists", C, "input [1, 28, 28]", "input " + "[" * 2000 + "1" + "]" * 2000,
         "nested", at="input [[["),
    task("net_conv_kernel_zero", C, "flatten", "conv2d 1 -> 1 kernel 0 ; flatten", "kernel",
         at="kernel 0"),
    # --- task syntax and encodings -------------------------------------------------------------
    task("syntax_unclosed_string", F, "hadamard_ent_rot.qs", '"hadamard_ent_rot.qs', "unexpected",
         at='"hadamard_ent_rot.qs'),
    task("syntax_nul_byte", F, "seed 0", "seed \x000", "unexpected", at="seed "),
    task("syntax_header_kind_missing", F, "task f : forecast", "task f :", "unexpected", at=None),
    task("syntax_kind_unknown", F, "task f : forecast", "task f : regress", "regress", at="task f : regress"),
    task("syntax_unknown_statement", F, "compare fixed", "comapre fixed", "comapre", at="comapre fixed"),
    task("syntax_train_twice", F, "compare fixed classical", "compare fixed classical\n" + TRAIN_F,
         "given twice", at=None),
    Case("syntax_not_utf8", RUN, 2, "UTF-8", {"spec.task": b"task f : forecast\n\xff\xfe\n"}),
    Case("syntax_empty_file", RUN, 2, "unexpected end of file", {"spec.task": ""}),
    # --- search spaces: values ----------------------------------------------------------------
    space("qs_angles_normal_negative_std", "angles normal(0, 0.01)", "angles normal(0, -1)", "std"),
    space("qs_angles_normal_std_expr_negative", "angles normal(0, 0.01)", "angles normal(0, 1 - 2)", "std"),
    space("qs_angles_normal_mean_inf", "angles normal(0, 0.01)", "angles normal(1e300 * 1e300, 1)", "finite"),
    space("qs_angles_uniform_reversed", "angles normal(0, 0.01)", "angles uniform(1, 0)", "uniform"),
    space("qs_angles_uniform_reversed_pi", "angles normal(0, 0.01)", "angles uniform(pi, -pi)", "uniform"),
    space("qs_angles_constant_inf", "angles normal(0, 0.01)", "angles constant(1e300 * 1e300)", "finite"),
    space("qs_angles_constant_nan", "angles normal(0, 0.01)", "angles constant(1e300 * 1e300 - 1e300 * 1e300)",
          "finite"),
    space("qs_weights_init_inf", "weights raw init 1 / 12", "weights raw init 1e300 * 1e300", "finite"),
    space("qs_weights_softmax_init_inf", "weights raw init 1 / 12", "weights softmax init -1e300 * 1e300",
          "finite"),
    space("qs_qubits_zero", "qubits auto 17", "qubits 0", "qubits"),
    space("qs_qubits_31", "qubits auto 17", "qubits 31", "qubits"),
    space("qs_depth_zero", "depth 15", "depth 0", "depth"),
    space("qs_limit_huge", "tie layers", "tie layers\nlimit 100000000", "limit", at="limit 100000000"),
    # --- search spaces: labels that are keywords ----------------------------------------------
    space("qs_label_layer", "H: h(q)", "layer: h(q)", "keyword"),
    space("qs_label_for", "H: h(q)", "for: h(q)", "keyword"),
    space("qs_label_all", "H: h(q)", "all: h(q)", "keyword"),
    space("qs_label_theta", "H: h(q)", "theta: h(q)", "keyword"),
    space("qs_label_choose", "H: h(q)", "choose: h(q)", "keyword"),
    space("qs_label_step", "H: h(q)", "step: h(q)", "keyword"),
    space("qs_label_untie", "H: h(q)", "untie: h(q)", "keyword"),
    space("qs_label_depth", "H: h(q)", "depth: h(q)", "keyword"),
    # --- command lines --------------------------------------------------------------------------
    cli("cli_no_command", (), "required", files={}),
    cli("cli_unknown_command", ("frobnicate",), "invalid choice"),
    cli("cli_compile_no_spec", ("compile",), "required"),
    cli("cli_compile_missing_file", ("compile", "{tmp}/nope.qs"), "no such spec file"),
    cli("cli_compile_directory", ("compile", "{tmp}"), "not a"),
    cli("cli_compile_wrong_suffix", ("compile", "{tmp}/notes.txt"), "notes.txt",
        files={"notes.txt": "hello\n"}),
    cli("cli_compile_qubits_zero", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "--qubits", "0",
                                    "-o", "{tmp}/out"), "qubits"),
    cli("cli_compile_qubits_negative", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "--qubits", "-3",
                                        "-o", "{tmp}/out"), "qubits"),
    cli("cli_compile_qubits_31", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "--qubits", "31",
                                  "-o", "{tmp}/out"), "qubits"),
    cli("cli_compile_qubits_word", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "--qubits", "many"),
        "expected a number of qubits"),
    cli("cli_compile_depth_zero", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "--depth", "0",
                                   "-o", "{tmp}/out"), "depth"),
    cli("cli_compile_depth_huge", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "--depth", "1000000000",
                                   "-o", "{tmp}/out"), "depth"),
    cli("cli_compile_output_is_file", ("compile", str(SPECS / "hadamard_ent_rot.qs"), "-o", "{tmp}/f"),
        "a file stands where a folder is needed", code=1, files={"f": "x"}),
    cli("cli_compile_task_qubits_too_few", ("compile", str(SPECS / "bessel.task"), "--qubits", "3",
                                            "-o", "{tmp}/out"), "qubits"),
    cli("cli_run_no_spec", ("run",), "needs a .task file"),
    cli("cli_run_missing_spec", ("run", "{tmp}/nope.task", "-o", "{tmp}/run"), "no such spec file"),
    cli("cli_run_qs_as_task", ("run", str(SPECS / "hadamard_ent_rot.qs"), "-o", "{tmp}/run"), ".task"),
    cli("cli_run_epochs_zero", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--epochs", "0"), "--epochs"),
    cli("cli_run_epochs_negative", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--epochs", "-2"),
        "--epochs"),
    cli("cli_run_limit_zero", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--limit", "0"), "--limit"),
    cli("cli_run_limit_negative", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--limit", "-1"),
        "--limit"),
    cli("cli_run_max_batches_zero", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--max-batches", "0"),
        "--max-batches"),
    cli("cli_run_max_batches_negative", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run",
                                         "--max-batches", "-4"), "--max-batches"),
    cli("cli_run_seed_negative", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--seed", "-1"), "--seed"),
    cli("cli_run_seed_2_32", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--seed", "4294967296"),
        "--seed"),
    cli("cli_run_workers_zero", ("run", str(SPECS / "minigrid_5x5.task"), "-o", "{tmp}/run", "--workers", "0"),
        "--workers"),
    cli("cli_run_episodes_zero", ("run", str(SPECS / "minigrid_5x5.task"), "-o", "{tmp}/run", "--episodes", "0"),
        "--episodes"),
    cli("cli_run_models_unknown", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--models", "quantum"),
        "unknown model"),
    cli("cli_run_models_empty", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--models", ","),
        "--models"),
    cli("cli_run_models_fixed_out_of_range", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run",
                                              "--models", "fixed:99"), "unknown model"),
    cli("cli_run_backend_unknown", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run", "--backend", "tpu"),
        "backend"),
    cli("cli_run_resume_missing", ("run", "--resume", "{tmp}/nope"), "no such folder"),
    cli("cli_run_resume_empty_folder", ("run", "--resume", "{tmp}"), "not a qtc run folder"),
    cli("cli_run_resume_bad_json", ("run", "--resume", "{tmp}/r"), "resolved.json",
        files={"r/resolved.json": "{not json", "r/spec.task": FORECAST}),
    cli("cli_run_output_is_file", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/f", "--epochs", "1",
                                   "--max-batches", "1", "--models", "classical", "--no-progress"),
        "a file stands where a folder is needed", code=1, files={"f": "x"}),
    cli("cli_run_data_root_missing", ("run", str(SPECS / "mnist_1v5.task"), "-o", "{tmp}/run", "--data-root",
                                      "{tmp}/nodata", "--models", "classical", "--epochs", "1",
                                      "--max-batches", "1", "--no-progress"), "data not found",
        env={"QTC_DATA": "", "XDG_CACHE_HOME": "/nonexistent-qtc-cache"}),
    cli("cli_run_cache_is_file", ("run", "{tmp}/spec.task", "-o", "{tmp}/run", "--models", "fixed:1",
                                  "--epochs", "1", "--max-batches", "1", "--backend", "cpu", "--no-progress"),
        "QTC_CACHE_DIR", files={"spec.task": FORECAST, "cache": "not a folder"},
        env={"QTC_CACHE_DIR": "{tmp}/cache"}),
    cli("cli_play_missing", ("play", "{tmp}/nope"), "not an A3C run folder"),
    cli("cli_play_episodes_zero", ("play", "{tmp}", "--episodes", "0"), "--episodes"),
    cli("cli_table2_jobs_zero", ("table2", "--jobs", "0", "-o", "{tmp}/t2"), "--jobs"),
    cli("cli_table2_epochs_zero", ("table2", "--epochs", "0", "-o", "{tmp}/t2"), "--epochs"),
    cli("cli_table2_seed_negative", ("table2", "--seeds", "-1", "-o", "{tmp}/t2"), "--seeds"),
    cli("cli_table2_unknown_dataset", ("table2", "--datasets", "bessl", "-o", "{tmp}/t2"), "bessl"),
    cli("cli_table2_spec_dir_missing", ("table2", "--spec-dir", "{tmp}/nope", "-o", "{tmp}/t2",
                                        "--datasets", "bessel"), "nope"),
    cli("cli_sweep_no_spec", ("sweep",), "required"),
    cli("cli_sweep_missing_spec", ("sweep", "{tmp}/nope.task", "--out", "{tmp}/sw"), "not found"),
    cli("cli_sweep_seeds_zero", ("sweep", str(SPECS / "bessel.task"), "--seeds", "0", "--out", "{tmp}/sw"),
        "--seeds"),
    cli("cli_sweep_bad_spec", ("sweep", "{tmp}/spec.task", "--out", "{tmp}/sw"), "finite",
        files={"spec.task": mutate(FORECAST, "lr 0.01", "lr nan")}),
    cli("cli_sweep_address_dead", ("sweep", str(SPECS / "bessel.task"), "--address", "127.0.0.1:9",
                                   "--out", "{tmp}/sw", "--epochs", "1"), "127.0.0.1:9",
        env={"QTC_RAY_TIMEOUT": "5"}),
    cli("cli_report_missing", ("report", "{tmp}/nope"), "nope"),
    cli("cli_report_empty_folder", ("report", "{tmp}"), "trials"),
]


# --- round 3 (issue 29): folders to attack, links, sizes, non-finite values, ignored options ---
TINY = """\
task tiny : forecast
data narma5 window 4 split 0.67
network {
  input [4, 1]
  lstm 1 -> 4
  linear 4 -> 1
}
train rmsprop lr 0.01 batch 10 epochs 1 seed 0
"""
A_RUN = (("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--max-batches", "2", "--backend", "reference",
          "--no-progress"),)
RESUME = ("run", "--resume", "{tmp}/run", "--epochs", "2", "--no-progress")
A_SWEEP = (("sweep", "{tmp}/tiny.task", "--models", "classical", "--executor", "serial", "--epochs", "1",
            "--out", "{tmp}/sw", "--no-report", "--max-batches", "2", "--backend", "reference",
            "--no-progress"),)
TRIAL = "sw/tiny/classical/seed0"
OUTSIDE = "elsewhere/secret.qs"


def resumed(name: str, fragment: str, edits=None, links=None, argv=RESUME, before=A_RUN,
            code: int = 2) -> Case:
    """A finished one-epoch run (or sweep), edited by hand or given links, then continued."""
    return Case(name, argv, code, fragment, {"tiny.task": TINY}, before=before,
                edits=dict(edits or {}), links=dict(links or {}))


def rejson(old: str, new: str) -> tuple[str, str]:
    return (old, new)


ROUND3: list[Case] = [
    # symbolic links that lead out of the folder they stand in
    Case("r3_link_generator_outside", ("compile", "{tmp}/specs/spec.task", "-o", "{tmp}/out"), 2,
         "symbolic link", {"specs/spec.task": mutate(FORECAST, "generator hadamard_ent_rot.qs",
                                                      "generator link.qs")},
         at="generator link.qs", links={"specs/link.qs": OUTSIDE}),
    resumed("r3_link_run_spec_task", "symbolic link", links={"run/spec.task": OUTSIDE}),
    resumed("r3_link_run_resolved", "symbolic link", links={"run/resolved.json": OUTSIDE}),
    resumed("r3_link_run_metrics", "symbolic link", links={"run/metrics.json": OUTSIDE}),
    resumed("r3_link_run_checkpoint", "symbolic link", links={"run/checkpoint.pt": OUTSIDE}),
    resumed("r3_link_run_plots", "symbolic link", links={"run/plots": "elsewhere"}),
    resumed("r3_link_run_models", "symbolic link", links={"run/models": "elsewhere"}),
    resumed("r3_link_run_tensorboard", "symbolic link", links={"run/tensorboard": "elsewhere"},
            argv=(*RESUME, "--tensorboard")),
    # (the sweep says why a trial failed in trial.json and on stdout: the verdict checks the target)
    resumed("r3_link_sweep_trial_log", "", before=A_SWEEP, code=1,
            edits={f"{TRIAL}/trial.json": None}, links={f"{TRIAL}/trial.log": OUTSIDE},
            argv=(*A_SWEEP[0][:7], "2", *A_SWEEP[0][8:])),
    # a run folder edited by hand, then resumed
    resumed("r3_resolved_empty_object", "resolved.json", {"run/resolved.json": "{}"}),
    resumed("r3_resolved_array", "resolved.json", {"run/resolved.json": "[]"}),
    resumed("r3_resolved_null", "resolved.json", {"run/resolved.json": "null"}),
    resumed("r3_resolved_no_options", "resolved.json", {"run/resolved.json": rejson('"options": {\n    "models"', '"opts": {\n    "models"')}),
    resumed("r3_resolved_threads_huge", "resolved.json",
            {"run/resolved.json": rejson('"threads": 1', '"threads": 100000')}),
    resumed("r3_resolved_models_string", "resolved.json",
            {"run/resolved.json": rejson('"models": [\n      "classical"\n    ]', '"models": "classical"')}),
    resumed("r3_fingerprint_empty_object", "fingerprint.json", {"run/fingerprint.json": "{}"}),
    resumed("r3_fingerprint_sha_edited", "fingerprint.json",
            {"run/fingerprint.json": rejson('"sha256": "', '"sha256": "0')}),
    resumed("r3_metrics_emptied", "metrics.json", {"run/metrics.json": "[]"}),
    resumed("r3_metrics_damaged", "metrics.json", {"run/metrics.json": '[{"model": "classical", "epo'}),
    resumed("r3_metrics_object", "metrics.json", {"run/metrics.json": "{}"}),
    resumed("r3_metrics_row_edited", "metrics.json", {"run/metrics.json": rejson('"epoch": 1', '"epoch": 7')}),
    resumed("r3_report_trial_json_list", "trial.json", {f"{TRIAL}/trial.json": "[1, 2]"}, before=A_SWEEP,
            argv=("report", "{tmp}/sw")),
    # counts with no bound, checked before any work or folder
    cli("r3_threads_huge", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--threads", "100000"), "--threads",
        files={"tiny.task": TINY}),
    cli("r3_threads_env_huge", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run"), "--threads",
        files={"tiny.task": TINY}, env={"QTC_THREADS": "100000"}),
    cli("r3_jobs_huge", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--jobs", "100000"), "--jobs",
        files={"tiny.task": TINY}),
    cli("r3_max_batches_huge", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--max-batches", "10000000000"),
        "--max-batches", files={"tiny.task": TINY}),
]

PER_POSITION = (SPECS / "hadamard_ent_rot_per_layer.qs").read_text()
ROUND3_MORE: list[Case] = [
    # sizes: a product bounded before it is enumerated, counts before folders
    space("r3_product_enumerated", "pattern cyc = cnot(q, (q + 1) % n) for q in 0 .. n - 1",
          "pattern cyc = h(0) for i in 0 .. 9999 for j in 0 .. 9999", "10,000",
          at="pattern cyc = h(0) for i"),
    task("r3_seeds_spec_huge", F, "seed 0", "seeds 100000000000", "seeds", at="seeds 100000000000"),
    cli("r3_seeds_cli_huge", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--seeds", "100000000000"),
        "--seeds", files={"tiny.task": TINY}),
    cli("r3_seeds_set_huge", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--set", "train.seeds=100000000000"),
        "seeds", files={"tiny.task": TINY}),
    cli("r3_seed_cli_2_32", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--seeds", "4294967296"),
        "--seeds", files={"tiny.task": TINY}),
    task("r3_name_300_chars", TINY, "task tiny", "task " + "n" * 300, "name", at="task nnn"),
    cli("r3_grid_million_points", ("sweep", "{tmp}/tiny.task", "--out", "{tmp}/sw", "--grid",
                                   "train.lr=" + ",".join(str(k / 1000 + 0.001) for k in range(1000)),
                                   "--grid", "train.batch=" + ",".join(str(k) for k in range(1, 1001))),
        "grid", files={"tiny.task": TINY}),
    task("r3_generator_qubits_30", F, "depth 2 mapping linear", "depth 2 qubits 30 mapping linear", "qubits",
         at="qubits 30"),
    # non-finite angles: every evaluated expression, not only literals
    space("r3_angle_overflow", "rx(q, theta[layer, q])", "rx(q, 1e300 * 1e300 * theta[layer, q])", "finite"),
    space("r3_angle_plus_inf", "rx(q, theta[layer, q])", "rx(q, theta[layer, q] + inf)", "unknown name 'inf'"),
    space("r3_angle_nan_times", "rx(q, theta[layer, q])", "rx(q, nan * theta[layer, q])", "unknown name 'nan'"),
    space("r3_angle_divide_subnormal", "rx(q, theta[layer, q])", "rx(q, theta[layer, q] / 1e-320)", "finite"),
    space("r3_angle_constant_nan", "rx(q, theta[layer, q])", "rx(q, nan)", "unknown name 'nan'"),
    space("r3_angle_constant_inf", "rx(q, theta[layer, q])", "rx(q, inf)", "unknown name 'inf'"),
    # per-position spaces
    Case("r3_per_position_no_choice", COMPILE_QS, 2, "position that chooses", {"space.qs": mutate(mutate(mutate(
        PER_POSITION, "init  = choose { H: h(q) for q in all | none: nothing }", "init = h(0)"),
        "layer = choose { ent | cyc } ;", "layer = ent ;"),
        "choose { rx(q, theta[layer, q]) for q in all\n               | ry(q, theta[layer, q]) for q in all\n"
        "               | rz(q, theta[layer, q]) for q in all }", "choose { A: rx(q, theta[layer, q]) for q in all }")},
        at="weights raw per position"),
    Case("r3_per_position_init_divide_zero", COMPILE_QS, 2, "zero",
         {"space.qs": mutate(PER_POSITION, "init 1 / C", "init 1 / 0")}, at="init 1 / 0"),
    # a spec that is not UTF-8: the file and the line:col of the first bad byte
    Case("r3_not_utf8", RUN, 2, "UTF-8", {"spec.task": FORECAST.replace("lr 0.01", "lr 0.01 # caf\xe9")
                                          .encode("latin-1")}, at="# caf"),
    # options that the task kind or the optimizer would ignore
    task("r3_ignored_alpha_with_adam", C, "betas [0.9, 0.999]", "betas [0.9, 0.999] alpha 0.9", "alpha",
         at="alpha 0.9"),
    task("r3_ignored_betas_with_rmsprop", F, "alpha 0.99", "alpha 0.99 betas [0.9, 0.99]", "betas",
         at="betas [0.9"),
    task("r3_ignored_limit_on_forecast", F, "split 0.67", "split 0.67 limit 50", "limit", at="limit 50"),
    task("r3_ignored_seed_with_seeds", F, "seed 0", "seed 7 seeds 2", "seed", at="seed 7 seeds 2"),
    cli("r3_ignored_workers_on_forecast", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--workers", "3",
                                           "--epochs", "1", "--max-batches", "1", "--no-progress"),
        "--workers", files={"tiny.task": TINY}),
    cli("r3_ignored_episodes_on_forecast", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--episodes", "3",
                                            "--epochs", "1", "--max-batches", "1", "--no-progress"),
        "--episodes", files={"tiny.task": TINY}),
    # the rest of the class (dsl.applies: one table of kind x optimizer x command)
    task("r3_ignored_eps_with_sgd", F, "train rmsprop lr 0.01 alpha 0.99 eps 1e-8", "train sgd lr 0.01 eps 1e-8",
         "optimizer adam or rmsprop", at="eps 1e-8"),
    task("r3_ignored_momentum_with_adam", C, "betas [0.9, 0.999]", "betas [0.9, 0.999] momentum 0.9",
         "momentum", at="momentum 0.9"),
    task("r3_ignored_points_on_images", C, "normalize [0.5, 0.5]", "normalize [0.5, 0.5] points 500",
         "series' own options", at="points 500"),
    task("r3_ignored_window_on_images", C, "normalize [0.5, 0.5]", "normalize [0.5, 0.5] window 8",
         "'window'", at="window 8"),
    task("r3_ignored_classes_on_series", F, "split 0.67", "split 0.67 classes [1, 5]", "'classes'",
         at="classes [1, 5]"),
    task("r3_ignored_normalize_on_series", F, "split 0.67", "split 0.67 normalize [0, 1]", "'normalize'",
         at="normalize [0, 1]"),
    task("r3_ignored_download_on_series", F, "split 0.67", "split 0.67 download true", "'download'",
         at="download true"),
    task("r3_ignored_env_in_forecast", F, "compare fixed classical", "compare fixed classical\nenv MiniGrid-Empty-5x5-v0",
         "'env' statement", at="env MiniGrid"),
    task("r3_ignored_a3c_in_forecast", F, "compare fixed classical", "compare fixed classical\na3c gamma 0.5",
         "'a3c' statement", at="a3c gamma 0.5"),
    task("r3_ignored_second_network", F, "generator hadamard", "network extra {\n  input [4]\n  linear 4 -> 1\n}\n"
         "generator hadamard", "network 'extra'", at="network extra {"),
    task("r3_ignored_epochs_in_a3c", A, "episodes 2", "episodes 2 epochs 5", "'epochs'", at="epochs 5"),
    task("r3_ignored_batch_in_a3c", A, "episodes 2", "episodes 2 batch 32", "'batch'", at="batch 32"),
    task("r3_ignored_report_in_classify", C, "train adam", "report epochs [1]\ntrain adam", "'report' statement",
         at="report epochs [1]"),
    task("r3_ignored_hidden_with_linear", F, "mapping linear", "mapping linear hidden 32", "mapping mlp",
         at="hidden 32"),
    task("r3_ignored_gamma_with_rescale_none", F, "mapping linear", "mapping linear rescale none gamma 0.2",
         "rescale qt", at="gamma 0.2"),
    cli("r3_ignored_limit_flag_on_forecast", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--limit", "20"),
        "--limit", files={"tiny.task": TINY}),
    cli("r3_ignored_download_on_forecast", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--download"),
        "--download", files={"tiny.task": TINY}),
    cli("r3_ignored_data_root_on_forecast", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--data-root", "{tmp}"),
        "--data-root", files={"tiny.task": TINY}),
    cli("r3_ignored_max_batches_on_a3c", ("run", str(SPECS / "minigrid_5x5.task"), "-o", "{tmp}/run",
                                          "--max-batches", "1"), "--max-batches"),
    cli("r3_ignored_epochs_on_a3c", ("run", str(SPECS / "minigrid_5x5.task"), "-o", "{tmp}/run", "--epochs", "1"),
        "--epochs"),
    cli("r3_ignored_limit_in_sweep", ("sweep", "{tmp}/tiny.task", "--out", "{tmp}/sw", "--limit", "20"),
        "--limit", files={"tiny.task": TINY}),
    cli("r3_ignored_seed_with_spec_seeds", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--seed", "3"),
        "--seed", files={"tiny.task": TINY.replace("seed 0", "seeds 2")}),
    cli("r3_set_report_beyond_epochs", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run",
                                        "--set", "report.epochs=[500]"), "beyond"),
    cli("r3_set_epochs_below_report", ("run", str(SPECS / "bessel.task"), "-o", "{tmp}/run",
                                       "--set", "train.epochs=1"), "beyond"),
    cli("r3_set_a3c_on_forecast", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--set", "a3c.workers=2"),
        "'a3c' statement", files={"tiny.task": TINY}),
    cli("r3_set_betas_with_rmsprop", ("run", "{tmp}/tiny.task", "-o", "{tmp}/run", "--set", "train.betas=[0.9,0.99]"),
        "betas", files={"tiny.task": TINY}),
    cli("r3_table2_datasets_empty", ("table2", "--datasets", "", "-o", "{tmp}/t2"), "''"),
    cli("r3_table2_classify_spec", ("table2", "--datasets", "narma5", "--spec-dir", "{tmp}", "-o", "{tmp}/t2"),
        "forecast", files={"narma5.task": CLASSIFY.replace("hadamard_ent_rot.qs", "space.qs"),
                           "space.qs": SPACE}),
]

# Cases still open (not clean yet: see docs/results/hostile.md); measure.py runs them with the
# rest, the test does not. None now: the last eleven of round 3 were closed by dsl.applies, the
# finiteness of every computed value, the per-position check, bounded loop products and the
# generator's state-memory bound.
OPEN_NAMES: set[str] = set()
OPEN = [c for c in ROUND3_MORE if c.name in OPEN_NAMES]
CASES += ROUND3 + [c for c in ROUND3_MORE if c.name not in OPEN_NAMES]
