"""bench/gpu_check.py without a GPU: the carried wheel set's checks on hand-made wheels, the
tree-size count, the device plan's budget, and the dry run itself (the same steps on the cpu
backend at the smallest sizes), so the device's minutes are not spent debugging the script."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist-10k"
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)   # dataclasses look there
spec.loader.exec_module(gpu_check)

TINY_TASK = """task tiny : classify
data mnist classes [1, 5] normalize [0.5, 0.5]
network {
  input [1, 28, 28]
  maxpool 4
  flatten
  linear 49 -> 2
}
generator hadamard_ent_rot.qs depth 1 mapping linear bits pm1 rescale qt init_scale 0.01
train adam lr 1e-3 batch 50 epochs 1 seed 0
"""


def wheel(folder: Path, filename: str, requires=()) -> Path:
    """A minimal wheel: just the METADATA that the closure check reads."""
    name, version = filename.split("-")[:2]
    path = folder / filename
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + \
        "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_a_complete_wheel_set_has_no_problems(tmp_path):
    wheel(tmp_path, "lark-1.3.1-py3-none-any.whl")
    wheel(tmp_path, "pydantic_core-2.50.5-cp312-cp312-manylinux_2_17_x86_64.whl",
          ["typing-extensions>=4.14", "numpy>=1.2; python_version < '3.10'"])
    pins = {"lark": "1.3.1", "pydantic-core": "2.50.5"}
    assert gpu_check.check_wheels(tmp_path, pins, ["lark>=1.1", "numpy>=1.24", "tqdm"]) == \
        ["pydantic_core-2.50.5-cp312-cp312-manylinux_2_17_x86_64.whl needs typing-extensions>=4.14: "
         "neither carried nor on the device"]


def test_wheel_set_problems_are_each_named(tmp_path):
    wheel(tmp_path, "lark-1.3.1-py3-none-any.whl")
    wheel(tmp_path, "lark-1.2.0-py3-none-any.whl")
    wheel(tmp_path, "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    wheel(tmp_path, "new-1.0-cp312-cp312-manylinux_2_34_x86_64.whl", ["numpy>=3"])
    problems = "\n".join(gpu_check.check_wheels(tmp_path, {"lark": "1.3.1", "gone": "1.0"}, []))
    assert "two versions of lark" in problems
    assert "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl does not install on CPython 3.12" in problems
    assert "new-1.0-cp312-cp312-manylinux_2_34_x86_64.whl does not install" in problems
    assert "new-1.0-cp312-cp312-manylinux_2_34_x86_64.whl needs numpy>=3, but numpy 2.5.2" in problems
    assert "gone==1.0 is pinned but not downloaded" in problems
    assert "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl is not in gpu_requirements.txt" in problems


def test_no_wheels_says_how_to_get_them(tmp_path):
    assert gpu_check.check_wheels(tmp_path / "none", {}, []) == \
        [f"no wheels in {tmp_path / 'none'}: run bash bench/gpu_wheels.sh"]


def test_the_lock_names_what_the_device_lacks():
    pins = gpu_check.read_lock()
    assert {"lark", "pydantic", "pydantic-core", "gymnasium", "minigrid", "pygame-ce"} <= set(pins)
    assert not set(pins) & set(gpu_check.DEVICE_HAS)


def test_tree_size_counts_tracked_files_and_the_carry(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_bytes(b"x" * 1000)
    (tmp_path / ".gitignore").write_text("/carry/\n")
    subprocess.run(["git", "add", "a.txt", ".gitignore"], cwd=tmp_path, check=True)
    (tmp_path / "loose.txt").write_bytes(b"y" * 10)
    (tmp_path / "carry").mkdir()
    (tmp_path / "carry" / "w.whl").write_bytes(b"z" * 500)
    sizes = gpu_check.tree_bytes(tmp_path, [tmp_path / "carry"])
    assert sizes == {"tracked": 1000 + len("/carry/\n"), "untracked": 10, "carry": 500}


def test_the_device_plan_fits_five_minutes_and_the_returned_files():
    steps = gpu_check.plan("device", ROOT / ".gpu")
    assert sum(s.budget for s in steps) + gpu_check.INSTALL_BUDGET <= 300
    assert [s.name for s in steps] == ["environment", "numerics", "channel", "bench", "epoch"]
    cases = steps[1].params["cases"]
    assert {(n, L) for _, n, L, _ in cases} >= set(gpu_check.PAPER)
    assert {Path(s).name for s, *_ in cases} == {p.name for p in (ROOT / "specs").glob("*.qs")}
    assert steps[2].params["backend"] == "cuda" and (11, 10) in steps[2].params["cases"]
    assert steps[4].params["backend"] == "cuda" and steps[4].params["spec"].endswith("fmnist_1v5.task")
    assert len(gpu_check.OUT_FILES) <= 8


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared/data/mnist-10k is not beside the repo")
def test_dry_run_runs_every_step_on_the_cpu_backend(tmp_path):
    (tmp_path / "tiny.task").write_text(TINY_TASK)
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--quick",
                           "--no-install", "--carry", str(tmp_path / "carry"), "--out", str(out),
                           "--epoch-spec", str(tmp_path / "tiny.task"), "--epoch-data", str(MNIST)],
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    report = json.loads((out / "gpu_check.json").read_text())
    assert proc.returncode == 1          # nothing carried: the wheel and data checks fail ...
    checks = {c["check"]: c for c in report["checks"]}
    assert not checks["wheels"]["ok"] and "gpu_wheels.sh" in checks["wheels"]["detail"]
    assert checks["plan"]["ok"] and checks["tree size"]["ok"]
    steps = {s["name"]: s for s in report["steps"]}   # ... and every step ran
    assert all(s["status"] == "ok" for s in steps.values()), proc.stdout[-3000:]
    assert {r["dtype"] for r in steps["numerics"]["rows"]} == {"float32", "float64"}
    assert all("vs_reference" in r["checks"] for r in steps["numerics"]["rows"])
    assert steps["bench"]["rows"][0]["rows"][0]["backend"] == "cpu"
    channel = steps["channel"]["rows"][0]
    assert {"repeat", "vs_reference", "vs_enumeration"} <= set(channel["checks"]) and channel["ok"]
    assert steps["epoch"]["rows"][0]["test_accuracy"] is not None
    md = (out / "gpu_check.md").read_text()
    assert "## Numerics" in md and "## Generator step" in md and "## One epoch" in md
    assert "## Channel form" in md
