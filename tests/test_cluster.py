"""qtc sweep on a Ray cluster whose nodes share no disk (issue 28).

A two-node `ray.cluster_utils.Cluster` on this machine, every node bound to 127.0.0.1. A shared
disk cannot hide anything: each node's trials run in its own scratch folder ($QTC_SCRATCH per
node, deleted after each trial), the specs are deleted after planning (a trial that opened its
spec by the driver's path would fail), and a trial is never told the driver's --out.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from qtc.errors import QtcError
from qtc.tasks.experiments import storage
from qtc.tasks.experiments.executors import make_executor
from qtc.tasks.experiments.remote import check_node
from qtc.tasks.experiments.report import write_report
from qtc.tasks.experiments.sweep import plan, sweep
from qtc.tasks.experiments.trials import TRIAL_JSON, read_status, run_trial

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from test_images import write_idx  # noqa: E402
from test_sweep import BUDGET, _spec  # noqa: E402

NODE = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False}
# Files whose bytes depend on where and when a trial ran, not on what it computed (metrics and
# the checkpoint hold each epoch's seconds: metrics.json is compared without them).
PLACE_FILES = {"trial.json", "trial.log", "provenance.json", "metrics.csv", "checkpoint.pt"}


# --------------------------------------------------------------------------------------------
# Snapshots and stores (no cluster)
# --------------------------------------------------------------------------------------------

def test_a_snapshot_is_the_run_folder_without_what_belongs_to_one_machine(tmp_path):
    run = tmp_path / "run"
    (run / "models" / "classical").mkdir(parents=True)
    (run / "metrics.json").write_text("[]")
    (run / "checkpoint.pt").write_bytes(b"ckpt")
    (run / "models" / "classical" / "model.pt").write_bytes(b"net")
    for local in (".qtc-lock", ".qtc-owned", ".metrics.123.abcd.tmp.json"):   # lock, marker, half-written
        (run / local).write_text("x")
    files = storage.pack(run)
    assert list(files) == ["checkpoint.pt", "metrics.json", "models/classical/model.pt"]
    root = tmp_path / "elsewhere"
    (root / "run" / "stale").mkdir(parents=True)
    (root / "run" / "stale" / "old.png").write_bytes(b"old")
    storage.unpack(files, root / "run", root)
    assert storage.pack(root / "run") == files and not (root / "run" / "stale").exists()
    with pytest.raises(QtcError, match="outside"):
        storage.unpack({"../escaped": b"x"}, root / "run", root)
    assert not (root / "escaped").exists()


def test_folder_store_holds_trial_folders_and_gives_back_only_runs(tmp_path):
    store = storage.open_storage(str(tmp_path / "st"), "sweep1")
    assert store.get("t/classical/seed0") is None
    store.put("t/classical/seed0", {"metrics.json": b"[]"})
    assert store.get("t/classical/seed0") is None            # no resolved.json: not a run yet
    store.put("t/classical/seed0", {"resolved.json": b"{}", "checkpoint.pt": b"c"})
    assert store.get("t/classical/seed0") == {"checkpoint.pt": b"c", "resolved.json": b"{}"}
    assert (tmp_path / "st" / "sweep1" / "t" / "classical" / "seed0" / "resolved.json").is_file()


def test_a_uri_store_keeps_one_archive_per_trial_through_pyarrow(tmp_path):
    pytest.importorskip("pyarrow")
    import pickle
    store = storage.open_storage(f"file://{tmp_path}/st", "sweep1")
    store = pickle.loads(pickle.dumps(store))       # as Ray sends it to a node: reopened there
    files = {"resolved.json": b"{}", "checkpoint.pt": b"\x00" * 1000, "models/m/model.pt": b"n"}
    store.put("t/diffqas/seed1", files)
    assert store.get("t/diffqas/seed1") == files and store.get("t/diffqas/seed2") is None
    archive = tmp_path / "st" / "sweep1" / "t" / "diffqas" / "seed1" / storage.SNAPSHOT
    archive.write_bytes(archive.read_bytes()[:700])
    with pytest.raises(QtcError, match="snapshot .*seed1/snapshot.tar cannot be read"):
        store.get("t/diffqas/seed1")
    with pytest.raises(QtcError, match="--storage nosuch://x: cannot open it"):
        storage.open_storage("nosuch://x", "s")


def test_a_node_check_names_another_qtc_version_and_each_missing_data_set(tmp_path, monkeypatch):
    monkeypatch.setenv("QTC_DATA", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    res = check_node("0.0.1", [("mnist", str(tmp_path / "nowhere"))])
    version, data = res["problems"]
    assert "the driver runs qtc 0.0.1" in version and "qtc[distributed]==0.0.1" in version
    assert data.startswith("no usable MNIST data set") and "nowhere" in data
    import qtc
    write_idx(tmp_path / "d" / "mnist", {"train": [1, 5], "t10k": [1, 5]})
    assert check_node(qtc.__version__, [("mnist", str(tmp_path / "d"))])["problems"] == []


def _csv_spec(folder: Path, data: Path) -> str:
    """The tiny forecaster reading its series from a CSV file that lives apart from the spec
    (`data csv "series.csv"`, found under --data-root `data`)."""
    folder.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    (data / "series.csv").write_text("t,value\n" + "".join(f"{i},{(i * 7919) % 101 / 101:.4f}\n"
                                                             for i in range(80)))
    spec = Path(_spec(folder))
    text = spec.read_text().replace("task tiny", "task own").replace(
        "data narma5 window 4 split 0.67", 'data csv "series.csv" column value window 4 split 0.67')
    spec.unlink()
    (folder / "own.task").write_text(text)
    return str(folder / "own.task")


def test_a_trial_carries_its_data_files_path_and_digest_and_each_node_checks_them(tmp_path):
    """A spec reading a data file: the carried spec names the file where the driver found it
    (absolute: a node's scratch copy of the spec has nothing beside it) and the trial its
    sha256; a node without that file, or with other data there, is named before training."""
    import hashlib

    import qtc
    spec = _csv_spec(tmp_path / "specs", tmp_path / "data")
    shutil.copy(HERE.parent / "specs" / "hadamard_ent_rot.qs", tmp_path / "specs")
    trials = plan([spec], [0], "classical", overrides={**BUDGET, "data_root": str(tmp_path / "data")})
    csv = (tmp_path / "data" / "series.csv").resolve()
    data_file = trials[0].data_file
    assert data_file == {"source": "csv", "path": str(csv),
                         "sha256": hashlib.sha256(csv.read_bytes()).hexdigest()}
    assert f'data csv "{csv}" column value' in trials[0].files["own.task"] and trials[0].dataset == ""
    wanted = [(data_file["source"], data_file["path"], data_file["sha256"])]
    assert check_node(qtc.__version__, [], wanted)["problems"] == []
    csv.write_text(csv.read_text().replace("0.0000", "0.5000"))        # other data at that path
    problem, = check_node(qtc.__version__, [], wanted)["problems"]
    assert problem.startswith(f"data file {csv} differs from the driver's (sha256 ")
    assert "hint: copy the driver's file to" in problem
    csv.unlink()
    problem, = check_node(qtc.__version__, [], wanted)["problems"]
    assert problem.startswith(f"no data file {csv} (the driver's, read at the same path)")


def test_a_classifier_reading_an_npz_asks_nodes_for_its_file_not_for_an_image_data_set(tmp_path):
    """`data npz` is a file, not a data set a node finds by name (before: every node was
    'unfit' with "no usable npz data set")."""
    import numpy as np

    import qtc
    np.savez(tmp_path / "d.npz", x=np.arange(40, dtype=np.float32).reshape(20, 2), y=np.arange(20) % 2)
    (tmp_path / "c.task").write_text("task c : classify\ndata npz \"d.npz\" split 0.5\nnetwork {\n"
                                     "  input [2]\n  linear 2 -> 2\n}\ntrain adam lr 0.01 batch 4 "
                                     "epochs 1 seed 0\ncompare classical\n")
    trial, = plan([str(tmp_path / "c.task")], [0], "classical")
    assert trial.dataset == "" and trial.data_file["source"] == "npz"
    assert check_node(qtc.__version__, [], [tuple(trial.data_file.values())])["problems"] == []


def test_storage_and_address_are_for_the_ray_executor(tmp_path):
    for kind in ("process", "serial"):
        with pytest.raises(QtcError, match=f"--storage is for the Ray executor .* --executor {kind}"):
            make_executor(kind, run_trial, str(tmp_path), storage=str(tmp_path / "st"))


# --------------------------------------------------------------------------------------------
# A two-node cluster
# --------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Ray turns a loopback address given to ray.init into this machine's outward address when
    it believes it is in a multi-machine cluster; told it is not, the driver (here and in the
    drivers started by a test) joins over 127.0.0.1 as the nodes do."""
    rc = pytest.importorskip("ray._private.ray_constants")
    monkeypatch.setattr(rc, "ENABLE_RAY_CLUSTER", False)
    monkeypatch.setenv(rc.ENABLE_RAY_CLUSTERS_ENV_VAR, "0")
    # Ray's memory monitor counts the whole machine's memory: on a shared machine it kills the
    # test's workers for what other processes use.
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "0")


@contextmanager
def two_nodes(tmp_path: Path, head_env: dict | None = None, worker_env: dict | None = None):
    """(cluster, worker node, {node: scratch folder}): a head and a worker node, 1 CPU each."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster
    scratch = {n: tmp_path / f"scratch-{n}" for n in ("head", "worker")}
    cluster = Cluster(initialize_head=True, head_node_args={
        **NODE, "env_vars": {"QTC_SCRATCH": str(scratch["head"]), **(head_env or {})}})
    try:
        worker = cluster.add_node(**NODE, env_vars={"QTC_SCRATCH": str(scratch["worker"]),
                                                     **(worker_env or {})})
        yield cluster, worker, scratch
    finally:
        import ray
        ray.shutdown()
        cluster.shutdown()


def _planned(tmp_path: Path, seeds=(0, 1), models="diffqas,classical", **spec) -> list:
    """Trials of the tiny forecaster, run here by the serial executor into tmp_path/local; then
    its spec folder is deleted (trials on the cluster must not need it)."""
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(HERE.parent / "specs" / "hadamard_ent_rot.qs", folder)
    trials = plan([_spec(folder, **spec)], list(seeds), models, overrides=BUDGET)
    local = sweep(trials, tmp_path / "local", executor="serial", progress=False)
    assert len(local.done) == len(trials) and not local.failed
    shutil.rmtree(folder)
    return trials


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in PLACE_FILES and p.name != ".qtc-lock"}


def _assert_same_folders(local: Path, cluster: Path, keys: list[str]) -> None:
    """Every trial folder: the same files; metrics bit-identical (every value of every row but
    the epoch's seconds), and the same bytes in the rest (selection, summaries, exported
    networks, plots, settings)."""
    def untimed(folder: Path) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "seconds"}
                for row in json.loads((folder / "metrics.json").read_text())]
    for key in keys:
        a, b = _tree(local / key), _tree(cluster / key)
        assert sorted(a) == sorted(b), key
        assert (cluster / key / "checkpoint.pt").is_file()
        assert untimed(local / key) == untimed(cluster / key), key
        for name in a:
            if name != "metrics.json":
                assert a[name] == b[name], f"{key}/{name}"


@pytest.mark.slow
def test_cluster_sweep_equals_the_local_sweep_and_nothing_stays_on_the_nodes(tmp_path):
    trials = _planned(tmp_path)
    with two_nodes(tmp_path) as (cluster, _worker, scratch):
        res = sweep(trials, tmp_path / "cluster", address=cluster.address, executor="ray", progress=False)
    assert res.executor == "ray" and len(res.done) == 4 and not res.failed
    _assert_same_folders(tmp_path / "local", tmp_path / "cluster", res.done)
    nodes = set()
    for key in res.done:
        st = read_status(tmp_path / "cluster" / key)
        nodes.add(st["node"])
        # It ran in a scratch folder of one of the nodes, which is gone; its inputs travelled.
        assert any(Path(st["scratch"]).parent.parent == s for s in scratch.values()), st["scratch"]
        assert not Path(st["scratch"]).exists()
        assert st["moved"]["carried"] > 0 and st["moved"]["returned"] > 0
        assert st["moved"]["fetched"] == 0 and not st["resumed"]
    assert len(nodes) == 2, nodes        # both nodes ran trials
    for s in scratch.values():
        assert not any((s / "qtc-trials").iterdir())
    # The report: every table and figure the same bytes, but for the trials' times and, in
    # report.md, the title and the line naming the folder.
    reports = [Path(write_report(tmp_path / name).markdown).parent for name in ("local", "cluster")]
    a, b = (_tree(r) for r in reports)
    assert sorted(a) == sorted(b) and len(a) > 3
    for name in a:
        assert _untimed_report(name, a[name]) == _untimed_report(name, b[name]), name


def _untimed_report(name: str, data: bytes):
    if name == "report.md":
        return [line for line in data.decode().splitlines()
                if not line.startswith(("# Sweep report", "Generated ", "- trial time:"))]
    if name == "trials.csv":
        rows = [line.split(",") for line in data.decode().splitlines()]
        at = rows[0].index("seconds")
        return [r[:at] + r[at + 1:] for r in rows]
    return data


@pytest.mark.slow
def test_a_sweep_of_a_spec_reading_a_csv_file_runs_on_the_cluster_as_here(tmp_path):
    """The spec's folder deleted after planning; each trial reads the driver's CSV at its path
    (as a file system every node mounts would give it) and ends as the local sweep does."""
    spec = _csv_spec(tmp_path / "specs", tmp_path / "data")
    shutil.copy(HERE.parent / "specs" / "hadamard_ent_rot.qs", tmp_path / "specs")
    trials = plan([spec], [0], "diffqas,classical", overrides={**BUDGET, "data_root": str(tmp_path / "data")})
    local = sweep(trials, tmp_path / "local", executor="serial", progress=False)
    assert len(local.done) == 2 and not local.failed
    shutil.rmtree(tmp_path / "specs")
    with two_nodes(tmp_path) as (cluster, _worker, _scratch):
        res = sweep(trials, tmp_path / "cluster", address=cluster.address, executor="ray", progress=False)
    assert len(res.done) == 2 and not res.failed, [read_status(tmp_path / "cluster" / t.key) for t in trials]
    _assert_same_folders(tmp_path / "local", tmp_path / "cluster", res.done)


def test_a_node_without_the_data_set_is_named_before_training(tmp_path, monkeypatch):
    """One clear error per node lacking the data, naming the node, before any trial folder."""
    data = tmp_path / "data"
    write_idx(data / "mnist", {"train": [1, 5, 1, 5, 1, 5, 1, 5], "t10k": [1, 5, 1, 5]})
    monkeypatch.setenv("QTC_DATA", str(data))     # the driver has it (it checks when planning)
    spec = tmp_path / "mnist.task"
    spec.write_text((HERE.parent / "specs" / "mnist_1v5.task").read_text())
    shutil.copy(HERE.parent / "specs" / "hadamard_ent_rot.qs", tmp_path)
    trials = plan([str(spec)], [0], "classical", overrides={"max_batches": 1, "epochs": 1})
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    # Only the head node finds MNIST ($QTC_DATA); the worker node has none anywhere.
    with two_nodes(tmp_path, head_env={"QTC_DATA": str(data), "XDG_CACHE_HOME": str(empty)},
                   worker_env={"QTC_DATA": "", "XDG_CACHE_HOME": str(empty)}) as (cluster, _w, _s):
        with pytest.raises(QtcError) as err:
            sweep(trials, tmp_path / "out", address=cluster.address, executor="ray", progress=False)
    text = str(err.value)
    assert "cannot run the sweep (checked on every node before training)" in text
    assert text.count("no usable MNIST data set") == 1, text     # the worker node only
    assert "127.0.0.1" in text and "$QTC_DATA: not set" in text
    assert not list((tmp_path / "out").glob("*/*/seed*"))         # no trial started


@pytest.mark.slow
def test_a_node_removed_mid_sweep_its_trials_resume_on_the_other(tmp_path):
    # Two trials on two nodes of 1 CPU each: one runs on each node from the start, so two stored
    # snapshots are one per node whatever the timing (with a third trial, the head node could
    # store two before the worker node's first: then nothing is resumed); 100 epochs keep the
    # worker node's trial running well past its first snapshot.
    trials = _planned(tmp_path, seeds=(0, 1), models="classical", epochs=100)
    out = tmp_path / "cluster"
    with two_nodes(tmp_path) as (cluster, worker, _scratch):
        removed = threading.Event()

        def remove_when_both_nodes_checkpointed():
            while len(list(out.glob("*/*/seed*/checkpoint.pt"))) < 2:
                time.sleep(0.1)
            cluster.remove_node(worker, allow_graceful=False)
            removed.set()

        killer = threading.Thread(target=remove_when_both_nodes_checkpointed, daemon=True)
        killer.start()
        res = sweep(trials, out, address=cluster.address, executor="ray", progress=False)
        assert removed.is_set()
    assert len(res.done) == 2 and not res.failed
    statuses = [read_status(out / k) for k in res.done]
    resumed = [s for s in statuses if s["resumed"]]
    assert resumed and all(s["moved"]["fetched"] > 0 for s in resumed)
    assert len({s["node"] for s in resumed}) == 1 and all(s["attempts"] == 1 for s in statuses)
    _assert_same_folders(tmp_path / "local", out, res.done)   # resumed: still bit-identical


def _driver(address: str, spec: str, out: Path, storage: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "qtc", "sweep", spec, "--models", "classical", "--seeds", "2",
         "--max-batches", "3", "--backend", "reference", "--address", address, "--out", str(out),
         "--storage", str(storage), "--no-progress", "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
def test_a_driver_killed_and_rerun_resumes_from_the_stored_checkpoints(tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(HERE.parent / "specs" / "hadamard_ent_rot.qs", folder)
    spec = _spec(folder, epochs=8)
    storage, out = tmp_path / "storage", tmp_path / "cluster"
    with two_nodes(tmp_path) as (cluster, _worker, _scratch):
        first = _driver(cluster.address, spec, out, storage)
        stored = storage / out.name
        deadline = time.time() + 300
        while len(list(stored.glob("*/*/seed*/checkpoint.pt"))) < 2 and first.poll() is None:
            assert time.time() < deadline, "no checkpoint stored"
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert not list(out.glob(f"*/*/seed*/{TRIAL_JSON}"))      # nothing finished yet
        second = _driver(cluster.address, spec, out, storage)
        log, _ = second.communicate(timeout=600)
    assert second.returncode == 0, log
    statuses = [read_status(p.parent) for p in out.glob(f"*/*/seed*/{TRIAL_JSON}")]
    assert len(statuses) == 2 and all(s["status"] == "done" for s in statuses)
    assert all(s["resumed"] and s["moved"]["fetched"] > 0 for s in statuses), log
    local = sweep(plan([spec], [0, 1], "classical", overrides=BUDGET), tmp_path / "local",
                  executor="serial", progress=False)
    _assert_same_folders(tmp_path / "local", out, local.done)
    assert json.loads((out / local.done[0] / "metrics.json").read_text())[-1]["epoch"] == 8
