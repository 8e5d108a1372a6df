"""`qtc run` plumbing shared by every task kind: signals, run folders, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist-10k"
QTC = [sys.executable, "-m", "qtc"]


def _run(args, **env):
    return subprocess.run(QTC + args, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, **env})


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(QTC + ["run", "specs/narma5.task", "-o", str(out), "--models", "classical",
                                   "--epochs", "400", "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (out / "checkpoint.pt").exists() and proc.poll() is None:   # no wall-clock bound
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"qtc run --resume {out}" in stdout
    epochs_before = len(json.loads((out / "metrics.json").read_text()))
    assert 0 < epochs_before < 400
    done = _run(["run", "--resume", str(out), "--no-progress"])
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, 401))


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared/data/mnist-10k is not beside the repo")
def test_a_folder_left_by_a_failed_start_can_be_reused_but_a_real_run_cannot(tmp_path):
    out = tmp_path / "run"
    args = ["run", "specs/mnist_1v5.task", "-o", str(out), "--models", "classical", "--epochs", "1",
            "--limit", "100", "--no-progress"]
    failed = _run(args, QTC_DATA=str(tmp_path / "nowhere"))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert not (out / "checkpoint.pt").exists()
    ok = _run(args, QTC_DATA=str(MNIST))
    assert ok.returncode == 0, ok.stderr
    again = _run(args, QTC_DATA=str(MNIST))
    assert again.returncode == 2 and "--resume" in again.stderr


def test_a_spec_backend_this_machine_lacks_is_refused_at_the_generator_before_any_folder(tmp_path, monkeypatch,
                                                                                         capsys):
    """`generator ... backend cuda` on a machine without CUDA: exit 2 at the generator line
    (or naming the --set), and no run folder (issue 29: it was refused after the folder)."""
    from qtc.cli import main
    from qtc.runtime import backends
    backends._load_compiled_backends()
    monkeypatch.setitem(backends.BACKENDS, "cuda", (lambda: False, *backends.BACKENDS.get("cuda", (None, None))[1:]))
    spec = tmp_path / "b.task"
    spec.write_text((ROOT / "specs" / "bessel.task").read_text().replace("rescale qt", "rescale qt backend cuda"))
    (tmp_path / "hadamard_ent_rot.qs").write_text((ROOT / "specs" / "hadamard_ent_rot.qs").read_text())
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--epochs", "1"]) == 2
    assert not (tmp_path / "run").exists()
    assert f"{spec}:9:1: error: backend 'cuda' is not available" in capsys.readouterr().err
    assert main(["run", str(ROOT / "specs" / "bessel.task"), "-o", str(tmp_path / "run"),
                 "--set", "generator.backend=cuda"]) == 2
    assert not (tmp_path / "run").exists()
    assert "--set generator.backend=cuda: backend 'cuda' is not available" in capsys.readouterr().err
