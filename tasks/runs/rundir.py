"""A run directory: resolved spec, metrics, checkpoints, exported models. Shared by all tasks.

Layout:
    spec.task, space.qs        the specs as run (copied text)
    resolved.json              every setting after defaults and command-line overrides
    parameters.txt             the parameter-count report
    metrics.csv, metrics.json  one row per (model, epoch)
    checkpoint.pt              the last checkpoint (written atomically: temp file + rename)
    models/<model>/            model.pt (plain state_dict), model.py (stand-alone loader), README
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from qtc.errors import QtcError

CHECKPOINT = "checkpoint.pt"


@contextmanager
def naming(path: Path):
    """Name `path` in an OSError raised while writing it (or, for a folder, anything in it): a
    write() on a full disk says only 'No space left on device', and the command line's message
    must say where."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, base: Path | None, task_name: str) -> "RunDir":
        path = Path(base) if base else Path("runs") / f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if path.exists() and any(path.iterdir()):
            if any((path / name).exists() for name in (CHECKPOINT, "metrics.json", "models", "a3c")):
                raise QtcError(f"run folder {path} already holds a run; continue it with "
                               f"'qtc run --resume {path}' or choose another -o")
            if not (path / "resolved.json").exists():
                raise QtcError(f"run folder {path} already exists and is not a qtc run folder")
            # a run that stopped before its first checkpoint (e.g. missing data): start it afresh
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def existing(cls, path: Path) -> "RunDir":
        path = Path(path)
        if not (path / "resolved.json").is_file():
            raise QtcError(f"{path} is not a qtc run folder (no resolved.json)")
        return cls(path)

    # --- settings -------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with naming(tmp):
            tmp.write_text(text)
        os.replace(tmp, target)
        return target

    def write_json(self, name: str, data) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, default=str) + "\n")

    def read_json(self, name: str):
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except ValueError as err:  # a damaged file must not be trusted
            raise QtcError(f"{path} is damaged ({err}); this run folder cannot be continued: "
                           "start a new run") from None

    # --- metrics --------------------------------------------------------------------------
    def metrics(self) -> list[dict]:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.is_file() else []

    def log_metrics(self, rows: list[dict]) -> None:
        """Replace the metrics with `rows` (the full history, so a resumed run stays consistent)."""
        self.write_json("metrics.json", rows)
        keys = list(dict.fromkeys(k for r in rows for k in r))
        tmp = self.path / "metrics.csv.tmp"
        with naming(tmp), tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path / "metrics.csv")

    # --- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, state: dict) -> None:
        tmp = self.path / (CHECKPOINT + ".tmp")
        data = io.BytesIO()  # serialised first: a full disk is then an OSError naming the file,
        torch.save(state, data)  # not torch's RuntimeError from inside its zip writer
        with naming(tmp):
            tmp.write_bytes(data.getbuffer())
        os.replace(tmp, self.path / CHECKPOINT)

    def load_checkpoint(self) -> dict | None:
        p = self.path / CHECKPOINT
        if not p.is_file():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=False)
        except Exception as err:  # a damaged file must not be trusted
            raise QtcError(f"checkpoint {p} cannot be read ({type(err).__name__}: {err}); "
                           "start a new run") from None

    # --- export ---------------------------------------------------------------------------
    def export(self, model: str, nets: dict, flats: dict[str, torch.Tensor]) -> Path:
        """Write each network of `model` as a plain state_dict plus a stand-alone loader."""
        folder = self.path / "models" / model.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for name, net in nets.items():
            stem = "model" if len(nets) == 1 else name
            torch.save(net.state_dict(flats[name].detach().cpu()), folder / f"{stem}.pt")
            (folder / f"{stem}.py").write_text(net.torch_source().replace("path='model.pt'",
                                                                          f"path='{stem}.pt'"))
        (folder / "README.md").write_text(
            f"# {model}: the trained classical network(s)\n\nNo qtc and no quantum code needed:\n\n"
            "```python\nimport torch, importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('m', '{'model' if len(nets) == 1 else 'NAME'}.py')\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            f"net = m.load('{'model' if len(nets) == 1 else 'NAME'}.pt')\n```\n")
        return folder
