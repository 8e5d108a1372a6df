"""In-process A/B of the A3C update's Python-side levers of 2026-12-07 (docs/results/speed.md).

The levers change no number (the same kernels, calls and torch ops), so one process can run
both sides on the same models, environment and optimizer, block by block: A puts back what the
update did before them, B is qtc as it is. Alternating blocks in one process is what a shared,
loaded machine needs: separate processes differ by more than the levers save (classical against
itself: 0.83x .. 1.43x per round under load ~40). What A puts back, as main had it at c7abd25:

- every settings read is settings() (all 13 variables), not `setting(name)` (one each);
- the CPU launcher sets OpenMP's thread count and restores it around every driver call;
- HostLibrary.call binds through launch.bind (its lists) on every call;
- ProgramFunction runs every node kind's runner, with nodes or not.

    python bench/a3c_overhead_ab.py --models fixed:1,diffqas --rounds 20 --updates 50

Prints, per model, the median CPU ms per update of each side, the median of the paired ratios
B / A (block after block) and the load average; --json keeps every block.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from a3c_update import SPECS  # noqa: E402


def patches():
    """(name, object, attribute, value before the levers) for every lever."""
    import torch

    from qtc import settings as settings_module
    from qtc.runtime import backends, kernels, launch, threads

    def whole_settings(name, env=None):
        return getattr(settings_module.settings(env), name)

    def choose(n, circuits, requested, idle_cores, knobs=None):
        return threads_choose(n, circuits, requested, idle_cores, knobs or settings_module.settings())
    threads_choose = threads.choose

    def call(self, name, **named):
        fn = self._functions.get(name) or self._function(name)
        fn[0](*(launch._pointer(v) for v in launch.bind(self.signature, name, named, exact=True)))

    def _call(self, name, **tensors):
        requested = torch.get_num_threads()
        step = self.last_setting = threads.for_step(self.n, self.ncirc)
        self.lib.call("qtc_threads", k=step.threads)
        try:
            self.lib.call(name, **tensors, mode=step.mode)
        finally:
            self.lib.call("qtc_threads", k=requested)
    out = [("backends.setting", backends, "setting", whole_settings),
           ("kernels.setting", kernels, "setting", whole_settings),
           ("threads.choose", threads, "choose", choose),
           ("HostLibrary.call", launch.HostLibrary, "call", call),
           ("_CpuLauncher._call", kernels._CpuLauncher, "_call", _call)]
    for _, comp in kernels._compiled.values():
        out.append(("Compiled.running", comp, "running", tuple(comp.runners.values())))
    return out


def run(model: str, rounds: int, updates: int, spec: str, lever=patches) -> dict:
    """Alternating blocks of A (`lever()`'s values put back) and B (qtc as it is) on one model;
    `lever` returns (name, object, attribute, A's value) for every patch (other benches pass
    their own: bench/a3c_tail_ab.py)."""
    import torch

    from qtc.tasks.build import load_task
    from qtc.tasks.engines.a3c.algorithm import a3c_loss, rollout
    from qtc.tasks.engines.a3c.envs import make_env, obs_vector
    from qtc.tasks.kinds.a3c import make_model
    torch.set_num_threads(1)
    built = load_task(spec)
    actor, critic, _, _ = make_model(spec, model, 0, None)
    a3c = built.spec.a3c
    env = make_env(built.spec.env.id, built.spec.env.max_steps)
    opt = torch.optim.Adam([p for src in (actor, critic) for p in src.parameters()], lr=1e-4)
    state = {"obs": obs_vector(env.reset(seed=0)[0]), "episode": 0}

    def update():
        wa, wc = actor(), critic()
        ro = rollout(env, built.nets["actor"], wa.detach(), state["obs"], a3c.n_steps)
        loss = a3c_loss(built.nets["actor"], built.nets["critic"], wa, wc, ro, a3c.gamma, a3c.entropy)
        for src in (actor, critic):
            src.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["obs"] = ro.last_obs
        if ro.terminated or ro.truncated:
            state["episode"] += 1
            state["obs"] = obs_vector(env.reset(seed=state["episode"])[0])
    for _ in range(max(1, updates)):
        update()                                     # builds the kernels (patches need them)
    before = patches()
    after = [(name, obj, attr, getattr(obj, attr)) for name, obj, attr, _ in before]

    def side(which):
        for _, obj, attr, value in which:
            setattr(obj, attr, value)
    cpu = {"A": [], "B": []}
    try:
        for r in range(rounds):
            for s in ("AB" if r % 2 == 0 else "BA"):
                side(before if s == "A" else after)
                update()                             # one untimed update after each switch
                t = time.process_time()
                for _ in range(updates):
                    update()
                cpu[s].append(1e3 * (time.process_time() - t) / updates)
    finally:
        side(after)
    ratios = [b / a for a, b in zip(cpu["A"], cpu["B"])]
    return {**cpu, "ratios": ratios, "A_median": statistics.median(cpu["A"]),
            "B_median": statistics.median(cpu["B"]), "ratio_median": statistics.median(ratios)}


def ab_main(argv, sides: str, lever=patches, models: str = "fixed:1,diffqas", doc: str = __doc__) -> int:
    """The command line of an in-process A/B (`sides` says what A and B are; `lever` the patches
    that make side A): per model, the median CPU ms per update of each side and B / A."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--spec", default=str(SPECS / "minigrid_5x5.task"))
    ap.add_argument("--models", default=models)
    ap.add_argument("--rounds", type=int, default=20, help="blocks per side")
    ap.add_argument("--updates", type=int, default=50, help="timed updates per block")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    load = {"before": os.getloadavg()}
    print(f"in-process A/B ({sides}), {Path(args.spec).name}, one torch thread, "
          f"{args.rounds} blocks of {args.updates} updates per side; load average {load['before'][0]:.2f}")
    out = {}
    for model in args.models.split(","):
        r = out[model] = run(model, args.rounds, args.updates, str(Path(args.spec).resolve()), lever)
        print(f"{model:<10} A {r['A_median']:7.2f} ms  B {r['B_median']:7.2f} ms  B / A median {r['ratio_median']:.3f} "
              f"(blocks {min(r['ratios']):.3f} .. {max(r['ratios']):.3f}); load average {os.getloadavg()[0]:.2f}")
    load["after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps({"models": out, "load": load, "spec": args.spec, "rounds": args.rounds,
                                         "updates": args.updates}, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    return ab_main(argv, "A: before the levers, B: now")


if __name__ == "__main__":
    sys.exit(main())
