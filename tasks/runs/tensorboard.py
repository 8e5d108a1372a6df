"""TensorBoard event files beside metrics.csv, opt-in (`qtc run --tensorboard`).

Each model writes to RUNDIR/tensorboard/<model folder>, so `tensorboard --logdir RUNDIR/tensorboard`
shows the models as runs side by side. Supervised models log every float metric per epoch
(`train/loss`, `test/accuracy`, ...) and DiffQAS-QT's structural weights; A3C models log the
reward and length of every episode. The files are written by torch.utils.tensorboard, which
needs the `tensorboard` package (in qtc's `dev` extra); metrics.csv stays the record.
"""
from __future__ import annotations

from pathlib import Path

from qtc.errors import QtcError
from qtc.tasks import naming
from qtc.tasks.runs import guard

FOLDER = "tensorboard"


def require() -> None:
    """A clear error, before any run folder exists, when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:
        raise QtcError(f"--tensorboard needs the tensorboard package ({exc}); hint: pip install "
                       "tensorboard (or qtc's dev extra), or run without --tensorboard") from None


def writer(run_path: Path, model: str):
    """A SummaryWriter for `model` in RUNDIR/tensorboard/<model folder>."""
    from torch.utils.tensorboard import SummaryWriter
    folder = guard.inside(run_path, Path(run_path) / FOLDER / naming.folder(model))
    return SummaryWriter(log_dir=str(folder))


def tag(key: str) -> str:
    """``train_loss`` -> ``train/loss``: TensorBoard groups the charts by split."""
    split, _, what = key.partition("_")
    return f"{split}/{what}" if what else key


def log_row(board, row: dict) -> None:
    """One epoch's metrics row: every float metric, and each structural weight (1-based config)."""
    for key, value in row.items():
        if isinstance(value, float) and key != "seconds":
            board.add_scalar(tag(key), value, row["epoch"])
    for k, w in enumerate(row.get("structural_weights") or ()):
        board.add_scalar(f"structural_weight/config {k + 1}", w, row["epoch"])
    board.flush()
