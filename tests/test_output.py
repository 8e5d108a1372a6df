"""What a run prints (issue 13): bars only on a terminal, short plain lines in a log, an ETA."""
import contextlib
import io
from pathlib import Path

import pytest

from a3c_models import make_classical_model
from qtc.cli import main
from qtc.tasks.engines import progress
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
    text = _logged(tmp_path / "stderr.log", lambda: train_a3c(
        make_classical_model, env_id="MiniGrid-Empty-5x5-v0", workers=1, episodes=40,
        max_episode_steps=20, progress=True, out_dir=tmp_path / "a3c", label="classical"))
    assert "\r" not in text
    counts = [ln.split(",")[0] for ln in text.splitlines() if ": episode" in ln]
    assert counts == [f"classical: episode {n}/40" for n in range(2, 41, 2)]
