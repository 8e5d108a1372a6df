"""Benchmark: one generator training step of the paper's 12-candidate ensemble (shared theta).

A step is P = sum_c w_c p_c(theta) (forward), loss = g . P, loss.backward() (theta and w).
For every (n, L), backend, thread count (--threads, default 1 and 2) and load (--load: idle, and
busy = two busy-loop processes the benchmark starts itself) it reports the median wall and CPU
seconds per step over --reps steps, the cold compile time (a fresh kernel cache), the load
average, the thread setting the cpu backend chose (runtime/threads.py), the ratio to the
reference backend and to Qulacs (its best thread count, same run and load), and the peak RSS
(each measurement runs in its own subprocess). It also
prints the compiler's cost model (bytes moved and flops per step, and the time those bytes take
at the memory bandwidth of an H100) and, with --breakdown, where the time of the cpu backend
goes at the largest size (forward vs backward, per circuit and per pass; one thread).

    python bench/generator_step.py                       # (11,10) (13,10) (17,15), all backends
    python bench/generator_step.py --sizes 17,15 --backends cpu --breakdown

PennyLane default.qubit and Qulacs are timed on the same circuits when installed (each is
skipped with a note otherwise; `pip install qulacs`).
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


def _program(n: int, depth: int):
    import qtc
    return qtc.compile(str(SPEC), qubits=n, depth=depth)


def _inputs(prog, dtype):
    import torch
    gen = torch.Generator().manual_seed(0)
    theta = (torch.randn(prog.depth, prog.qubits, generator=gen, dtype=torch.float64) * 0.5).to(dtype)
    weights = torch.full((len(prog.labels),), 1 / len(prog.labels), dtype=dtype)
    g = torch.randn(2 ** prog.qubits, generator=gen, dtype=torch.float64).to(dtype)
    return theta, weights, g


def measure(backend: str, n: int, depth: int, reps: int, dtype_name: str, threads: int) -> dict:
    """Median step time of one backend, in this process (called in a fresh subprocess whose
    kernel cache is empty: the compiled backends' build is timed as the cold compile)."""
    import torch
    import qtc.runtime.backends  # noqa: F401 - everything imported before the baseline
    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    prog = _program(n, depth)
    theta0, weights0, g = _inputs(prog, dtype)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    compile_s = _cold_compile(prog, backend, dtype_name)
    if backend == "pennylane":
        step = _pennylane_step(prog, theta0, weights0, g)
    elif backend == "qulacs":
        step = _qulacs_step(prog, theta0, weights0, g)
    else:
        def step():
            theta = theta0.clone().requires_grad_()
            weights = weights0.clone().requires_grad_()
            t0 = time.perf_counter()
            P = prog.probabilities(theta, weights, backend=backend)
            t1 = time.perf_counter()
            (P @ g).backward()
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1
    t = time.perf_counter()
    step()                                        # warm-up
    warm = time.perf_counter() - t
    fwd, bwd, total, cpu = [], [], [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        f, b = step()
        total.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        fwd.append(f)
        bwd.append(b)
    return {"backend": backend, "n": n, "L": depth, "median": statistics.median(total),
            "forward": statistics.median(fwd), "backward": statistics.median(bwd),
            "cpu_time": statistics.median(cpu), "warmup": warm, "compile_s": compile_s, "reps": reps,
            "threads": threads, "setting": _setting(prog, backend, threads),
            "loadavg": os.getloadavg()[0],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "baseline_mb": baseline}


def _cold_compile(prog, backend: str, dtype_name: str) -> float | None:
    """Seconds to render and build the kernels (the subprocess's kernel cache is empty)."""
    if backend not in ("cpu", "cuda"):
        return None
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled
    t = time.perf_counter()
    compiled(prog, Target(device=backend, dtype=dtype_name))
    return time.perf_counter() - t


def _setting(prog, backend: str, threads: int) -> str:
    """The thread setting the cpu backend chooses at the end of the run (runtime/threads.py)."""
    if backend != "cpu":
        return "-"
    from qtc.compiler.ir import Circuit
    from qtc.runtime.threads import choose, idle_cores
    circuits = sum(isinstance(c, Circuit) for c in prog.circuits)
    s = choose(prog.qubits, circuits, threads, idle_cores())
    return f"{s.threads}t mode {s.mode}"


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
    import ctypes
    import torch
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import bind, compiled
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
    lib.qtc_profile.argtypes = [ctypes.c_void_p] * len(comp.rendered.signature["qtc_profile"])
    tensors = dict(st=st, lam=lam, th=theta, wn=wn, P=P, g=g, gth=gth, gw=gw, out=out)
    args = bind(comp.rendered, "qtc_profile", {k: t.data_ptr() for k, t in tensors.items()})
    best = None
    for _ in range(3):
        lib.qtc_profile(*args)
        best = out.clone() if best is None else torch.minimum(best, out)
    lib.qtc_threads(torch.get_num_threads())
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
    from qtc.compiler.cost import bytes_moved
    from qtc.compiler.pipeline import to_kernels
    from qtc.compiler.target import Target
    r = to_kernels(_program(n, depth), Target(dtype=dtype_name))
    moved = bytes_moved(r.plan, r.target.itemsize)["total"]
    return {"bytes": moved, "flops": r.fwd_flops + r.bwd_flops, "h100_s": moved / H100}


def _subprocess(args, threads: int) -> dict | None:
    """One measurement in a fresh process with an empty kernel cache and `threads` OpenMP
    threads (Qulacs reads OMP_NUM_THREADS when it loads)."""
    cmd = [sys.executable, __file__, "--one", *map(str, args), str(threads)]
    with tempfile.TemporaryDirectory(prefix="qtc-bench-cache-") as cache:
        env = os.environ | {"QTC_CACHE_DIR": cache, "OMP_NUM_THREADS": str(threads)}
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


def _optional(backends: list[str]) -> list[str]:
    """PennyLane and Qulacs when installed (a note when not)."""
    out = []
    for name, module in (("pennylane", "pennylane"), ("qulacs", "qulacs")):
        try:
            __import__(module)
            out.append(name)
        except ImportError:
            print(f"{name} is not installed: its rows are skipped (pip install {module})")
    return [b for b in out if b not in backends]


def _row(r: dict) -> str:
    compile_s = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
    return (f"| ({r['n']}, {r['L']}) | {r['backend']} | {r['load']} | {r['threads']} | {r['setting']} | "
            f"{r['median']:.4f} | {r['cpu_time']:.4f} | {compile_s} | {r['loadavg']:.1f} | "
            f"{r['ratio']:.1f}x | {r['vs_qulacs']:.1f}x | {r['peak_rss_mb']:.0f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=[f"{n},{L}" for n, L in SIZES], help="n,L pairs")
    ap.add_argument("--backends", nargs="*", default=None, help="default: reference + every available")
    ap.add_argument("--reps", type=int, default=7, help="timed steps per backend (reference: fewer)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", default="1,2", help="thread counts to allow, comma-separated")
    ap.add_argument("--load", default="idle,busy", help="idle and/or busy (two busy-loop processes)")
    ap.add_argument("--breakdown", action="store_true", help="per-pass times at the largest size")
    ap.add_argument("--one", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        backend, n, L, reps, dtype, threads = args.one
        print(json.dumps(measure(backend, int(n), int(L), int(reps), dtype, int(threads))))
        return
    from qtc.runtime.backends import available_backends
    backends = args.backends or [b for b in ["reference", "cpu", "cuda"] if b in available_backends()]
    backends += _optional(backends) if args.backends is None else []
    sizes = [tuple(map(int, s.split(","))) for s in args.sizes]
    thread_counts = [int(t) for t in args.threads.split(",")]
    loads = args.load.split(",")
    print(f"generator step = forward + backward of the 12-candidate paper ensemble, {args.dtype}; "
          f"load average at the start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows = []
    for n, L in sizes:
        model = cost_model(n, L, args.dtype)
        print(f"\n(n, L) = ({n}, {L}): cost model {model['bytes'] / 1e6:.1f} MB moved, "
              f"{model['flops'] / 1e9:.3f} GFlop per step -> {model['h100_s'] * 1e6:.1f} us at the H100's "
              f"3.35 TB/s")
        for load in loads:
            rows += _measure_size(n, L, load, backends, thread_counts, args)
    print("\n| (n, L) | backend | load | threads allowed | cpu setting | median wall s/step | "
          "CPU s/step | cold compile s | load avg | vs reference | vs Qulacs (best threads) | peak RSS MB |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(_row(r))
    if args.breakdown and "cpu" in backends:
        n, L = max(sizes)
        print("\n" + breakdown(n, L, args.dtype))


def _measure_size(n: int, L: int, load: str, backends, thread_counts, args) -> list[dict]:
    """Every backend x thread count at one size under one load; ratios within that set."""
    out = []
    with competing_load(load):
        for b in backends:
            reps = max(3, args.reps // 2) if b in ("reference", "pennylane") and n >= 15 else args.reps
            for t in ([1] if b == "reference" else thread_counts):
                r = _subprocess([b, n, L, reps, args.dtype], t)
                if r is not None:
                    r["load"] = load
                    out.append(r)
                    print(f"  {load:<5} {b:<10} {t} threads allowed ({r['setting']}): wall {r['median']:.4f} "
                          f"s/step, CPU {r['cpu_time']:.4f} s/step, load avg {r['loadavg']:.1f}")
    ref = min((r["median"] for r in out if r["backend"] == "reference"), default=float("nan"))
    qulacs = min((r["median"] for r in out if r["backend"] == "qulacs"), default=float("nan"))
    for r in out:
        r["ratio"], r["vs_qulacs"] = ref / r["median"], qulacs / r["median"]
    return out


if __name__ == "__main__":
    main()
