"""Sampled architecture search (`search sampled K`, issue 31): the kernel that takes the
architectures as a table of choices, the estimators, the draws.

- The sampled form's kernel (compiler/csrc/sampled.c) equals the reference statevector (gate by
  gate, autograd) in values and angle gradients for random choice tables, on cpu and cuda (cuda
  skips without CuPy and a GPU), and the channel form under the same one-hot weights.
- The estimator: over many draws its mean loss and mean gradients (angles, mapping, logits)
  equal the exact expected loss over architectures and its gradient, enumerated, within 5
  standard errors; weighting every architecture by its probability instead of drawing gives the
  exact gradient to 1e-10. The exact objective here is the *expected loss*, not the loss of the
  mixture P = sum_c w_c p_c (the channel form's), and the test says they differ.
- The draws are seeded and saved with the module: the same seed draws the same architectures,
  and a run resumed from its checkpoint ends with the metrics of a straight run.
"""
import itertools
import json
import math
import sys

import pytest
import torch

from qtc.cli import main
from qtc.compiler.factorised import lower_factorised
from qtc.dsl.space import parse_space
from qtc.errors import QtcError
from qtc.runtime import cuda
from qtc.runtime import weights as structural
from qtc.runtime.backends import probabilities
from qtc.runtime.generator import GeneratorOptions, QTGenerator
from qtc.runtime.reference import candidate_probabilities
from qtc.runtime.sampling import surrogate

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from test_channel import ROOT, SMALL  # noqa: E402 - the per-position spaces the channel form is tested on

BACKENDS = ["reference", "cpu",
            pytest.param("cuda", marks=pytest.mark.skipif(not cuda.available(), reason="no CuPy / GPU"))]
SOFTMAX = "weights softmax per position"


def _sampled(text):
    space = parse_space(text)
    return lower_factorised(space, space.qubits, space.depth, form="sampled")


def _picks(prog, K, g):
    sizes = torch.tensor([len(p.alts) for p in prog.weights.positions])
    return (torch.rand(K, len(sizes), generator=g) * sizes).long()


# --- the kernel with a table of choices ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_choices_kernel_equals_the_reference_statevector(name, backend):
    prog = _sampled(SMALL[name])
    assert prog.form == "sampled" and [n.kind for n in prog.nodes] == ["sampled"]
    g = torch.Generator().manual_seed(7)
    for K in (1, 6):
        theta = (torch.randn(prog.angle_shape, generator=g, dtype=torch.float64) * 2).requires_grad_()
        W = structural.one_hots(prog, _picks(prog, K, g), torch.float64)
        cot = torch.randn(K, 2 ** prog.qubits, generator=g, dtype=torch.float64)
        out = {}
        for b in ("reference", backend):
            P = probabilities(prog, theta, W, backend=b)
            out[b] = (P, *torch.autograd.grad((P * cot).sum(), theta))
        assert out[backend][0].shape == (K, 2 ** prog.qubits)
        for got, want in zip(out[backend], out["reference"]):
            assert torch.allclose(got, want, atol=1e-10, rtol=0)
        assert torch.allclose(out["reference"][0].sum(1), torch.ones(K, dtype=torch.float64))
    # one matrix (no K axis) gives one distribution: the channel form's under the same one-hot
    channel = lower_factorised(parse_space(SMALL[name]), prog.qubits, prog.depth, form="channel")
    one = W[-1]
    assert torch.allclose(probabilities(prog, theta.detach(), one, backend=backend),
                          probabilities(channel, theta.detach(), one, backend="cpu"), atol=1e-12)


def test_a_sampled_program_refuses_weights_that_are_not_one_hot():
    prog = _sampled(SMALL["untied_two_layer"])
    theta = torch.zeros(prog.angle_shape, dtype=torch.float64)
    for backend in ("reference", "cpu"):
        with pytest.raises(QtcError, match="one-hot"):
            probabilities(prog, theta, structural.initial(prog, torch.float64), backend=backend)


def test_a_sampled_program_is_one_build_for_every_architecture():
    """The C source has no program in it: the kernels are built once and the tables are data."""
    from qtc.compiler.csrc import source
    from qtc.compiler.report import program_outputs
    prog = _sampled(SMALL["paper_untied"])
    out = program_outputs(prog)
    assert out["kernels.cu"] == source("sampled.c") and out["program.ir"].startswith("sampled hadamard_ent_rot_per_layer")
    assert "not the loss of the mixture" in out["report.txt"]


# --- the estimator ---------------------------------------------------------------------------
def _generator(samples, seed=0, text=None):
    text = text or SMALL["untied_two_layer"].replace("weights raw per position init 1 / C", SOFTMAX)
    prog = _sampled(text)
    torch.manual_seed(3)
    gen = QTGenerator(prog, 4, GeneratorOptions.given(backend="cpu", search="sampled", samples=samples),
                      dtype=torch.float64, seed=seed)
    with torch.no_grad():                     # logits away from uniform: the score term matters
        gen.weights.copy_(torch.randn(gen.weights.shape, generator=torch.Generator().manual_seed(5)))
        gen.theta.mul_(0).add_(torch.randn(gen.theta.shape, generator=torch.Generator().manual_seed(6)))
    return gen


TARGET = torch.tensor([0.3, -0.2, 0.5, -0.1], dtype=torch.float64)


def _loss(flat):
    return ((flat - TARGET) ** 2).sum()


def _params(gen):
    return [gen.theta, gen.weights, *gen.mapping.parameters()]


def _exact(gen):
    """J = sum_c pi(c) L(weights of c) over every enumerated candidate, and its gradient
    (reference simulation of the enumeration form's unoptimised circuits)."""
    space = gen.program.space
    enum = lower_factorised(space, gen.program.qubits, gen.program.depth, form="enumeration")
    pi = structural.per_candidate(enum, gen.structural_weights())
    p = candidate_probabilities(enum, gen.theta)
    J = sum(w * _loss(gen._generated(gen._rescaled(pc))) for w, pc in zip(pi, p))
    return J, torch.autograd.grad(J, _params(gen))


def test_every_architecture_weighted_by_its_probability_gives_the_exact_gradient():
    gen = _generator(samples=1)
    J, want = _exact(gen)
    sizes = [len(p.alts) for p in gen.program.weights.positions]
    picks = torch.tensor(list(itertools.product(*map(range, sizes))))
    probs = gen.structural_weights()
    log_pi = gen.sampling.log_pi(probs, picks)
    losses, _ = gen.losses(picks, _loss)
    value = surrogate(losses, log_pi, log_pi.detach().exp(), 0.0)
    got = torch.autograd.grad(value, _params(gen))
    assert float(value.detach()) == pytest.approx(float(J.detach()), abs=1e-12)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)
    # the objective is not the loss of the mixture: the channel form's value differs here
    mixture = probabilities(lower_factorised(gen.program.space, gen.program.qubits, gen.program.depth,
                                             form="channel"), gen.theta, probs)
    assert abs(float(_loss(gen._generated(gen._rescaled(mixture)))) - float(J)) > 1e-3


def test_the_sampled_estimator_is_unbiased_within_five_standard_errors():
    gen = _generator(samples=2)
    J, want = _exact(gen)
    draws, values, grads = 400, [], []
    for _ in range(draws):
        loss, _ = gen.objective(_loss)
        values.append(float(loss))
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, _params(gen))]))
    G = torch.stack(grads)
    exact = torch.cat([w.reshape(-1) for w in want])
    mean, se = G.mean(0), G.std(0) / math.sqrt(draws)
    assert (mean - exact).abs().le(5 * se + 1e-9).all(), (mean - exact) / (se + 1e-12)
    v = torch.tensor(values, dtype=torch.float64)
    assert abs(float(v.mean()) - float(J)) <= 5 * float(v.std()) / math.sqrt(draws)
    # the logits' gradient is not zero: the score-function term is really tested
    logits = slice(gen.theta.numel(), gen.theta.numel() + gen.weights.numel())
    assert exact[logits].abs().max() > 10 * se[logits].max()


def test_the_same_seed_draws_the_same_architectures_and_the_state_resumes_the_stream():
    a, b, c = _generator(4, seed=11), _generator(4, seed=11), _generator(4, seed=12)
    probs = a.structural_weights()
    first = [a.sampling.draw(probs) for _ in range(3)]
    assert all(torch.equal(x, b.sampling.draw(probs)) for x in first)
    assert not torch.equal(first[0], first[1])          # the stream moves on
    assert not torch.equal(first[0], c.sampling.draw(probs))
    saved = {k: v.clone() for k, v in a.state_dict().items()}
    ahead = [a.sampling.draw(probs) for _ in range(3)]
    c.load_state_dict(saved)                 # another seed's module, given the saved state
    assert all(torch.equal(x, c.sampling.draw(probs)) for x in ahead)


# --- end to end --------------------------------------------------------------------------------
def _tiny_task(tmp_path):
    (tmp_path / "space.qs").write_text(SMALL["paper_untied"].replace("qubits 3", "qubits auto 3")
                                       .replace("weights raw per position init 1 / C", SOFTMAX))
    (tmp_path / "tiny.task").write_text(
        (ROOT / "specs/narma5_sampled.task").read_text().replace("lstm 1 -> 20", "lstm 1 -> 2")
        .replace("linear 20 -> 1", "linear 2 -> 1")
        .replace("hadamard_ent_rot_per_layer_softmax.qs depth 10", "space.qs depth 2"))
    return tmp_path / "tiny.task"


def _run(task, out, *extra, models="diffqas"):
    return main(["run", str(task), "-o", str(out), "--no-progress", "--max-batches", "3",
                 "--models", models, "--backend", "cpu", *extra])


def test_a_sampled_run_reports_favourites_and_retrains_the_most_probable(tmp_path, capsys):
    assert _run(_tiny_task(tmp_path), tmp_path / "run", "--epochs", "1", models="diffqas,found") == 0
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| layer 1.1 |" in summary and "expected loss over architectures" in summary
    rows = {r["model"]: r for r in json.loads((tmp_path / "run" / "metrics.json").read_text())}
    favourites = [part.rsplit(" ", 1)[1] for part in rows["diffqas"]["architecture"].split("; ")]
    assert rows["found"]["architecture"].replace("/", "-").split("-") == favourites
    capsys.readouterr()


def test_a_resumed_sampled_run_continues_the_same_draws(tmp_path, capsys):
    task = _tiny_task(tmp_path)
    assert _run(task, tmp_path / "straight", "--epochs", "2") == 0
    assert _run(task, tmp_path / "resumed", "--epochs", "1") == 0
    assert main(["run", "--resume", str(tmp_path / "resumed"), "--epochs", "2", "--no-progress"]) == 0
    rows = [json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("straight", "resumed")]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rs] for rs in rows]
    assert strip[0] == strip[1]
    capsys.readouterr()


def test_a_sweep_trains_found_in_the_search_s_trial_and_the_report_pairs_tasks(tmp_path, capsys):
    """`found` needs its seed's DiffQAS-QT result, so a sweep trains it in that trial's run
    (Trial.companions) and the report lists it as a trial of its own; `--pair` sets the untied
    sampled search and its found architecture against a tied task's DiffQAS-QT seed by seed,
    and the favourites table counts each position's favourite over the seeds."""
    import csv

    from qtc.tasks.experiments.records import collect
    from qtc.tasks.experiments.report import write_report
    from qtc.tasks.experiments.sweep import plan, run_sweep
    untied = _tiny_task(tmp_path)
    tied = tmp_path / "tied.task"
    tied.write_text(untied.read_text().replace("task narma5_sampled", "task tiny_tied")
                    .replace("space.qs depth 2", "hadamard_ent_rot.qs depth 2").replace(" search sampled 4", ""))
    budget = {"max_batches": 3, "backend": "cpu", "epochs": 1}
    trials = plan([str(untied)], [0, 1], "diffqas,found", overrides=budget)
    assert [(t.key, t.companions) for t in trials] == [("narma5_sampled/diffqas/seed0", ("found",)),
                                                       ("narma5_sampled/diffqas/seed1", ("found",))]
    for spec, models, out in ((untied, "diffqas,found", "untied"), (tied, "diffqas", "tied")):
        trials = plan([str(spec)], [0, 1], models, overrides=budget)
        assert run_sweep(trials, tmp_path / out, executor="serial", progress=False, report=False) == 0
    records = {(r.model, r.seed): r for r in collect(tmp_path / "untied")}
    assert sorted(records) == [("diffqas", 0), ("diffqas", 1), ("found", 0), ("found", 1)]
    assert records["found", 1].key == "narma5_sampled/diffqas/seed1 [found]"
    assert records["found", 1].status == "done" and records["found", 1].rows[-1]["epoch"] == 1

    rep = write_report([tmp_path / "untied", tmp_path / "tied"], tmp_path / "rep",
                       [("narma5_sampled", "tiny_tied")])
    pair = json.loads((tmp_path / "rep" / "pairs.json").read_text())[0]
    ref = {int(s): v for s, v in pair["reference_values"].items()}
    for model in ("diffqas", "found"):
        mine = {s: r.rows[-1]["test_mse"] for (m, s), r in records.items() if m == model}
        got = pair["per_model"][model]
        assert got["seeds"] == [0, 1]
        assert got["median_ratio"] == pytest.approx(sorted(mine[s] / ref[s] for s in (0, 1))[0] / 2
                                                    + sorted(mine[s] / ref[s] for s in (0, 1))[1] / 2)
    text = rep.markdown.read_text()
    assert "### narma5_sampled against tiny_tied's DiffQAS-QT (lower is better)" in text
    # the favourites: per position, the votes over the two seeds are each seed's favourite there
    chosen = [dict(part.rsplit(" ", 1) for part in records["diffqas", s].rows[-1]["architecture"].split("; "))
              for s in (0, 1)]
    with open(tmp_path / "rep" / "favourites.csv") as fh:
        rows = list(csv.DictReader(fh))
    for position in chosen[0]:
        votes = {r["alternative"]: int(r["votes"]) for r in rows if r["position"] == position}
        assert sum(votes.values()) == 2
        assert all(votes[c[position]] >= 1 for c in chosen)
    assert "## Architectures found by a per-position search" in text
    assert "narma5_sampled" not in (tmp_path / "rep" / "weights.csv").read_text()   # not an argmax of all
    with pytest.raises(QtcError, match="no finished trial of task 'narma5'"):
        write_report([tmp_path / "untied"], tmp_path / "rep2", [("narma5_sampled", "narma5")])
    capsys.readouterr()
