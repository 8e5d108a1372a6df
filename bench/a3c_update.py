"""The CPU cost of one A3C update per model (the goal: DiffQAS-QT / classical <= 2x).

One update is what an A3C worker does between two pushes to the shared weights
(tasks/engines/a3c/worker.py `Worker.train_episode`): both generators' forward (actor and critic
weights), an n-step rollout on MiniGrid with the actor, the actor-critic loss, the backward
through both networks and generators, and an optimizer step (here a local Adam: no lock, no
other worker). Each model runs in its own process with one torch thread, so the numbers are a
single worker's cost; the updates are timed in blocks and the median block is reported, in CPU
(`time.process_time`) and wall seconds, with the load average before and after.

    python bench/a3c_update.py                           # minigrid_5x5: classical, fixed:1, diffqas
    python bench/a3c_update.py --updates 400 --models classical,diffqas --json out.json
    QTC_RENDERING=compact python bench/a3c_update.py     # the kernels rendered compact

The generators are built by the engine's own make_model, so the kernels are rendered as a run
of the spec's budget renders them (compiler/cost.py weighs the build against it).

Ratios are against the classical network measured in the same run.

`--phases` also says where a worker's time goes: it adds what a worker does around an update
(`worker._sync`: the local sources loaded from a global copy; the gradients handed to the global
parameters, which the optimizer steps) and splits each update's CPU time into sync, the
generators' forward (actor and critic weights), the environment's steps, the policy's forward
in the rollout (the rest of it), the loss, the backward and the optimizer step:

    python bench/a3c_update.py --phases --models classical,diffqas

`--nodes` splits the generators' program further (both generators together, per update): the
CPU time of each node kind's runner (runtime/kernels.py RUNNERS: the simulated circuits, the
exact constants, the phase forms), forward and backward, and the rest of the program's
autograd function around them:

    python bench/a3c_update.py --nodes --models fixed:1,diffqas

`--against DIR` is an A/B comparison with another checkout of qtc (e.g. `git archive main`
unpacked in DIR): every model is measured `--rounds` times on each side, the two sides
alternating process by process (B, A, A, B, B, A, ...), so that a shared, loaded machine loads
both alike; it prints each side's median and the median of the paired ratios B / A:

    python bench/a3c_update.py --against /tmp/base --rounds 8 --models classical,diffqas
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPECS = Path(__file__).resolve().parents[1] / "specs"


PHASES = ("sync", "generators", "env steps", "policy forward", "loss", "backward", "optimizer")


def node_clocks(spent: dict, clock) -> None:
    """Time every node kind's runner of every compiled program of this process, forward and
    backward, and ProgramFunction's forward and backward (whose rest is "program other")."""
    from qtc.runtime import kernels

    def timed(fn, key):
        def run(*args):
            t = clock()
            try:
                return fn(*args)
            finally:
                spent[key] = spent.get(key, 0.0) + clock() - t
        return run
    for _, comp in kernels._compiled.values():
        for kind, (runner, _) in comp.runners.items():
            for way in ("forward", "backward"):
                setattr(runner, way, timed(getattr(runner, way), f"{kind} {way}"))
    for way in ("forward", "backward"):
        setattr(kernels.ProgramFunction, way, staticmethod(timed(getattr(kernels.ProgramFunction, way),
                                                                 f"program {way}")))


def node_split(spent: dict, updates: int) -> dict:
    """CPU ms per update by node kind and direction, and the program's own rest."""
    out = {k: 1e3 * v / updates for k, v in spent.items() if not k.startswith("program ") and v}
    program = sum(v for k, v in spent.items() if k.startswith("program "))
    out["program other"] = 1e3 * (program - sum(v for k, v in spent.items() if not k.startswith("program "))) / updates
    return out


def measure(spec: str, model: str, updates: int, blocks: int, backend: str | None,
            phases: bool = False, nodes: bool = False) -> dict:
    """Time `updates` updates of `model` (after `updates` // 4 of warm-up), in this process;
    with `phases`, as a worker does them (sync, gradients onto a global copy), split by phase;
    with `nodes`, the generators' program split by node kind (node_clocks)."""
    import torch

    from qtc.tasks.build import load_task
    from qtc.tasks.engines.a3c.algorithm import a3c_loss, rollout
    from qtc.tasks.engines.a3c.envs import make_env, obs_vector
    from qtc.tasks.kinds.a3c import make_model
    torch.set_num_threads(1)
    built = load_task(spec)
    t0 = time.perf_counter()
    actor, critic, _, _ = make_model(str(Path(spec).resolve()), model, 0, backend)  # as a worker does
    build_s = time.perf_counter() - t0
    a3c = built.spec.a3c
    env = make_env(built.spec.env.id, built.spec.env.max_steps)
    local = (actor, critic)
    # the global sources a worker syncs from and hands its gradients to (--phases), else local ones
    glob = tuple(make_model(str(Path(spec).resolve()), model, 0, backend)[:2]) if phases else local
    opt = torch.optim.Adam([p for src in glob for p in src.parameters()], lr=1e-4,
                           foreach=False if phases else None)   # False: as the shared optimizer
    state = {"obs": obs_vector(env.reset(seed=0)[0]), "episode": 0}
    spent = dict.fromkeys(PHASES, 0.0)
    clock = time.process_time
    env_step = env.step

    def timed_step(action):
        t = clock()
        try:
            return env_step(action)
        finally:
            spent["env steps"] += clock() - t

    if phases:
        env.step = timed_step
    node_spent: dict = {}
    if nodes:
        node_clocks(node_spent, clock)

    def update():
        t = [clock()]

        def mark(phase):
            now = clock()
            spent[phase] += now - t[0]
            t[0] = now
        if phases:
            for loc, g in zip(local, glob):
                loc.load_state_dict(g.state_dict())
            mark("sync")
        wa, wc = actor(), critic()
        mark("generators")
        steps0 = spent["env steps"]
        ro = rollout(env, built.nets["actor"], wa.detach(), state["obs"], a3c.n_steps)
        mark("policy forward")
        spent["policy forward"] -= spent["env steps"] - steps0
        loss = a3c_loss(built.nets["actor"], built.nets["critic"], wa, wc, ro, a3c.gamma, a3c.entropy)
        mark("loss")
        for src in local:
            src.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        if phases:
            for loc, g in zip(local, glob):
                for lp, gp in zip(loc.parameters(), g.parameters()):
                    gp.grad = lp.grad
        opt.step()
        mark("optimizer")
        state["obs"] = ro.last_obs
        if ro.terminated or ro.truncated:
            state["episode"] += 1
            state["obs"] = obs_vector(env.reset(seed=state["episode"])[0])
        return len(ro.rewards)

    for _ in range(max(1, updates // 4)):
        update()
    spent.update(dict.fromkeys(PHASES, 0.0))
    node_spent.clear()
    cpu, wall, steps = [], [], 0
    per_block = max(1, updates // blocks)
    for _ in range(blocks):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(per_block):
            steps += update()
        cpu.append((time.process_time() - c0) / per_block)
        wall.append((time.perf_counter() - w0) / per_block)
    from qtc.runtime.kernels import _compiled
    rendering = sorted({comp.rendered.target.rendering for _, comp in _compiled.values()
                        if getattr(comp, "rendered", None) is not None}) or ["-"]
    return {"model": model, "updates": per_block * blocks, "env_steps": steps,
            "cpu_ms": 1e3 * statistics.median(cpu), "wall_ms": 1e3 * statistics.median(wall),
            "build_s": build_s, "rendering": ",".join(rendering),
            **({"phases_ms": {k: 1e3 * v / (per_block * blocks) for k, v in spent.items()}} if phases else {}),
            **({"nodes_ms": node_split(node_spent, per_block * blocks)} if nodes else {})}


def one(args, model: str, checkout: Path | None = None) -> dict:
    """measure() of `model` in a process of its own (one OpenMP thread), with the qtc of
    `checkout` (a qtc checkout's root folder) when given, else this process's."""
    cmd = [sys.executable, __file__, "--one", model, "--spec", args.spec, "--updates",
           str(args.updates), "--blocks", str(args.blocks)] + (["--backend", args.backend] if args.backend else []) \
        + (["--phases"] if args.phases else []) + (["--nodes"] if args.nodes else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        if checkout is not None:      # `import qtc` finds the checkout first
            (Path(tmp) / "qtc").symlink_to(checkout.resolve(), target_is_directory=True)
            env["PYTHONPATH"] = os.pathsep.join([tmp, *filter(None, [env.get("PYTHONPATH")])])
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def against(args) -> int:
    """A/B: this checkout (B) against args.against (A), alternating per process."""
    load = {"before": os.getloadavg()}
    print(f"A/B, {Path(args.spec).name}: B = this checkout, A = {args.against}; {args.rounds} rounds of "
          f"{args.updates} updates in {args.blocks} blocks per side and model, alternating; "
          f"load average {load['before'][0]:.2f}")
    result = {}
    for model in args.models.split(","):
        cpu = {"A": [], "B": []}
        for r in range(args.rounds):
            for side in ("BA" if r % 2 == 0 else "AB"):
                row = one(args, model, args.against if side == "A" else None)
                cpu[side].append(row["cpu_ms"])
        ratios = [b / a for a, b in zip(cpu["A"], cpu["B"])]
        result[model] = {**cpu, "ratios": ratios, "A_median": statistics.median(cpu["A"]),
                         "B_median": statistics.median(cpu["B"]), "ratio_median": statistics.median(ratios)}
        print(f"{model:<12} A {statistics.median(cpu['A']):7.2f} ms  B {statistics.median(cpu['B']):7.2f} ms  "
              f"B / A median {statistics.median(ratios):.3f} (rounds {min(ratios):.3f} .. {max(ratios):.3f})")
    load["after"] = os.getloadavg()
    print(f"load average after: {load['after'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"against": str(args.against), "models": result, "load": load,
                                         "spec": args.spec, "updates": args.updates, "blocks": args.blocks,
                                         "rounds": args.rounds}, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(SPECS / "minigrid_5x5.task"))
    ap.add_argument("--models", default="classical,fixed:1,diffqas")
    ap.add_argument("--updates", type=int, default=400, help="timed updates per model")
    ap.add_argument("--blocks", type=int, default=8, help="the updates are timed in this many blocks")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--phases", action="store_true", help="as a worker (sync, a global copy) and "
                    "where each update's CPU time goes")
    ap.add_argument("--nodes", action="store_true", help="split the generators' program by node kind "
                    "(circuits, constants, phase forms; forward and backward)")
    ap.add_argument("--against", type=Path, help="A/B: another checkout of qtc (its root folder) "
                    "measured alternately with this one")
    ap.add_argument("--rounds", type=int, default=6, help="with --against: measurements per side and model")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)     # internal: measure one model, print JSON
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.spec, args.one, args.updates, args.blocks, args.backend, args.phases,
                                 args.nodes)))
        return 0
    if args.against:
        return against(args)
    rows, load = [], {"before": os.getloadavg()}
    print(f"A3C update cost, {Path(args.spec).name}, one torch thread, {args.updates} updates "
          f"per model in {args.blocks} blocks (median block); load average {load['before'][0]:.2f}")
    for model in args.models.split(","):
        rows.append(one(args, model))
    load["after"] = os.getloadavg()
    base = next((r for r in rows if r["model"] == "classical"), None)
    print(f"{'model':<12} {'CPU ms/update':>14} {'wall ms/update':>15} {'vs classical (CPU)':>19} "
          f"{'env steps/CPU-s':>16} {'rendering':>10} {'build s':>8}")
    for r in rows:
        ratio = f"{r['cpu_ms'] / base['cpu_ms']:.2f}x" if base else "-"
        steps_per_s = r["env_steps"] / r["updates"] / (r["cpu_ms"] / 1e3)
        print(f"{r['model']:<12} {r['cpu_ms']:>14.2f} {r['wall_ms']:>15.2f} {ratio:>19} {steps_per_s:>16.0f} "
              f"{r['rendering']:>10} {r['build_s']:>8.1f}")
    if args.phases:
        print("CPU ms per update by phase (mean over the timed updates):")
        print(f"{'model':<12} " + " ".join(f"{p:>14}" for p in PHASES))
        for r in rows:
            print(f"{r['model']:<12} " + " ".join(f"{r['phases_ms'][p]:>14.3f}" for p in PHASES))
    if args.nodes:
        print("CPU ms per update in the generators' program by node kind (both generators):")
        for r in rows:
            parts = [f"{k} {v:.3f}" for k, v in r["nodes_ms"].items()]
            print(f"{r['model']:<12} " + (", ".join(parts) if parts else "-"))
    print(f"load average after: {load['after'][0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load": load, "spec": args.spec, "phases": args.phases,
                                         "nodes": args.nodes,
                                         "updates": args.updates, "blocks": args.blocks}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
