"""The paper's MiniGrid comparison (issue 27): qtc.tasks.experiments.a3c_report and A3C with
`compare fixed` through the sweep engine, merged twins trained once.

The statistics are checked against values worked out by hand on fixed episode logs; the figure
is drawn from one; the end-to-end tests run the real engine on a budget of a few episodes.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from qtc.cli import main
from qtc.tasks.experiments import a3c_report
from qtc.tasks.experiments.a3c_report import Comparison, claims, comparisons, phases
from qtc.tasks.experiments.records import TrialRecord

SPEC = Path(__file__).resolve().parent.parent / "specs" / "minigrid_5x5.task"
CANDIDATES = ["H-ent-RX", "H-ent-RY", "H-ent-RZ"]


def test_phases_are_the_papers_at_50000_episodes_and_scale_with_the_budget():
    assert phases(50_000, 1000) == (1000, 5000)
    assert phases(100_000, 1000) == (1000, 5000)       # never more than the paper's
    assert phases(5_000, 1000) == (100, 500)
    assert phases(5_000, 50) == (50, 500)               # the spec's window is the most
    assert phases(30, 1000) == (1, 3)                   # a tiny budget still reads


def _log(tail, head: int = 90) -> np.ndarray:
    """`head` episodes of reward 0, then `tail` (the final phase of a 100-episode budget)."""
    return np.concatenate([np.zeros(head), np.asarray(tail, dtype=float)])


def _record(model: str, seed: int, rewards, *, twins=(), random_reward=0.25) -> TrialRecord:
    rec = TrialRecord(key=f"grid/{model}/seed{seed}", task="grid", model=model, seed=seed, status="done",
                      kind="a3c", label={"diffqas": "DiffQAS-QT", "fixed:0": "config 1 (H-ent-RX)",
                                         "fixed:1": "config 2 (H-ent-RY)"}[model],
                      candidates=CANDIDATES, window=1000, twins=list(twins),
                      baselines={"random policy": {"eval_reward": random_reward, "episodes": 10}})
    rec.episodes = {"episode": np.arange(1, len(rewards) + 1), "reward": np.asarray(rewards, dtype=float)}
    return rec


def _records():
    """Three seeds, 100 episodes each (window 2, final phase 10 by `phases`):
    DiffQAS-QT ends at 0.9 + 0.01 * seed every episode (final mean 0.9 + 0.01 s, std 0);
    config 1 (trained, and reported for its twin config 3) alternates 1.0 and 0.5 (mean 0.75,
    std 0.25); config 2 ends at 0.95 every episode (mean 0.95, std 0)."""
    out = []
    for s in (0, 1, 2):
        out.append(_record("diffqas", s, _log([0.9 + 0.01 * s] * 10)))
        out.append(_record("fixed:0", s, _log([1.0, 0.5] * 5), twins=["fixed:2"]))
        out.append(_record("fixed:1", s, _log([0.95] * 10)))
    return out


def test_final_phase_statistics_match_hand_computed_values():
    (c,) = comparisons(_records())
    assert (c.episodes, c.window, c.final) == (100, 2, 10)
    assert c.trained_as == {"fixed:2": "fixed:0"} and c.random_reward == 0.25
    rows = {(r["model"], r["seed"]): r for r in c.per_seed()}
    assert set(m for m, _ in rows) == {"diffqas", "fixed:0", "fixed:1", "fixed:2"}
    assert rows["diffqas", 2]["final_mean"] == pytest.approx(0.92)
    assert rows["diffqas", 2]["final_std"] == pytest.approx(0.0)
    assert rows["fixed:0", 1]["final_mean"] == pytest.approx(0.75)
    assert rows["fixed:0", 1]["final_std"] == pytest.approx(0.25)
    assert rows["fixed:2", 1] == {**rows["fixed:0", 1], "model": "fixed:2", "label": "config 3 (H-ent-RZ)",
                                  "trained_as": "fixed:0"}
    # window 2: episode 91 averages 0 and the first final reward, episode 92 two final rewards
    assert rows["diffqas", 0]["to_threshold"] == 92
    assert rows["fixed:0", 0]["to_threshold"] is None          # windows of 1.0 and 0.5: 0.75
    assert rows["fixed:1", 0]["to_threshold"] == 92

    paired = c.paired()
    mean, std = paired["final_mean"], paired["final_std"]
    assert mean["seeds"] == [0, 1, 2]
    # against config 1: differences 0.15, 0.16, 0.17 (mean) and -0.25 every seed (std)
    v = mean["per_model"]["fixed:0"]
    assert (v["median_ratio"], v["ratio_low"], v["ratio_high"]) == pytest.approx((0.16, 0.15, 0.17))
    assert v["win_rate"] == 1.0
    assert std["per_model"]["fixed:0"]["median_ratio"] == pytest.approx(-0.25)
    # against config 2: -0.05, -0.04, -0.03 (worse), std 0 against 0 (a tie: p 1)
    w = mean["per_model"]["fixed:1"]
    assert (w["median_ratio"], w["ratio_low"], w["ratio_high"]) == pytest.approx((-0.04, -0.05, -0.03))
    assert std["per_model"]["fixed:1"]["wilcoxon_p"] == 1.0
    # the median of (0.75, 0.95, 0.75) per seed is 0.75; of the stds (0.25, 0, 0.25) 0.25
    assert mean["to_median"] == pytest.approx(0.16) and mean["better_than_median"] == "yes"
    assert std["to_median"] == pytest.approx(-0.25) and std["better_than_median"] == "yes"

    said = claims(paired)
    assert said["1"]["verdict"] == "no"                      # config 2 ends higher on every seed
    assert "higher than 2 of 3" in said["1"]["why"] and "(lower than 1)" in said["1"]["why"]
    assert said["2"]["verdict"] == "yes"


def test_claims_are_undecided_with_fewer_than_three_seeds():
    two = [r for r in _records() if r.seed < 2]
    said = claims(comparisons(two)[0].paired())
    assert {k: v["verdict"] for k, v in said.items()} == {"1": "undecided", "2": "undecided"}
    assert "2 paired seed(s)" in said["1"]["why"]


def test_ties_from_the_sweep_json_give_a_twin_its_trained_models_log():
    recs = [r for r in _records() if r.model != "fixed:1"]
    for r in recs:
        r.twins = []
    (c,) = comparisons(recs, {"grid": {"fixed:2": "fixed:0"}})
    assert np.array_equal(c.rewards["fixed:2"][1], c.rewards["fixed:0"][1])


def test_the_figure_from_a_fixed_log(tmp_path):
    (c,) = comparisons(_records())
    fig = a3c_report.figure(c)
    full, final = fig.axes[:2]
    labels = [line.get_label() for line in full.get_lines()]
    # config 1 and its twin config 3 are one curve; DiffQAS-QT drawn last, black, on top
    assert labels[:2] == ["configs 1=3 (tie) (n=3)", "config 2 (H-ent-RY) (n=3)"]
    assert labels[2] == "DiffQAS-QT (n=3)" and labels[3].startswith("random policy")
    dq = full.get_lines()[2]
    assert dq.get_color() == "black" and dq.get_zorder() > max(x.get_zorder() for x in full.get_lines()[:2])
    # the moving average (window 2) of DiffQAS-QT's mean over seeds, every episode
    x, y = dq.get_data()
    assert list(x[:1]) == [1] and len(x) == 100 and y[-1] == pytest.approx(0.91)
    # the second panel holds the final phase alone: episodes 91 .. 100
    fx = final.get_lines()[0].get_data()[0]
    assert (fx[0], fx[-1], len(fx)) == (91, 100, 10)
    files = a3c_report.write([c], tmp_path)
    assert {p.name for p in files} == {"a3c.csv", "a3c_paired.json", "a3c_grid.png"}
    assert (tmp_path / "a3c_grid.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "a3c_paired.json").read_text())["grid"]["claims"]["2"]["verdict"] == "yes"
    md = "\n".join(a3c_report.markdown([c]))
    assert "| config 3 (H-ent-RZ) (trained as config 1) | 3 | 0.750 ± 0.000 | 0.250 ± 0.000 | not reached |" in md
    assert "Claim 2, \"outperforms most handcrafted baselines in both final reward and stability\": **yes**" in md


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


TINY = ["--episodes", "2", "--set", "a3c.workers=1", "--set", "env.max_steps=6", "--no-progress"]


def test_sweep_trains_merged_twins_once_and_reports_them_for_each_member(tmp_path):
    """configs 1 and 3 are one constant circuit: one trial, reported for both."""
    out = tmp_path / "sweep"
    assert main(["sweep", str(SPEC), "--models", "diffqas,fixed:0,fixed:2", "--seeds", "1",
                 "--executor", "serial", "--out", str(out), *TINY]) == 0
    assert sorted(p.parent.name for p in out.glob("minigrid_5x5/*/seed0")) == ["diffqas", "fixed_0"]
    sweep_json = json.loads((out / "sweep.json").read_text())
    assert sweep_json["ties"] == {"minigrid_5x5": {"fixed:2": "fixed:0"}}
    trial = json.loads((out / "minigrid_5x5/fixed_0/seed0/trial.json").read_text())
    assert trial["twins"] == ["fixed:2"] and trial["cpus"] == 1
    resolved = json.loads((out / "minigrid_5x5/fixed_0/seed0/resolved.json").read_text())
    assert resolved["options"]["workers"] == 1            # the spec's (--set), not the trial's CPUs
    rows = {r["model"]: r for r in _csv(out / "report" / "a3c.csv")}
    assert set(rows) == {"diffqas", "fixed:0", "fixed:2"}
    assert rows["fixed:2"]["trained_as"] == "fixed:0"
    assert rows["fixed:2"]["final_mean"] == rows["fixed:0"]["final_mean"]
    md = (out / "report" / "report.md").read_text()
    assert "config 3 (H-ent-RZ) (trained as config 1)" in md and (out / "report/a3c_minigrid_5x5.png").is_file()


def test_a_run_trains_merged_twins_once_and_exports_them_for_each_member(tmp_path):
    run = tmp_path / "run"
    assert main(["run", str(SPEC), "--models", "fixed:0,fixed:2", "-o", str(run), *TINY]) == 0
    assert not (run / "a3c" / "fixed_2" / "episodes.csv").exists()
    twin = json.loads((run / "a3c" / "fixed_2" / "summary.json").read_text())
    assert twin["trained_as"] == "fixed:0" and twin["status"] == "completed"
    for name in ("actor.pt", "critic.pt"):
        assert (run / "models" / "fixed_2" / name).read_bytes() == (run / "models" / "fixed_0" / name).read_bytes()
    assert "completed (trained as config 1 (H-ent-RX))" in (run / "summary.md").read_text()
    from qtc.tasks.experiments.records import collect
    twin_rec = next(r for r in collect(run) if r.model == "fixed:2")
    assert twin_rec.status == "done" and len(twin_rec.episodes["reward"]) == 2


def test_a_16_worker_trial_asks_for_at_most_this_machines_cpus():
    from qtc.tasks.experiments.sweep import plan
    (t,) = plan([str(SPEC)], [0], "classical")
    assert t.cpus == min(16, os.cpu_count() or 1)


@pytest.mark.slow
def test_compare_fixed_end_to_end_on_a_tiny_budget(tmp_path):
    """All 13 models x 2 seeds: 8 distinct fixed circuits trained (configs 3, 4, 6 merged into 1,
    12 into 9), the report's table has all 12 and the classical network."""
    out = tmp_path / "sweep"
    assert main(["sweep", str(SPEC), "--seeds", "2", "--executor", "process", "--workers", "2",
                 "--out", str(out), *TINY]) == 0
    trained = sorted(p.name for p in (out / "minigrid_5x5").iterdir())
    assert trained == sorted(["diffqas", "classical"] + [f"fixed_{k}" for k in (0, 1, 4, 6, 7, 8, 9, 10)])
    rows = _csv(out / "report" / "a3c.csv")
    assert len(rows) == 14 * 2
    assert {r["model"]: r["trained_as"] for r in rows if r["trained_as"]} == {
        "fixed:2": "fixed:0", "fixed:3": "fixed:0", "fixed:5": "fixed:0", "fixed:11": "fixed:8"}
    paired = json.loads((out / "report" / "a3c_paired.json").read_text())["minigrid_5x5"]
    assert len(paired["paired"]["final_mean"]["per_model"]) == 12
    assert {v["verdict"] for v in paired["claims"].values()} == {"undecided"}    # 2 seeds


def test_a_gymnasium_environment_is_read_at_its_own_reward_threshold():
    """CartPole-v1's episodes to 475 (its spec's threshold), not to MiniGrid's 0.9, which every
    CartPole episode (reward >= 8) passes at once; MiniGrid and a record without an env keep 0.9."""
    assert a3c_report.threshold_of("CartPole-v1") == 475.0
    assert a3c_report.threshold_of("MiniGrid-Empty-5x5-v0") == 0.9 == a3c_report.threshold_of("")
    assert a3c_report.threshold_of("NoSuchEnv-v0") is None
    records = []
    for model in ("diffqas", "fixed:0"):
        rec = _record(model, 0, _log([500.0 if model == "diffqas" else 20.0] * 10, head=90) + 10)
        rec.env = "CartPole-v1"
        records.append(rec)
    (c,) = comparisons(records)
    rows = {r["model"]: r["to_threshold"] for r in c.per_seed()}
    assert c.threshold == 475.0 and rows == {"diffqas": 92, "fixed:0": None}
    text = "\n".join(a3c_report.markdown([c]))
    assert "| to 475 (median) | to 475 per seed |" in text and "0: not reached" in text
    c.threshold = None                       # an env without a threshold: nothing counted
    assert all(r["to_threshold"] is None for r in c.per_seed())
    assert "to threshold (none) (median)" in "\n".join(a3c_report.markdown([c]))
