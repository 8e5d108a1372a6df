"""What a classify spec's model does in its first steps, step by step: the training loss, the
accuracy on 500 training images and how many classes it predicts, the outputs' offsets between
classes and their input-dependent spread, each generated tensor's mean / std, and DiffQAS-QT's
three largest structural weights. It trains as `qtc run` does (the spec's sources, optimizer,
batch order and validation hold-out; no learning-rate schedule, no checkpoints) and prints the
held-out accuracy at the end. Written to find why 10-class seeds sat at chance
(docs/results/ten_class_notes.md section 8: a tensor's mean silencing a ReLU layer).

    python bench/spec_start.py specs/mnist_10.task --data-root ../shared/data/mnist-10k \
        --seed 1 --steps 320 --every 40 [--set generator.center=true] [--model fixed:1]
"""
from __future__ import annotations

import argparse

import torch

from qtc.tasks.build import load_task, net_on
from qtc.tasks.engines import selection
from qtc.tasks.engines.optim import make_optimizer
from qtc.tasks.engines.supervised import held_out
from qtc.tasks.kinds import classify
from qtc.tasks.runs.runner import RunOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=10, help="print a line every N steps")
    ap.add_argument("--model", default="diffqas", help="diffqas, fixed:K or classical")
    ap.add_argument("--set", action="append", default=[], metavar="STATEMENT.OPTION=VALUE")
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args()
    built = load_task(a.spec, dict(s.split("=", 1) for s in a.set))
    torch.set_num_threads(1)
    opts = RunOptions(models=(a.model,), seed=a.seed, select="validation", validation=0.2,
                      data_root=a.data_root)
    task, val = held_out(classify.supervised(built, None, opts), opts, built.spec.train.batch)
    x, y = task.train.tensors
    net, batch = built.main_net, built.spec.train.batch
    sizes = net.tensor_sizes()
    names = [n for n, _ in net.module().named_parameters()]
    torch.manual_seed(a.seed)
    source = built.sources(a.model, steps=a.steps)[net.name]
    net = net_on(net, source)
    optim = make_optimizer(built.spec.train, source.parameters())

    def line(step: int, loss: float) -> None:
        with torch.no_grad():
            flat = source()
            out = net.forward(flat, x[:500])
            acc = (out.argmax(1) == y[:500]).float().mean().item()
            offsets, spread = out.mean(0).std().item(), (out - out.mean(0)).std().item()
            classes = len(out.argmax(1).unique())
        tensors = " ".join(f"{n}:{p.mean().item():+.3f}/{p.std().item():.3f}"
                           for n, p in zip(names, torch.split(flat, sizes)))
        top = ""
        if hasattr(source, "reported_weights") and source.fixed is None:
            w = source.reported_weights()
            top = " weights " + ",".join(f"{i + 1}:{w[i]:.3f}" for i in sorted(range(len(w)), key=lambda i: -w[i])[:3])
        print(f"{step:5d} loss {loss:.4f} acc {acc:.3f} classes {classes:2d} offsets {offsets:.3f} "
              f"spread {spread:.3f} | {tensors}{top}", flush=True)

    n_batches, step = (len(x) + batch - 1) // batch, 0
    while step < a.steps:
        order = selection.batch_order(len(x), a.seed, step // n_batches, built.spec.train.order)
        for b in range(n_batches):
            idx = order[b * batch:(b + 1) * batch]
            loss, _ = source.objective(lambda f: task.loss(net.forward(f, x[idx]), y[idx]))
            if step % a.every == 0:
                line(step, loss.item())
            optim.zero_grad()
            loss.backward()
            optim.step()
            step += 1
            if step >= a.steps:
                break
    with torch.no_grad():
        xv, yv = val.tensors
        acc = (net.forward(source(), xv).argmax(1) == yv).float().mean().item()
    print(f"after {step} steps: held-out accuracy {acc:.4f} ({len(yv)} images)")


if __name__ == "__main__":
    main()
