"""The supervised training engine shared by classification and forecasting.

Models (DiffQAS-QT, each fixed candidate, classical) are trained one after another with the same
seed, the same data order and the same budget. A checkpoint after every epoch (and on Ctrl-C,
mid-epoch) holds the finished models' results and the current model's full state, so a resumed
run ends with exactly the metrics of an uninterrupted one.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import TensorDataset
from tqdm import tqdm

from qtc.errors import QtcError
from qtc.tasks.build import Built
from qtc.tasks.engines.optim import make_optimizer
from qtc.tasks.runs import signals
from qtc.tasks.runs.rundir import RunDir


@dataclass
class Supervised:
    """What a task kind supplies to the engine."""
    train: TensorDataset
    test: TensorDataset
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scores: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]   # (outputs, targets) -> metrics
    on_epoch: Callable[[str, int, torch.Tensor], None] | None = None     # (model, epoch, flat) hook
    eval_batch: int = 1000


def train_all(built: Built, rundir: RunDir, opts, task: Supervised) -> dict[str, dict]:
    """Train every model in opts.models; return {model: final metrics row}."""
    state = rundir.load_checkpoint() or {"done": {}, "current": None}
    rows = [r for r in rundir.metrics() if r["model"] in state["done"]]
    current = state.get("current")
    if current:
        rows += [r for r in rundir.metrics() if r["model"] == current["model"] and r["epoch"] <= current["epoch"]]
    with signals.deferred() as stop:
        for model in opts.models:
            if model in state["done"] and state["done"][model]["epoch"] >= opts.epochs:
                continue
            # A finished model trains on from its final state when --resume --epochs extends it.
            resume = current if current and current["model"] == model else state.get("final", {}).get(model)
            state["done"][model] = _train_one(built, rundir, opts, task, model, resume, state, rows, stop)
            state.setdefault("final", {})[model] = state["current"]
            state["current"] = None
            rundir.save_checkpoint(state)
            if stop.requested and model != opts.models[-1]:
                _interrupted(rundir, f"after {built.model_label(model)}")
    return state["done"]


def _interrupted(rundir: RunDir, where: str):
    print(f"\ninterrupted: checkpoint saved {where}; continue with: qtc run --resume {rundir.path}")
    raise KeyboardInterrupt


def _train_one(built, rundir, opts, task: Supervised, model, resume, state, rows, stop) -> dict:
    net = built.nets["net"] if "net" in built.nets else next(iter(built.nets.values()))
    torch.manual_seed(opts.seed)
    source = built.sources(model, backend=opts.backend)[net.name]
    optim = make_optimizer(built.spec.train, source.parameters())
    epoch, start_batch = 0, 0
    if resume:
        source.load_state_dict(resume["source"])
        optim.load_state_dict(resume["optim"])
        epoch, start_batch = resume["epoch"], resume["batch"]
    x, y = task.train.tensors
    batch = built.spec.train.batch
    n_batches = (len(x) + batch - 1) // batch
    if opts.max_batches:
        n_batches = min(n_batches, opts.max_batches)
    label = built.model_label(model)
    row = next((r for r in reversed(rows) if r["model"] == model), None)
    bar = tqdm(total=opts.epochs * n_batches, initial=epoch * n_batches + start_batch, desc=label,
               disable=not opts.progress, unit="batch", dynamic_ncols=True, leave=False)

    def checkpoint(ep, b):
        state["current"] = {"model": model, "epoch": ep, "batch": b, "source": source.state_dict(),
                            "optim": optim.state_dict()}
        rundir.save_checkpoint(state)

    try:
        while epoch < opts.epochs:
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(opts.seed * 100_003 + epoch))
            t0 = time.perf_counter()
            for b in range(start_batch, n_batches):
                if stop.requested:
                    checkpoint(epoch, b)
                    bar.close()
                    _interrupted(rundir, f"at {label}, epoch {epoch + 1}, batch {b}")
                idx = order[b * batch:(b + 1) * batch]
                flat = source()
                loss = task.loss(net.forward(flat, x[idx]), y[idx])
                if epoch == 0 and b == 0:
                    for line in first_step_warnings(net, flat, loss.item()):
                        print(f"warning: {label}: {line}", file=sys.stderr)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4g}")
            seconds = time.perf_counter() - t0
            epoch, start_batch = epoch + 1, 0
            row = {"model": model, "label": label, "epoch": epoch, "seconds": round(seconds, 3),
                   **evaluate(net, source, task)}
            if getattr(source, "fixed", 0) is None:
                row["structural_weights"] = [round(w, 6) for w in source.structural_weights().tolist()]
            rows.append(row)
            rundir.log_metrics(rows)
            if task.on_epoch:
                with torch.no_grad():
                    task.on_epoch(model, epoch, source().detach())
            checkpoint(epoch, 0)
    finally:
        bar.close()
    with torch.no_grad():
        rundir.export(model, {net.name: net}, {net.name: source().detach()})
    print(f"{label}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)))
    return row


ABSURD_LOSS = 100.0   # the tasks' losses start near 1: cross-entropy ln 2, MSE of series in [0, 1]


def first_step_warnings(net, flat: torch.Tensor, loss: float) -> list[str]:
    """What is absurd about a model's first step: generated weights far above torch's init scale
    or a huge first loss. Such a run ends at chance (loss 8e4, accuracy 0.50) with no error."""
    out = [f"generated weights far from torch's init scale: {t}" for t in net.absurd_tensors(flat)]
    if not math.isfinite(loss) or loss > ABSURD_LOSS:
        out.append(f"first loss {loss:.3g} (a sensible start is ~1)")
    if out:
        out.append("lower the generator's init_scale (a multiplier on the calibrated scale, default 1)")
    return out


@torch.no_grad()
def evaluate(net, source, task: Supervised) -> dict[str, float]:
    """Loss and scores on the train and test sets, with the weights generated once."""
    flat = source()
    out = {}
    for split, data in (("train", task.train), ("test", task.test)):
        x, y = data.tensors
        outputs = torch.cat([net.forward(flat, x[i:i + task.eval_batch])
                             for i in range(0, len(x), task.eval_batch)])
        if not torch.isfinite(outputs).all():
            raise QtcError(f"training diverged: non-finite outputs on the {split} set "
                           "(lower the learning rate)")
        out[f"{split}_loss"] = float(task.loss(outputs, y))
        out.update({f"{split}_{k}": v for k, v in task.scores(outputs, y).items()})
    return out
