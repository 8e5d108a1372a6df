"""Benchmark: one generator training step of the paper's 12-candidate ensemble (shared theta).

A step is P = sum_c w_c p_c(theta) (forward), loss = g . P, loss.backward() (theta and w).
For every (n, L), load (--load: idle, and busy = two busy-loop processes the benchmark starts
itself), backend and thread count (--threads, default 1 and 2; the reference runs on one thread,
cuda and cuda-graph on the largest count) it reports, over --reps steps after one warm-up step:
  - the median wall and CPU seconds per step (forward and backward apart); GPU steps are timed
    after torch.cuda.synchronize(), so the clock sees the kernels finish;
  - the cold compile: every measurement runs in its own process with an empty kernel cache, so
    the compiled backends render and build their kernels (g++, or NVRTC on cuda, whose part is
    reported too; the compact rendering's CPU kernel library, built once per dtype and machine
    and linked by every program, is timed apart: "+ library X s once") from scratch; with --renderings unrolled compact, once per rendering (the
    row's backend says which ran, e.g. "cpu [compact]");
  - the load average and the thread setting the cpu backend's last pass ran with
    (qtc.runtime.threads), since a loaded machine changes both;
  - the ratio to the reference backend and to Qulacs at its best thread count (same size and
    load), and the peak RSS of the process.
--programs chooses what a step runs: the ensemble (DiffQAS-QT's generator), config 2 alone
(one real circuit), or the fixed baselines, each candidate's own program in turn (fixed12: all
twelve; fixed-trained: the ones a run trains, a merged twin once); the summary prints busy / idle
and fixed / ensemble ratios. It also prints the compiler's cost model (bytes moved and flops per step, the time those bytes
take at the memory bandwidth of an H100, and the step an H200 should take with its launch
overhead, launched kernel by kernel or replayed as a CUDA graph) and, with --breakdown, where
the time of the cpu backend goes at the largest size (forward vs backward, per circuit and per
pass; one thread). `cuda-graph` is the cuda backend with QTC_CUDA_GRAPHS=1. --json writes the
cost models and the rows (bench/gpu_check.py reads them).

    python bench/generator_step.py                       # (11,10) (13,10) (17,15), all backends
    python bench/generator_step.py --sizes 17,15 --backends cpu --breakdown
    python bench/generator_step.py --sizes 13,10 --backends cpu --programs ensemble,single,fixed-trained
    python bench/generator_step.py --backends cuda cuda-graph cpu --dtype float32 --load idle \\
        --threads 16 --json steps.json

PennyLane default.qubit and Qulacs are timed on the same circuits when installed (each is
skipped with a note otherwise; `pip install -e .[bench]` brings Qulacs).
This is a benchmark, not a test: compare the backends of one run, not runs across machines.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "specs" / "hadamard_ent_rot.qs"
SIZES = [(11, 10), (13, 10), (17, 15)]
H100 = 3.35e12
LOADS = ("idle", "busy")
KINDS = ("ensemble", "single", "fixed12", "fixed-trained")
OPTIONAL = ("pennylane", "qulacs")        # timed when installed; the module has the same name
GPU = ("cuda", "cuda-graph")              # the host's thread count does not matter to these


def _program(n: int, depth: int):
    import qtc
    return qtc.compile(str(SPEC), qubits=n, depth=depth)


def _programs(kind: str, n: int, depth: int) -> list:
    """The programs one step of `kind` runs: the ensemble (DiffQAS-QT's generator), one real
    circuit alone (config 2, H-ent-RY), or the fixed baselines: all twelve candidates alone
    (fixed12) or the ones a run trains (fixed-trained: a compiler-merged twin is trained once)."""
    from qtc.compiler.pipeline import only_candidate
    from qtc.tasks.build import tied_candidates
    prog = _program(n, depth)
    if kind == "ensemble":
        return [prog]
    if kind == "single":
        return [only_candidate(prog, 1)]
    skip = tied_candidates(prog) if kind == "fixed-trained" else {}
    return [only_candidate(prog, k) for k in range(len(prog.labels)) if k not in skip]


def _inputs(prog, dtype):
    import torch
    gen = torch.Generator().manual_seed(0)
    theta = (torch.randn(prog.depth, prog.qubits, generator=gen, dtype=torch.float64) * 0.5).to(dtype)
    weights = torch.full((len(prog.labels),), 1 / len(prog.labels), dtype=dtype)
    g = torch.randn(2 ** prog.qubits, generator=gen, dtype=torch.float64).to(dtype)
    return theta, weights, g


# --- one measurement (in its own process) ------------------------------------------------------

def measure(label: str, n: int, depth: int, reps: int, dtype_name: str, threads: int,
            kind: str = "ensemble") -> dict:
    """Median step time of one backend, in this process (called in a fresh subprocess whose
    kernel cache is empty: the compiled backends' build is timed as the cold compile). A step of
    several programs (the fixed baselines) runs one step of each in turn."""
    import qtc.runtime.backends  # noqa: F401 - before torch: qtc makes OpenMP's waiting threads sleep
    import torch
    torch.set_num_threads(threads)
    backend = "cuda" if label == "cuda-graph" else label
    if label == "cuda-graph":      # read (qtc.settings) when the programs' launchers are made
        os.environ["QTC_CUDA_GRAPHS"] = "1"
    dtype = getattr(torch, dtype_name)
    progs = _programs(kind, n, depth)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    library_s = _library_build(progs, backend, dtype_name)
    built = [_cold_compile(p, backend, dtype_name) for p in progs]
    compile_s = None if built[0][1] is None else sum(s for _, s in built)
    steps = [_step(p, backend, *_inputs(p, dtype)) for p in progs]
    times = _time_steps(steps[0] if len(steps) == 1 else _in_turn(steps), reps)
    comp = built[-1][0]
    rendering = "-" if comp is None else comp.rendered.target.rendering   # which kernels ran
    return {"backend": label, "rendering": rendering, "program": kind, "programs": len(progs), "n": n, "L": depth,
            **times, "reps": reps, "threads": threads,
            "compile_s": compile_s, "library_s": library_s, "nvrtc_s": _nvrtc_seconds(comp),
            "setting": _setting(comp),
            "loadavg": os.getloadavg()[0],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "baseline_mb": baseline}


def _cold_compile(prog, backend: str, dtype_name: str):
    """(Compiled, seconds to render and build its kernels) for cpu and cuda, else (None, None);
    the subprocess's kernel cache is empty, so this is the cold compile."""
    if backend not in ("cpu", "cuda"):
        return None, None
    from qtc.compiler.target import Target
    from qtc.settings import settings
    from qtc.runtime.kernels import compiled
    t = time.perf_counter()
    comp = compiled(prog, Target(device=backend, dtype=dtype_name, rendering=settings().rendering))
    return comp, time.perf_counter() - t


def _in_turn(steps):
    """One step of each program in turn, as one step: (forward, backward) seconds summed."""
    def step():
        f = b = 0.0
        for s in steps:
            df, db = s()
            f, b = f + df, b + db
        return f, b
    return step


def _library_build(progs: list, backend: str, dtype_name: str) -> float | None:
    """Seconds to build the compact rendering's CPU kernel library (None when no program of the
    step renders compact): once per dtype and machine, then every program links it, so it is
    timed apart from the programs' cold compile."""
    if backend != "cpu":
        return None
    from qtc.compiler.pipeline import to_kernels
    from qtc.compiler.target import Target
    from qtc.runtime.cache import CPU_FLAGS, cache_dir, find_compiler, library_object
    from qtc.settings import settings
    target = Target(device="cpu", dtype=dtype_name, rendering=settings().rendering)
    library = next((r.library for r in map(lambda p: to_kernels(p, target), progs) if r.library), "")
    if not library:
        return None
    t = time.perf_counter()
    library_object(library, find_compiler(), CPU_FLAGS, cache_dir())
    return time.perf_counter() - t


def _nvrtc_seconds(comp) -> float | None:
    """NVRTC's part of the cold compile on cuda (None elsewhere, or with no circuit to run)."""
    return getattr(getattr(getattr(comp, "launcher", None), "launcher", None), "compile_seconds", None)


def _setting(comp) -> str:
    """The thread setting of the cpu backend's last pass (qtc.runtime.threads); '-' elsewhere."""
    s = getattr(getattr(comp, "launcher", None), "last_setting", None)
    return "-" if s is None else f"{s.threads}t mode {s.mode}"


def _time_steps(step, reps: int) -> dict:
    """Medians over `reps` steps after a warm-up step: wall (total, forward, backward) and CPU."""
    t = time.perf_counter()
    step()
    warm = time.perf_counter() - t
    fwd, bwd, total, cpu = [], [], [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        f, b = step()
        total.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        fwd.append(f)
        bwd.append(b)
    return {"median": statistics.median(total), "forward": statistics.median(fwd),
            "backward": statistics.median(bwd), "cpu_time": statistics.median(cpu), "warmup": warm}


def _step(prog, backend: str, theta0, weights0, g):
    """A function running one step and returning its (forward, backward) wall seconds."""
    if backend == "pennylane":
        return _pennylane_step(prog, theta0, weights0, g)
    if backend == "qulacs":
        return _qulacs_step(prog, theta0, weights0, g)
    import torch
    sync = torch.cuda.synchronize if backend == "cuda" else (lambda: None)

    def step():
        theta = theta0.clone().requires_grad_()
        weights = weights0.clone().requires_grad_()
        t0 = time.perf_counter()
        P = prog.probabilities(theta, weights, backend=backend)
        sync()
        t1 = time.perf_counter()
        (P @ g).backward()
        sync()
        return t1 - t0, time.perf_counter() - t1
    return step


def _qulacs_step(prog, theta0, weights0, g):
    """Qulacs on the same (unoptimised) candidate circuits: forward, then the adjoint gradient
    of g . P per circuit (backprop_inner_product with the bra g * psi); numpy, no torch."""
    import numpy as np
    from qulacs import ParametricQuantumCircuit, QuantumState
    from qtc.compiler.ir import Angle
    n, theta, weights, gv = prog.qubits, theta0.double().numpy(), weights0.double().numpy(), g.double().numpy()
    circuits = []
    for circ in prog.source:
        qc, slots = ParametricQuantumCircuit(n), []
        for op in circ.ops:
            if op.gate == "h":
                qc.add_H_gate(op.qubits[0])
            elif op.gate in ("cnot", "cx"):
                qc.add_CNOT_gate(*op.qubits)
            elif op.gate in ("rx", "ry", "rz") and isinstance(op.angle, Angle):
                # Qulacs' R(t) = exp(+i t P / 2): pass -theta
                getattr(qc, f"add_parametric_{op.gate.upper()}_gate")(op.qubits[0], 0.0)
                slots.append(op.angle.layer * n + op.angle.qubit)
            else:
                raise SystemExit(f"the Qulacs comparison supports h, cnot and theta rotations, not {op}")
        circuits.append((qc, slots))

    def step():
        t0 = time.perf_counter()
        flat, states = theta.reshape(-1), []
        P = np.zeros(1 << n)
        for (qc, slots), w in zip(circuits, weights):
            for i, k in enumerate(slots):
                qc.set_parameter(i, -flat[k])
            st = QuantumState(n)
            qc.update_quantum_state(st)
            psi = st.get_vector()
            P += w * np.abs(psi) ** 2
            states.append(psi)
        t1 = time.perf_counter()
        grad = np.zeros_like(flat)
        for (qc, slots), w, psi in zip(circuits, weights, states):
            bra = QuantumState(n)
            bra.load(2 * w * gv * psi)
            for k, d in zip(slots, qc.backprop_inner_product(bra)):
                grad[k] -= d
        return t1 - t0, time.perf_counter() - t1
    return step


def _pennylane_step(prog, theta0, weights0, g):
    """PennyLane default.qubit on the same (unoptimised) candidate circuits, torch interface."""
    import pennylane as qml
    import torch
    from qtc.compiler.ir import Angle
    n = prog.qubits
    dev = qml.device("default.qubit", wires=n)
    ops = {"h": qml.Hadamard, "cnot": qml.CNOT, "rx": qml.RX, "ry": qml.RY, "rz": qml.RZ}

    def circuit_fn(circ):
        @qml.qnode(dev, interface="torch", diff_method="backprop")
        def run(theta):
            for op in circ.ops:
                wires = [n - 1 - q for q in op.qubits]    # PennyLane wire 0 is the MSB
                if op.angle is None:
                    ops[op.gate](wires=wires)
                else:
                    a = theta[op.angle.layer, op.angle.qubit] if isinstance(op.angle, Angle) else op.angle
                    ops[op.gate](a, wires=wires)
            return qml.probs(wires=list(range(n)))
        return run
    runs = [circuit_fn(c) for c in prog.source]

    def step():
        theta = theta0.clone().requires_grad_()
        weights = weights0.clone().requires_grad_()
        t0 = time.perf_counter()
        P = sum(w * r(theta) for w, r in zip(weights, runs))
        t1 = time.perf_counter()
        (P @ g).backward()
        return t1 - t0, time.perf_counter() - t1
    return step


def breakdown(n: int, depth: int, dtype_name: str) -> str:
    """Per-pass times of the cpu kernels (one thread, every kernel timed separately)."""
    import torch
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled
    dtype = getattr(torch, dtype_name)
    prog = _program(n, depth)
    comp = compiled(prog, Target(dtype=dtype_name))
    plan = comp.plan
    theta, weights, g = _inputs(prog, dtype)
    wn = (comp.S @ weights)[:comp.ncirc].contiguous()
    nf = sum(len(c.fwd) for c in plan.circuits)
    nb = sum(len(c.bwd) for c in plan.circuits)
    out = torch.zeros(nf + nb + 3, dtype=torch.float64)
    st = torch.empty(plan.size, dtype=dtype)
    lam = torch.empty_like(st)
    P = torch.empty(1 << n, dtype=dtype)
    gth = torch.zeros(theta.numel(), dtype=torch.float64)
    gw = torch.zeros(comp.ncirc, dtype=torch.float64)
    lib = comp.launcher.lib
    best = None
    for _ in range(3):
        lib.call("qtc_profile", st=st, lam=lam, th=theta, wn=wn, P=P, g=g, gth=gth, gw=gw, out=out)
        best = out.clone() if best is None else torch.minimum(best, out)
    lib.call("qtc_threads", k=torch.get_num_threads())
    t = best.tolist()
    init, fwd, outp, binit, bwd = t[0], t[1:1 + nf], t[1 + nf], t[2 + nf], t[3 + nf:]
    lines = [f"time breakdown, cpu backend, (n, L) = ({n}, {depth}), {dtype_name}, ONE thread "
             f"(best of 3 per kernel):",
             f"  forward  {init + sum(fwd) + outp:8.4f} s  (init {init:.4f}, passes {sum(fwd):.4f}, "
             f"output gather {outp:.4f})",
             f"  backward {binit + sum(bwd):8.4f} s  (adjoint init {binit:.4f}, passes {sum(bwd):.4f})",
             "  per circuit: forward passes / backward passes (count, seconds, ms per pass)"]
    i = j = 0
    for c in plan.circuits:
        f = fwd[i:i + len(c.fwd)]
        b = bwd[j:j + len(c.bwd)]
        i, j = i + len(c.fwd), j + len(c.bwd)
        kind = "real" if c.real else "complex"
        lines.append(f"    {c.label:<14} {kind:<7} fwd {len(f):3d} x {1e3 * sum(f) / len(f):.3f} ms = "
                     f"{sum(f):.4f} s   bwd {len(b):3d} x {1e3 * sum(b) / len(b):.3f} ms = {sum(b):.4f} s")
    return "\n".join(lines)


def cost_model(n: int, depth: int, dtype_name: str) -> dict:
    """Bytes and flops per step from the plan, the H100 memory time, the H200 predicted step."""
    from qtc.compiler.cost import bytes_moved
    from qtc.compiler.pipeline import to_kernels
    from qtc.compiler.target import Target
    from qtc.runtime.cuda import predicted_step
    r = to_kernels(_program(n, depth), Target(dtype=dtype_name))
    moved = bytes_moved(r.plan, r.target.itemsize)["total"]
    return {"bytes": moved, "flops": r.fwd_flops + r.bwd_flops, "h100_s": moved / H100,
            "h200": predicted_step(r),
            "h200_graph": predicted_step(r, graph=True)}


# --- the driver --------------------------------------------------------------------------------

def _subprocess(args, threads: int, rendering: str = "auto") -> dict | None:
    """One measurement in a fresh process with an empty kernel cache, `threads` OpenMP threads
    (Qulacs reads OMP_NUM_THREADS when it loads) and the compiled backends' kernels rendered as
    `rendering` (QTC_RENDERING)."""
    cmd = [sys.executable, __file__, "--one", *map(str, args), str(threads)]
    with tempfile.TemporaryDirectory(prefix="qtc-bench-cache-") as cache:
        env = os.environ | {"QTC_CACHE_DIR": cache, "OMP_NUM_THREADS": str(threads),
                            "QTC_RENDERING": rendering}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        print(f"  {args[0]} at ({args[1]}, {args[2]}) failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def competing_load(kind: str):
    """'busy': two busy-loop processes compete for the cores while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if kind == "busy" else 0)]
    try:
        time.sleep(1.0 if procs else 0.0)    # let the scheduler see them
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _thread_counts(backend: str, allowed: list[int]) -> list[int]:
    """The reference on one thread (it is the slow baseline), GPU backends once, others each."""
    return [1] if backend == "reference" else [max(allowed)] if backend in GPU else allowed


def _measure_size(n: int, L: int, load: str, kind: str, backends, allowed, args) -> list[dict]:
    """Every backend x thread count at one size, program kind and load; ratios within that set."""
    out = []
    with competing_load(load):
        for b in backends:
            reps = max(3, args.reps // 2) if b in ("reference", "pennylane") and n >= 15 else args.reps
            for t in _thread_counts(b, allowed):
                for rendering in (args.renderings if b in ("cpu",) + GPU else ["auto"]):
                    r = _subprocess([b, n, L, reps, args.dtype, kind], t, rendering)
                    if r is not None:
                        out.append(r | {"load": load})
                        print(_progress(out[-1]))
    ref = min((r["median"] for r in out if r["backend"] == "reference"), default=None)
    qulacs = min((r["median"] for r in out if r["backend"] == "qulacs"), default=None)
    for r in out:
        r["ratio"] = None if ref is None else ref / r["median"]
        r["vs_qulacs"] = None if qulacs is None else qulacs / r["median"]
    return out


def _name(r: dict) -> str:
    """The backend with the rendering its compiled kernels used: ``cpu [unrolled]``."""
    return r["backend"] + ("" if r.get("rendering", "-") == "-" else f" [{r['rendering']}]")


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


def _progress(r: dict) -> str:
    built = "" if r["compile_s"] is None else f"; cold compile {r['compile_s']:.2f} s" + \
        ("" if r["nvrtc_s"] is None else f" (NVRTC {r['nvrtc_s']:.2f} s)") + \
        ("" if r.get("library_s") is None else f" + library {r['library_s']:.2f} s once")
    return (f"  {r['program']:<13} {r['load']:<5} {_name(r):<15} {r['threads']} threads allowed ({r['setting']}): wall "
            f"{r['median']:.4f} s/step (fwd {r['forward']:.4f}, bwd {r['backward']:.4f}), CPU "
            f"{r['cpu_time']:.4f} s/step, first step {r['warmup']:.2f} s, load avg {r['loadavg']:.1f}{built}")


def _model_line(n: int, L: int, m: dict) -> str:
    h200, graph = m["h200"], m["h200_graph"]
    return (f"\n(n, L) = ({n}, {L}): cost model {m['bytes'] / 1e6:.1f} MB moved, {m['flops'] / 1e9:.3f} "
            f"GFlop per step -> {m['h100_s'] * 1e6:.1f} us at the H100's 3.35 TB/s; H200 predicted "
            f"{h200['total_s'] * 1e6:.0f} us ({h200['memory_s'] * 1e6:.0f} us memory + {h200['launches']} "
            f"launches x 5 us), as a CUDA graph {graph['total_s'] * 1e6:.0f} us")


TABLE = ("| (n, L) | program | backend | load | threads allowed | cpu setting | median wall s/step | CPU s/step | "
         "cold compile s (NVRTC; + compact library once) | load avg | vs reference | vs Qulacs (best threads) | peak RSS MB "
         "(over import) |\n|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")


def _row(r: dict) -> str:
    compile_s = _fmt(r["compile_s"], ".2f") + ("" if r["nvrtc_s"] is None else f" ({r['nvrtc_s']:.2f})") \
        + ("" if r.get("library_s") is None else f" + lib {r['library_s']:.1f}")
    return (f"| ({r['n']}, {r['L']}) | {r['program']} ({r['programs']}) | {_name(r)} | {r['load']} | {r['threads']} | {r['setting']} | "
            f"{r['median']:.4f} | {r['cpu_time']:.4f} | {compile_s} | {r['loadavg']:.1f} | "
            f"{_times(r['ratio'])} | {_times(r['vs_qulacs'])} | {r['peak_rss_mb']:.0f} "
            f"(+{r['peak_rss_mb'] - r['baseline_mb']:.0f}) |")


def summary(rows: list[dict]) -> list[str]:
    """The issue's ratios from the rows: busy / idle per program, backend and thread count, and
    the fixed baselines' step over the ensemble's (each at its best thread count, same load)."""
    def med(n, L, kind, backend, load, threads=None):
        hits = [r["median"] for r in rows if (r["n"], r["L"], r["program"], _name(r), r["load"]) ==
                (n, L, kind, backend, load) and threads in (None, r["threads"])]
        return min(hits, default=None)
    out = []
    for n, L, kind, backend, threads in sorted({(r["n"], r["L"], r["program"], _name(r), r["threads"])
                                                for r in rows}):
        idle, busy = med(n, L, kind, backend, "idle", threads), med(n, L, kind, backend, "busy", threads)
        if idle and busy:
            out.append(f"({n}, {L}) {kind:<13} {backend:<10} {threads} threads allowed: busy / idle "
                       f"= {busy / idle:.2f}x")
    for n, L, backend, load in sorted({(r["n"], r["L"], _name(r), r["load"]) for r in rows}):
        ens = med(n, L, "ensemble", backend, load)
        for kind in ("fixed12", "fixed-trained"):
            fixed = med(n, L, kind, backend, load)
            if ens and fixed:
                out.append(f"({n}, {L}) {backend:<10} {load:<5}: {kind} / ensemble = {fixed / ens:.2f}x "
                           f"(best thread count each)")
    return out


def _backends(requested: list[str] | None, ap) -> list[str]:
    """The requested backends (each available, else a clear error), or by default the reference,
    every available compiled backend and the optional libraries that are installed."""
    from qtc.errors import QtcError
    from qtc.runtime.backends import available_backends, resolve
    if requested is None:
        return [b for b in ["reference", "cpu", "cuda"] if b in available_backends()] + \
            [b for b in OPTIONAL if _installed(b, note=True)]
    for b in requested:
        if b in OPTIONAL:
            if not _installed(b, note=False):
                ap.error(f"{b} is not installed (pip install {b})")
            continue
        try:
            resolve("cuda" if b == "cuda-graph" else b)
        except QtcError as e:
            ap.error(str(e))
    return requested


def _installed(module: str, note: bool) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        if note:
            print(f"{module} is not installed: its rows are skipped (pip install {module})")
        return False


def _size(text: str) -> tuple[int, int]:
    try:
        n, L = map(int, text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is n,L (two whole numbers), got {text!r}") from None
    if n < 1 or L < 1:
        raise argparse.ArgumentTypeError(f"n and L must be positive, got {text!r}")
    return n, L


def _positive_list(text: str) -> list[int]:
    parts = text.split(",")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by commas, got {text!r}")
    return [int(p) for p in parts]


def _loads(text: str) -> list[str]:
    bad = [k for k in text.split(",") if k not in LOADS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown load {bad[0]!r}: choose from {', '.join(LOADS)}")
    return text.split(",")


def _kinds(text: str) -> list[str]:
    bad = [k for k in text.split(",") if k not in KINDS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown program {bad[0]!r}: choose from {', '.join(KINDS)}")
    return text.split(",")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", type=_size, default=SIZES, help="n,L pairs")
    ap.add_argument("--backends", "--backend", nargs="*", default=None,
                    help="default: reference + every available + PennyLane/Qulacs when installed; "
                         "also cuda-graph (cuda, replayed as a graph)")
    ap.add_argument("--reps", type=int, default=7, help="timed steps per backend (reference: fewer)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=_positive_list, default=[1, 2], help="thread counts to allow, e.g. 1,2")
    ap.add_argument("--load", type=_loads, default=list(LOADS), help="idle and/or busy (two busy-loop processes)")
    ap.add_argument("--programs", type=_kinds, default=["ensemble"],
                    help="what a step runs: ensemble (DiffQAS-QT), single (config 2 alone), fixed12 "
                         "(the 12 baselines, each alone, in turn), fixed-trained (those a run trains: "
                         "merged twins once); comma-separated")

    ap.add_argument("--renderings", nargs="+", default=["auto"], choices=["auto", "unrolled", "compact"],
                    help="the kernel renderings to time on cpu and cuda (each with its cold compile)")
    ap.add_argument("--breakdown", action="store_true", help="per-pass times at the largest size")
    ap.add_argument("--json", type=Path, help="also write the cost models and the rows to this file")
    ap.add_argument("--one", nargs=7, help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> None:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.one:
        backend, n, L, reps, dtype, kind, threads = args.one
        print(json.dumps(measure(backend, int(n), int(L), int(reps), dtype, int(threads), kind)))
        return
    if args.reps < 1:
        ap.error(f"--reps must be at least 1, got {args.reps}")
    backends = _backends(args.backends, ap)
    print(f"generator step = forward + backward of the 12-candidate paper ensemble, {args.dtype}; "
          f"load average at the start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows, models = [], {}
    for n, L in args.sizes:
        models[f"{n},{L}"] = cost_model(n, L, args.dtype)
        print(_model_line(n, L, models[f"{n},{L}"]))
        for kind in args.programs:
            for load in args.load:
                rows += _measure_size(n, L, load, kind, backends, args.threads, args)
    print("\n" + TABLE)
    print("\n".join(_row(r) for r in rows))
    ratios = summary(rows)
    if ratios:
        print("\n" + "\n".join(ratios))
    if args.json:
        args.json.write_text(json.dumps({"dtype": args.dtype, "models": models, "rows": rows}, indent=1))
    if args.breakdown and "cpu" in backends:
        n, L = max(args.sizes)
        print("\n" + breakdown(n, L, args.dtype))


if __name__ == "__main__":
    main()
