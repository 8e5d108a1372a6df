"""The sweep's launchers: where and how its trials run (Hydra's launcher, apart from the sweeper).

Each executor takes a trial runner `run(trial_dict, out) -> summary` (the sweeper's
`qtc.tasks.experiments.trials.run_trial`) and has the same four methods: `submit(trial)`,
`wait(timeout) -> [(trial, outcome)]`, `running()` and `shutdown()`. An outcome is
`{"ok": True, **summary}` or `{"ok": False, "error": text, "permanent": bool}`: a failure comes
back as a value; `permanent` (a QtcError: qtc refused the trial's input) tells the sweeper that a
retry would fail the same way.

- "ray": a local Ray started on this machine's cores, or an existing cluster (`address`,
  joined with a time limit: `join_ray`); each trial is a Ray task asking for its CPUs and GPUs,
  run as on a cluster that shares no disk (qtc.tasks.experiments.remote): in a scratch folder of
  its node, its checkpoints kept in a store, its run folder returned through Ray's object store;
- "process": concurrent.futures.ProcessPoolExecutor (spawn context): the same trials and the
  same numbers without Ray;
- "serial": in this process, for debugging.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from qtc.errors import QtcError, describe_error
from qtc.settings import settings
from qtc.tasks.experiments import storage
from qtc.tasks.experiments.trials import Trial
from qtc.tasks.runs import guard

# A new Ray of our own on this machine, talking over loopback only (address="local" never joins a
# cluster some other process left running).
LOCAL_RAY = {"address": "local", "_node_ip_address": "127.0.0.1", "include_dashboard": False,
             "log_to_driver": False}
# Seconds each node has to answer the check before training: it starts a worker process there,
# which imports torch (on a busy node, well over RAY_TIMEOUT); a larger $QTC_RAY_TIMEOUT wins.
NODE_CHECK_TIMEOUT = 300.0


# --------------------------------------------------------------------------------------------
# Entry points: run one trial, the failure as a value
# --------------------------------------------------------------------------------------------

def _entry(run, trial: dict, out: str) -> dict:
    """One trial in a worker process: a failure comes back as a value (its text survives
    pickling)."""
    try:
        return {"ok": True, **run(trial, out)}
    except BaseException as err:  # noqa: BLE001 - report every failure, including SystemExit
        return {"ok": False, "error": describe_error(err), "permanent": isinstance(err, QtcError)}


def _cluster_entry(run, trial: dict, store, version: str) -> dict:
    """The Ray task body: one trial on a node sharing no disk with the driver; a failure comes
    back as a value naming the node."""
    from qtc.tasks.experiments import remote
    try:
        return {"ok": True, **remote.run_on_node(run, trial, store, version)}
    except BaseException as err:  # noqa: BLE001 - report every failure, including SystemExit
        node = remote.node_name()    # a node that lacks something: another node may have it
        permanent = isinstance(err, QtcError) and not isinstance(err, remote.NodeUnfit)
        return {"ok": False, "error": f"on {node}: {describe_error(err)}", "node": node,
                "permanent": permanent}


def _pool_entry(run, trial: dict, out: str) -> dict:
    try:
        return _entry(run, trial, out)
    finally:
        if guard.orphaned():   # the driver died: the trial has checkpointed; nobody waits for more
            os._exit(1)


def _inline_entry(run, trial: dict, out: str) -> dict:
    """In the sweep's own process: Ctrl-C stops the sweep instead of failing the trial."""
    try:
        return {"ok": True, **run(trial, out)}
    except Exception as err:  # noqa: BLE001
        return {"ok": False, "error": describe_error(err), "permanent": isinstance(err, QtcError)}


# --------------------------------------------------------------------------------------------
# Executors: submit(trial) and wait(timeout) -> [(trial, outcome)]
# --------------------------------------------------------------------------------------------

class SerialExecutor:
    """Trials one after another in this process (debugging; no isolation)."""
    name = "serial"

    def __init__(self, run, out: str):
        self.run, self.out, self.queue = run, out, []
        self.slots = 1

    def submit(self, trial: Trial) -> None:
        self.queue.append(trial)

    def wait(self, timeout: float) -> list[tuple[Trial, dict]]:
        if not self.queue:
            return []
        t = self.queue.pop(0)
        return [(t, _inline_entry(self.run, t.to_dict(), self.out))]

    def running(self) -> int:
        return min(1, len(self.queue))

    def shutdown(self) -> None:
        self.queue.clear()


class PoolExecutor:
    """A local process pool (spawn context): the fallback when Ray is not installed."""
    name = "process"

    def __init__(self, run, out: str, slots: int):
        import concurrent.futures as cf
        import multiprocessing as mp
        self._cf, self.run, self.out, self.slots = cf, run, out, max(1, slots)
        self._ctx = mp.get_context("spawn")
        self.pool = self._new_pool()
        self.futures: dict = {}

    def _new_pool(self):
        """Workers that stop (checkpointing) when this driver dies, even by kill -9."""
        return self._cf.ProcessPoolExecutor(max_workers=self.slots, mp_context=self._ctx,
                                            initializer=guard.die_with_parent,
                                            initargs=(os.getpid(),))

    def submit(self, trial: Trial) -> None:
        self.futures[self.pool.submit(_pool_entry, self.run, trial.to_dict(), self.out)] = trial

    def wait(self, timeout: float) -> list[tuple[Trial, dict]]:
        if not self.futures:
            return []
        done, _ = self._cf.wait(list(self.futures), timeout=timeout,
                                return_when=self._cf.FIRST_COMPLETED)
        out, broken = [], False
        for fut in done:
            trial = self.futures.pop(fut)
            try:
                out.append((trial, fut.result()))
            except self._cf.process.BrokenProcessPool as err:
                # A worker died (killed, out of memory): every trial in flight is lost with it.
                broken = True
                out.append((trial, {"ok": False, "error": f"worker process died: {err}"}))
            except BaseException as err:  # noqa: BLE001
                out.append((trial, {"ok": False, "error": describe_error(err)}))
        if broken:
            for fut, trial in list(self.futures.items()):
                out.append((trial, {"ok": False, "error": "worker pool broke while this trial ran"}))
            self.futures.clear()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
        return out

    def running(self) -> int:
        return min(len(self.futures), self.slots)

    def shutdown(self, grace_s: float = 30.0) -> None:
        """Trials still running (an interrupted sweep) get SIGTERM: each checkpoints and stops,
        like Ctrl-C, whether or not the signal that stopped the driver reached them."""
        procs = list((self.pool._processes or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.futures:
            for p in procs:
                p.terminate()
            for p in procs:
                p.join(timeout=grace_s)
                if p.is_alive():
                    p.kill()
        self.futures.clear()



def join_ray(ray, address: str, timeout: float) -> None:
    """ray.init(address=...) that gives up after `timeout` seconds with a clear message: at an
    address nobody answers, Ray itself retries for minutes and prints only its own warnings.
    A HOST:PORT is probed first (a refused or silent port fails at once); the join then runs in
    a daemon thread, abandoned if it has not finished in time."""
    import socket
    import threading

    def failed(why: str) -> QtcError:
        return QtcError(f"cannot join the Ray cluster at '{address}': {why}; hint: start one with "
                        "'ray start --head' and pass the address it prints, or leave out --address "
                        "for a local Ray")

    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in address:
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as err:
            raise failed(f"nothing answers there ({err.strerror or err})") from None
    outcome: list = []

    def join():
        try:
            ray.init(address=address, log_to_driver=False)
            outcome.append(None)
        except Exception as err:  # noqa: BLE001 - reported to the caller's thread below
            outcome.append(err)

    thread = threading.Thread(target=join, daemon=True, name="qtc-ray-join")
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise failed(f"no answer within {timeout:g} s (set QTC_RAY_TIMEOUT to wait longer)")
    if outcome[0] is not None:
        raise failed(str(outcome[0]).splitlines()[0] if str(outcome[0]) else type(outcome[0]).__name__)


class RayExecutor:
    """Trials as Ray tasks, each asking for its spec's CPUs and GPUs, each run as on a cluster
    whose nodes share no disk (qtc.tasks.experiments.remote): a finished run folder comes back
    in the task's value and is written into `out` here; checkpoints go to `storage` (a path or
    URI every node reaches), else to `out` through an actor on this driver's node."""
    name = "ray"

    def __init__(self, run, out: str, *, address: str | None = None, cpus: int | None = None,
                 storage: str | None = None, trials=()):
        import ray

        import qtc
        self.ray, self.run, self.out = ray, run, Path(out)
        self.version, self.refs, self.actor = qtc.__version__, {}, None
        t0 = time.perf_counter()
        self.owned = not ray.is_initialized()    # a Ray we start, we stop; a caller's stays up
        timeout = settings().ray_timeout
        if self.owned:
            if address:
                join_ray(ray, address, timeout)
            else:
                ray.init(**LOCAL_RAY, num_cpus=cpus or os.cpu_count() or 1)
        try:
            self.store = self._store(storage)
            needs = sorted({(t.dataset, t.overrides.get("data_root")) for t in trials if t.dataset},
                           key=str)
            data_files = sorted({(t.data_file["source"], t.data_file["path"], t.data_file["sha256"])
                                 for t in trials if t.data_file})
            self.nodes = check_nodes(ray, self.version, needs, max(timeout, NODE_CHECK_TIMEOUT),
                                     data_files)
        except BaseException:
            self.shutdown()
            raise
        self.startup_seconds = time.perf_counter() - t0
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.remote = ray.remote(_cluster_entry)

    def _store(self, uri: str | None):
        """Where trials keep their checkpoints: `uri`, else this driver's --out, written by an
        actor pinned to this node (no CPU of its own) that every node reaches through Ray."""
        if uri:
            return storage.open_storage(uri, self.out.name)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        here = NodeAffinitySchedulingStrategy(self.ray.get_runtime_context().get_node_id(), soft=False)
        self.actor = self.ray.remote(num_cpus=0)(storage.FolderStore).options(
            scheduling_strategy=here).remote(str(self.out))
        return ActorStore(self.actor)

    def submit(self, trial: Trial) -> None:
        ref = self.remote.options(num_cpus=trial.cpus, num_gpus=trial.gpus, max_retries=0,
                                  name=f"qtc:{trial.key}").remote(self.run, trial.to_dict(),
                                                                  self.store, self.version)
        self.refs[ref] = trial

    def wait(self, timeout: float) -> list[tuple[Trial, dict]]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            trial = self.refs.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except Exception as err:  # noqa: BLE001 - a crashed worker, a lost node, ...
                outcome = {"ok": False, "error": f"{type(err).__name__}: {str(err).strip()}",
                           "lost": isinstance(err, LOST)}
            if outcome.get("ok"):
                try:   # the finished run folder, into --out on this machine
                    storage.unpack(outcome.pop("files"), self.out / trial.key, self.out)
                except (OSError, QtcError) as err:
                    outcome = {"ok": False, "error": f"writing {self.out / trial.key}: {describe_error(err)}"}
            out.append((trial, outcome))
        return out

    def running(self) -> int:
        return min(len(self.refs), self.slots)

    def shutdown(self) -> None:
        # A plain cancel raises KeyboardInterrupt inside a running trial, so the engine saves a
        # mid-epoch checkpoint (sent to the store) before the worker stops.
        for ref in list(self.refs):
            self.ray.cancel(ref, force=False)
        if self.refs:
            self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=10)
        self.refs.clear()
        if self.owned:
            self.ray.shutdown()
        elif self.actor is not None:
            self.ray.kill(self.actor)


class ActorStore:
    """A store reached through a Ray actor: each put and get waited for, so a trial's last
    snapshot is stored before the trial returns."""

    def __init__(self, actor):
        self.actor = actor

    def __repr__(self) -> str:
        return "the driver's sweep folder"

    def put(self, key: str, files: dict) -> None:
        import ray
        ray.get(self.actor.put.remote(key, files))

    def get(self, key: str) -> dict | None:
        import ray
        return ray.get(self.actor.get.remote(key))


def _lost_errors() -> tuple:
    """Ray's errors for a trial whose worker or node died under it (not the trial's fault)."""
    try:
        import ray.exceptions as rx
    except ImportError:
        return ()
    return tuple(getattr(rx, n) for n in ("WorkerCrashedError", "NodeDiedError", "ObjectLostError",
                                          "OwnerDiedError", "LocalRayletDiedError") if hasattr(rx, n))


LOST = _lost_errors()


def check_nodes(ray, version: str, datasets: list, timeout: float, data_files: list = ()) -> list[str]:
    """Ask every live node (a task pinned to each, no CPU of its own) whether it can run this
    sweep's trials (remote.check_node: the same qtc, each data set and data file); the node names, or one
    QtcError naming every node that cannot and why, before any trial starts."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from qtc.tasks.experiments.remote import check_node
    probe = ray.remote(check_node)
    refs = {}
    for node in ray.nodes():
        if node.get("Alive") and node.get("Resources", {}).get("CPU"):
            where = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ref = probe.options(num_cpus=0, max_retries=0, scheduling_strategy=where).remote(
                version, datasets, list(data_files))
            refs[ref] = f"{node.get('NodeManagerAddress')} (node {node['NodeID'][:8]})"
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    names, problems = [], []
    for ref in ready:
        try:
            res = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - qtc missing or broken there
            problems.append(f"node {refs[ref]}: cannot run qtc there ({type(err).__name__}: "
                            f"{str(err).strip().splitlines()[-1]}); hint: install qtc[distributed] "
                            f"{version} on every node")
            continue
        names.append(res["node"])
        problems += [f"node {res['node']}: {p}" for p in res["problems"]]
    problems += [f"node {refs[ref]}: no answer within {timeout:g} s (set QTC_RAY_TIMEOUT to wait "
                 "longer)" for ref in pending]
    if problems:
        raise QtcError("this Ray cluster cannot run the sweep (checked on every node before "
                       "training):\n  " + "\n  ".join(problems))
    return names


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        return True
    except ImportError:
        return False


def make_executor(kind: str, run, out: str, *, address: str | None = None, workers: int | None = None,
                  storage: str | None = None, trials=()):
    """The executor `kind` running `run(trial_dict, out)` per trial; `auto` is Ray when it is
    installed, else the process pool. `storage` and `trials` (what the nodes are checked for)
    are the Ray executor's."""
    if kind == "auto":
        kind = "ray" if ray_available() or address else "process"
    if kind == "ray":
        if not ray_available():
            raise QtcError("the Ray executor needs the 'ray' package: pip install 'qtc[distributed]' "
                           "(or use --executor process)")
        return RayExecutor(run, out, address=address, cpus=workers, storage=storage, trials=trials)
    if address or storage:
        raise QtcError(f"--{'address' if address else 'storage'} is for the Ray executor "
                       f"(a cluster); it cannot be used with --executor {kind}")
    if kind == "process":
        return PoolExecutor(run, out, workers or os.cpu_count() or 1)
    if kind == "serial":
        return SerialExecutor(run, out)
    raise QtcError(f"unknown executor '{kind}': expected auto, ray, process or serial")

