"""The supervised training engine shared by classification and forecasting.

Models (DiffQAS-QT, each fixed candidate, classical) are trained one after another with the same
seed, the same data order and the same budget. A checkpoint after every epoch (and on Ctrl-C,
mid-epoch) holds the finished models' results and the current model's full state, so a resumed
run ends with exactly the metrics of an uninterrupted one.

The reported (and exported) checkpoint is the epoch the selection rule picks
(qtc.tasks.engines.selection); selection.json records the rule and the epoch of each model.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch.utils.data import TensorDataset
from tqdm import tqdm

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.build import Built
from qtc.tasks.engines import progress, selection
from qtc.tasks.engines.optim import make_optimizer
from qtc.tasks.runs import signals, tensorboard
from qtc.tasks.runs.rundir import CHECKPOINT, RunDir


@dataclass
class Supervised:
    """What a task kind supplies to the engine."""
    train: TensorDataset
    test: TensorDataset
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scores: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]   # (outputs, targets) -> metrics
    on_epoch: Callable[[str, int, torch.Tensor], None] | None = None     # (model, epoch, flat) hook
    preprocessing: str = ""       # markdown for the exported models' README: inputs and outputs
    on_model: Callable[[str], None] | None = None                        # after each model (figures)
    eval_batch: int = 1000


def held_out(task: Supervised, opts, batch: int) -> tuple[Supervised, TensorDataset | None]:
    """The task with its validation block (the end of the training data) cut off, and the block."""
    if opts.select != "validation":
        return task, None
    x, y = task.train.tensors
    n_fit, _ = selection.validation_split(len(x), opts.validation, batch)
    fit = TensorDataset(x[:n_fit], y[:n_fit])
    return replace(task, train=fit), TensorDataset(x[n_fit:], y[n_fit:])


def train_all(built: Built, rundir: RunDir, opts, task: Supervised) -> dict[str, dict]:
    """Train every model in opts.models; return {model: the selected epoch's metrics row}."""
    task, val = held_out(task, opts, built.spec.train.batch)
    state = rundir.load_checkpoint() or {"done": {}, "current": None}
    rows = [r for r in rundir.metrics() if r["model"] in state["done"]]
    current = state.get("current")
    if current:
        rows += [r for r in rundir.metrics() if r["model"] == current["model"] and r["epoch"] <= current["epoch"]]
    overall = progress.Overall(len(opts.models))
    with signals.deferred() as stop:
        for model in opts.models:
            if model in state["done"] and state["done"][model]["epoch"] >= opts.epochs:
                overall.finished(trained=False)
                continue
            # A finished model trains on from its final state when --resume --epochs extends it.
            resume = current if current and current["model"] == model else state.get("final", {}).get(model)
            state["done"][model] = _train_one(built, rundir, opts, task, val, model, resume, state, rows, stop)
            state.setdefault("final", {})[model] = state["current"]
            state["current"] = None
            rundir.save_checkpoint(state)
            rundir.write_json(SELECTION, {m: _choice(opts, r) for m, r in state["done"].items()})
            if task.on_model:
                task.on_model(model)
            progress.say(overall.finished())
            if stop.requested and model != opts.models[-1]:
                _interrupted(rundir, f"after {built.model_label(model)}")
    return state["done"]


SELECTION = "selection.json"


def _choice(opts, row: dict) -> dict:
    """What selection.json records for one model: the rule and the epoch it picked."""
    key = selection.criterion(opts.select)
    return {"rule": opts.select, "validation": opts.validation, "epoch": row["epoch"],
            "criterion": key, "value": row.get(key) if key else None}


def _interrupted(rundir: RunDir, where: str):
    print(f"\ninterrupted: checkpoint saved {where}; continue with: qtc run --resume {rundir.path}")
    raise KeyboardInterrupt


def _train_one(built, rundir, opts, task: Supervised, val, model, resume, state, rows, stop) -> dict:
    net = built.nets["net"] if "net" in built.nets else next(iter(built.nets.values()))
    torch.manual_seed(opts.seed)
    found = state["done"].get(naming.DIFFQAS, {}).get("structural_weights")   # for "found"
    source = built.sources(model, backend=opts.backend, found=found)[net.name]
    optim = make_optimizer(built.spec.train, source.parameters())
    epoch, start_batch, best = 0, 0, None
    if resume:
        source.load_state_dict(resume["source"])
        optim.load_state_dict(resume["optim"])
        epoch, start_batch, best = resume["epoch"], resume["batch"], resume.get("best")
    x, y = task.train.tensors
    batch = built.spec.train.batch
    n_batches = (len(x) + batch - 1) // batch
    if opts.max_batches:
        n_batches = min(n_batches, opts.max_batches)
    label = built.model_label(model)
    row = next((r for r in reversed(rows) if r["model"] == model), None)
    lines = not progress.bars(opts.progress)
    bar = tqdm(total=opts.epochs * n_batches, initial=epoch * n_batches + start_batch, desc=label,
               disable=lines, unit="batch", dynamic_ncols=True, leave=False)
    t_start = time.perf_counter()
    board = tensorboard.writer(rundir.path, model) if getattr(opts, "tensorboard", False) else None

    def checkpoint(ep, b):
        state["current"] = {"model": model, "epoch": ep, "batch": b, "source": source.state_dict(),
                            "optim": optim.state_dict(), "best": best}
        rundir.save_checkpoint(state)

    try:
        while epoch < opts.epochs:
            order = selection.batch_order(len(x), opts.seed, epoch, built.spec.train.order)
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
                if not torch.isfinite(loss):  # before the step: the checkpoint stays the last good state
                    raise _diverged(rundir, label, epoch, f"batch {b + 1}: the loss is {loss.item()}")
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4g}")
            seconds = time.perf_counter() - t0
            epoch, start_batch = epoch + 1, 0
            scores = evaluate(net, source, task, val)
            if scores is None:
                raise _diverged(rundir, label, epoch - 1, "the outputs after its last batch are not finite")
            row = {"model": model, "label": label, "epoch": epoch, "seconds": round(seconds, 3), **scores}
            if getattr(source, "fixed", 0) is None:
                row["structural_weights"] = [round(w, 6) for w in source.reported_weights()]
                if source.architecture():
                    row["architecture"] = source.architecture()   # per position: the favourites
            elif model == naming.FOUND:
                row["architecture"] = source.program.labels[0]   # the one circuit it trains
            rows.append(row)
            if selection.is_better(opts.select, row, best and best["row"]):
                best = {"row": row, "source": {k: v.clone() for k, v in source.state_dict().items()}}
            rundir.log_metrics(rows)
            if board:
                tensorboard.log_row(board, row)
            if lines:
                progress.say(progress.epoch_line(label, row, opts.epochs, time.perf_counter() - t_start))
            if task.on_epoch:
                with torch.no_grad():
                    task.on_epoch(model, epoch, source().detach())
            checkpoint(epoch, 0)
    finally:
        bar.close()
        if board:
            board.close()
    if best is None:           # a checkpoint written before selection existed: its last epoch
        best = {"row": row, "source": source.state_dict()}
    with torch.no_grad():     # the selected epoch is what is exported (the live state stays the last)
        flat = torch.func.functional_call(source, best["source"], ())
        rundir.export(model, {net.name: net}, {net.name: flat.detach()}, task.preprocessing)
    row = best["row"]
    print(f"{label} (epoch {row['epoch']}, select {opts.select}): "
          + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)))
    if row.get("architecture"):
        what = "trains alone" if model == naming.FOUND else "architecture found (per-position favourites)"
        print(f"{label}: {what}: {row['architecture']}")
    return row


def _diverged(rundir: RunDir, label: str, epoch: int, what: str) -> QtcError:
    """Which model, epoch and batch went non-finite, and where the last good state is kept."""
    ckpt = rundir.path / CHECKPOINT
    before = (f"the checkpoint before it is {ckpt} (after epoch {epoch})" if epoch and ckpt.is_file()
              else "it diverged in its first epoch, before any checkpoint of it")
    return QtcError(f"training diverged: {label}, epoch {epoch + 1}, {what}; {before}\n"
                    "hint: lower 'lr' in the 'train' statement (a resumed run would diverge the same "
                    "way) and start a new run")


WEIGHT_ROUNDING = 1e-6   # the metrics rows keep structural weights to 6 decimals


def unmoved_weights(rows: list[dict], model: str = "diffqas") -> list[int]:
    """Candidates whose structural weight is the same (to the recorded rounding) at every epoch
    `model` recorded, over at least two epochs. In the paper space configs 9 and 12 (a delta on
    |0...0>) stay at their initial weight: the rescaling's tanh saturates there, so their gradient
    is 0. Found from the recorded weights, not from the space."""
    history = [r["structural_weights"] for r in rows if r["model"] == model and r.get("structural_weights")]
    if len(history) < 2:
        return []
    return [k for k in range(len(history[0]))
            if max(h[k] for h in history) - min(h[k] for h in history) <= WEIGHT_ROUNDING]


def unmoved_note(rows: list[dict]) -> str | None:
    """``configs 9, 12: structural weight never moved (gradient 0)``, or None."""
    stuck = unmoved_weights(rows)
    if not stuck:
        return None
    return f"{naming.configs([naming.fixed(k) for k in stuck])}: structural weight never moved (gradient 0)"


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
def evaluate(net, source, task: Supervised, val: TensorDataset | None = None) -> dict[str, float] | None:
    """Loss and scores on the train (and validation) and test sets, with the weights generated
    once; None when the outputs are not finite (the training diverged)."""
    flat = source()
    out = {}
    splits = (("train", task.train),) + ((("val", val),) if val is not None else ()) + (("test", task.test),)
    for split, data in splits:
        x, y = data.tensors
        outputs = torch.cat([net.forward(flat, x[i:i + task.eval_batch])
                             for i in range(0, len(x), task.eval_batch)])
        if not torch.isfinite(outputs).all():
            return None
        out[f"{split}_loss"] = float(task.loss(outputs, y))
        out.update({f"{split}_{k}": v for k, v in task.scores(outputs, y).items()})
    return out
