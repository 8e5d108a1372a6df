"""Tests for qtc.tasks.data.images: finding, unpacking, checking and loading MNIST / FashionMNIST."""
from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from qtc.errors import QtcError
from qtc.tasks.data import images
from qtc.tasks.data.images import FILES, find_root, load_classes

MNIST_10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")

needs_mnist = pytest.mark.skipif(not (MNIST_10K / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"{MNIST_10K} not present")
needs_debian = pytest.mark.skipif(not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                                  reason="dataset-fashion-mnist is not installed")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no $QTC_DATA, whatever the caller's shell has."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("QTC_DATA", raising=False)
    return tmp_path


def cache_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "xdg-cache"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def read_gz_idx(path: Path) -> np.ndarray:
    """An independent IDX reader (numpy), to check the loader against."""
    raw = gzip.decompress(path.read_bytes())
    nd = raw[3]
    dims = struct.unpack(f">{nd}I", raw[4:4 + 4 * nd])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def write_idx(directory: Path, labels_by_split: dict[str, list[int]], *, gz: bool = True) -> None:
    """A tiny synthetic data set: image i of a split is filled with the value 10 * label."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, labels in labels_by_split.items():
        n = len(labels)
        imgs = np.repeat(np.array(labels, dtype=np.uint8) * 10, 28 * 28)
        blobs = {f"{split}-images-idx3-ubyte": struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + imgs.tobytes(),
                 f"{split}-labels-idx1-ubyte": struct.pack(">HBBI", 0, 8, 1, n) + bytes(labels)}
        for name, blob in blobs.items():
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (directory / name).write_bytes(blob)


TINY = {"train": [0, 1, 2, 1, 2, 0, 2], "t10k": [2, 1, 0, 1]}


# --------------------------------------------------------------------------- real data

@needs_mnist
def test_mnist_10k_one_vs_five_has_the_readme_counts():
    train, test = load_classes("mnist", (1, 5), data_root=MNIST_10K)
    assert len(train) == 1601 and len(test) == 389
    x, y = train.tensors
    assert x.dtype == torch.float32 and x.shape == (1601, 1, 28, 28)
    assert y.dtype == torch.int64
    # README class counts: train has 902 ones and 699 fives, test 225 and 164.
    assert torch.bincount(y).tolist() == [902, 699]
    assert torch.bincount(test.tensors[1]).tolist() == [225, 164]
    # (x/255 - 0.5)/0.5 spans [-1, 1]; real digits reach both ends.
    assert x.min().item() == -1.0 and x.max().item() == 1.0


@needs_mnist
def test_mnist_images_match_an_independent_idx_reader():
    raw_x = read_gz_idx(MNIST_10K / "t10k-images-idx3-ubyte.gz")
    raw_y = read_gz_idx(MNIST_10K / "t10k-labels-idx1-ubyte.gz")
    keep = np.isin(raw_y, [1, 5])
    _, test = load_classes("mnist", (5, 1), data_root=MNIST_10K, normalize=(0.0, 1.0))
    x, y = test.tensors
    np.testing.assert_allclose(x[:, 0].numpy(), raw_x[keep] / 255.0, rtol=0, atol=1e-7)
    # classes[0] (= 5) -> 0, classes[1] (= 1) -> 1
    np.testing.assert_array_equal(y.numpy(), (raw_y[keep] == 1).astype(np.int64))


@needs_mnist
def test_limit_keeps_the_first_k_of_each_split():
    full_train, full_test = load_classes("mnist", (1, 5), data_root=MNIST_10K)
    train, test = load_classes("mnist", (1, 5), data_root=MNIST_10K, limit=50)
    assert len(train) == 50 and len(test) == 50
    assert torch.equal(train.tensors[0], full_train.tensors[0][:50])
    assert torch.equal(test.tensors[1], full_test.tensors[1][:50])


@needs_debian
def test_debian_fashion_mnist_one_vs_five_is_found_without_any_setting():
    assert find_root("fashion_mnist", None).is_dir()
    train, test = load_classes("fashion_mnist", (1, 5))
    assert len(train) == 12000 and len(test) == 2000
    assert torch.bincount(train.tensors[1]).tolist() == [6000, 6000]
    assert torch.bincount(test.tensors[1]).tolist() == [1000, 1000]
    assert train.tensors[0].shape == (12000, 1, 28, 28)
    assert -1.0 <= train.tensors[0].min().item() < train.tensors[0].max().item() <= 1.0


# --------------------------------------------------------------------------- search order

def test_empty_dir_error_names_every_place_and_the_fixes(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    not_installed = tmp_path / "usr-share-datasets-fashion-mnist"
    monkeypatch.setitem(images.DEBIAN_DIRS, "fashion_mnist", not_installed)
    with pytest.raises(QtcError) as err:
        find_root("fashion_mnist", empty)
    msg = str(err.value)
    assert f"--data-root: {empty}" in msg
    assert "$QTC_DATA: not set" in msg
    assert str(tmp_path / "xdg-cache" / "qtc" / "data") in msg
    assert f"Debian package dataset-fashion-mnist: {not_installed} (no such directory)" in msg
    for fix in ("--data-root DIR", "QTC_DATA=DIR", "apt-get install dataset-fashion-mnist", "download"):
        assert fix in msg


def test_mnist_error_does_not_suggest_the_fashion_package(tmp_path, monkeypatch):
    monkeypatch.setenv("QTC_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(QtcError) as err:
        load_classes("mnist", (1, 5))
    msg = str(err.value)
    assert "--data-root: not given" in msg
    assert f"$QTC_DATA: {tmp_path / 'nowhere'} (no such directory)" in msg
    assert "apt-get" not in msg


def test_data_root_comes_before_qtc_data_which_comes_before_the_cache(tmp_path, monkeypatch):
    # Three sources told apart by their number of training images of classes 0 and 1.
    for name, n in (("a", 3), ("b", 4), ("c", 5)):
        write_idx(tmp_path / name, {"train": [0, 1, 2] + [1] * (n - 2), "t10k": [0, 1, 2]})
    shutil.copytree(tmp_path / "c", tmp_path / "xdg-cache" / "qtc" / "data" / "mnist")
    monkeypatch.setenv("QTC_DATA", str(tmp_path / "b"))

    def n_train(data_root):
        return len(load_classes("mnist", (0, 1), data_root=data_root)[0])

    assert n_train(tmp_path / "a") == 3  # --data-root first
    assert n_train(None) == 4            # then $QTC_DATA
    monkeypatch.delenv("QTC_DATA")
    assert n_train(None) == 5            # then the user cache (here its mnist/ folder)
    assert n_train(tmp_path / "missing") == 5


def test_uncompressed_torchvision_layout_is_used_in_place(tmp_path):
    write_idx(tmp_path / "data" / "MNIST" / "raw", TINY, gz=False)
    assert find_root("mnist", tmp_path / "data") == tmp_path / "data"
    train, test = load_classes("mnist", (1, 2), data_root=tmp_path / "data")
    assert torch.bincount(train.tensors[1]).tolist() == [2, 3] and len(test) == 3
    assert cache_files(tmp_path) == []  # nothing copied


def test_gz_files_are_unpacked_once_into_a_cache_folder_per_source(tmp_path):
    write_idx(tmp_path / "one", TINY)
    write_idx(tmp_path / "two", {"train": [1, 2], "t10k": [2, 1]})
    root_one = find_root("mnist", tmp_path / "one")
    root_two = find_root("mnist", tmp_path / "two")
    assert root_one != root_two
    for root in (root_one, root_two):
        assert root.is_relative_to(tmp_path / "xdg-cache" / "qtc" / "data")
        assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(FILES)
    stamp = (root_one / "MNIST" / "raw" / FILES[0]).stat().st_mtime_ns
    assert find_root("mnist", tmp_path / "one") == root_one
    assert (root_one / "MNIST" / "raw" / FILES[0]).stat().st_mtime_ns == stamp  # not rewritten
    assert len(load_classes("mnist", (1, 2), data_root=tmp_path / "two")[0]) == 2


def test_a_damaged_cache_copy_is_rebuilt_from_its_source(tmp_path):
    write_idx(tmp_path / "src", TINY)
    root = find_root("mnist", tmp_path / "src")
    victim = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:100])
    assert find_root("mnist", tmp_path / "src") == root
    assert len(load_classes("mnist", (0, 2), data_root=tmp_path / "src")[0]) == 5


# --------------------------------------------------------------------------- bad data

@needs_mnist
def test_truncated_gz_is_a_clear_error_and_leaves_nothing_in_the_cache(tmp_path):
    src = tmp_path / "copy"
    shutil.copytree(MNIST_10K, src)
    gz = src / "train-images-idx3-ubyte.gz"
    gz.chmod(0o644)
    good = gz.read_bytes()
    gz.write_bytes(good[: len(good) // 2])
    with pytest.raises(QtcError) as err:
        load_classes("mnist", (1, 5), data_root=src)
    assert str(gz) in str(err.value) and "truncated" in str(err.value)
    assert cache_files(tmp_path) == []  # no half file, no temp file, no partial set
    gz.write_bytes(good)  # the repaired source loads fine afterwards
    assert len(load_classes("mnist", (1, 5), data_root=src)[0]) == 1601


def test_gz_holding_a_short_idx_file_is_caught_by_the_header_check(tmp_path):
    write_idx(tmp_path / "src", TINY)
    gz = tmp_path / "src" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes())[:-28]))  # valid gzip, short data
    with pytest.raises(QtcError, match="truncated or corrupt") as err:
        find_root("mnist", tmp_path / "src")
    assert str(gz) in str(err.value)
    assert cache_files(tmp_path) == []


def test_not_an_idx_file_is_reported_with_its_magic(tmp_path):
    write_idx(tmp_path / "MNIST" / "raw", TINY, gz=False)
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(QtcError, match="not an IDX labels file"):
        load_classes("mnist", (1, 2), data_root=tmp_path)


def test_images_and_labels_of_different_lengths_are_rejected(tmp_path):
    write_idx(tmp_path / "src", TINY, gz=False)
    write_idx(tmp_path / "other", {"train": [1, 2]}, gz=False)
    shutil.copy(tmp_path / "other" / "train-labels-idx1-ubyte", tmp_path / "src")
    with pytest.raises(QtcError, match="7 images but .* 2 labels"):
        find_root("mnist", tmp_path / "src")
    assert cache_files(tmp_path) == []


def test_a_partial_set_is_named_in_the_not_found_message(tmp_path):
    write_idx(tmp_path / "src", {"train": [1, 2]})
    with pytest.raises(QtcError, match=r"missing t10k-images-idx3-ubyte\[\.gz\], t10k-labels"):
        find_root("mnist", tmp_path / "src")


@needs_mnist
def test_absent_class_names_the_classes_found():
    with pytest.raises(QtcError, match=r"\[12\] not in the MNIST training data.*found: \[0, 1, 2, 3, 4, 5"):
        load_classes("mnist", (1, 12), data_root=MNIST_10K)


def test_class_absent_from_the_test_split_only(tmp_path):
    write_idx(tmp_path / "src", {"train": [0, 1, 2], "t10k": [0, 1, 1]})
    with pytest.raises(QtcError, match=r"\[2\] not in the MNIST test data.*found: \[0, 1\]"):
        load_classes("mnist", (1, 2), data_root=tmp_path / "src")


@pytest.mark.parametrize("kwargs, match", [
    ({"classes": (3, 3)}, "must differ"),
    ({"classes": (1,)}, "two or more integers"),
    ({"classes": (1, 2), "normalize": (0.5, 0.0)}, "std must be positive"),
    ({"classes": (1, 2), "limit": 0}, "limit must be"),
])
def test_bad_arguments_are_qtc_errors(tmp_path, kwargs, match):
    write_idx(tmp_path / "src", TINY)
    with pytest.raises(QtcError, match=match):
        load_classes("mnist", data_root=tmp_path / "src", **kwargs)


def test_unknown_dataset_name_is_a_qtc_error():
    with pytest.raises(QtcError, match="expected one of: mnist, fashion_mnist"):
        find_root("cifar10", None)


# --------------------------------------------------------------------------- download

def test_download_is_not_attempted_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "download_to_cache", lambda d: pytest.fail("download attempted"))
    with pytest.raises(QtcError, match="not found"):
        load_classes("mnist", (1, 5), data_root=tmp_path)


def test_download_without_network_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    # A closed local port stands in for "no network", so the test never waits on a timeout.
    monkeypatch.setattr(tvd.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(QtcError, match="downloading MNIST failed.*network") as err:
        load_classes("mnist", (1, 5), data_root=tmp_path, download=True)
    assert err.type is not images.DataNotFound
    assert cache_files(tmp_path) == []


def test_a_corrupt_local_copy_is_not_replaced_by_a_download(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "download_to_cache", lambda d: pytest.fail("download attempted"))
    write_idx(tmp_path / "src", TINY)
    (tmp_path / "src" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(QtcError, match="cannot read"):
        load_classes("mnist", (1, 2), data_root=tmp_path / "src", download=True)


@needs_mnist
def test_mnist_files_placed_directly_in_qtc_data_are_not_taken_for_fashion_mnist(tmp_path, monkeypatch):
    # The shared MNIST sample holds the four files directly, under the names FashionMNIST uses
    # too: a FashionMNIST task with QTC_DATA pointing there must look further, not train on digits.
    monkeypatch.setenv("QTC_DATA", str(MNIST_10K))
    assert len(load_classes("mnist", (1, 5))[0]) == 1601      # the same place serves MNIST
    monkeypatch.setattr("qtc.tasks.data.images.DEBIAN_DIRS", {})
    with pytest.raises(images.DataNotFound) as err:
        find_root("fashion_mnist")
    assert "look like MNIST (mean pixel 0.1" in str(err.value)
    assert f"put FashionMNIST's files under {MNIST_10K / 'FashionMNIST' / 'raw'}" in str(err.value)


@needs_mnist
@needs_debian
def test_with_mnist_in_qtc_data_fashion_mnist_comes_from_the_debian_package(monkeypatch):
    monkeypatch.setenv("QTC_DATA", str(MNIST_10K))
    train, _ = load_classes("fashion_mnist", (1, 5))
    assert len(train) == 12000


def test_k_classes_are_relabelled_in_the_order_given(tmp_path):
    write_idx(tmp_path / "src", TINY)
    train, test = load_classes("mnist", (2, 0, 1), data_root=tmp_path / "src", normalize=(0.0, 1.0))
    images, labels = train.tensors
    # image value 10 * MNIST label; classes (2, 0, 1) -> outputs 0, 1, 2
    assert labels.tolist() == [1, 2, 0, 2, 0, 1, 0]
    assert (images[:, 0, 0, 0] * 255).round().tolist() == [0, 10, 20, 10, 20, 0, 20]
    assert test.tensors[1].tolist() == [0, 2, 1, 2]
