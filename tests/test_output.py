"""What a run prints (issue 13): bars only on a terminal, short plain lines in a log, an ETA."""
import contextlib
import io
import sys
from pathlib import Path

import pytest

from a3c_models import make_classical_model
from qtc.cli import main
from qtc.tasks.engines import progress
from qtc.dsl.task import A3CStmt, EnvStmt
from qtc.tasks.engines.a3c import train_a3c

SPECS = Path(__file__).resolve().parent.parent / "specs"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_are_drawn_only_on_a_terminal_with_progress_on():
    assert progress.bars(True, _Terminal())
    assert not progress.bars(True, io.StringIO())
    assert not progress.bars(False, _Terminal())


def test_eta_is_the_time_per_trained_model_times_the_models_left():
    assert progress.eta_text(3, 14, 60.0, 3) == "models 3/14 done, 1m00s elapsed, about 3m40s left"
    assert progress.eta_text(2, 14, 10.0, 0).endswith("time left: unknown yet")   # both reused
    assert progress.eta_text(14, 14, 7300.0, 14) == "models 14/14 done, 2h01m elapsed"


def _logged(path: Path, call) -> str:
    """What `call()` writes to stderr when stderr is a file, as in `qtc run ... 2> log`."""
    with open(path, "w") as fh, contextlib.redirect_stderr(fh):
        call()
    return path.read_text()


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_a_run_logged_to_a_file_prints_one_short_line_per_epoch_and_no_bar(tmp_path, flag):
    args = ["run", str(SPECS / "bessel.task"), "-o", str(tmp_path / "run"), "--models", "classical",
            "--epochs", "3", "--max-batches", "2", *flag]
    text = _logged(tmp_path / "stderr.log", lambda: main(args))
    assert "\r" not in text
    assert [ln.split(",")[0] for ln in text.splitlines() if ": epoch" in ln] == \
        [f"classical: epoch {e}/3" for e in (1, 2, 3)]
    assert "models 1/1 done" in text
    assert len(text) < 1000


def test_a3c_logged_to_a_file_prints_a_line_every_few_episodes_and_no_bar(tmp_path):
    env = EnvStmt(id="MiniGrid-Empty-5x5-v0", max_steps=20)
    text = _logged(tmp_path / "stderr.log", lambda: train_a3c(
        make_classical_model, env, A3CStmt(), workers=1, episodes=40, progress=True,
        out_dir=tmp_path / "a3c", label="classical"))
    assert "\r" not in text
    counts = [ln.split(",")[0] for ln in text.splitlines() if ": episode" in ln]
    assert counts == [f"classical: episode {n}/40" for n in range(2, 41, 2)]


def _final(diffqas, *fixed):
    return {"diffqas": {"test_accuracy": diffqas},
            **{f"fixed:{k}": {"test_accuracy": v} for k, v in enumerate(fixed)}}


def test_a_summary_says_all_tie_instead_of_a_rank():
    from qtc.tasks.kinds.classify import standing
    text = standing(_final(0.5, *[0.5] * 8))
    assert "all tie" in text and "ranks" not in text


def test_a_summary_names_the_tied_candidates_once_with_one_based_configs():
    from qtc.tasks.kinds.classify import standing
    text = standing(_final(0.8, 0.9, 0.7, 0.8, 0.8))
    assert text == ("DiffQAS-QT ranks 2 of 5 by final test accuracy among itself and the 4 fixed "
                    "candidates, tied with configs 3, 4; better: config 1.")


def _cell(label, n, median):
    return {"label": label, "n": n, "median": median, "q1": median, "q3": median, "min": median,
            "max": median, "mean": median, "std": 0.0 if n > 1 else float("nan")}


def test_one_seed_gives_no_best_and_no_plus_minus_zero():
    from qtc.tasks.experiments.ranking import best_rows, spread_cells as _spread
    rows = [_cell("DiffQAS-QT", 1, 0.9), _cell("config 1 (H-ent-RX)", 1, 0.8)]
    assert best_rows(rows, higher=True) == (
        [], "No model is marked best: fewer than 3 finished seeds for DiffQAS-QT (1), config 1 (H-ent-RX) (1).")
    assert _spread(rows[0], "classify").endswith("one seed: no spread") and "±" not in _spread(rows[0], "")


def test_all_tied_seeded_models_are_not_called_best():
    from qtc.tasks.experiments.report import best_rows
    rows = [_cell(f"config {k}", 3, 0.5) for k in range(1, 5)]
    assert best_rows(rows, higher=True) == ([], "All 4 models tie (median 0.5).")
    for r in rows[1:3]:                                    # every seed of both above every other's
        r["median"] = r["min"] = r["max"] = r["mean"] = 0.7
    best, note = best_rows(rows, higher=True)
    assert best == [rows[1], rows[2]] and note == "Tied for best: config 2, config 3."


def test_structural_weights_that_never_moved_are_found_from_the_recorded_weights():
    from qtc.tasks.engines.supervised import unmoved_note, unmoved_weights
    w0 = [1 / 12] * 12
    rows = [{"model": "diffqas", "epoch": e,
             "structural_weights": [round(w + (0 if k in (8, 11) else 1e-4 * e * (k + 1)), 6)
                                    for k, w in enumerate(w0)]} for e in (1, 2, 3)]
    rows.append({"model": "fixed:0", "epoch": 1})
    assert unmoved_weights(rows) == [8, 11]
    assert unmoved_note(rows) == "configs 9, 12: structural weight never moved (gradient 0)"
    assert unmoved_weights(rows[:1]) == [] and unmoved_note(rows[:1]) is None   # one epoch: unknown


def test_tensorboard_events_are_written_beside_the_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "run"
    assert main(["run", str(SPECS / "bessel.task"), "-o", str(out), "--models", "classical",
                 "--epochs", "2", "--max-batches", "2", "--tensorboard"]) == 0
    events = EventAccumulator(str(out / "tensorboard" / "classical")).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert "test/mse" in events.Tags()["scalars"]


def test_tensorboard_without_the_package_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # import fails
    out = tmp_path / "run"
    assert main(["run", str(SPECS / "bessel.task"), "-o", str(out), "--models", "classical",
                 "--epochs", "1", "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert "--tensorboard needs the tensorboard package" in err and "Traceback" not in err
    assert not out.exists()
