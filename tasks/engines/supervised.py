"""The supervised training engine shared by classification and forecasting.

Models (DiffQAS-QT, each fixed candidate, classical) are trained one after another with the same
seed, the same data order and the same budget. A checkpoint after every epoch (and on Ctrl-C,
mid-epoch) holds the finished models' results and the current model's full state -- with torch's
global RNG state, which a network's dropout draws from -- so a resumed run ends with exactly the
metrics of an uninterrupted one.

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
from qtc.tasks.build import Built, net_on
from qtc.tasks.engines import progress, selection
from qtc.tasks.engines.optim import make_optimizer, make_schedule
from qtc.tasks.runs import signals, tensorboard
from qtc.tasks.runs.rundir import CHECKPOINT, RunDir, read_json_or_none


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
    # Evaluation batch: FashionMNIST's CNN evaluates its 12,000 training images in 1.58 s at 250
    # and 2.93 s at 1,000 (one thread; larger batches' activations fall out of the cache).
    eval_batch: int = 250


def held_out(task: Supervised, opts, batch: int) -> tuple[Supervised, TensorDataset | None]:
    """The task with its validation block (the end of the training data) cut off, and the block."""
    if opts.select != "validation":
        return task, None
    x, y = task.train.tensors
    n_fit, _ = selection.validation_split(len(x), opts.validation, batch)
    fit = TensorDataset(x[:n_fit], y[:n_fit])
    return replace(task, train=fit), TensorDataset(x[n_fit:], y[n_fit:])


def train_all(built: Built, rundir: RunDir, opts, task: Supervised) -> dict[str, dict]:
    """Train every model in opts.models; return {model: the selected epoch's metrics row}.

    With opts.jobs > 1 the models train that many at a time, each in a worker process that
    rebuilds the task from the spec (the kind's `supervised` factory, so `task` must be the one
    it builds); this process keeps the run's books either way (`Ledger`). Fixed candidates the
    compiler merged (Built.twins) are trained once and reported for every member.
    """
    ledger = Ledger(built, rundir, opts, task)
    rundir.write_json(EXAMPLES, examples(task, opts, built.spec.train.batch))
    todo = [m for m in opts.models if m not in ledger.twins and not ledger.finished(m)]
    with signals.deferred() as stop:
        if opts.jobs > 1 and len(todo) > 1:
            from qtc.tasks.engines.parallel import train_in_workers
            train_in_workers(ledger, todo, stop)
        else:
            fit, val = held_out(task, opts, built.spec.train.batch)
            for model in todo:
                try:
                    train_one(built, rundir, opts, fit, val, ledger.job(model), ledger, stop)
                except Stopped as why:
                    interrupted(rundir, str(why))
                if stop.requested and model != todo[-1]:
                    interrupted(rundir, f"after {built.model_label(model)}")
    done = ledger.state["done"]
    return {m: done[m] for m in opts.models if m in done}


SELECTION = "selection.json"
EXAMPLES = "examples.json"


def examples(task: Supervised, opts, batch: int) -> dict[str, int]:
    """How many examples the run trained and tested on, after --limit, the class filter and the
    windowing (examples.json): a result is read against these counts, not the data set's size."""
    fit, val = held_out(task, opts, batch)
    out = {"train": len(task.train), "test": len(task.test)}
    if val is not None:
        out |= {"fit": len(fit.train), "validation": len(val)}
    return out


class Stopped(Exception):
    """A model stopped mid-epoch on request, its state checkpointed (the message says where)."""


@dataclass(frozen=True)
class Job:
    """What training one model needs besides the task: where to resume from, DiffQAS-QT's
    structural weights (for `found`) and the twins exported with it."""
    model: str
    resume: dict | None = None
    found: list[float] | None = None
    twins: tuple[str, ...] = ()


class Ledger:
    """The run's books, kept by the one process that writes the run folder: the metrics rows,
    the checkpoint (finished models' rows and final states, the running models' states) and
    selection.json. Training reports to it through `row`, `checkpoint` and `done`, in this
    process or from workers (qtc.tasks.engines.parallel)."""

    def __init__(self, built: Built, rundir: RunDir, opts, task: Supervised):
        self.built, self.rundir, self.opts, self.task = built, rundir, opts, task
        state = rundir.load_checkpoint() or {"done": {}}
        state.setdefault("running", {})
        state.setdefault("final", {})
        self.state = state
        self.twins = built.twins(opts.models)
        self.order = {m: i for i, m in enumerate(opts.models)}
        self.rows = self._covered(rundir.metrics())
        rundir.check_rows(state, self.rows)    # metrics.json emptied or edited since: refused
        self.overall = progress.Overall(len(opts.models))
        self.started = {}
        for model in opts.models:
            if self.finished(model):
                self.overall.finished(trained=False)

    def _covered(self, rows: list[dict]) -> list[dict]:
        """The rows the checkpoint stands for: finished models', running ones' to their epoch."""
        done, running = self.state["done"], self.state["running"]
        return [r for r in rows if r["model"] in done
                or (r["model"] in running and r["epoch"] <= running[r["model"]]["epoch"])]

    def finished(self, model: str) -> bool:
        done = self.state["done"].get(model)
        return done is not None and done["epoch"] >= self.opts.epochs

    def ready(self, model: str) -> bool:
        """`found` waits for DiffQAS-QT's result; every other model can start at once."""
        return model != naming.FOUND or naming.DIFFQAS not in self.opts.models or naming.DIFFQAS in self.state["done"]

    def job(self, model: str) -> Job:
        # A finished model trains on from its final state when --resume --epochs extends it.
        resume = self.state["running"].get(model) or self.state["final"].get(model)
        found = self.state["done"].get(naming.DIFFQAS, {}).get("structural_weights")
        self.started[model] = time.perf_counter()
        return Job(model, resume, found, self.twins_of(model))

    def twins_of(self, model: str) -> tuple[str, ...]:
        """The merged candidates `model` is trained for besides itself."""
        return tuple(t for t, m in self.twins.items() if m == model)

    def _log_rows(self) -> None:
        """metrics.json in model order, then epoch: the same file whichever worker ends first."""
        self.rows.sort(key=lambda r: (self.order.get(r["model"], len(self.order)), r["epoch"]))
        self.rundir.log_metrics(self.rows)

    def row(self, model: str, row: dict) -> None:
        self.rows.append(row)
        self._log_rows()
        if not progress.bars(self.opts.progress) or self.opts.jobs > 1:
            elapsed = time.perf_counter() - self.started.get(model, time.perf_counter())
            progress.say(progress.epoch_line(row["label"], row, self.opts.epochs, elapsed))

    def checkpoint(self, model: str, current: dict) -> None:
        self.state["running"][model] = current
        self.rundir.save_checkpoint(self.state, self._covered(self.rows))

    def done(self, model: str, row: dict, final: dict) -> None:
        """`model` finished: its selected row, and its twins' (copies of its rows relabelled)."""
        state, label = self.state, row["label"]
        print(f"{label} (epoch {row['epoch']}, select {self.opts.select}): "
              + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)), flush=True)
        if row.get("architecture"):
            what = "trains alone" if model == naming.FOUND else "architecture found (per-position favourites)"
            print(f"{label}: {what}: {row['architecture']}", flush=True)
        state["done"][model], state["final"][model] = row, final
        state["running"].pop(model, None)
        twins = self.twins_of(model)
        for twin in twins:
            relabel = {"model": twin, "label": self.built.model_label(twin)}
            state["done"][twin] = {**row, **relabel}
            self.rows = [r for r in self.rows if r["model"] != twin]
            self.rows += [{**r, **relabel, "trained_as": r["label"]} for r in self.rows if r["model"] == model]
        self._log_rows()
        self.rundir.save_checkpoint(state, self._covered(self.rows))
        self.rundir.write_json(SELECTION, {m: _choice(self.opts, state["done"][m])
                                           for m in self.opts.models if m in state["done"]})
        if self.task.on_model:
            self.task.on_model(model)
        for _ in (model, *twins):
            last = self.overall.finished()
        progress.say(last)


def _choice(opts, row: dict) -> dict:
    """What selection.json records for one model: the rule and the epoch it picked."""
    key = selection.criterion(opts.select)
    return {"rule": opts.select, "validation": opts.validation, "epoch": row["epoch"],
            "criterion": key, "value": row.get(key) if key else None}


def interrupted(rundir: RunDir, where: str):
    """Say where the run stopped (its checkpoint saved) and how to continue it; raise
    KeyboardInterrupt (also the --jobs driver's way out, qtc.tasks.engines.parallel)."""
    task = (read_json_or_none(rundir.path / "resolved.json") or {}).get("task") or {}
    how = ("" if task.get("kind") == "python"          # qtc.experiment says its own way back in
           else f"; continue with: qtc run --resume {rundir.path}")
    print(f"\ninterrupted: checkpoint saved {where}{how}")
    raise KeyboardInterrupt


PERTURB_STREAM = 0x5EED_7E57   # the perturbation's generator: apart from the run's own draws


def perturb(module: torch.nn.Module, eps: float, seed: int) -> None:
    """Move every parameter of `module` by its own uniform draw in [-eps, eps] (`--perturb`).

    The same seed with a rounding-level change: the draws come from a generator of their own,
    seeded by the run's seed, so the batch order and every other random draw stay the run's, and
    the difference from the unperturbed run measures what a change of the last bits (another
    commit's numerics) does to the results. A parameter moves by at most `eps` plus half a
    rounding step of its dtype (a float32 parameter near 0.1 drops a draw under ~7e-9).
    """
    gen = torch.Generator().manual_seed(PERTURB_STREAM + seed)
    with torch.no_grad():
        for p in module.parameters():
            step = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * eps
            p.add_(step.to(p.dtype))


def train_one(built, rundir, opts, task: Supervised, val, job: Job, books, stop) -> dict:
    """Train `job.model` to opts.epochs, reporting each epoch's row and checkpoint to `books`
    (a Ledger, or a worker's messenger); export the selected epoch; return its row. Raises
    Stopped (after a checkpoint) when `stop.requested` turns true between two batches."""
    model, resume = job.model, job.resume
    net = built.main_net
    x, y = task.train.tensors
    batch = built.spec.train.batch
    n_batches = (len(x) + batch - 1) // batch
    # The spec's budget, not --epochs / --max-batches: the rendering it picks moves the last bits
    # of every sum, so a resumed or extended run must pick the one its start picked.
    epochs = built.spec.train.epochs
    torch.manual_seed(opts.seed)
    source = built.sources(model, backend=opts.backend, found=job.found,
                           steps=epochs * n_batches if epochs else None)[net.name]
    net = net_on(net, source)            # a Python model's frozen parameters and buffers: the source's
    if opts.perturb and not resume:      # a resumed run's state is in its checkpoint
        perturb(source, opts.perturb, opts.seed)
    optim = make_optimizer(built.spec.train, source.parameters())
    if opts.max_batches:
        n_batches = min(n_batches, opts.max_batches)
    # over the run's budget (--epochs included); a cosine run's budget cannot grow on resume
    # (qtc.tasks.runs.runner refuses it): its past steps would have had other rates
    schedule = make_schedule(built.spec.train, optim, opts.epochs * n_batches, n_batches)
    epoch, start_batch, best = 0, 0, None
    if resume:
        source.load_state_dict(resume["source"])
        optim.load_state_dict(resume["optim"])
        if schedule:
            schedule.load_state_dict(resume["schedule"])
        epoch, start_batch, best = resume["epoch"], resume["batch"], resume["best"]
        if "rng" in resume:      # dropout's next masks: those the interrupted run would have drawn
            torch.set_rng_state(resume["rng"])
    label = built.model_label(model)
    bar = tqdm(total=opts.epochs * n_batches, initial=epoch * n_batches + start_batch, desc=label,
               disable=not progress.bars(opts.progress) or opts.jobs > 1, unit="batch",
               dynamic_ncols=True, leave=False)
    board = tensorboard.writer(rundir.path, model) if opts.tensorboard else None

    def current(ep, b):
        return {"model": model, "epoch": ep, "batch": b, "source": source.state_dict(),
                "optim": optim.state_dict(), "best": best, "rng": torch.get_rng_state(),
                **({"schedule": schedule.state_dict()} if schedule else {})}

    try:
        while epoch < opts.epochs:
            order = selection.batch_order(len(x), opts.seed, epoch, built.spec.train.order)
            t0 = time.perf_counter()
            for b in range(start_batch, n_batches):
                if stop.requested:
                    books.checkpoint(model, current(epoch, b))
                    raise Stopped(f"at {label}, epoch {epoch + 1}, batch {b}")
                idx = order[b * batch:(b + 1) * batch]
                # one generated weight vector, or a sampled search's K (loss: their mean's surrogate)
                loss, flat = source.objective(lambda flat: task.loss(net.forward(flat, x[idx]), y[idx]))
                if epoch == 0 and b == 0:
                    for line in first_step_warnings(net, flat, loss.item()):
                        print(f"warning: {label}: {line}", file=sys.stderr)
                if not torch.isfinite(loss):  # before the step: the checkpoint stays the last good state
                    raise _diverged(rundir, label, epoch, f"batch {b + 1}: the loss is {loss.item()}")
                optim.zero_grad(set_to_none=True)
                loss.backward()
                rate = optim.param_groups[0]["lr"]
                optim.step()
                if schedule:
                    schedule.step()
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4g}")
            seconds = time.perf_counter() - t0
            epoch, start_batch = epoch + 1, 0
            scores = evaluate_model(net, source, task, val)
            if scores is None:
                raise _diverged(rundir, label, epoch - 1, "the outputs after its last batch are not finite")
            row = {"model": model, "label": label, "epoch": epoch, "seconds": round(seconds, 3), **scores}
            if schedule:                         # the rate of the epoch's last step
                row["lr"] = rate
            if model == naming.DIFFQAS:          # the search: its structural weights move
                row["structural_weights"] = source.reported_weights()   # unrounded: "found" takes their argmax
                if source.architecture():
                    row["architecture"] = source.architecture()   # per position: the favourites
            elif model == naming.FOUND:
                row["architecture"] = source.program.labels[0]   # the one circuit it trains
            if selection.is_better(opts.select, row, best and best["row"]):
                best = {"row": row, "source": {k: v.clone() for k, v in source.state_dict().items()}}
            books.row(model, row)
            if board:
                tensorboard.log_row(board, row)
            if task.on_epoch:
                with torch.no_grad():
                    task.on_epoch(model, epoch, source().detach())
            books.checkpoint(model, current(epoch, 0))
    finally:
        bar.close()
        if board:
            board.close()
    final = current(epoch, 0)
    final["source"] = {k: v.clone() for k, v in final["source"].items()}
    with torch.no_grad():     # the selected epoch is what is exported (the live state stays the last):
        source.load_state_dict(best["source"])     # its weights, and its network's buffers
        flat = source().detach()
        for name in (model, *job.twins):
            rundir.export(name, {net.name: net}, {net.name: flat}, task.preprocessing)
    books.done(model, best["row"], final)
    return best["row"]


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


def twins_note(rows: list[dict]) -> str | None:
    """``configs 3, 4, 6 trained as config 1 (...); ...``: the merged candidates a run trained
    once and reported for each member (their rows carry `trained_as`), or None."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.get("trained_as") and r["model"] not in groups.setdefault(r["trained_as"], []):
            groups[r["trained_as"]].append(r["model"])
    parts = [f"{naming.configs(members)} = {rep}" for rep, members in groups.items() if members]
    if not parts:
        return None
    return ("the compiler merged " + "; ".join(parts) + " into one circuit each (the same "
            "probabilities for every angle): each group was trained once and is reported for every member")


def unmoved_note(rows: list[dict]) -> str | None:
    """``configs 9, 12: structural weight never moved (gradient 0)``, or None."""
    stuck = unmoved_weights(rows)
    if not stuck:
        return None
    return f"{naming.configs([naming.fixed(k) for k in stuck])}: structural weight never moved (gradient 0)"


def architecture_section(program, final: dict[str, dict], sampled: bool) -> list[str]:
    """Summary lines for a per-position search: every position's favourite and its weight (its
    probability under softmax weights) at DiffQAS-QT's reported epoch, and, for a sampled
    search, what it optimised; none for an enumerated space or without DiffQAS-QT's row."""
    row = final.get(naming.DIFFQAS)
    if program is None or program.weights.kind != "position" or not row or not row.get("structural_weights"):
        return []
    layout, flat = program.weights, row["structural_weights"]
    what = "probability" if layout.norm == "softmax" else "weight"
    lines = ["", f"Architecture found (every position's favourite and its {what}, DiffQAS-QT at epoch "
             f"{row['epoch']}):", "", f"| position | favourite | {what} | alternatives |", "|---|---|---:|---|"]
    at = 0
    for step, k in zip(layout.steps, layout.choices(flat)):
        if step.position is None:
            continue
        values = flat[at:at + len(step.alts)]
        at += len(step.alts)
        others = ", ".join(f"{lab} {v:.3f}" for lab, v in zip(step.labels, values))
        lines.append(f"| {step.name} | {step.labels[k]} | {values[k]:.3f} | {others} |")
    if sampled:
        lines += ["", "DiffQAS-QT here is a sampled search: each step drew architectures from these "
                  "distributions and trained the mean of their losses, so it minimises the expected loss "
                  "over architectures, not the loss of the weight-averaged probability vector that the "
                  "exact forms (channel, enumeration) train; its rows are the most probable architecture's."]
    return lines


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
def evaluate_model(net, source, task: Supervised,
                   val: TensorDataset | None = None) -> dict[str, float] | None:
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
