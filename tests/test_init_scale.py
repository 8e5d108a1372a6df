"""The generator's default initial scale (issue 13): the target network starts at torch's scale.

- TargetNet.init_scale_for: the generated network's input-dependent output spread equals that of
  torch's default init, and it leaves the global RNG where it was;
- QTGenerator(calibrate=...): the scale lands in the mapping's output layer, init_scale multiplies it,
  and the trainable counts are the paper's;
- an absurd start (init_scale 1e4) is flagged at the first step;
- scale_at "output": the same start, Adam's steps relative to the generated weights;
- slow: the README tour's task, without init_scale, learns on MNIST-10k within 51 batches.
"""
import json
import re
from pathlib import Path

import pytest
import torch

from qtc import specs
from qtc.cli import main
from qtc.compiler.pipeline import compile_space
from qtc.dsl.space import parse_space
from qtc.runtime.generator import PROBE_BATCH, GeneratorOptions, QTGenerator, _input_spread
from qtc.tasks.build import load_task
from qtc.tasks.engines.supervised import first_step_warnings

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared/data/mnist-10k"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _built(task: str):
    return load_task(REPO / "specs" / f"{task}.task")


def _spread_on_probe(net, flat) -> tuple[float, float]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = torch.randn(PROBE_BATCH, *net.input_shape)
        reference = net.flatten_module(net.module())   # drawn as init_scale_for draws it
        return _input_spread(net.forward(flat, probe)), _input_spread(net.forward(reference, probe))


@pytest.mark.parametrize("task, name", [("bessel", "net"), ("minigrid_5x5", "actor"), ("minigrid_5x5", "critic")])
def test_calibrated_generator_starts_at_torchs_output_spread(task, name):
    b = _built(task)
    net = b.nets[name]
    torch.manual_seed(0)
    gen = QTGenerator(b.program, net.num_params, GeneratorOptions.given(backend="reference"), calibrate=net.init_scale_for)
    with torch.no_grad():
        got, want = _spread_on_probe(net, gen())
    assert got == pytest.approx(want, rel=1e-4)
    assert sum(p.numel() for p in gen.parameters()) == (110 + 12 + 13 if task == "bessel" else 130 + 12 + 15)


def test_calibration_leaves_the_global_rng_alone_and_init_scale_multiplies_it():
    b = _built("bessel")
    net = b.nets["net"]
    torch.manual_seed(3)
    plain = QTGenerator(b.program, net.num_params, GeneratorOptions.given(backend="reference"))
    after_plain = torch.rand(3)
    made = {}
    for scale in (1.0, 0.25):
        torch.manual_seed(3)
        made[scale] = QTGenerator(b.program, net.num_params, GeneratorOptions.given(init_scale=scale, backend="reference"),
                                  calibrate=net.init_scale_for)
        assert torch.equal(torch.rand(3), after_plain)       # same stream as without calibration
    with torch.no_grad():
        factor = made[1.0].mapping.weight / plain.mapping.weight
        assert torch.allclose(factor, factor[0, 0]) and 0 < float(factor[0, 0]) < 1
        assert torch.allclose(made[0.25](), 0.25 * made[1.0](), atol=1e-7)
        assert torch.equal(made[1.0].theta, plain.theta)


def test_an_absurd_start_is_flagged_and_a_sensible_one_is_not():
    b = _built("bessel")
    net = b.nets["net"]
    torch.manual_seed(0)
    gen = QTGenerator(b.program, net.num_params, GeneratorOptions.given(backend="reference"), calibrate=net.init_scale_for)
    with torch.no_grad():
        flat = gen()
    assert first_step_warnings(net, flat, 0.3) == []
    lines = first_step_warnings(net, flat * 1e4, 2e5)
    assert any("0.weight" in line for line in lines) and any("first loss 2e+05" in line for line in lines)
    assert "init_scale" in lines[-1]


def _readme_tour_block() -> str:
    readme = (REPO / "README.md").read_text()
    return re.search(r"A task \(`specs/mnist_1v5.task`\)[^`]*```\n(.*?)```", readme, re.S).group(1)


def _readme_tour_task() -> str:
    """The task of the README's tour, as printed there, without any init_scale option."""
    return re.sub(r" init_scale \S+", "", _readme_tour_block())


def test_the_readme_tour_shows_the_shipped_spec_verbatim():
    assert _readme_tour_block() == (REPO / "specs/mnist_1v5.task").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.is_dir(), reason=f"no MNIST sample at {MNIST}")
def test_the_readme_tour_task_without_init_scale_learns_in_three_short_epochs(tmp_path, monkeypatch):
    spec = tmp_path / "mnist_1v5.task"
    spec.write_text(_readme_tour_task())
    assert "init_scale" not in spec.read_text() and "generator hadamard_ent_rot.qs" in spec.read_text()
    out = tmp_path / "run"
    # 3 epochs of the 1,601 training images = 51 Adam steps; the test set is 58% ones.
    assert main(["run", str(spec), "--models", "diffqas", "--epochs", "3", "--data-root", str(MNIST),
                 "-o", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert rows[-1]["test_accuracy"] > 0.75 and rows[-1]["train_loss"] < 0.6


def _stepped(scale_at: str):
    """A small generator calibrated to a factor of 0.01, its weights before and after one Adam
    step at lr 1e-2 on a fixed linear loss."""
    torch.manual_seed(0)
    prog = compile_space(parse_space(specs.path("hadamard_ent_rot.qs")), qubits=5, depth=2)
    gen = QTGenerator(prog, 20, GeneratorOptions.given(backend="reference", scale_at=scale_at),
                      dtype=torch.float64, calibrate=lambda flat: 0.01)
    before = gen().detach()
    optim = torch.optim.Adam(gen.parameters(), lr=1e-2)
    (gen() * torch.linspace(-1, 1, 20, dtype=torch.float64)).sum().backward()
    optim.step()
    return gen, before, gen().detach()


def test_scale_at_output_starts_alike_and_steps_relative_to_the_weights():
    """scale_at "mapping" (the default) puts the factor in the mapping's parameters, so one Adam
    step (about lr each) changes the generated weights by ~6x themselves; "output" keeps the
    factor outside the mapping: the same start, a step of ~lr of the weights
    (docs/results/ten_class_notes.md)."""
    inside, start_inside, after_inside = _stepped("mapping")
    outside, start_outside, after_outside = _stepped("output")
    torch.testing.assert_close(start_outside, start_inside, rtol=1e-12, atol=0)
    change = lambda before, after: float((after - before).norm() / before.norm())
    assert change(start_inside, after_inside) > 1.0
    assert change(start_outside, after_outside) < 0.1
    assert "output_factor" in outside.state_dict() and "output_factor" not in inside.state_dict()
    assert sum(p.numel() for p in outside.parameters()) == sum(p.numel() for p in inside.parameters())
