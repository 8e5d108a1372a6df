"""Each exported model's README (issue 13) states the preprocessing it expects, taken from the run
-- image normalisation and label mapping, the forecast window and the series scaling with its
constants, the A3C observation encoding -- and a loading snippet that runs as printed, in the
model's folder, with its real file names."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from qtc.cli import main
from qtc.tasks.data import series as S

MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist-10k"
SMOKE = ["--models", "classical", "--no-progress"]
CLASSIFY = """task digits : classify
data mnist classes [3, 7] normalize [0.1307, 0.3081]
network {
  input [1, 28, 28]
  flatten
  linear 784 -> 2
}
train adam lr 1e-3 batch 16 epochs 1 seed 0
"""
FORECAST = """task wave : forecast
data {dataset} window 3 split 0.67 points 40
network {{
  input [3, 1]
  lstm 1 -> 4
  linear 4 -> 1
}}
train adam lr 1e-2 batch 8 epochs 1 seed 0
"""
A3C = """task walk : a3c
env MiniGrid-Empty-5x5-v0
network actor {
  input [147]
  linear 147 -> 8 ; tanh
  linear 8 -> 7
}
network critic {
  input [147]
  linear 147 -> 8 ; tanh
  linear 8 -> 1
}
train adam lr 1e-3 episodes 2 seed 3
a3c gamma 0.9 n_steps 5 window 2
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _readme(tmp_path: Path, text: str, *extra: str) -> tuple[Path, str]:
    spec = tmp_path / "x.task"
    spec.write_text(text)
    out = tmp_path / "run"
    assert main(["run", str(spec), *SMOKE, *extra, "-o", str(out)]) == 0
    folder = out / "models" / "classical"
    return folder, (folder / "README.md").read_text()


def _snippet_loads(folder: Path, readme: str, monkeypatch) -> dict:
    """Run the README's python block in the model's folder, as a user would."""
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "NAME" not in code
    monkeypatch.chdir(folder)
    scope: dict = {}
    exec(compile(code, str(folder / "README.md"), "exec"), scope)
    return scope


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"no MNIST sample at {MNIST}")
def test_a_classifier_readme_states_the_normalisation_and_which_class_is_0_and_1(tmp_path, monkeypatch):
    folder, readme = _readme(tmp_path, CLASSIFY, "--data-root", str(MNIST), "--limit", "64",
                             "--max-batches", "2")
    assert "(x / 255 - 0.1307) / 0.3081" in readme and "(N, 1, 28, 28)" in readme
    assert "index 0 is MNIST label 3, index 1 is label 7" in readme
    net = _snippet_loads(folder, readme, monkeypatch)["net"]
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 2)


def test_a_forecaster_readme_states_the_window_and_the_scaling_constants(tmp_path, monkeypatch):
    folder, readme = _readme(tmp_path, FORECAST.format(dataset="bessel"))
    raw = np.asarray(S.generate("bessel", points=40, scale=False))
    lo, hi = float(raw.min()), float(raw.max())
    assert "(N, 3, 1)" in readme and "the 3 values before" in readme
    assert f"lo = {lo!r}, hi = {hi!r}" in readme
    assert "scaled = -1 + 2 * (x - lo) / (hi - lo)" in readme and "x = lo + (y + 1) * (hi - lo) / 2" in readme
    net = _snippet_loads(folder, readme, monkeypatch)["net"]
    assert net(torch.zeros(5, 3, 1)).shape == (5, 1)


def test_an_unscaled_series_readme_says_the_values_are_raw(tmp_path):
    _, readme = _readme(tmp_path, FORECAST.format(dataset="narma5").replace(" points 40", " length 40"))
    assert "unscaled" in readme and "input u" in readme and "lo = " not in readme


def test_an_a3c_readme_states_the_observation_encoding_and_names_its_files(tmp_path, monkeypatch):
    folder, readme = _readme(tmp_path, A3C, "--workers", "1")
    assert "MiniGrid-Empty-5x5-v0" in readme and "obs['image']" in readme
    assert "147 float32" in readme and "no scaling" in readme
    assert "0 left, 1 right, 2 forward, 3 pickup, 4 drop, 5 toggle, 6 done" in readme
    scope = _snippet_loads(folder, readme, monkeypatch)
    assert scope["actor"](torch.zeros(1, 147)).shape == (1, 7)
    assert scope["critic"](torch.zeros(1, 147)).shape == (1, 1)
