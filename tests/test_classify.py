"""Image classification end to end: smoke runs of the three specs, resume equality, the exported
model's stand-alone accuracy, and bad input (exit code 2, no traceback, no checkpoint)."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qtc.cli import main
from qtc.errors import QtcError
from qtc.runtime.backends import available_backends
from qtc.runtime.cache import cache_dir as kernel_cache_dir
from qtc.tasks.data.images import find_root, load_classes

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist-10k"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason=f"no MNIST sample at {MNIST}")
# The 17-qubit generator is fast with the compiled backend, ~6 s a step with the reference one.
FAST = "cpu" in available_backends()


def _fashion_available() -> bool:
    try:
        find_root("fashion_mnist")
        return True
    except QtcError:
        return False


def _run(*argv) -> int:
    return main(["run", *map(str, argv), "--no-progress"])


def _rows(rundir: Path) -> list[dict]:
    return json.loads((rundir / "metrics.json").read_text())


def _comparable(rows: list[dict]) -> list[dict]:
    """Metrics rows without wall-clock times."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A data cache private to this file (the .gz sample is unpacked into it once)."""
    return tmp_path_factory.mktemp("cache")


def _private_data_cache(monkeypatch, cache: Path) -> None:
    """Point the data cache ($XDG_CACHE_HOME) at `cache` but keep the compiled-kernel cache."""
    monkeypatch.setenv("QTC_CACHE_DIR", str(kernel_cache_dir()))  # no rebuild of the kernels
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))


@pytest.fixture
def mnist_env(monkeypatch, tmp_path, cache):
    """MNIST sample via $QTC_DATA; the private data cache, so no earlier run's cache is used."""
    monkeypatch.setenv("QTC_DATA", str(MNIST))
    _private_data_cache(monkeypatch, cache)
    return tmp_path


# --------------------------------------------------------------------------- smoke runs

@needs_mnist
@pytest.mark.slow
def test_mnist_spec_runs_diffqas_and_classical_and_writes_the_run_folder(mnist_env):
    out = mnist_env / "run"
    batches = 2 if FAST else 1
    assert _run(SPECS / "mnist_1v5.task", "-o", out, "--epochs", 1, "--limit", 200,
                "--max-batches", batches, "--models", "diffqas,classical") == 0
    for name in ("spec.task", "hadamard_ent_rot.qs", "resolved.json", "parameters.txt", "metrics.csv",
                 "metrics.json", "checkpoint.pt", "curves.png", "structural_weights.png", "summary.md",
                 "models/classical/model.pt", "models/classical/model.py", "models/diffqas/model.pt"):
        assert (out / name).is_file(), name
    report = (out / "parameters.txt").read_text()
    assert "108,866 target parameters" in report and "total trainable       286" in report
    rows = _rows(out)
    assert [(r["model"], r["epoch"]) for r in rows] == [("diffqas", 1), ("classical", 1)]
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["train_loss"] > 0
    assert len(rows[0]["structural_weights"]) == 12
    assert "| DiffQAS-QT | 1 |" in (out / "summary.md").read_text()


@pytest.mark.skipif(not _fashion_available(), reason="FashionMNIST not installed")
@pytest.mark.parametrize("spec, fixed", [("fmnist_1v5.task", "fixed:7"), ("fmnist_5v7.task", "fixed:10")])
@pytest.mark.slow
def test_fashion_specs_run_a_fixed_candidate_and_classical(tmp_path, spec, fixed):
    out = tmp_path / "run"
    assert _run(SPECS / spec, "-o", out, "--epochs", 1, "--limit", 200, "--max-batches", 1,
                "--models", f"{fixed},classical") == 0
    rows = _rows(out)
    assert [r["model"] for r in rows] == [fixed, "classical"]
    assert all(r["epoch"] == 1 and 0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    assert "DiffQAS-QT's rank" in (out / "summary.md").read_text()


# --------------------------------------------------------------------------- resume

@needs_mnist
@pytest.mark.slow
def test_interrupted_then_resumed_run_ends_with_the_metrics_of_a_straight_run(mnist_env, monkeypatch):
    args = ["--epochs", 2, "--limit", 300, "--max-batches", 2, "--models", "fixed:4,classical"]
    straight, broken = mnist_env / "straight", mnist_env / "broken"
    assert _run(SPECS / "mnist_1v5.task", "-o", straight, *args) == 0

    # A real Ctrl-C (SIGINT) during the 9th loss evaluation: fixed:4 is done (2 epochs x (2 train
    # + 2 eval)); classical's batch 0 finishes its step and the run stops before batch 1.
    import qtc.tasks.kinds.classify as classify
    real, calls = classify.F.cross_entropy, {"n": 0}

    def interrupting(*a, **k):
        calls["n"] += 1
        if calls["n"] == 9:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(classify.F, "cross_entropy", interrupting)
    assert _run(SPECS / "mnist_1v5.task", "-o", broken, *args) == 130
    monkeypatch.setattr(classify.F, "cross_entropy", real)
    state = torch.load(broken / "checkpoint.pt", weights_only=False)
    assert list(state["done"]) == ["fixed:4"]
    current = state["running"]["classical"]
    assert (current["model"], current["epoch"], current["batch"]) == ("classical", 0, 1)

    assert main(["run", "--resume", str(broken), "--no-progress"]) == 0
    assert _comparable(_rows(broken)) == _comparable(_rows(straight))
    for model in ("fixed_4", "classical"):
        a = torch.load(straight / "models" / model / "model.pt")
        b = torch.load(broken / "models" / model / "model.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- export

def _standalone_accuracies(folders: list[Path], images: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Load each folder's model.py / model.pt in one separate interpreter where qtc cannot be imported."""
    data = folders[0].parent / "testset.pt"
    torch.save({"x": images, "y": labels}, data)
    code = ("import os, sys, importlib.util, torch\n"
            "sys.modules['qtc'] = None  # prove the loader needs no qtc\n"
            f"d = torch.load({str(data)!r})\n"
            "for folder in sys.argv[1:]:\n"
            "    os.chdir(folder)\n"
            "    spec = importlib.util.spec_from_file_location('m_' + os.path.basename(folder), 'model.py')\n"
            "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "    net = m.load('model.pt')\n"
            "    with torch.no_grad(): out = net(d['x'])\n"
            "    print(float((out.argmax(1) == d['y']).float().mean()))\n")
    done = subprocess.run([sys.executable, "-c", code, *map(str, folders)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [float(v) for v in done.stdout.split()]


@needs_mnist
@pytest.mark.slow
def test_exported_models_alone_score_the_trained_test_accuracy(mnist_env):
    out = mnist_env / "run"
    assert _run(SPECS / "mnist_1v5.task", "-o", out, "--epochs", 1, "--max-batches", 6,
                "--models", "fixed:1,classical") == 0
    _, test = load_classes("mnist", (1, 5), data_root=MNIST)
    final = {r["model"]: r["test_accuracy"] for r in _rows(out)}
    assert 0.5 < final["classical"]          # really trained: better than chance on 389 images
    models = ["classical", "fixed:1"]
    folders = [out / "models" / m.replace(":", "_") for m in models]
    for folder in folders:
        source = (folder / "model.py").read_text()
        assert "import qtc" not in source and "from qtc" not in source
    alone = _standalone_accuracies(folders, *test.tensors)
    assert alone == pytest.approx([final[m] for m in models], abs=1e-9)


# --------------------------------------------------------------------------- bad input

def test_missing_data_exits_2_without_traceback_or_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "QTC_CACHE_DIR": str(kernel_cache_dir())}
    env.pop("QTC_DATA", None)
    cmd = [sys.executable, "-m", "qtc", "run", str(SPECS / "mnist_1v5.task"), "-o", str(out),
           "--data-root", str(tmp_path / "nowhere"), "--no-progress", "--models", "classical"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "MNIST" in done.stderr and "--data-root" in done.stderr
    assert not out.exists()          # the data are checked before the run folder is made
    # So there is nothing to resume: a clear error, nothing written.
    assert main(["run", "--resume", str(out), "--no-progress"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists()


@needs_mnist
def test_corrupt_data_exits_2_and_writes_no_checkpoint(tmp_path, monkeypatch, capsys, cache):
    bad = tmp_path / "mnist"
    shutil.copytree(MNIST, bad)
    data = gzip.decompress((bad / "train-images-idx3-ubyte.gz").read_bytes())
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[: len(data) // 2]))
    _private_data_cache(monkeypatch, cache)
    out = tmp_path / "run"
    assert _run(SPECS / "mnist_1v5.task", "-o", out, "--data-root", bad, "--models", "classical") == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()


@needs_mnist
def test_a_class_the_data_set_lacks_exits_2_located_before_any_checkpoint(mnist_env, capsys):
    spec = mnist_env / "absent.task"
    spec.write_text((SPECS / "mnist_1v5.task").read_text().replace("classes [1, 5]", "classes [1, 11]"))
    shutil.copy(SPECS / "hadamard_ent_rot.qs", mnist_env)
    out = mnist_env / "run"
    assert _run(spec, "-o", out, "--models", "classical") == 2
    err = capsys.readouterr().err
    assert f"{spec}:3:1: error: class 11 does not exist in mnist (classes 0..9)" in err
    assert not (out / "checkpoint.pt").exists()


@pytest.mark.parametrize("edit, expected", [
    (("conv2d 32 -> 32 kernel 5", "conv2d 16 -> 32 kernel 5"), "32"),
    (("train adam lr 1e-3", "train adam lr 1e-3 gamma 0.5"), "gamma"),
    (("train adam", "train adamw"), "adamw"),
])
def test_bad_spec_exits_2_before_creating_the_run_folder(tmp_path, capsys, edit, expected):
    spec = tmp_path / "bad.task"
    text = (SPECS / "mnist_1v5.task").read_text()
    assert edit[0] in text
    spec.write_text(text.replace(*edit, 1))
    shutil.copy(SPECS / "hadamard_ent_rot.qs", tmp_path)
    out = tmp_path / "run"
    assert _run(spec, "-o", out, "--models", "classical") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err and "bad.task:" in err
    assert not out.exists()
