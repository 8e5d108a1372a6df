"""The images a run reads are part of its identity: `data.images` in its fingerprint, so that a
resume (`qtc run --resume`) and a ledger (`--publish`) refuse another image set found through
--data-root or $QTC_DATA (MNIST's 10k sample for the full set), naming both, and accept the
same images found anywhere."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from qtc.cli import main
from qtc.tasks.data import images
from qtc.tasks.experiments import ledger
from qtc.tasks.runs import guard
from test_images import write_idx

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = """task digits : classify
data mnist classes [0, 1, 2]
network {
  input [1, 28, 28]
  flatten
  linear 784 -> 3
}
generator hadamard_ent_rot.qs depth 2 backend reference
train adam lr 1e-2 batch 10 epochs 1 seed 0
"""
SMALL = {"train": [0, 1, 2] * 10, "t10k": [0, 1, 2] * 3}       # the "10k sample"
LARGE = {"train": [0, 1, 2] * 12, "t10k": [0, 1, 2] * 3}       # the "full set"
RUN = ["--models", "classical", "--select", "last", "--no-progress"]


@pytest.fixture
def sets(tmp_path, monkeypatch):
    """Two image sets in two folders, an empty data cache, no $QTC_DATA, and the spec."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("QTC_DATA", raising=False)
    write_idx(tmp_path / "small", SMALL)
    write_idx(tmp_path / "large", LARGE)
    (tmp_path / "digits.task").write_text(SPEC)
    return tmp_path


def test_the_identity_names_the_counts_and_digests_the_files_read(sets):
    small = images.identity("mnist", sets / "small")
    assert small.startswith("MNIST: 30 train + 9 test images, sha256 ") and len(small.split()[-1]) == 64
    assert images.identity("mnist", sets / "large").startswith("MNIST: 36 train + 9 test images, sha256 ")
    write_idx(sets / "plain", SMALL, gz=False)               # the same data, not compressed
    assert images.identity("mnist", sets / "plain") == small
    same_count = {"train": [1, 0, 2] * 10, "t10k": SMALL["t10k"]}   # other images, the same counts
    write_idx(sets / "other", same_count)
    other = images.identity("mnist", sets / "other")
    assert other != small and other.split()[:-1] == small.split()[:-1]


def test_a_resume_refuses_other_images_and_accepts_the_same_ones_found_elsewhere(sets, capsys, monkeypatch):
    out = sets / "run"
    assert main(["run", str(sets / "digits.task"), "-o", str(out), "--data-root", str(sets / "small"), *RUN]) == 0
    ident = json.loads((out / guard.FINGERPRINT).read_text())["identity"]
    assert ident["data.images"] == images.identity("mnist", sets / "small")
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--epochs", "2", "--data-root", str(sets / "large"),
                 "--no-progress"]) == 2
    said = capsys.readouterr()
    assert "the images found now are not the ones it started on (MNIST: 30 train + 9 test images" in said.err
    assert "-> MNIST: 36 train + 9 test images" in said.err and "Traceback" not in said.err
    assert "extending the run" not in said.out                  # refused before anything is said done
    assert json.loads((out / "resolved.json").read_text())["options"]["epochs"] == 1
    write_idx(sets / "copy", SMALL, gz=False)
    assert main(["run", "--resume", str(out), "--epochs", "2", "--data-root", str(sets / "copy"),
                 "--no-progress"]) == 0
    # a run recorded before qtc had the key: nothing says which files it read
    fp = json.loads((out / guard.FINGERPRINT).read_text())
    del fp["identity"]["data.images"]
    (out / guard.FINGERPRINT).write_text(json.dumps({"sha256": guard.fingerprint(fp["identity"]),
                                                      "identity": fp["identity"]}))
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--epochs", "3", "--no-progress"]) == 2
    assert "it was started before qtc recorded which image files a run reads" in capsys.readouterr().err


def test_a_ledger_refuses_a_trial_published_from_other_images(sets, capsys):
    sweep = ["sweep", str(sets / "digits.task"), "--seeds", "1", "--executor", "serial", "--no-report",
             "--publish", str(sets / "pub"), *RUN]
    assert main(sweep + ["--out", str(sets / "a"), "--data-root", str(sets / "small")]) == 0
    capsys.readouterr()
    assert main(sweep + ["--out", str(sets / "b"), "--data-root", str(sets / "large")]) == 2
    err = capsys.readouterr().err
    assert "1 finished trial(s) were run for another fingerprint" in err
    assert "data.images: 'MNIST: 30 train + 9 test images, sha256 " in err
    assert "-> 'MNIST: 36 train + 9 test images, sha256 " in err
    assert not (sets / "b" / "digits").exists()
    assert main(sweep + ["--out", str(sets / "c"), "--data-root", str(sets / "small")]) == 0
    assert "1 trial(s) read back from" in capsys.readouterr().out
    # a record made before qtc had the key is stale, not taken for a trial on the images found now
    key = "digits/classical/seed0"
    blob = ledger.outputs(sets / "pub", key)
    fp = json.loads(blob[guard.FINGERPRINT])
    del fp["identity"]["data.images"]
    blob[guard.FINGERPRINT] = json.dumps(fp)
    (sets / "pub" / key / ledger.OUTPUTS).write_bytes(gzip.compress(json.dumps(blob).encode()))
    record = json.loads((sets / "pub" / key / ledger.RECORD).read_text())
    record["fingerprint"] = "older"
    (sets / "pub" / key / ledger.RECORD).write_text(json.dumps(record))
    assert main(sweep + ["--out", str(sets / "d"), "--data-root", str(sets / "small")]) == 2
    assert "data.images: '(absent)' -> 'MNIST: 30 train + 9 test images" in capsys.readouterr().err


def test_a_run_that_reads_no_image_set_has_no_images_key(tmp_path, tiny):
    out = tmp_path / "run"
    assert main(["run", str(tiny), "-o", str(out), "--models", "classical", "--max-batches", "1",
                 "--no-progress"]) == 0
    assert "data.images" not in json.loads((out / guard.FINGERPRINT).read_text())["identity"]
