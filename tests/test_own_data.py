"""A user's own data from the spec (issue 26): `data npz|folder|cifar10 "PATH"` (classify) and
`data csv|npy "PATH"` (forecast) end to end through `qtc run` on tiny files; each malformed file
or clause a located error with exit code 2 and no traceback; the path relative to the spec,
under --data-root, under $QTC_DATA or absolute; resume refusing changed data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qtc.cli import main
from qtc.errors import SpecError
from qtc.tasks.build import load_task
from qtc.tasks.data import sources
from test_files import _cifar, _image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
FORECAST_NET = """network {{
  input [{window}, {features}]
  lstm {features} -> 3
  linear 3 -> 1
}}"""
CLASSIFY_NET = """network {{
  input {shape}
  flatten
  linear {size} -> {k}
}}"""


def _forecast(data: str, window: int = 3, features: int = 1, generator: str = "") -> str:
    return (f"task own : forecast\n{data}\n" + FORECAST_NET.format(window=window, features=features)
            + f"\n{generator}train adam lr 0.01 batch 4 epochs 1 seed 0 order sequential\n")


def _classify(data: str, shape: list, k: int) -> str:
    return (f"task own : classify\n{data}\n"
            + CLASSIFY_NET.format(shape=shape, size=int(np.prod(shape)), k=k)
            + "\ntrain adam lr 0.01 batch 4 epochs 1 seed 0\n")


def _run(tmp_path, spec_text: str, *extra: str, name: str = "own.task") -> tuple[int, Path]:
    spec, out = tmp_path / name, tmp_path / "run"
    spec.write_text(spec_text)
    return main(["run", str(spec), "-o", str(out), "--no-progress", "--jobs", "1", *extra]), out


def _sine_csv(path: Path, rows: int = 30) -> Path:
    t = np.arange(rows)
    path.write_text("t,value,other\n" + "".join(f"{i},{np.sin(i / 3):.6f},{np.cos(i / 5):.6f}\n"
                                                for i in t))
    return path


def _npz(path: Path, n: int = 30, k: int = 3, test: bool = False) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(n, 1, 2, 2)).astype(np.float32), "y": np.arange(n) % k}
    if test:
        arrays.update(x_test=rng.normal(size=(9, 1, 2, 2)).astype(np.float32), y_test=np.arange(9) % k)
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_csv_column_end_to_end_with_a_generator(tmp_path):
    _sine_csv(tmp_path / "sine.csv")
    rc, out = _run(tmp_path, _forecast('data csv "sine.csv" column value window 3',
                                       generator="generator hadamard_ent_rot.qs depth 1 backend reference\n"),
                   "--models", "diffqas,classical", "--max-batches", "2")
    assert rc == 0
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["model"] for r in rows] == ["diffqas", "classical"]
    assert f'data csv "{(tmp_path / "sine.csv").resolve()}" column value' in (out / "spec.task").read_text()
    summary = (out / "summary.md").read_text()
    assert "sine.csv: column value, 30 steps; min-max to [-1, 1]" in summary and "*baseline:* last value" in summary
    ident = json.loads((out / "fingerprint.json").read_text())["identity"]
    assert ident["task.data.file"] == "sine.csv" and len(ident["data.sha256"]) == 64


def test_csv_several_columns_and_a_target_make_multivariate_windows(tmp_path):
    _sine_csv(tmp_path / "sine.csv")
    rc, out = _run(tmp_path, _forecast('data csv "sine.csv" columns [value, other] target value '
                                       "window 3 scale false", features=2))
    assert rc == 0
    readme = (out / "models" / "classical" / "README.md").read_text()
    assert "shape (N, 3, 2)" in readme and "unscaled" in readme
    assert set(json.loads((out / "baselines.json").read_text())) == {
        "mean of training targets", "last value", "linear AR (least squares)"}


def test_csv_inputs_without_the_target_have_no_last_value_baseline(tmp_path):
    _sine_csv(tmp_path / "sine.csv")
    rc, out = _run(tmp_path, _forecast('data csv "sine.csv" columns [other] target value window 3'))
    assert rc == 0
    assert "last value" not in json.loads((out / "baselines.json").read_text())


def test_npy_end_to_end(tmp_path):
    np.save(tmp_path / "s.npy", np.sin(np.arange(40) / 4))
    rc, out = _run(tmp_path, _forecast('data npy "s.npy" window 3 split 0.5'))
    assert rc == 0 and json.loads((out / "metrics.json").read_text())[0]["model"] == "classical"


def test_npz_end_to_end_with_three_classes_and_a_split(tmp_path):
    _npz(tmp_path / "d.npz")
    rc, out = _run(tmp_path, _classify('data npz "d.npz" split 0.6', [1, 2, 2], 3))
    assert rc == 0
    examples = json.loads((out / "examples.json").read_text())
    assert json.dumps(examples).count("18") >= 1       # 0.6 of 30 train
    assert (out / "confusion.png").is_file()
    row = json.loads((out / "metrics.json").read_text())[0]
    assert len(row["test_confusion"]) == 3 and sum(map(sum, row["test_confusion"])) == 12
    readme = (out / "models" / "classical" / "README.md").read_text()
    assert "index 0 is label 0, index 1 is label 1, index 2 is label 2" in readme


@pytest.mark.slow
def test_npz_with_test_arrays_and_chosen_classes(tmp_path):
    _npz(tmp_path / "d.npz", test=True)
    rc, out = _run(tmp_path, _classify('data npz "d.npz" classes [2, 0]', [1, 2, 2], 2))
    assert rc == 0
    readme = (out / "models" / "classical" / "README.md").read_text()
    assert "index 0 is label 2, index 1 is label 0" in readme


@pytest.mark.slow
def test_folder_end_to_end_names_the_outputs_by_folder(tmp_path):
    for label in ("cat", "dog"):
        for i in range(6):
            _image(tmp_path / "pets" / label / f"{i}.png", value=40 * i)
    rc, out = _run(tmp_path, _classify('data folder "pets" split 0.5', [1, 3, 4], 2))
    assert rc == 0
    readme = (out / "models" / "classical" / "README.md").read_text()
    assert "index 0 is label 0 (cat), index 1 is label 1 (dog)" in readme
    assert "(x / 255 - 0.5) / 0.5" in readme


@pytest.mark.slow
def test_cifar10_end_to_end(tmp_path):
    _cifar(tmp_path / "cifar", n=10)
    rc, out = _run(tmp_path, _classify('data cifar10 "cifar" classes [3, 5]', [3, 32, 32], 2))
    assert rc == 0
    assert "index 0 is label 3 (cat), index 1 is label 5 (dog)" in \
        (out / "models" / "classical" / "README.md").read_text()


# --------------------------------------------------------------------------- errors

MALFORMED = [
    ("sine.csv", "t,value\n0,1\n1,abc\n", 'data csv "sine.csv" column value',
     "sine.csv:3:3: error: 'abc' is not a number (column 'value')"),
    ("sine.csv", "t,value\n0,1\n1\n", 'data csv "sine.csv" column value',
     "sine.csv:3:2: error: this row has 1 field, the header 2"),
    ("sine.csv", "", 'data csv "sine.csv" column value', "sine.csv: error: the file is empty"),
    ("sine.csv", "0,1\n1,2\n", 'data csv "sine.csv" column value',
     "sine.csv:1:1: error: the header row holds the number '0'"),
    ("sine.csv", "t,value\n0,1\n", 'data csv "sine.csv" column valu',
     "sine.csv:1:1: error: no column 'valu' in the header"),
]


@pytest.mark.parametrize("name, content, data, message", MALFORMED)
def test_a_malformed_csv_is_located_in_the_file_exit_2_no_traceback(tmp_path, capsys, name, content,
                                                                   data, message):
    (tmp_path / name).write_text(content)
    rc, out = _run(tmp_path, _forecast(data))
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not out.exists()                        # nothing made before the data checks out


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 2)), "labels": np.zeros(4)}, "unexpected array 'labels'"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "array 'x' has 4 examples, 'y' 3"),
    ({"x": np.zeros(4), "y": np.zeros(4)}, "array 'x' has shape (4,)"),
    ({"x": np.zeros((4, 2)), "y": np.array([-1, 1, -1, 1])},
     "array 'y' holds -1 at index 0: class labels are integers 0 or more"),
    ({"x": np.zeros((4, 2)), "y": np.array([0.0, 1.0, -2.0, 1.0])},
     "array 'y' holds -2 at index 2: class labels are integers 0 or more"),
])
def test_a_malformed_npz_is_an_error_naming_the_file(tmp_path, capsys, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    rc, _ = _run(tmp_path, _classify('data npz "d.npz"', [2], 2))
    err = capsys.readouterr().err
    assert rc == 2 and f"d.npz: error: {message}" in err and "Traceback" not in err


def test_labels_far_apart_map_to_outputs_in_the_specs_order(tmp_path):
    """Output k is the spec's k-th class whatever the labels' size (ids such as 10**12: no table
    as long as the largest label), and unchosen labels are left out."""
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([10**12, 5, 3, 10**12, 5, 3]),
             x_test=x[:3], y_test=np.array([3, 10**12, 5]))
    (tmp_path / "own.task").write_text(_classify('data npz "d.npz" classes [1000000000000, 3]', [2], 2))
    got = sources.classes(load_task(tmp_path / "own.task").spec)
    assert got.train.tensors[1].tolist() == [0, 1, 0, 1]
    assert got.train.tensors[0][:, 0].tolist() == [0.0, 4.0, 6.0, 10.0]
    assert got.test.tensors[1].tolist() == [1, 0] and got.labels == (10**12, 3)


def test_an_unreadable_image_names_the_file_not_a_python_object(tmp_path, capsys):
    _image(tmp_path / "pets" / "cat" / "0.png")
    _image(tmp_path / "pets" / "dog" / "0.png")
    (tmp_path / "pets" / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rc, _ = _run(tmp_path, _classify('data folder "pets"', [1, 3, 4], 2))
    err = capsys.readouterr().err
    assert rc == 2 and "dog/1.png: error: not an image PIL can read (cannot identify image file)" in err
    assert " at 0x" not in err and "Traceback" not in err


def test_a_folder_with_mixed_sizes_or_an_empty_class_is_an_error(tmp_path, capsys):
    _image(tmp_path / "pets" / "cat" / "0.png")
    _image(tmp_path / "pets" / "dog" / "0.png", size=(5, 5))
    rc, _ = _run(tmp_path, _classify('data folder "pets"', [1, 3, 4], 2))
    err = capsys.readouterr().err
    assert rc == 2 and "dog/0.png: error: the image is 5x5, cat/0.png is 4x3" in err
    (tmp_path / "pets" / "dog" / "0.png").unlink()
    rc, _ = _run(tmp_path, _classify('data folder "pets"', [1, 3, 4], 2))
    assert rc == 2 and "pets/dog: error: the class folder has no images" in capsys.readouterr().err


@pytest.mark.parametrize("data, net, at, message", [
    ('data csv window 3', "forecast", "window", "'data csv' needs its file, in double quotes"),
    ('data csv "sine.csv" column value classes all', "forecast", "all",
     "'data csv' takes no option 'classes'"),
    ('data csv "sine.csv" column value scale maybe', "forecast", "maybe",
     "'scale' is true or false, got 'maybe'"),
    ('data csv "sine.csv" columns [value, other]', "forecast", "[",
     "several input `columns` need a `target` column"),
    ('data mnist classes [1, 2] column value', "classify", "value",
     "'column' is an option of a data file (csv, npy)"),
    ('data csv "sine.csv" column value', "classify", "data",
     "'column' of 'data' does not apply to classify tasks"),
    ('data csv "sine.csv"', "classify", "data",
     "'data csv' is a forecast task's data; a classify task reads labelled examples"),
    ('data npz "d.npz" window 4', "classify", "4", "'data npz' takes no option 'window'"),
    ('data csv "nowhere.csv" column value', "forecast", '"', "data file 'nowhere.csv' not found (beside the spec:"),
])
def test_a_bad_data_clause_is_located_in_the_spec(tmp_path, capsys, data, net, at, message):
    _sine_csv(tmp_path / "sine.csv")
    text = _forecast(data) if net == "forecast" else _classify(data, [1, 2, 2], 2)
    rc, _ = _run(tmp_path, text)
    err = capsys.readouterr().err
    assert rc == 2 and f"own.task:2:{data.index(at) + 1}: error: {message}" in err and "Traceback" not in err


def test_a_window_the_network_does_not_take_is_located_at_its_input(tmp_path, capsys):
    _sine_csv(tmp_path / "sine.csv")
    rc, _ = _run(tmp_path, _forecast('data csv "sine.csv" column value window 4'))
    assert rc == 2 and ("own.task:4:3: error: network 'net' takes input [3, 1] but 'sine.csv' with "
                        "'window 4' (1 input column) gives [4, 1]") in capsys.readouterr().err


def test_classes_the_file_lacks_or_a_wrong_output_width_are_located(tmp_path, capsys):
    _npz(tmp_path / "d.npz", k=3)
    rc, _ = _run(tmp_path, _classify('data npz "d.npz" classes [0, 7]', [1, 2, 2], 2))
    assert rc == 2 and "own.task:2:1: error: class 7 is not a label of d.npz (labels: 0, 1, 2)" \
        in capsys.readouterr().err
    rc, _ = _run(tmp_path, _classify('data npz "d.npz"', [1, 2, 2], 2))
    assert rc == 2 and "gives output [2] but 'd.npz' with 3 classes (one output each) needs [3]" \
        in capsys.readouterr().err


# --------------------------------------------------------------------------- where, and resume

def test_the_path_beside_the_spec_under_data_root_qtc_data_or_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv("QTC_DATA", raising=False)
    spec_dir, root, env = (tmp_path / d for d in ("specs", "root", "env"))
    for d in (spec_dir, root, env):
        d.mkdir()
    spec = spec_dir / "own.task"
    spec.write_text(_forecast('data csv "sine.csv" column value window 3'))
    built = load_task(spec)
    with pytest.raises(SpecError) as err:
        sources.resolve(built.spec, root)
    assert "--data-root: " + str(root / "sine.csv") in str(err.value) and "$QTC_DATA: not set" in str(err.value)
    _sine_csv(env / "sine.csv")
    monkeypatch.setenv("QTC_DATA", str(env))
    assert sources.resolve(built.spec, root) == env / "sine.csv"
    _sine_csv(root / "sine.csv")
    assert sources.resolve(built.spec, root) == root / "sine.csv"     # --data-root before $QTC_DATA
    _sine_csv(spec_dir / "sine.csv")
    assert sources.resolve(built.spec, root) == spec_dir / "sine.csv"  # beside the spec first
    spec.write_text(_forecast(f'data csv "{env / "sine.csv"}" column value'))
    assert sources.resolve(load_task(spec).spec, root) == env / "sine.csv"


def test_a_run_reading_from_data_root_resumes_and_refuses_changed_data(tmp_path, capsys):
    data = tmp_path / "elsewhere"
    data.mkdir()
    _sine_csv(data / "sine.csv")
    rc, out = _run(tmp_path, _forecast('data csv "sine.csv" column value window 3'), "--data-root", str(data))
    assert rc == 0
    assert main(["run", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0
    _sine_csv(data / "sine.csv", rows=31)
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--epochs", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"its data {(data / 'sine.csv').resolve()} changed since the run started" in err
    assert "Traceback" not in err


def test_the_shipped_examples_load(tmp_path):
    for name, kind in (("sunspots", "forecast"), ("digits", "classify")):
        built = load_task(REPO / "specs" / "data" / f"{name}.task")
        assert built.spec.kind == kind and sources.digest(built.spec) is not None
    got = sources.classes(load_task(REPO / "specs" / "data" / "digits.task").spec)
    assert got.labels == tuple(range(10)) and got.train.tensors[0].shape[1:] == (1, 8, 8)


def test_set_changes_a_data_option_under_the_sources_rules(tmp_path):
    spec = tmp_path / "own.task"
    spec.write_text(_forecast('data csv "sine.csv" column value window 3'))
    assert load_task(spec, {"data.column": "other"}).spec.data.column_name == "other"
    assert load_task(spec, {"data.scale": "false"}).spec.data.options == {"scale": False}
    for setting, message in (({"data.points": "5"}, "--set data.points=5: 'data csv' takes no option 'points'"),
                             ({"data.scale": "maybe"}, "--set data.scale=maybe: 'scale' is true or false")):
        with pytest.raises(SpecError) as err:
            load_task(spec, setting)
        assert message in str(err.value)


def test_scale_false_turns_a_built_in_series_scaling_off(tmp_path):
    spec = tmp_path / "own.task"
    spec.write_text(_forecast("data bessel points 40 window 3 scale false"))
    assert load_task(spec).spec.data.options == {"points": 40, "scale": False}
