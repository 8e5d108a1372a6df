"""How a CPU step uses threads: chosen per step, never slower than one thread would be.

Why a choice per step: OpenMP threads that wait (at a barrier between passes, or for the next
parallel region) spin by default. On a machine where other processes compete for the cores a
waiting thread burns the slice its descheduled peer needs, and a 2-thread step ran 11.5x
slower than 1 thread (measured on the project's busy 2-core machine). So, per step:

* below SERIAL_BELOW qubits, one thread: the step takes milliseconds, waking threads costs
  more than it saves;
* only as many threads as there are idle cores: the other runnable tasks of the machine
  (/proc/loadavg) take the rest, down to one thread on a busy machine;
* mode 0 (whole circuits per thread, costliest first, no barrier between passes) when there
  are at least two circuits per thread, else mode 1 (every pass split across the threads,
  one barrier per pass);
* waiting threads sleep instead of spinning: `configure_waiting` sets OMP_WAIT_POLICY=passive
  before the OpenMP runtime loads (qtc/__init__.py calls it before anything imports torch, whose
  libgomp the kernels share).

QTC_THREADS=k and QTC_CPU_MODE=0|1 (qtc.settings) override the choice; `qtc compile` prints it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from qtc.settings import Settings, setting

SERIAL_BELOW = 14          # qubits: smaller states run on one thread
# measured under load ~28 on 2 cores, one circuit at (15, 10), 2 threads and a barrier per
# pass: CPU 67 ms/step spinning (libgomp's default), 19 ms with GOMP_SPINCOUNT=10000, 3.3 ms
# passive, 2.6 ms on one thread
WAIT_POLICY = "passive"
MODES = {0: "whole circuits per thread, no barrier between passes",
         1: "every pass split across the threads, a barrier per pass"}
_waiting = "not configured (qtc.runtime.threads.configure_waiting was not called)"


def configure_waiting() -> str:
    """Make OpenMP's waiting threads sleep (OMP_WAIT_POLICY=passive), unless the user chose a wait
    policy or the OpenMP runtime is already loaded (then it would be too late); says which."""
    global _waiting
    user = [k for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ]
    if user:
        _waiting = "as the environment says (" + ", ".join(f"{k}={os.environ[k]}" for k in user) + ")"
    elif "torch" in sys.modules:
        _waiting = ("OpenMP default (spins ~300000 times): torch was imported before qtc; set "
                    f"OMP_WAIT_POLICY={WAIT_POLICY} in the environment to wait passively")
    else:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        _waiting = f"sleep (OMP_WAIT_POLICY={WAIT_POLICY}, set by qtc)"
    return _waiting


@dataclass(frozen=True)
class Setting:
    threads: int
    mode: int
    why: str

    def __str__(self) -> str:
        plural = "thread" if self.threads == 1 else "threads"
        return f"{self.threads} {plural}, mode {self.mode} ({MODES[self.mode]}): {self.why}"


def choose(n: int, circuits: int, requested: int, idle_cores: int, knobs: Settings | None = None) -> Setting:
    """The threads and mode of one step of `circuits` states of n qubits, given the threads
    torch may use (`requested`) and the cores no other task is running on; QTC_THREADS and
    QTC_CPU_MODE (`knobs`, default: the environment's qtc.settings) override."""
    forced, mode = (setting("threads"), setting("cpu_mode")) if knobs is None else (knobs.threads, knobs.cpu_mode)
    if forced:
        threads, why = forced, "QTC_THREADS"
    elif n < SERIAL_BELOW:
        threads, why = 1, f"{n} qubits < {SERIAL_BELOW}: one thread"
    elif idle_cores < requested:
        threads = max(1, idle_cores)
        why = f"{requested} allowed, {idle_cores} cores idle"
    else:
        threads, why = requested, f"{requested} allowed and idle"
    if mode is not None:
        return Setting(threads, mode, why + "; mode from QTC_CPU_MODE")
    return Setting(threads, 0 if threads == 1 or circuits >= 2 * threads else 1, why)


def for_step(n: int, circuits: int) -> Setting:
    """choose() for a step starting now: the threads torch may use, and the idle cores (read
    only where they matter: from SERIAL_BELOW qubits, with more than one thread allowed)."""
    import torch   # not at import time: configure_waiting must run before torch loads
    requested = torch.get_num_threads()
    idle = idle_cores() if n >= SERIAL_BELOW and requested > 1 else requested
    return choose(n, circuits, requested, idle)


def idle_cores(loadavg: str | None = None, own: int | None = None) -> int:
    """Cores of this process's CPU set that no other process's runnable task is using right
    now: the set's size minus the runnable tasks of /proc/loadavg that are not this process's
    own threads (the caller, and e.g. autograd's thread handing a backward over: counting those
    made an idle machine look busy and a 2-thread step run on one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = loadavg if loadavg is not None else open("/proc/loadavg").read()
        running = int(text.split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return cores
    others = max(0, running - (own if own is not None else own_running()))
    return max(0, cores - others)


def own_running() -> int:
    """This process's threads that are runnable now (at least 1: the caller)."""
    count = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        count += stat[stat.rindex(")") + 2] == "R"
    return max(1, count)


def describe(prog) -> str:
    """What a cpu step of the Program `prog` would use now, and how waiting threads wait (for
    `qtc compile`; it depends on the machine, so it is not in report.txt)."""
    import torch
    if prog.form == "channel":
        from qtc.runtime.channel_kernels import channel_threads
        return f"cpu threads now: {channel_threads(prog.qubits)} (channel form)"
    if prog.form == "sampled":
        return f"cpu threads now: {torch.get_num_threads()} (sampled form: architectures in parallel)"
    circuits = len(prog.groups()["circuit"])      # the kernels' (not constants or phase forms)
    return (f"cpu threads now: {choose(prog.qubits, circuits, torch.get_num_threads(), idle_cores())} "
            f"(QTC_THREADS / QTC_CPU_MODE override); waiting threads: {_waiting}")
