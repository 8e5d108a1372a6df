"""tasks/data/files.py: a user's own data files (issue 26), each reader on a small file and each
malformed variant a located SpecError in that file (file:line:col for text, the file and the
array's name for arrays, the image or folder for an image folder), with the data's digest."""
from __future__ import annotations

import hashlib
import pickle
import re

import numpy as np
import pytest

from qtc.errors import SpecError
from qtc.tasks.data import files


def _first_line(err: pytest.ExceptionInfo) -> str:
    assert isinstance(err.value, SpecError)
    return str(err.value).splitlines()[0]


def _located(err: pytest.ExceptionInfo, where, message: str) -> None:
    """The error's first line is `where: error: ...message...` (where = file[:line:col])."""
    first = _first_line(err)
    assert first.startswith(f"{where}: error: "), first
    assert re.search(message, first), first


# --------------------------------------------------------------------------- CSV

def _csv(tmp_path, text: str, name: str = "sine.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_csv_a_named_column_beside_a_date_column_quoted_fields_and_trailing_blank_lines(tmp_path):
    text = "month, sunspots\n1749-01, 96.7\n1749-02,104.3\n\"1749-03\",\"116.7\"\n\n"
    path = _csv(tmp_path, text)
    table = files.read_csv(path, column="sunspots")
    assert table.inputs.tolist() == table.targets.tolist() == [96.7, 104.3, 116.7]
    assert table.names == ("sunspots",) and table.target == "sunspots"
    assert table.digest == hashlib.sha256(text.encode()).hexdigest()


def test_csv_the_only_column_needs_no_name_and_a_byte_order_mark_is_dropped(tmp_path):
    table = files.read_csv(_csv(tmp_path, "\ufeffvalue\n1\n2.5e-1\n-3\n"))
    assert table.inputs.tolist() == [1.0, 0.25, -3.0] and table.target == "value"


def test_csv_several_input_columns_and_a_target(tmp_path):
    path = _csv(tmp_path, "t,u,y\n0,0.1,1\n1,0.2,2\n2,0.3,3\n")
    table = files.read_csv(path, columns=["u", "y"], target="y")
    assert table.inputs.shape == (3, 2) and table.inputs[:, 0].tolist() == [0.1, 0.2, 0.3]
    assert table.targets.tolist() == [1, 2, 3] and table.names == ("u", "y")
    assert files.read_csv(path, columns=["u"], target="y").inputs.shape == (3, 1)


@pytest.mark.parametrize("text, where, message", [
    ("t,value\n0,0.5\n1,abc\n", "sine.csv:3:3", r"'abc' is not a number \(column 'value'\)"),
    ("t,value\n0,0.5\n1,\n", "sine.csv:3:3", "an empty field is not a number"),
    ("t,value\n0,nan\n", "sine.csv:2:3", "'nan' is not a finite number"),
    ("t,value\n0,0.5\n1,0.6,7\n", "sine.csv:3:7", "this row has 3 fields, the header 2"),
    ("t,value\n0,0.5\n1\n", "sine.csv:3:2", "this row has 1 field, the header 2"),
    ("t,value\n0,0.5\n\n1,0.7\n", "sine.csv:3:1", "an empty row"),
    ("", "sine.csv", "the file is empty"),
    ("\n \n", "sine.csv", "the file is empty"),
    ("t,value\n", "sine.csv:1:8", "a header but no rows of data"),
    ("0,0.5\n1,0.6\n", "sine.csv:1:1", "the header row holds the number '0'"),
    ("t,,value\n0,1,2\n", "sine.csv:1:3", "an empty column name"),
    ("t,value,t\n0,1,2\n", "sine.csv:1:9", r"column 't' is named twice in the header \(first at column 1\)"),
    ("t,\"value\n0,1\n", "sine.csv:1:3", "a quoted field is not closed"),
])
def test_csv_malformed_files_are_located_errors(tmp_path, text, where, message):
    path = _csv(tmp_path, text)
    with pytest.raises(SpecError) as err:
        files.read_csv(path, column="value")
    _located(err, where.replace("sine.csv", str(path)), message)


def test_csv_errors_show_the_line_and_a_caret(tmp_path):
    path = _csv(tmp_path, "t,value\n0,0.5\n1,abc\n")
    with pytest.raises(SpecError) as err:
        files.read_csv(path, column="value")
    assert str(err.value).splitlines()[1:] == ["    1,abc", "      ^"]


def test_csv_a_non_utf8_byte_is_located(tmp_path):
    path = tmp_path / "sine.csv"
    path.write_bytes(b"t,value\n0,0.5\n1,\xff\n")
    with pytest.raises(SpecError) as err:
        files.read_csv(path, column="value")
    _located(err, f"{path}:3:3", "not UTF-8 text")


@pytest.mark.parametrize("options, message", [
    ({"column": "valu"}, r"no column 'valu' in the header \(columns: t, value\)"),
    ({}, "the file has 2 columns"),
    ({"columns": ["t", "value"]}, "need a `target` column"),
    ({"columns": ["t", "t"], "target": "value"}, "names a column twice"),
    ({"column": "value", "columns": ["t"]}, "not both"),
    ({"column": "value", "target": "t"}, "differs from `column value`"),
])
def test_csv_columns_that_the_header_lacks_or_a_missing_choice_are_errors(tmp_path, options, message):
    path = _csv(tmp_path, "t,value\n0,0.5\n1,0.6\n")
    with pytest.raises(SpecError) as err:
        files.read_csv(path, **options)
    assert re.search(message, _first_line(err)), _first_line(err)
    if options == {"column": "valu"}:
        assert "hint: did you mean 'value'?" in str(err.value)


def test_a_missing_file_or_a_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(SpecError) as err:
        files.read_csv(tmp_path / "none.csv")
    _located(err, tmp_path / "none.csv", "cannot read the file")
    with pytest.raises(SpecError) as err:
        files.read_npy(tmp_path)
    _located(err, tmp_path, "is a folder")


# --------------------------------------------------------------------------- npy

def test_npy_a_series_and_a_table_with_a_target_column(tmp_path):
    path = tmp_path / "s.npy"
    np.save(path, np.arange(5, dtype=np.float32))
    table = files.read_npy(path)
    assert table.inputs.tolist() == table.targets.tolist() == [0, 1, 2, 3, 4]
    assert table.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    np.save(path, np.arange(6).reshape(3, 2))
    table = files.read_npy(path, target=1)
    assert table.inputs.shape == (3, 2) and table.targets.tolist() == [1, 3, 5]


@pytest.mark.parametrize("array, options, message", [
    (np.array(3.0), {}, r"shape \(\)"),
    (np.zeros((2, 2, 2)), {}, r"shape \(2, 2, 2\)"),
    (np.zeros(0), {}, r"shape \(0,\)"),
    (np.array(["a", "b"]), {}, "holds <U1 values, not real numbers"),
    (np.array([1.0, np.inf, 2.0]), {}, r"holds inf at index \[1\]"),
    (np.zeros((4, 3)), {}, "the array has 3 columns"),
    (np.zeros((4, 3)), {"target": 3}, "target 3 is not a column of the array: give 0 to 2"),
])
def test_npy_wrong_shapes_or_values_are_errors(tmp_path, array, options, message):
    path = tmp_path / "s.npy"
    np.save(path, array)
    with pytest.raises(SpecError) as err:
        files.read_npy(path, **options)
    _located(err, path, message)


def test_npy_that_is_not_an_array_file_or_holds_objects_is_an_error(tmp_path):
    path = tmp_path / "s.npy"
    path.write_text("1,2,3\n")
    with pytest.raises(SpecError) as err:
        files.read_npy(path)
    _located(err, path, "not a NumPy .npy array file")
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SpecError) as err:          # never unpickled
        files.read_npy(path)
    _located(err, path, "not a NumPy .npy array file")


# --------------------------------------------------------------------------- npz

def test_npz_with_and_without_a_test_split(tmp_path):
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).random((6, 1, 4, 4))
    np.savez(path, x=x, y=np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8))
    data = files.read_npz(path)
    assert data.x.dtype == np.float32 and data.x.shape == (6, 1, 4, 4) and np.allclose(data.x, x)
    assert data.y.dtype == np.int64 and data.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.x_test is None and data.classes is None
    assert data.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    np.savez(path, x=x, y=np.arange(6.0), x_test=x[:2], y_test=np.array([1, 0]))
    data = files.read_npz(path)
    assert data.y.tolist() == list(range(6)) and data.x_test.shape == (2, 1, 4, 4) and data.y_test.tolist() == [1, 0]


X4, Y4 = np.zeros((4, 3)), np.array([0, 1, 0, 1])


@pytest.mark.parametrize("arrays, message", [
    ({"X": X4, "y": Y4}, "unexpected array 'X'"),
    ({"x": X4, "labels": Y4}, "unexpected array 'labels'"),
    ({"x": X4}, r"no array 'y' \(arrays: x\)"),
    ({"x": X4, "y": Y4, "x_test": X4}, "array 'x_test' without 'y_test'"),
    ({"x": X4, "y": Y4[:3]}, "array 'x' has 4 examples, 'y' 3"),
    ({"x": np.zeros(4), "y": Y4}, r"array 'x' has shape \(4,\)"),
    ({"x": X4, "y": Y4[:, None]}, r"array 'y' has shape \(4, 1\)"),
    ({"x": X4, "y": np.array([0, 1.5, 0, 1])}, "array 'y' holds 1.5 at index 1: class labels are integers"),
    ({"x": X4 + np.nan, "y": Y4}, r"array 'x' holds nan at index \[0, 0\]"),
    ({"x": X4, "y": Y4, "x_test": np.zeros((2, 4)), "y_test": Y4[:2]},
     r"'x_test' holds examples of shape \(4,\), 'x' of shape \(3,\)"),
])
def test_npz_wrong_array_names_or_shapes_are_errors(tmp_path, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(SpecError) as err:
        files.read_npz(path)
    _located(err, path, message)
    if "X" in arrays:
        assert "hint: did you mean 'x'?" in str(err.value)


def test_npz_that_is_not_an_archive_is_an_error(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SpecError) as err:
        files.read_npz(path)
    _located(err, path, "not a NumPy .npz archive")
    np.save(tmp_path / "one.npy", X4)
    with pytest.raises(SpecError) as err:
        files.read_npz(tmp_path / "one.npy")
    _located(err, tmp_path / "one.npy", "is one .npy array, not an .npz archive")


# --------------------------------------------------------------------------- image folder

def _image(path, size=(4, 3), mode="L", value=0):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def test_folder_grey_images_by_class_folder(tmp_path):
    root = tmp_path / "digits"
    _image(root / "zero" / "a.png", value=10)
    _image(root / "zero" / "b.png", value=20)
    _image(root / "one" / "c.png", value=30)
    (root / "one" / ".DS_Store").write_text("x")           # hidden files are skipped
    (root / "README.txt").write_text("about")              # files beside the class folders too
    data = files.read_folder(root)
    assert data.classes == ("one", "zero") and data.y.tolist() == [0, 1, 1]
    assert data.x.dtype == np.uint8 and data.x.shape == (3, 1, 3, 4)
    assert data.x[:, 0, 0, 0].tolist() == [30, 10, 20]
    assert data.x_test is None and len(data.digest) == 64
    _image(root / "one" / "c.png", value=31)
    assert files.read_folder(root).digest != data.digest   # the digest follows the pixels


def test_folder_a_colour_image_makes_every_image_rgb(tmp_path):
    root = tmp_path / "pets"
    _image(root / "cat" / "a.png", mode="RGB", value=(255, 0, 0))
    _image(root / "dog" / "b.jpg", mode="L", value=128)
    data = files.read_folder(root)
    assert data.x.shape == (2, 3, 3, 4)
    assert data.x[0, :, 0, 0].tolist() == [255, 0, 0]
    assert len(set(data.x[1, :, 0, 0].tolist())) == 1     # grey, as three equal channels


def test_folder_a_class_folder_without_images_is_an_error(tmp_path):
    root = tmp_path / "digits"
    _image(root / "0" / "a.png")
    (root / "1").mkdir()
    (root / "1" / "notes.txt").write_text("no images here")
    with pytest.raises(SpecError) as err:
        files.read_folder(root)
    _located(err, root / "1", "the class folder has no images")


def test_folder_mixed_image_sizes_are_an_error_naming_both(tmp_path):
    root = tmp_path / "digits"
    _image(root / "0" / "a.png", size=(28, 28))
    _image(root / "1" / "b.png", size=(30, 28))
    with pytest.raises(SpecError) as err:
        files.read_folder(root)
    _located(err, root / "1" / "b.png", "the image is 30x28, 0/a.png is 28x28: every image must have one size")


def test_folder_an_unreadable_image_one_class_or_no_folder_is_an_error(tmp_path):
    root = tmp_path / "digits"
    _image(root / "0" / "a.png")
    with pytest.raises(SpecError) as err:
        files.read_folder(root)
    _located(err, root, "1 class folder: expected one sub-folder per class")
    (root / "1").mkdir()
    (root / "1" / "b.png").write_bytes(b"not a png")
    with pytest.raises(SpecError) as err:
        files.read_folder(root)
    _located(err, root / "1" / "b.png", "not an image PIL can read")
    with pytest.raises(SpecError) as err:
        files.read_folder(tmp_path / "none")
    _located(err, tmp_path / "none", "no such folder")


# --------------------------------------------------------------------------- CIFAR-10

def _cifar(root, n: int = 2, *, batch=None, meta=None):
    """A tiny CIFAR-10 in torchvision's format: pickled dicts of numpy uint8 data and list
    labels (the python 2 pickles of cifar-10-python.tar.gz give str keys under latin1, as here;
    bytes label names are taken too)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate([*files.CIFAR_TRAIN, "test_batch"]):
        content = batch if batch is not None and name == "data_batch_3" else {
            "batch_label": name, "labels": [(k + i) % 10 for i in range(n)],
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": ["x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps(
        meta if meta is not None else {"label_names": names, "num_vis": 3072}, protocol=2))
    return folder


def test_cifar10_from_torchvisions_python_files(tmp_path):
    folder = _cifar(tmp_path)
    for where in (tmp_path, folder):                       # the root or the batches' folder
        data = files.read_cifar10(where)
        assert data.x.shape == (10, 3, 32, 32) and data.x.dtype == np.uint8
        assert data.y.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
        assert data.x_test.shape == (2, 3, 32, 32) and data.y_test.tolist() == [5, 6]
        assert data.classes[0] == "airplane" and len(data.classes) == 10
    raw = pickle.loads((folder / "data_batch_1").read_bytes())["data"]
    assert np.array_equal(data.x[0], raw[0].reshape(3, 32, 32))   # channel-major rows, as torchvision


class _Evil:
    """Unpickling this would run code. `eval`, not `print`: Ray (imported by other tests in the
    same process) replaces builtins.print, which would change the name the error quotes."""
    def __reduce__(self):
        return (eval, ("print('pwned')",))


@pytest.mark.parametrize("batch, message", [
    ({"data": np.zeros((2, 3072), np.uint8)}, "no 'labels' in the batch"),
    ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"'data' is \(2, 100\)"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "'labels' holds 10"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "not one integer label per image"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], "extra": 1.5}, None),
    ([1, 2], "holds a list, not a CIFAR-10 batch"),
    ({"data": _Evil()}, r"names (__builtin__|builtins)\.eval, which a CIFAR-10 file never holds"),
])
def test_cifar10_malformed_batches_are_errors_and_nothing_else_is_unpickled(tmp_path, batch, message, capsys):
    folder = _cifar(tmp_path, batch=batch)
    if message is None:                                    # bytes keys are taken as their text
        assert files.read_cifar10(tmp_path).x.shape == (10, 3, 32, 32)
        return
    with pytest.raises(SpecError) as err:
        files.read_cifar10(tmp_path)
    _located(err, folder / "data_batch_3", message)
    assert "pwned" not in capsys.readouterr().out


def test_cifar10_missing_files_or_meta_are_errors(tmp_path):
    folder = _cifar(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(SpecError) as err:
        files.read_cifar10(tmp_path)
    _located(err, folder, "no CIFAR-10 file test_batch here")
    assert "cifar-10-batches-py/ holds data_batch_1..5" in str(err.value)
    other = tmp_path / "other"
    _cifar(other, meta={"label_names": ["a"]})
    with pytest.raises(SpecError) as err:
        files.read_cifar10(other)
    _located(err, other / "cifar-10-batches-py" / "batches.meta", "no 'label_names' list")
    (other / "cifar-10-batches-py" / "batches.meta").write_bytes(b"\x80\x02truncated")
    with pytest.raises(SpecError) as err:
        files.read_cifar10(other)
    _located(err, other / "cifar-10-batches-py" / "batches.meta", "not a CIFAR-10 python batch")


def test_cifar10_pickles_naming_numpy_core_as_the_originals_do_read_without_warnings(tmp_path):
    folder = _cifar(tmp_path)
    path = folder / "data_batch_1"
    old = path.read_bytes()
    assert b"numpy._core.multiarray" in old or b"numpy.core.multiarray" in old
    path.write_bytes(old.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert files.read_cifar10(tmp_path).x.shape == (10, 3, 32, 32)
