"""The GPU check: one prepared run for a lent GPU, and its dry run here.

A lent GPU comes with minutes, not hours, and a bare machine: this script is what those minutes
run, so that they go on measuring, not on installing or debugging the script.

    bash bench/gpu_wheels.sh             # here: the wheels the device lacks and the data, in .gpu/
    bash bench/gpu_check.sh --dry-run    # here: checks, then the same steps on the cpu backend
    bash bench/gpu_check.sh              # on the device (carry .gpu): install, then this script

Steps, each in a subprocess with its own time budget, so that one failing or running long does
not eat the others (a step keeps every row it wrote before it stopped):
  environment  versions, the GPU and driver, what the cuda backend lacks if anything
  numerics     cuda against the reference and the cpu backend: probabilities and gradients, in
               float32 and float64, every shipped space at small n and the paper space at
               (11, 10), (13, 10), (17, 15) (the reference up to REFERENCE_MAX_QUBITS), also
               replayed as a CUDA graph and repeated (a moving difference is a race)
  channel      the channel form (issue 15) of the paper space untied per layer: cuda against the
               cpu kernels, the torch reference (up to CHANNEL_REFERENCE_MAX qubits) and the
               enumeration where it fits, float64, with the step time of each backend
  bench        bench/generator_step.py at those sizes beside the cost model's prediction, with the
               NVRTC compile time, for cuda, cuda as a graph and cpu
  epoch        one epoch of `qtc run specs/fmnist_1v5.task --models diffqas --backend cuda`
Everything lands in OUT: gpu_check.json, gpu_check.md (ready for docs/results/gpu.md) and
gpu_check.log (the steps' own output); gpu_check.sh adds install.log.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
LOCK = ROOT / "bench" / "gpu_requirements.txt"
PAPER = [(11, 10), (13, 10), (17, 15)]
REFERENCE_MAX_QUBITS = 13      # the reference keeps every intermediate state for autograd
CHANNEL = [(5, 2), (7, 4), (11, 10)]   # the channel form's device sizes (per-layer paper space)
CHANNEL_REFERENCE_MAX = 7      # the torch density matrix keeps 4^n complex states for autograd
CHANNEL_ENUMERATE_MAX = 100    # candidates: above, the enumeration's check costs more than the step
TOL = {"float64": 1e-9, "float32": 1e-4}   # relative norm ||out - ref|| / ||ref||
TREE_LIMIT = 64 << 20          # what travels to the device: tracked + untracked files + carry
TOTAL_BUDGET = 300             # seconds for the whole command on the device, install included
INSTALL_BUDGET = 30            # what installing the carried wheels and qtc may take there
OUT_FILES = ("gpu_check.json", "gpu_check.md", "gpu_check.log", "install.log")   # <= 8 come back
# What the device's image already holds that the carried wheels or qtc need (the device tool's
# KINDS.md; None where no version was recorded there).
DEVICE_HAS = {"numpy": "2.5.2", "cloudpickle": None, "matplotlib": None, "tqdm": None,
              "torch": "2.11.0", "torchvision": "0.26.0", "cupy-cuda13x": "14.2.0", "scipy": None,
              "pytest": None, "setuptools": None, "packaging": None}
DEVICE_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3", "os_name": "posix",
                 "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                 "implementation_name": "cpython", "platform_python_implementation": "CPython",
                 "extra": ""}
DEVICE_GLIBC = (2, 28)         # the newest manylinux the device README asks pip for


# --- the plan ----------------------------------------------------------------------------------

@dataclass
class Step:
    name: str
    budget: int                # seconds
    params: dict = field(default_factory=dict)


def plan(mode: str, carry: Path, *, epoch_spec: str | None = None, epoch_data: str | None = None) -> list[Step]:
    """The steps and their budgets: `device` (cuda, the paper's sizes), `dry` (cpu, small sizes),
    `quick` (cpu, the smallest sizes: the test suite's run)."""
    spaces = sorted(str(p) for p in SPECS.glob("*.qs"))
    paper_space = str(SPECS / "hadamard_ent_rot.qs")
    data = str(carry / "data") if (carry / "data").is_dir() else None
    if mode == "device":
        small, paper, backend, others = [(5, 2)], PAPER, "cuda", ["cpu"]
        bench = {"sizes": PAPER, "backends": ["cuda", "cuda-graph", "cpu"], "reps": 20}
        epoch = {"limit": None, "max_batches": None}
        channel = CHANNEL
        budgets = (20, 95, 35, 60, 60)
    else:
        small, paper, backend, others = [(3, 1)], [(5, 2)], "cpu", []
        bench = {"sizes": [(5, 2)], "backends": ["cpu"], "reps": 3}
        epoch = {"limit": 200, "max_batches": 2}
        channel = [(3, 1), (5, 2)] if mode == "dry" else [(3, 1)]
        budgets = (30, 240, 120, 120, 300) if mode == "dry" else (30, 120, 60, 60, 120)
        if mode == "quick":
            spaces = [paper_space]
    cases = [(s, n, L, d) for d in ("float32", "float64") for s in spaces for n, L in small]
    cases += [(paper_space, n, L, d) for d in ("float32", "float64") for n, L in paper]
    return [Step("environment", budgets[0]),
            Step("numerics", budgets[1], {"backend": backend, "others": others, "cases": cases,
                                           "reference_max": REFERENCE_MAX_QUBITS}),
            Step("channel", budgets[2], {"backend": backend, "others": others, "cases": channel,
                                         "reference_max": CHANNEL_REFERENCE_MAX, "reps": 3}),
            Step("bench", budgets[3], {**bench, "dtype": "float32"}),
            Step("epoch", budgets[4], {**epoch, "backend": backend,
                                       "spec": epoch_spec or str(SPECS / "fmnist_1v5.task"),
                                       "data_root": epoch_data or data})]


# --- running a step in its own process ---------------------------------------------------------

def run_step(step: Step, log, workdir: Path) -> dict:
    """Run one step as a subprocess within its budget; its rows are kept even if it fails."""
    result = workdir / f"{step.name}.jsonl"
    cmd = [sys.executable, __file__, "--step", step.name, "--params", json.dumps(step.params),
           "--result", str(result)]
    log.write(f"\n===== step {step.name} (budget {step.budget} s)\n")
    log.flush()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout=step.budget)
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)      # its children too (generator_step, qtc run)
        proc.wait()
        status = f"timed out after {step.budget} s"
    rows = [json.loads(line) for line in result.read_text().splitlines()] if result.exists() else []
    if status == "ok" and not all(r.get("ok", True) for r in rows):
        status = "failed (a check is off: see its rows)"
    return {"name": step.name, "status": status, "seconds": round(time.perf_counter() - start, 1),
            "budget": step.budget, "rows": rows}


def _emit(result: Path, row: dict) -> None:
    with open(result, "a") as f:
        f.write(json.dumps(row) + "\n")


def step_environment(p: dict, result: Path) -> None:
    import platform
    import shutil
    import torch
    from qtc.runtime import cuda
    row = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cpus": os.cpu_count(), "cxx": shutil.which("g++"),
           "cuda_problem": cuda.problem(), "cupy": cuda.cupy_distribution()}
    if row["cuda_problem"] is None:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(torch.cuda.current_device())
        row.update(gpu=torch.cuda.get_device_name(), sms=props["multiProcessorCount"],
                   driver=cuda.cuda_version(cupy.cuda.runtime.driverGetVersion()),
                   cupy_cuda=cuda.cuda_version(cupy.cuda.runtime.runtimeGetVersion()),
                   nvrtc=".".join(map(str, cupy.cuda.nvrtc.getVersion())))
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, check=False)
        row["nvidia_smi"] = q.stdout.strip()
    _emit(result, row)


# --- numerics ----------------------------------------------------------------------------------

def _inputs(prog, seed: int):
    """Random inputs, fresh for every case and the same for its two dtypes (never zeros: they
    hide unwritten outputs)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    theta = torch.rand(prog.angle_shape, generator=gen, dtype=torch.float64) * 6.0 - 3.0
    weights = torch.rand(prog.weights.shape, generator=gen, dtype=torch.float64) + 0.1
    g = torch.randn(2 ** prog.qubits, generator=gen, dtype=torch.float64)
    return theta, weights, g


def _evaluate(prog, backend: str, dtype: str, theta, weights, g):
    """P, dP.g/dtheta and dP.g/dweights of one backend, as float64 on the CPU."""
    import torch
    from qtc.runtime import reference
    from qtc.runtime.backends import probabilities
    t = theta.to(getattr(torch, dtype), copy=True).requires_grad_()    # fresh leaves: no
    w = weights.to(getattr(torch, dtype), copy=True).requires_grad_()  # gradient piles up
    plain = backend == "reference" and prog.weights.kind == "candidate"   # per position: its own reference
    P = reference.probabilities(prog, t, w) if plain else probabilities(prog, t, w, backend=backend)
    (P.double() @ g).backward()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return [x.detach().double().cpu().flatten() for x in (P, t.grad, w.grad)]


def _difference(out, ref) -> dict:
    """Worst absolute and relative-norm differences of P, dtheta and dweights."""
    d = {}
    for name, a, b in zip(("P", "dtheta", "dweights"), out, ref):
        rel = float((a - b).norm() / b.norm()) if float(b.norm()) > 0 else float((a - b).norm())
        d[name] = {"abs": float((a - b).abs().max()), "rel": rel}
    d["rel"] = max(v["rel"] for v in d.values())
    return d


def _within(d: dict, tol: float) -> bool:
    return d["rel"] <= tol     # False for NaN too


def step_numerics(p: dict, result: Path) -> None:
    import qtc
    from qtc.runtime import cuda
    from qtc.runtime.backends import available_backends
    backend = p["backend"]
    others = [o for o in p["others"] if o in available_backends()]   # no g++ there: no cpu column
    pending = _prebuild_cpu(p["cases"]) if "cpu" in others else None
    refs: dict = {}
    for space, n, depth, dtype in p["cases"]:
        prog = qtc.compile(space, qubits=n, depth=depth)
        theta, weights, g = _inputs(prog, zlib.crc32(f"{Path(space).name} {n} {depth}".encode()))
        row = {"space": Path(space).stem, "n": n, "L": depth, "dtype": dtype, **_build_times(prog, backend, dtype)}
        out = _evaluate(prog, backend, dtype, theta, weights, g)
        checks = {"repeat": _difference(_evaluate(prog, backend, dtype, theta, weights, g), out)}
        if backend == "cuda":
            launcher = _cuda_launcher(prog, dtype)
            launcher.use_graphs = True
            checks["graph"] = _difference(_evaluate(prog, backend, dtype, theta, weights, g), out)
            launcher.use_graphs = False
        if pending is not None:
            pending.result()          # the cpu kernels were built in the background
        for other in others:
            checks[f"vs_{other}"] = _difference(out, _evaluate(prog, other, dtype, theta, weights, g))
        if n <= p["reference_max"]:
            key = (space, n, depth)
            if key not in refs:
                refs = {key: _evaluate(prog, "reference", "float64", theta, weights, g)}
            checks["vs_reference"] = _difference(out, refs[key])
        row.update(checks=checks, ok=all(_within(d, TOL[dtype]) for d in checks.values()))
        _emit(result, row)


def _cuda_launcher(prog, dtype: str):
    """The cuda.Launcher `probabilities` runs `prog` through (its compiled program's)."""
    from qtc.compiler.target import Target
    from qtc.runtime.kernels import compiled
    from qtc.settings import settings
    return compiled(prog, Target(device="cuda", dtype=dtype, rendering=settings().rendering)).launcher.launcher


def _build_times(prog, backend: str, dtype: str) -> dict:
    """Seconds to render and build the kernels, and NVRTC's part of it on cuda."""
    import torch
    from qtc.runtime.kernels import compiled
    if backend not in ("cpu", "cuda") or prog.form == "channel":
        return {}
    start = time.perf_counter()
    from qtc.compiler.target import Target
    comp = compiled(prog, Target(device=backend, dtype=dtype))
    inner = getattr(comp.launcher, "launcher", None)
    return {"build_s": round(time.perf_counter() - start, 3),
            "nvrtc_s": None if inner is None else round(inner.compile_seconds, 3)}


def _prebuild_cpu(cases):
    """Build every case's cpu kernels in the background (two builds at a time, each parallel)."""
    from concurrent.futures import ThreadPoolExecutor
    import qtc
    from qtc.compiler.pipeline import to_kernels
    from qtc.compiler.target import Target
    from qtc.runtime.cache import build_shared
    pool = ThreadPoolExecutor(max_workers=2)

    def build(case):
        space, n, depth, dtype = case
        target = Target(dtype=dtype)
        prog = qtc.compile(space, qubits=n, depth=depth)
        if prog.form == "channel":              # no kernels to render: compiler/channel.c
            return
        rendered = to_kernels(prog, target)
        build_shared(rendered.text, tag=rendered.target.key, library=rendered.library)
    futures = [pool.submit(build, c) for c in cases]
    pool.shutdown(wait=False)
    return _AllDone(futures)


class _AllDone:
    def __init__(self, futures):
        self.futures = futures

    def result(self):
        for f in self.futures:
            f.result()


# --- the channel form --------------------------------------------------------------------------

def step_channel(p: dict, result: Path) -> None:
    """The per-layer paper space lowered to the channel form at each size: `backend` repeated,
    against the other backends, the channel's torch reference (small n) and the enumeration
    where the product fits; then the median step (forward + backward) per backend."""
    import statistics
    from qtc.compiler.factorised import lower_factorised
    from qtc.dsl.space import parse_space
    space = parse_space(SPECS / "hadamard_ent_rot_per_layer.qs")
    for n, depth in p["cases"]:
        prog = lower_factorised(space, n, depth, form="channel")
        theta, weights, g = _inputs(prog, zlib.crc32(f"channel {n} {depth}".encode()))
        ev = lambda b, form=prog: _evaluate(form, b, "float64", theta, weights, g)  # noqa: E731
        start = time.perf_counter()
        out = ev(p["backend"])
        row = {"space": "per_layer channel", "n": n, "L": depth, "dtype": "float64",
               "build_s": round(time.perf_counter() - start, 3)}
        checks = {"repeat": _difference(ev(p["backend"]), out)}
        for other in p["others"]:
            checks[f"vs_{other}"] = _difference(out, ev(other))
        if n <= p["reference_max"]:
            checks["vs_reference"] = _difference(out, ev("reference"))
        if prog.weights.count <= CHANNEL_ENUMERATE_MAX:     # torch statevectors, no build
            checks["vs_enumeration"] = _difference(out, ev("reference", lower_factorised(space, n, depth, form="enumeration")))
        times = {}
        for b in [p["backend"], *p["others"]]:
            laps = []
            for _ in range(p["reps"]):
                t = time.perf_counter()
                ev(b)
                laps.append(time.perf_counter() - t)
            times[b] = round(statistics.median(laps) * 1e3, 3)
        row.update(checks=checks, step_ms=times, ok=all(_within(d, TOL["float64"]) for d in checks.values()))
        _emit(result, row)


# --- bench and epoch ---------------------------------------------------------------------------

def step_bench(p: dict, result: Path) -> None:
    """generator_step.py once per size, so that a slow size leaves the others' rows; idle (no
    competing load) and every core allowed, so there is one row per backend."""
    for n, depth in p["sizes"]:
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            cmd = [sys.executable, str(ROOT / "bench" / "generator_step.py"), "--sizes", f"{n},{depth}",
                   "--backends", *p["backends"], "--dtype", p["dtype"], "--reps", str(p["reps"]),
                   "--load", "idle", "--threads", str(len(os.sched_getaffinity(0))), "--json", tmp.name]
            proc = subprocess.run(cmd, cwd=ROOT, check=False)
            got = json.loads(Path(tmp.name).read_text() or "{}") if proc.returncode == 0 else {}
        model = got.get("models", {}).get(f"{n},{depth}")
        _emit(result, {"n": n, "L": depth, "dtype": p["dtype"], "model": model,
                       "rows": got.get("rows", []), "ok": proc.returncode == 0})


def step_epoch(p: dict, result: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "qtc", "run", p["spec"], "--models", "diffqas", "--backend",
               p["backend"], "--epochs", "1", "--no-progress"]
        for flag, key in (("--data-root", "data_root"), ("--limit", "limit"), ("--max-batches", "max_batches")):
            if p.get(key) is not None:
                cmd += [flag, str(p[key])]
        cmd += ["-o", str(Path(tmp) / "run")]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, check=False)
        wall = time.perf_counter() - start
        metrics = Path(tmp) / "run" / "metrics.json"
        last = json.loads(metrics.read_text())[-1] if metrics.exists() else {}
    _emit(result, {"command": " ".join(cmd[1:-2]), "exit": proc.returncode, "wall_s": round(wall, 2),
                   "epoch_s": last.get("seconds"), "train_loss": last.get("train_loss"),
                   "test_accuracy": last.get("test_accuracy"), "ok": proc.returncode == 0 and bool(last)})


def step_carry_data(p: dict, result: Path) -> None:
    """The carried subset gives the very data sets the task's own data gives (dry run only)."""
    import torch
    from qtc.tasks.data.images import load_classes
    carried = load_classes(p["dataset"], p["classes"], data_root=p["data_root"])
    source = load_classes(p["dataset"], p["classes"])
    same = all(torch.equal(a.tensors[i], b.tensors[i]) for a, b in zip(carried, source) for i in (0, 1))
    _emit(result, {"train": len(carried[0]), "test": len(carried[1]), "same": same, "ok": same})


STEPS = {"environment": step_environment, "numerics": step_numerics, "channel": step_channel, "bench": step_bench,
         "epoch": step_epoch, "carry-data": step_carry_data}


# --- the carry: wheels, data, tree size (made and checked here) --------------------------------

def read_lock(path: Path = LOCK) -> dict[str, str]:
    """name -> version of every `name==version` line."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_requirements(path: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    return [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")]


def _tag_fits(tag) -> bool:
    if tag.interpreter not in ("py3", "cp312", "py312") or tag.abi not in ("none", "abi3", "cp312"):
        return False
    if tag.platform == "any":
        return True
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", tag.platform)
    if m:
        return (int(m[1]), int(m[2])) <= DEVICE_GLIBC
    return tag.platform in ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")


def check_wheels(wheels: Path, pins: dict[str, str], project_deps: list[str]) -> list[str]:
    """Problems with the carried wheel set (empty when it installs and resolves on the device):
    one wheel per pin, none extra, tags for cp312 manylinux x86_64, and every requirement of the
    wheels and of qtc met by a carried wheel or by the device's own packages."""
    from packaging.requirements import Requirement
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version
    files = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not files:
        return [f"no wheels in {wheels}: run bash bench/gpu_wheels.sh"]
    problems, have = [], {}
    for f in files:
        name, version, _, tags = parse_wheel_filename(f.name)
        if name in have:
            problems.append(f"two versions of {name}: {have[name]} and {version} (pip stops)")
        have[name] = version
        if not any(_tag_fits(t) for t in tags):
            problems.append(f"{f.name} does not install on CPython 3.12, manylinux x86_64")
        if pins.get(name) != str(version):
            problems.append(f"{f.name} is not in {LOCK.name}" if name not in pins
                            else f"{f.name}: {LOCK.name} pins {name}=={pins[name]}")
    problems += [f"{n}=={v} is pinned but not downloaded" for n, v in pins.items() if n not in have]
    needs = [(r, f.name) for f in files for r in wheel_requirements(f)] + [(r, "qtc") for r in project_deps]
    for text, who in needs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(DEVICE_PYTHON):
            continue
        name = _norm(req.name)
        version = have.get(name) or (Version(DEVICE_HAS[name]) if DEVICE_HAS.get(name) else None)
        if version is None and name not in DEVICE_HAS:
            problems.append(f"{who} needs {text}: neither carried nor on the device")
        elif version is not None and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{who} needs {text}, but {name} {version} is what the device would have")
    return problems


def pip_resolves(wheels: Path) -> tuple[bool, str]:
    """pip's own answer: does every pin find a wheel for the device's Python and platform?"""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps",
               "--find-links", str(wheels), "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform",
               "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--target", tmp,
               "-r", str(LOCK)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode == 0, tail[-1] if tail else ""


def tree_bytes(root: Path, carried: list[Path]) -> dict[str, int]:
    """Bytes that would travel: tracked files, untracked files git does not ignore, the carry."""
    def listed(*args) -> int:
        out = subprocess.run(["git", "ls-files", "-z", *args], cwd=root, capture_output=True, check=True).stdout
        paths = [root / p for p in out.decode().split("\0") if p]
        return sum(p.lstat().st_size for p in paths if p.is_file() or p.is_symlink())
    sizes = {"tracked": listed(), "untracked": listed("--others", "--exclude-standard")}
    for c in carried:
        sizes[os.path.relpath(c, root)] = sum(p.stat().st_size for p in c.rglob("*") if p.is_file()) \
            if c.is_dir() else 0
    return sizes


def check_install() -> tuple[bool, str]:
    """The project builds and installs offline the way gpu_check.sh does it (into a temp dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-build-isolation", "--no-compile", "--target", tmp, str(ROOT)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        grammars = sorted(p.name for p in Path(tmp).glob("qtc/dsl/*.lark"))
    if proc.returncode != 0:
        return False, (proc.stdout + proc.stderr).strip()[-300:]
    return bool(grammars), f"qtc installs with its grammars ({', '.join(grammars)})"


def prepare_data(carry: Path, spec: Path = SPECS / "fmnist_1v5.task") -> Path:
    """Write the two classes the spec uses, in their original order, as gzipped IDX files under
    carry/data/fashion-mnist: the task sees the same images and labels as from the full set, at
    a fifth of the 30 MB the full set would add to the tree."""
    from qtc.tasks.build import load_task
    from qtc.tasks.data.images import ALIASES, FILES, torchvision_class, find_root
    data = load_task(spec).spec.data
    root = find_root(data.dataset)
    folder = carry / "data" / ALIASES[data.dataset][0]
    folder.mkdir(parents=True, exist_ok=True)
    for train, prefix in ((True, "train"), (False, "t10k")):
        ds = torchvision_class(data.dataset)(str(root), train=train, download=False)
        keep = sum(ds.targets == c for c in data.classes).bool()
        images, labels = ds.data[keep].numpy(), ds.targets[keep].numpy().astype("uint8")
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 0x803, images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 0x801, labels)
    assert sorted(p.name[:-3] for p in folder.glob("*.gz")) == sorted(FILES)
    return folder


def _write_idx(path: Path, magic: int, array) -> None:
    head = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(head + array.astype("uint8").tobytes())


def dry_checks(steps: list[Step], carry: Path, *, install: bool, log, workdir: Path) -> list[dict]:
    """What the dry run checks before running the steps on the cpu backend."""
    import tomllib
    device = plan("device", carry)
    budget = sum(s.budget for s in device) + INSTALL_BUDGET
    checks = [{"check": "plan", "ok": budget <= TOTAL_BUDGET and len(OUT_FILES) <= 8,
               "detail": f"device steps {', '.join(f'{s.name} {s.budget} s' for s in device)} + install "
                         f"{INSTALL_BUDGET} s = {budget} s of {TOTAL_BUDGET}; {len(OUT_FILES)} files in OUT"}]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    problems = check_wheels(carry / "wheels", read_lock(), deps)
    checks.append({"check": "wheels", "ok": not problems,
                   "detail": "; ".join(problems) or f"{len(read_lock())} wheels, closure met on the device"})
    if not problems:
        ok, tail = pip_resolves(carry / "wheels")
        checks.append({"check": "pip resolves for cp312 manylinux", "ok": ok, "detail": tail})
    sizes = tree_bytes(ROOT, [carry])
    total = sum(sizes.values())
    checks.append({"check": "tree size", "ok": total <= TREE_LIMIT,
                   "detail": ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in sizes.items())
                             + f"; {total / 2**20:.1f} of {TREE_LIMIT >> 20} MiB"})
    checks.append(_data_check(carry, log, workdir))
    if install:
        ok, detail = check_install()
        checks.append({"check": "project installs offline", "ok": ok, "detail": detail})
    return checks


def _data_check(carry: Path, log, workdir: Path) -> dict:
    from qtc.tasks.build import load_task
    data = load_task(SPECS / "fmnist_1v5.task").spec.data
    if not (carry / "data").is_dir():
        return {"check": "carried data", "ok": False, "detail": f"no {carry / 'data'}: run bash bench/gpu_wheels.sh"}
    step = Step("carry-data", 120, {"dataset": data.dataset, "classes": list(data.classes),
                                    "data_root": str(carry / "data")})
    got = run_step(step, log, workdir)
    row = got["rows"][0] if got["rows"] else {}
    return {"check": "carried data", "ok": got["status"] == "ok",
            "detail": f"{got['status']}: FashionMNIST {list(data.classes)} from {carry / 'data'}: "
                      f"{row.get('train')} train / {row.get('test')} test images, identical to the full set: {row.get('same')}"}


# --- the report --------------------------------------------------------------------------------

def _fmt(x, spec=".2e") -> str:
    return "-" if x is None else format(x, spec)


def summary(report: dict) -> str:
    """The markdown summary (what docs/results/gpu.md quotes)."""
    lines = [f"# GPU check: {report['mode']}, {report['date']}", ""]
    env = next((s["rows"][0] for s in report["steps"] if s["name"] == "environment" and s["rows"]), {})
    if env:
        lines += [f"Python {env['python']}, torch {env['torch']} (CUDA {env['torch_cuda']}), {env['cupy']}, "
                  f"{env['cpus']} CPUs; GPU: {env.get('gpu') or env.get('cuda_problem')}"
                  + (f", {env['sms']} SMs, driver CUDA {env['driver']}, CuPy's CUDA {env['cupy_cuda']}, "
                     f"NVRTC {env['nvrtc']}" if env.get("gpu") else "") + ".", ""]
    if report.get("install"):
        lines += [f"Install (carried wheels + qtc, offline): {report['install']}.", ""]
    if report.get("checks"):
        lines += ["| check | ok | detail |", "|---|---|---|"]
        lines += [f"| {c['check']} | {'yes' if c['ok'] else 'NO'} | {c['detail']} |" for c in report["checks"]]
        lines.append("")
    lines += ["| step | status | seconds (budget) |", "|---|---|---:|"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']} ({s['budget']}) |" for s in report["steps"]]
    for s in report["steps"]:
        lines += {"numerics": _numerics_md, "channel": _channel_md, "bench": _bench_md,
                  "epoch": _epoch_md}.get(s["name"], lambda r: [])(s["rows"])
    return "\n".join(lines) + "\n"


def _numerics_md(rows) -> list[str]:
    if not rows:
        return []
    kinds = sorted({k for r in rows for k in r["checks"]})
    out = ["", "## Numerics (relative norm of the difference; P, dtheta, dweights: the worst)", ""]
    for dtype in ("float32", "float64"):
        worst = {k: max((r["checks"][k]["rel"] for r in rows if r["dtype"] == dtype and k in r["checks"]),
                        default=None) for k in kinds}
        out.append(f"- {dtype} (tolerance {TOL[dtype]:g}): " + ", ".join(f"{k} {_fmt(v)}" for k, v in worst.items()))
    out += ["", "| space | n | L | dtype | built s | NVRTC s | " + " | ".join(kinds) + " | ok |",
            "|---|---:|---:|---|---:|---:|" + "---:|" * len(kinds) + "---|"]
    for r in rows:
        cells = [_fmt(r["checks"][k]["rel"]) if k in r["checks"] else "-" for k in kinds]
        out.append(f"| {r['space']} | {r['n']} | {r['L']} | {r['dtype']} | {_fmt(r.get('build_s'), '.2f')} | "
                   f"{_fmt(r.get('nvrtc_s'), '.2f')} | " + " | ".join(cells) + f" | {'yes' if r['ok'] else 'NO'} |")
    return out


def _channel_md(rows) -> list[str]:
    if not rows:
        return []
    kinds = sorted({k for r in rows for k in r["checks"]})
    backends = sorted({b for r in rows for b in r["step_ms"]})
    out = ["", "## Channel form (per-layer paper space, float64; relative norm of the difference)", "",
           "| (n, L) | " + " | ".join(kinds) + " | " + " | ".join(f"{b} ms/step" for b in backends) + " | ok |",
           "|---|" + "---:|" * (len(kinds) + len(backends)) + "---|"]
    for r in rows:
        cells = [_fmt(r["checks"][k]["rel"]) if k in r["checks"] else "-" for k in kinds]
        cells += [_fmt(r["step_ms"].get(b), ".3f") for b in backends]
        out.append(f"| ({r['n']}, {r['L']}) | " + " | ".join(cells) + f" | {'yes' if r['ok'] else 'NO'} |")
    return out


def _bench_md(rows) -> list[str]:
    out = ["", "## Generator step (forward + backward, median)", "",
           "| (n, L) | backend | ms/step | predicted ms (H200) | cold compile s | NVRTC s | vs cpu |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for size in rows:
        model, got = size.get("model") or {}, {r["backend"]: r for r in size["rows"]}
        cpu = got.get("cpu", {}).get("median")
        for name, r in got.items():
            pred = (model.get("h200_graph") if name == "cuda-graph" else model.get("h200")) if name.startswith("cuda") else None
            out.append(f"| ({size['n']}, {size['L']}) | {name} | {r['median'] * 1e3:.3f} | "
                       f"{_fmt(pred and pred['total_s'] * 1e3, '.3f')} | {_fmt(r.get('compile_s'), '.2f')} | "
                       f"{_fmt(r.get('nvrtc_s'), '.2f')} | "
                       f"{_fmt(cpu and cpu / r['median'], '.1f')}x |")
        if not got:
            out.append(f"| ({size['n']}, {size['L']}) | (no result) | - | - | - | - | - |")
    return out


def _epoch_md(rows) -> list[str]:
    return ["", "## One epoch", ""] + [
        f"`{r['command']}`: exit {r['exit']}, epoch {r['epoch_s']} s (whole command {r['wall_s']} s), "
        f"train loss {_fmt(r['train_loss'], '.4f')}, test accuracy {_fmt(r['test_accuracy'], '.4f')}" for r in rows]


# --- main --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--carry", type=Path, default=ROOT / ".gpu", help="the carried folder (wheels/, data/)")
    ap.add_argument("--out", type=Path, help="results folder (default: $OUT, else a temp folder)")
    ap.add_argument("--dry-run", action="store_true", help="here: checks, then the steps on the cpu backend")
    ap.add_argument("--quick", action="store_true", help="with --dry-run: the smallest sizes (tests)")
    ap.add_argument("--no-install", action="store_true", help="with --dry-run: skip the install check")
    ap.add_argument("--epoch-spec", help="task for the epoch step (default specs/fmnist_1v5.task)")
    ap.add_argument("--epoch-data", help="data root for the epoch step (default: the carried data)")
    ap.add_argument("--prepare-data", action="store_true", help="write the carried data subset and stop")
    ap.add_argument("--install", help=argparse.SUPPRESS)       # "exit,seconds" from gpu_check.sh
    ap.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    carry = args.carry if args.carry.is_absolute() else ROOT / args.carry
    if args.step:
        STEPS[args.step](json.loads(args.params), args.result)
        return 0
    if args.prepare_data:
        print(f"wrote {prepare_data(carry)}")
        return 0
    out = args.out or Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    mode = ("quick" if args.quick else "dry") if args.dry_run else "device"
    steps = plan(mode, carry, epoch_spec=args.epoch_spec, epoch_data=args.epoch_data)
    report = {"mode": "device" if mode == "device" else f"dry run on the cpu backend ({mode})",
              "date": time.strftime("%Y-%m-%d %H:%M"), "plan": [asdict(s) for s in steps], "steps": []}
    if args.install:
        code, seconds = args.install.split(",")
        report["install"] = f"exit {code} in {seconds} s" + ("" if code == "0" else " (see install.log)")
    with open(out / "gpu_check.log", "w") as log, tempfile.TemporaryDirectory() as work:
        if args.dry_run:
            report["checks"] = dry_checks(steps, carry, install=not args.no_install, log=log, workdir=Path(work))
        for step in steps:
            report["steps"].append(run_step(step, log, Path(work)))
            print(f"{step.name}: {report['steps'][-1]['status']} ({report['steps'][-1]['seconds']} s)", flush=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    text = summary(report)
    (out / "gpu_check.md").write_text(text)
    print(text + f"\nwrote {out}/gpu_check.json, gpu_check.md, gpu_check.log")
    good = all(s["status"] == "ok" for s in report["steps"]) and all(c["ok"] for c in report.get("checks", []))
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
