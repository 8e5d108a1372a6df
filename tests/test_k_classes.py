"""K-class classification (issue 26): `classes [c1, ..., cK]` or `classes all`, the output width
checked at load, cross-entropy, accuracy per class in the summary, the majority-class baseline,
and the export README naming the label of each output."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from qtc.cli import main
from qtc.errors import SpecError
from qtc.runtime.cache import cache_dir as kernel_cache_dir
from qtc.tasks.build import load_task
from qtc.tasks.kinds import classify
from test_images import write_idx

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared/data/mnist-10k"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason=f"no MNIST sample at {MNIST}")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spec(classes: str, outputs: int) -> str:
    return f"""task digits : classify
data mnist classes {classes} normalize [0.5, 0.5]
network {{
  input [1, 28, 28]
  conv2d 1 -> 2 kernel 5 ; relu ; maxpool 2
  flatten
  linear 288 -> {outputs}
}}
generator hadamard_ent_rot.qs depth 2 backend reference
train adam lr 1e-2 batch 50 epochs 1 seed 0
"""


@pytest.mark.parametrize("classes, outputs", [("[3, 1, 7]", 3), ("all", 10), ("[0, 1]", 2)])
def test_the_output_width_is_the_number_of_classes(tmp_path, classes, outputs):
    path = tmp_path / "digits.task"
    path.write_text(_spec(classes, outputs))
    built = load_task(path)
    assert built.many_classes() == (outputs > 2)       # binary keeps its calibration
    path.write_text(_spec(classes, outputs + 1))
    with pytest.raises(SpecError) as err:
        load_task(path)
    assert f"digits.task:7:3: error: network 'net' gives output [{outputs + 1}] but mnist with " \
           f"{outputs} classes (one output each) needs [{outputs}]" in str(err.value)


def test_classes_all_loads_every_label_as_itself(tmp_path):
    labels = {"train": [7, 0, 9, 3, 1, 2, 4, 5, 6, 8, 3], "t10k": [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]}
    write_idx(tmp_path / "src", labels)
    path = tmp_path / "digits.task"
    path.write_text(_spec("all", 10))
    opts = SimpleNamespace(data_root=tmp_path / "src", download=False, limit=None)
    train, test = classify._load(load_task(path), opts)
    assert train.tensors[1].tolist() == labels["train"] and test.tensors[1].tolist() == labels["t10k"]


@needs_mnist
@pytest.mark.slow
def test_three_classes_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("QTC_DATA", str(MNIST))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("QTC_CACHE_DIR", str(kernel_cache_dir()))
    spec, out = tmp_path / "digits.task", tmp_path / "run"
    spec.write_text(_spec("[3, 1, 7]", 3))
    assert main(["run", str(spec), "-o", str(out), "--limit", "300", "--max-batches", "3",
                 "--models", "diffqas,classical", "--no-progress"]) == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["model"] for r in rows] == ["diffqas", "classical"]
    for r in rows:
        assert len(r["test_class_accuracy"]) == 3 and 0 <= r["test_accuracy"] <= 1
    summary = (out / "summary.md").read_text()
    assert "# digits: MNIST, 3 classes" in summary and "| 2: 7 |" in summary
    assert "*baseline:* majority class" in summary
    readme = (out / "models" / "classical" / "README.md").read_text()
    assert "output: 3 logits; index 0 is MNIST label 3, index 1 is label 1, " \
           "index 2 is label 7 (the spec's `classes [3, 1, 7]`)" in readme
