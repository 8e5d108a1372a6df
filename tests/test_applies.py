"""The one table of which option applies where (qtc.dsl.applies): every option of every task
statement and every run flag has a row, the reference in docs/spec-language.md is the table's
own rendering, every bundled spec passes it, and an option given where its row says it does
not apply is refused (located in a spec, naming the setting for --set, naming the flag)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from qtc.dsl import applies
from qtc.dsl.settings import with_settings
from qtc.dsl.task import STATEMENTS, parse_task
from qtc.errors import QtcError, SpecError
from qtc.tasks.runs.runner import RunOptions

ROOT = Path(__file__).resolve().parents[1]
NOT_OPTIONS = ("line", "column", "positional")
BASES = {   # one small valid spec of each kind (statements with every option at its default)
    "forecast": "task f : forecast\ndata bessel\nnetwork {\n  input [4, 1]\n  lstm 1 -> 4\n  linear 4 -> 1\n}\n"
                "train rmsprop\n",
    "classify": "task c : classify\ndata mnist classes [1, 5]\nnetwork {\n  input [1, 28, 28]\n  flatten\n"
                "  linear 784 -> 2\n}\ntrain adam\n",
    "a3c": "task a : a3c\nenv MiniGrid-Empty-5x5-v0\nnetwork actor {\n  input [147]\n  linear 147 -> 7\n}\n"
           "network critic {\n  input [147]\n  linear 147 -> 1\n}\ntrain adam\n",
}
# a valid value of each option the test gives where it does not apply
VALUES = {"classes": "[1, 5]", "normalize": "[0.5, 0.5]", "limit": "10", "download": "true", "window": "4",
          "split": "0.5", "drop_last": "true", "hidden": "8", "gamma": "0.5", "beta": "0.5", "alpha": "0.5",
          "batch": "10", "epochs": "3", "episodes": "3", "eps": "1e-8", "betas": "[0.9, 0.99]",
          "momentum": "0.5", "order": "sequential", "id": "MiniGrid-Empty-5x5-v0", "max_steps": "10",
          "workers": "1", "n_steps": "3", "entropy": "0.1", "eval_every": "10", "eval_episodes": "2",
          "schedule": "cosine", "every": "2", "warmup": "1"}


@pytest.mark.parametrize("keyword", list(STATEMENTS))
def test_every_statement_and_option_has_a_row(keyword):
    assert keyword in applies.STATEMENTS
    fields = [f for f in STATEMENTS[keyword].model_fields if f not in NOT_OPTIONS]
    assert [f for f in fields if (keyword, f) not in applies.OPTIONS] == []
    for (key, _), row in applies.OPTIONS.items():
        assert set(row.kinds) <= set(applies.ALL)
        # the option a row depends on is one of its own statement's
        assert key != keyword or row.when is None or row.when[0] in STATEMENTS[keyword].model_fields


def test_every_run_flag_has_a_row():
    flags = {f.name for f in dataclasses.fields(RunOptions)} - {"progress", "validation"}
    assert flags == set(applies.FLAGS)


def test_the_reference_in_the_docs_is_the_table():
    text = (ROOT / "docs" / "spec-language.md").read_text()
    shown = re.search(r"<!-- applies: [^\n]*-->\n(.*?)<!-- /applies -->", text, re.S)
    assert shown, "docs/spec-language.md has no generated applies section"
    assert shown.group(1) == applies.markdown(), "regenerate it from qtc.dsl.applies.markdown()"


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.task")), ids=lambda p: p.name)
def test_every_bundled_spec_uses_only_what_applies(spec):
    assert applies.spec_problems(parse_task(spec)) == []


def _cases():
    """(kind, statement, option) for every row and every kind where it does not apply, and
    (kind, statement, option, when-value) where only the other option's value is wrong."""
    out = []
    for (key, name), row in applies.OPTIONS.items():
        if name not in VALUES or not applies.STATEMENTS[key].kinds:
            continue
        for kind in applies.ALL:
            if kind not in row.kinds and kind in applies.STATEMENTS[key].kinds:
                out.append((kind, key, name))
            elif kind in row.kinds and row.when:
                out.append((kind, key, name))
    return out


def _spec_with(kind: str, key: str, option: str) -> str:
    base, line = BASES[kind], f"{key} {VALUES[option]}"
    when = applies.OPTIONS[key, option].when
    other = {"optimizer": "adam", "mapping": "linear", "rescale": "none"}
    if key == "train":
        opt = "rmsprop" if option in ("betas",) else "sgd" if option in ("alpha", "eps") else "adam"
        return base.replace("train " + ("rmsprop" if kind == "forecast" else "adam"),
                            f"train {opt} {option} {VALUES[option]}")
    if key == "generator":
        return base + f"generator hadamard_ent_rot.qs {when[0]} {other[when[0]]} {option} {VALUES[option]}\n"
    if key == "data":
        first = base.splitlines()[1]
        return base.replace(first, f"{first} {option} {VALUES[option]}")
    return base + line.replace(key, f"{key} {option}", 1) + "\n" if key != "env" else base


@pytest.mark.parametrize("kind,key,option", _cases(), ids=lambda x: str(x))
def test_an_option_where_it_does_not_apply_is_a_located_error(kind, key, option, tmp_path):
    text = _spec_with(kind, key, option)
    (tmp_path / "hadamard_ent_rot.qs").write_text((ROOT / "specs" / "hadamard_ent_rot.qs").read_text())
    spec = tmp_path / "s.task"
    spec.write_text(text)
    with pytest.raises(SpecError) as err:
        parse_task(spec)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if re.search(rf"\b{option}\b", t))
    assert err.value.line == line and "would be ignored" in err.value.message, (text, err.value)
    assert err.value.file == str(spec) and err.value.hint


def test_a_setting_obeys_the_same_table_and_names_itself():
    spec = parse_task(BASES["forecast"])
    with pytest.raises(SpecError, match=r"--set train.betas=\[0.9, 0.9\]: 'betas' applies only with optimizer adam"):
        with_settings(spec, {"train.betas": "[0.9, 0.9]"})
    with pytest.raises(SpecError, match=r"--set a3c.workers=2: a forecast task takes no 'a3c' statement"):
        with_settings(spec, {"a3c.workers": "2"})
    # the same option is fine once the optimizer it belongs to is set too, and defaults stay defaults
    assert with_settings(spec, {"train.optimizer": "adam", "train.betas": "[0.9, 0.9]"}).train.betas == (0.9, 0.9)
    assert applies.given_options(with_settings(spec, {"train.lr": "0.1"}).train) == ["optimizer", "lr"]


def test_report_epochs_beyond_the_training_are_refused_after_a_setting_too():
    spec = parse_task(BASES["forecast"].replace("train rmsprop", "train rmsprop epochs 3")
                      + "report epochs [1, 3]\n")
    with pytest.raises(SpecError, match=r"--set train.epochs=1: 'report' epoch 3 is beyond"):
        with_settings(spec, {"train.epochs": "1"})


@pytest.mark.parametrize("flag", list(applies.FLAGS))
def test_a_flag_is_refused_for_every_kind_its_row_leaves_out(flag):
    row = applies.FLAGS[flag]
    for kind in applies.ALL:
        if kind in row.kinds:
            applies.refuse_flags(kind, [flag])
        else:
            with pytest.raises(QtcError, match=rf"--{flag.replace('_', '-')} does not apply to {kind}"):
                applies.refuse_flags(kind, [flag], "t")


def test_seed_and_seeds_together_and_a_second_network_are_refused():
    with pytest.raises(SpecError, match="'seeds' and 'seed' together"):
        parse_task(BASES["forecast"].replace("train rmsprop", "train rmsprop seed 7 seeds 2"))
    text = BASES["classify"].replace("train adam", "network other {\n  input [3]\n  linear 3 -> 1\n}\ntrain adam")
    with pytest.raises(SpecError, match="a classify task trains 1 network: network 'other' would be ignored") as err:
        parse_task(text)
    assert err.value.line == 8
