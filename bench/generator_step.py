"""Benchmark: one generator training step of the paper's 12-candidate ensemble (shared theta).

A step is P = sum_c w_c p_c(theta) (forward), loss = g . P, loss.backward() (theta and w).
For every (n, L) and backend it reports the median seconds per step over --reps steps (after
one warm-up step, which also compiles), the ratio to the reference backend and the peak RSS of
a process that ran only that backend (each measurement runs in its own subprocess). It also
prints the compiler's cost model (bytes moved and flops per step, the time those bytes take
at the memory bandwidth of an H100, and the step an H200 should take with its launch overhead,
launched kernel by kernel or replayed as a CUDA graph) and, with --breakdown, where the time of
the cpu backend goes at the largest size (forward vs backward, per circuit and per pass; one
thread). Compiled backends also report the time to build their kernels (g++ or NVRTC; a hit in
the kernel cache is fast). `cuda-graph` is the cuda backend with QTC_CUDA_GRAPHS=1. GPU steps
are timed after torch.cuda.synchronize(), so the clock sees the kernels finish.

    python bench/generator_step.py                       # (11,10) (13,10) (17,15), all backends
    python bench/generator_step.py --sizes 17,15 --backends cpu --breakdown
    python bench/generator_step.py --backend cuda cuda-graph cpu --dtype float32 --json steps.json

PennyLane default.qubit is timed on the same circuits when PennyLane is installed.
This is a benchmark, not a test: compare the backends of one run, not runs across machines.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
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


def _build_seconds(prog, backend: str, dtype) -> float | None:
    """Seconds to build the compiled kernels (g++ or NVRTC, or a cache hit); None otherwise."""
    if backend not in ("cpu", "cuda"):
        return None
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled
    t = time.perf_counter()
    comp = compiled(prog, Target(device=backend, dtype=str(dtype).replace("torch.", "")))
    inner = getattr(getattr(comp.launcher, "launcher", None), "compile_seconds", None)
    return inner if inner is not None else time.perf_counter() - t


def measure(backend: str, n: int, depth: int, reps: int, dtype_name: str) -> dict:
    """Median step time of one backend, in this process (called in a fresh subprocess)."""
    import torch
    import qtc.runtime.backends  # noqa: F401 - everything imported before the baseline
    label = backend
    if backend == "cuda-graph":
        import qtc.runtime.cuda
        qtc.runtime.cuda.GRAPHS, backend = True, "cuda"
    dtype = getattr(torch, dtype_name)
    prog = _program(n, depth)
    theta0, weights0, g = _inputs(prog, dtype)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sync = torch.cuda.synchronize if backend == "cuda" else (lambda: None)
    build = _build_seconds(prog, backend, dtype)
    if backend == "pennylane":
        step = _pennylane_step(prog, theta0, weights0, g)
    else:
        def step():
            theta = theta0.clone().requires_grad_()
            weights = weights0.clone().requires_grad_()
            t0 = time.perf_counter()
            P = prog.probabilities(theta, weights, backend=backend)
            sync()
            t1 = time.perf_counter()
            (P @ g).backward()
            sync()
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1
    t = time.perf_counter()
    step()                                        # warm-up (and compile)
    warm = time.perf_counter() - t
    fwd, bwd, total, cpu = [], [], [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        f, b = step()
        total.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        fwd.append(f)
        bwd.append(b)
    return {"backend": label, "n": n, "L": depth, "median": statistics.median(total), "build_s": build,
            "forward": statistics.median(fwd), "backward": statistics.median(bwd),
            "cpu_time": statistics.median(cpu), "warmup": warm, "reps": reps, "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "baseline_mb": baseline}


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
    from qtc.runtime.cuda import predicted_step
    r = to_kernels(_program(n, depth), Target(dtype=dtype_name))
    moved = bytes_moved(r.plan, r.target.itemsize)["total"]
    return {"bytes": moved, "flops": r.fwd_flops + r.bwd_flops, "h100_s": moved / H100,
            "h200": predicted_step(r.plan, dtype_name),
            "h200_graph": predicted_step(r.plan, dtype_name, graph=True)}


def _subprocess(args) -> dict | None:
    cmd = [sys.executable, __file__, "--one", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  {args[0]} at ({args[1]}, {args[2]}) failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=[f"{n},{L}" for n, L in SIZES], help="n,L pairs")
    ap.add_argument("--backends", "--backend", nargs="*", default=None,
                    help="default: reference + every available; also cuda-graph (cuda, replayed as a graph)")
    ap.add_argument("--reps", type=int, default=7, help="timed steps per backend (reference: fewer)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--breakdown", action="store_true", help="per-pass times at the largest size")
    ap.add_argument("--json", type=Path, help="also write the cost models and the rows to this file")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        backend, n, L, reps, dtype = args.one
        print(json.dumps(measure(backend, int(n), int(L), int(reps), dtype)))
        return
    import torch
    from qtc.runtime.backends import available_backends
    backends = args.backends or [b for b in ["reference", "cpu", "cuda"] if b in available_backends()]
    try:
        import pennylane  # noqa: F401
        backends.append("pennylane")
    except ImportError:
        print("PennyLane is not installed: its column is skipped")
    sizes = [tuple(map(int, s.split(","))) for s in args.sizes]
    print(f"generator step = forward + backward of the 12-candidate paper ensemble, {args.dtype}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    rows, models = [], {}
    for n, L in sizes:
        model = models[f"{n},{L}"] = cost_model(n, L, args.dtype)
        h200, graph = model["h200"], model["h200_graph"]
        print(f"\n(n, L) = ({n}, {L}): cost model {model['bytes'] / 1e6:.1f} MB moved, "
              f"{model['flops'] / 1e9:.3f} GFlop per step -> {model['h100_s'] * 1e6:.1f} us at the H100's "
              f"3.35 TB/s; H200 predicted {h200['total_s'] * 1e6:.0f} us ({h200['memory_s'] * 1e6:.0f} us "
              f"memory + {h200['launches']} launches x 5 us), as a CUDA graph {graph['total_s'] * 1e6:.0f} us")
        ref = None
        for b in backends:
            reps = max(3, args.reps // 2) if b in ("reference", "pennylane") and n >= 15 else args.reps
            r = _subprocess([b, n, L, reps, args.dtype])
            if r is None:
                continue
            ref = r["median"] if b == "reference" else ref
            r["ratio"] = (ref / r["median"]) if ref else float("nan")
            rows.append(r)
            built = "" if r["build_s"] is None else f"; kernels built in {r['build_s']:.2f} s"
            print(f"  {b:<10} median {r['median']:9.4f} s/step (fwd {r['forward']:.4f}, bwd "
                  f"{r['backward']:.4f}; CPU time {r['cpu_time']:.4f} s; first step {r['warmup']:.2f} s)  {r['ratio']:8.1f}x vs reference"
                  f"  peak RSS {r['peak_rss_mb']:7.0f} MB (+{r['peak_rss_mb'] - r['baseline_mb']:.0f} over "
                  f"the {r['baseline_mb']:.0f} MB of importing torch and qtc){built}")
    print("\n| (n, L) | backend | median s/step | CPU s/step | speed-up vs reference | peak RSS MB | "
          "over import MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| ({r['n']}, {r['L']}) | {r['backend']} | {r['median']:.4f} | {r['cpu_time']:.4f} | {r['ratio']:.1f}x | "
              f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['baseline_mb']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"dtype": args.dtype, "models": models, "rows": rows}, indent=1))
    if args.breakdown and "cpu" in backends:
        n, L = max(sizes)
        print("\n" + breakdown(n, L, args.dtype))


if __name__ == "__main__":
    main()
