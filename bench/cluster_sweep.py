"""The same sweep on the local executor and on a simulated two-node Ray cluster (issue 28).

Three runs of one set of trials (the tiny NARMA-5 forecaster of tests/test_sweep.py, models
classical and diffqas, backend reference, so no kernel is compiled):

1. `local`: the process pool with 2 workers (the local executor, on this machine's cores);
2. `cluster`: a `ray.cluster_utils.Cluster` on this machine, a head and a worker node of
   1 CPU each, every node bound to 127.0.0.1, each node's trials in its own scratch folder;
3. `cluster, node removed`: the same, with the worker node removed once both nodes have
   stored a checkpoint; its trials rerun on the head node from their last checkpoint.

Reported per run: the wall time of the sweep (start-up included), trials per node, the bytes
moved per trial (carried to the node, checkpoints sent to the store, fetched on resume, the run
folder returned), and for the removed node what resuming cost; the load average beside each
time (the machine is shared). Every cluster trial's metrics are checked equal to the local
run's (the epoch's seconds aside).

    python bench/cluster_sweep.py --seeds 10 --epochs 6 --json docs/results/cluster.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def untimed(folder: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in json.loads((folder / "metrics.json").read_text())]


def cluster_run(trials, out: Path, scratch: Path, remove: bool) -> dict:
    import ray
    import ray._private.ray_constants as rc
    from ray.cluster_utils import Cluster

    from qtc.tasks.experiments.sweep import sweep
    rc.ENABLE_RAY_CLUSTER = False            # the driver joins over 127.0.0.1, as the nodes do
    node = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        **node, "env_vars": {"QTC_SCRATCH": str(scratch / "head")}})
    removed = {}
    try:
        worker = cluster.add_node(**node, env_vars={"QTC_SCRATCH": str(scratch / "worker")})

        def remove_when_both_checkpointed():
            while len(list(out.glob("*/*/seed*/checkpoint.pt"))) < 2:
                time.sleep(0.1)
            removed["at"] = time.perf_counter()
            cluster.remove_node(worker, allow_graceful=False)

        if remove:
            threading.Thread(target=remove_when_both_checkpointed, daemon=True).start()
        before = load()
        t0 = time.perf_counter()
        res = sweep(trials, out, executor="ray", address=cluster.address, progress=False)
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"wall_s": round(wall, 1), "startup_s": round(res.startup_seconds, 1), "load_before": before,
            "load_after": load(), "done": len(res.done), "failed": len(res.failed),
            "removed_after_s": round(removed["at"] - t0, 1) if removed else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-batches", type=int, default=6)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from test_sweep import _spec

    from qtc.tasks.experiments.sweep import plan, sweep
    from qtc.tasks.experiments.trials import read_status
    work = Path(tempfile.mkdtemp(prefix="qtc-cluster-bench-"))
    specs = work / "specs"
    specs.mkdir()
    shutil.copy(ROOT / "specs" / "hadamard_ent_rot.qs", specs)
    trials = plan([_spec(specs, epochs=args.epochs)], list(range(args.seeds)), "classical,diffqas",
                  overrides={"max_batches": args.max_batches, "backend": "reference"})
    rows = {}
    before = load()
    t0 = time.perf_counter()
    res = sweep(trials, work / "local", executor="process", workers=2, progress=False)
    rows["local (process pool, 2 workers)"] = {"wall_s": round(time.perf_counter() - t0, 1),
                                               "load_before": before, "load_after": load(),
                                               "done": len(res.done), "failed": len(res.failed)}
    shutil.rmtree(specs)          # the cluster's trials carry their specs
    for name, remove in (("cluster (2 nodes x 1 CPU)", False), ("cluster, worker node removed", True)):
        out = work / name.split()[0] / ("removed" if remove else "whole")
        row = cluster_run(trials, out, work / "scratch", remove)
        statuses = [read_status(out / t.key) for t in trials]
        per_node: dict[str, int] = {}
        for st in statuses:
            per_node[st["node"]] = per_node.get(st["node"], 0) + 1
        moved = {k: round(statistics.mean(st["moved"][k] for st in statuses))
                 for k in ("carried", "sent", "fetched", "returned")}
        resumed = [st for st in statuses if st["resumed"]]
        row.update(per_node=sorted(per_node.values(), reverse=True), moved_mean_bytes=moved,
                   snapshots_mean=round(statistics.mean(st["moved"]["snapshots"] for st in statuses), 1),
                   resumed=[{"trial": f"{st['task']}/{st['model']}/seed{st['seed']}",
                             "seconds": st["seconds"], "fetched": st["moved"]["fetched"]} for st in resumed],
                   same_metrics=all(untimed(out / t.key) == untimed(work / "local" / t.key) for t in trials))
        rows[name] = row
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"trials": len(trials), "epochs": args.epochs,
                                         "max_batches": args.max_batches, "runs": rows}, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
