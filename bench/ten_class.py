"""10-class MNIST (the 10k sample) with qtc.QTModel in a plain training loop: the cheap
experiments behind docs/results/ten_class_notes.md (why a 10-class QT model stayed at chance).

    .venv/bin/python bench/ten_class.py --model qt --net paper --depth 15 --steps 200 --seed 0

One torch thread; prints the training loss every --every steps and the test accuracy at the
end (all 2,000 test images), with the wall time. Options not given are QTModel's defaults.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qtc

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist-10k"


def idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(root: Path, split: str):
    x = torch.tensor(idx(root / f"{split}-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    y = torch.tensor(idx(root / f"{split}-labels-idx1-ubyte.gz"), dtype=torch.long)
    return (x - 0.5) / 0.5, y


def network(name: str) -> nn.Module:
    if name == "paper":      # the paper's MNIST CNN (specs/mnist_1v5.task) with 10 outputs: 110,154
        return nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(512, 160), nn.ReLU(), nn.Linear(160, 10))
    if name == "qt":         # the Quantum-Train paper's 10-class MNIST CNN: 6,690 parameters, 13 qubits
        return nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 12, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(192, 20), nn.ReLU(), nn.Linear(20, 10))
    if name == "small":      # the README's CNN with 10 outputs: 5,874 parameters, 13 qubits
        return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 12 * 12, 10))
    raise SystemExit(f"unknown net {name}")


def diagnose(model, x) -> None:
    """Per tensor: the generated weights' mean and std against torch's init std; per ReLU: the
    fraction of its units active on some input (0: a dead layer, the output constant)."""
    with torch.no_grad():
        for name, w in model.weights().items():
            init = dict(network(NET).named_parameters())[name]
            print(f"  {name:10s} mean {float(w.mean()):+.4f}  std {float(w.std()) if w.numel() > 1 else 0:.4f}"
                  f"  (torch init std {float(init.std()):.4f})")
        alive = []
        hooks = [m.register_forward_hook(lambda m, i, o: alive.append(float((o.flatten(1) > 0).any(0).float().mean())))
                 for m in model.net.modules() if isinstance(m, nn.ReLU)]
        model(x)
        for h in hooks:
            h.remove()
        print("  ReLU units active on some input:", [round(v, 3) for v in alive])


def patch_for_experiments(a, net: nn.Module) -> None:
    """The notes' experiments, as patches of QTModel in this process (not product options):
    --no-offset-bound the initial scale before the fix (torch's input spread alone);
    --tensor-center / --tensor-scale each generated tensor centred / multiplied by torch's init
    std; --tensor-standardize each tensor standardised to torch's init std (no calibration)."""
    from qtc.runtime import model as qtmodel
    from qtc.runtime.generator import output_scale

    stds = {n: float(p.detach().std()) for n, p in net.named_parameters()}
    plain = qtc.QTModel._unflatten
    if a.no_offset_bound:
        qtmodel.output_scale = lambda *args, **kw: output_scale(*args, **{**kw, "bound_offsets": False})
    if a.tensor_standardize:
        def standardized(self, flat):
            return {n: (w - w.mean()) / w.std() * stds[n] for n, w in plain(self, flat).items()}
        qtc.QTModel._unflatten = standardized
        qtmodel.output_scale = lambda *args, **kw: 1.0   # scale-free: nothing to calibrate
    if a.tensor_scale or a.tensor_center:
        def per_tensor(self, flat):
            out = plain(self, flat)
            if a.tensor_center:
                out = {n: w - w.mean() for n, w in out.items()}
            if a.tensor_scale:
                out = {n: w * stds[n] for n, w in out.items()}
            return out
        qtc.QTModel._unflatten = per_tensor


NET = "small"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["qt", "classical"], default="qt")
    ap.add_argument("--net", default="small")
    ap.add_argument("--space", default="hadamard_ent_rot.qs")
    ap.add_argument("--depth", type=int)
    ap.add_argument("--qubits", type=int)
    ap.add_argument("--fixed", type=int)
    ap.add_argument("--mapping")
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--init-scale", type=float)
    ap.add_argument("--rescale")
    ap.add_argument("--scale-at", choices=["mapping", "output"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--map-lr", type=float, help="the mapping model's learning rate (default: --lr)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--diagnose", action="store_true", help="per-tensor statistics and live ReLU units at the end")
    ap.add_argument("--tensor-scale", action="store_true")
    ap.add_argument("--tensor-center", action="store_true")
    ap.add_argument("--tensor-standardize", action="store_true")
    ap.add_argument("--no-offset-bound", action="store_true")
    ap.add_argument("--tensor-affine", action="store_true",
                    help="a trainable gain (1) and offset (0) per generated tensor, after the generator")
    ap.add_argument("--tensor-ratio", action="store_true",
                    help="each generated tensor times a fixed factor: torch's init std over its own at the "
                         "start (then the usual calibration of the whole)")
    ap.add_argument("--tensor-bits", action="store_true",
                    help="the mapping's bits input replaced by the tensor's one-hot index (+1 in its column, -1 in the other "
                         "12; the product's index tensor has one column per tensor): "
                         "the mapping knows which tensor, not which weight")
    ap.add_argument("--index", choices=["bits", "tensor"], default=None,
                    help="the generator option `index`: the mapping told each weight's index bits (the default) "
                         "or only its tensor")
    ap.add_argument("--center", choices=["true", "false", "tensor"], default=None,
                    help="the generator option `center` (default true: the whole vector; tensor: each tensor)")
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="cosine: lr decays to 0 over --steps")
    a = ap.parse_args()
    global NET
    NET = a.net
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    net = network(a.net)
    t0 = time.time()
    if a.model == "qt":
        opts = {k: v for k, v in {"mapping": a.mapping, "hidden": a.hidden, "init_scale": a.init_scale,
                                  "rescale": a.rescale, "fixed": a.fixed,
                                  "scale_at": a.scale_at, "index": a.index,
                                  "center": {"true": True, "false": False}.get(a.center, a.center)}.items()
                if v is not None}
        patch_for_experiments(a, net)
        if a.tensor_bits:
            from qtc.runtime.generator import QTGenerator
            sizes = [p.numel() for p in net.parameters()]
            mapped = QTGenerator._mapped

            def by_tensor(self, x):
                if getattr(self, "_tensor_bits", None) is None:
                    onehot = -torch.ones(len(x), self.bits.shape[1], dtype=x.dtype)
                    for t, rows in enumerate(torch.arange(len(x)).split(sizes)):
                        onehot[rows, t] = 1.0
                    self._tensor_bits = onehot
                self.bits = self._tensor_bits
                return mapped(self, x)
            QTGenerator._mapped = by_tensor
        make = lambda: qtc.QTModel(net, a.space, input_shape=(1, 28, 28), depth=a.depth, qubits=a.qubits, **opts)
        if a.tensor_ratio:
            with torch.no_grad():
                raw = make().weights()
            ratio = {n: float(p.detach().std()) / float(raw[n].std()) for n, p in net.named_parameters()}
            plain = qtc.QTModel._unflatten
            qtc.QTModel._unflatten = lambda self, flat: {n: w * ratio[n] for n, w in plain(self, flat).items()}
            torch.manual_seed(a.seed)
            print("tensor ratios", {n: round(r, 4) for n, r in ratio.items()})
        model = make()
    else:
        model = net
    if a.model == "qt" and a.tensor_affine:
        model.gain = nn.ParameterDict({n.replace(".", "_"): nn.Parameter(torch.ones(())) for n in model.shapes})
        model.offset = nn.ParameterDict({n.replace(".", "_"): nn.Parameter(torch.zeros(())) for n in model.shapes})
        plain = model._unflatten
        model._unflatten = lambda flat: {n: model.gain[n.replace(".", "_")] * w + model.offset[n.replace(".", "_")]
                                         for n, w in plain(flat).items()}
    if a.model == "qt" and a.map_lr is not None:
        mapping = list(model.generator.mapping.parameters())
        rest = [p for p in model.parameters() if all(p is not m for m in mapping)]
        opt = torch.optim.Adam([{"params": rest}, {"params": mapping, "lr": a.map_lr}], lr=a.lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.steps) if a.schedule == "cosine" else None
    gen = torch.Generator().manual_seed(a.seed)
    losses, order, k = [], torch.randperm(len(xtr), generator=gen), 0
    for step in range(1, a.steps + 1):
        if k + a.batch > len(xtr):
            order, k = torch.randperm(len(xtr), generator=gen), 0
        b = order[k:k + a.batch]
        k += a.batch
        loss = F.cross_entropy(model(xtr[b]), ytr[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if step % a.every == 0:
            print(f"step {step:4d}  loss {np.mean(losses[-a.every:]):.4f}", flush=True)
    with torch.no_grad():
        pred = torch.cat([model(xte[i:i + 500]).argmax(1) for i in range(0, len(xte), 500)])
    acc = float((pred == yte).float().mean())
    if a.model == "qt" and a.diagnose:
        diagnose(model, xte[:500])
    print(json.dumps({"test_acc": round(acc, 4), "first_loss": round(losses[0], 4),
                      "last_loss": round(float(np.mean(losses[-a.every:])), 4),
                      "predicted_classes": int(pred.unique().numel()),
                      "seconds": round(time.time() - t0, 1), **{k: v for k, v in vars(a).items() if k != "data"}},
                     default=str))


if __name__ == "__main__":
    main()
