"""The shared --data loader: every format, and every bad source refused in one line (against a model:
``test_data_for_model.py``)."""

import numpy as np
import pytest

from weightkit.analysis.data.checks import load_data_for_model
from weightkit.analysis.data.datasets import SKLEARN_DATASETS, load_data
from weightkit.analysis.errors import WeightkitError


def message(excinfo):
    return str(excinfo.value)


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("name", SKLEARN_DATASETS)
def test_sklearn_datasets_load_split_and_typed(name):
    data = load_data(f"sklearn:{name}", seed=0)
    n = len(data.x_train) + len(data.x_test)
    assert data.x_train.dtype == np.float32 and data.x_train.ndim == 2
    assert len(data.x_test) == round(0.2 * n)
    assert data.task == ("regression" if name == "diabetes" else "classification")
    if name == "digits":
        assert data.x_train.max() <= 1.0 and data.n_classes == 10


def test_split_is_seeded_and_disjoint():
    a, b = load_data("sklearn:iris", seed=3), load_data("sklearn:iris", seed=3)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, load_data("sklearn:iris", seed=4).x_test)


def test_npz_with_x_and_y_and_with_a_given_split(tmp_path, rng):
    x, y = rng.normal(size=(50, 4)).astype(np.float32), rng.integers(0, 3, 50)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    data = load_data(str(tmp_path / "xy.npz"))
    assert (len(data.x_train), len(data.x_test), data.task) == (40, 10, "classification")
    np.savez(tmp_path / "split.npz", x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    data = load_data(str(tmp_path / "split.npz"))
    np.testing.assert_array_equal(data.x_test, x[30:])
    np.savez(tmp_path / "reg.npz", x=x, y=rng.normal(size=50))
    assert load_data(str(tmp_path / "reg.npz")).task == "regression"


def test_csv_with_default_and_named_target(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,label,b\n1,0,2\n3,1,4\n\n5,1,6\n7,0,8.5\n")
    data = load_data(str(path), target="label", test_fraction=0.25)
    assert data.x_train.shape == (3, 2) and data.task == "classification"
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == [0, 0, 1, 1]
    data = load_data(str(path))  # default: the last column, real-valued
    assert data.task == "regression" and data.y_train.dtype == np.float32


def _write_png(path, pixels):
    import tensorflow as tf

    path.write_bytes(tf.io.encode_png(pixels).numpy())


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, keras):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir()
        for index in range(3):
            _write_png(root / label / f"{index}.png", rng.integers(0, 255, size=(10, 12, 3), dtype=np.uint8))
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_loads_at_the_models_size_and_channels(keras, image_folder):
    inputs = keras.Input((6, 5, 1))
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    data = load_data_for_model(str(image_folder), model)
    assert data.x_train.shape[1:] == (6, 5, 1) and len(data.x_train) + len(data.x_test) == 6
    assert sorted(set(np.concatenate([data.y_train, data.y_test]).tolist())) == [0, 1]


@pytest.mark.parametrize("command", ["analyze", "merge"])
def test_image_folders_reach_every_command_at_the_models_size(keras, image_folder, tmp_path, capsys, command):
    """analyze, report and merge --data share retrain's and quantize's loader: 10x12 images fit a 6x5x1 CNN."""
    from weightkit._common import run_cli
    from weightkit.cli import cli

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 5, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs))
    x = keras.layers.Dense(4, activation="relu", name="hidden")(x)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x)).save(tmp_path / "cnn.keras")
    argv = {"analyze": ["analyze", tmp_path / "cnn.keras", "--data", image_folder, "--json", tmp_path / "a.json"],
            "merge": ["merge", tmp_path / "cnn.keras", "--data", image_folder, "-o", tmp_path / "m.keras"]}[command]
    capsys.readouterr()
    status = run_cli(cli, [str(a) for a in argv] + ["--quiet"])
    assert (status, capsys.readouterr().err) == (0, "")


# ---------------------------------------------------------------- bad sources


def test_bad_sources_each_get_one_line(tmp_path, rng):
    cases = []
    missing = str(tmp_path / "nope.npz")
    cases.append((missing, f"--data {missing}: no such file or folder; check the path."))
    cases.append(("sklearn:mnist", "--data sklearn:mnist: unknown bundled dataset 'mnist'; expected one of "
                                   "sklearn:digits, sklearn:iris, sklearn:wine, sklearn:breast_cancer, sklearn:diabetes."))
    other = tmp_path / "data.parquet"
    other.write_text("x")
    cases.append((str(other), f"--data {other}: unsupported data format '.parquet'; use .npz, .csv, an image "
                              "folder or sklearn:NAME."))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    cases.append((str(pickled), f"{pickled}: holds Python objects (pickled arrays), which are not loaded for "
                                "safety; save plain numeric arrays with np.savez."))
    keys = tmp_path / "keys.npz"
    np.savez(keys, features=np.zeros((3, 2)), labels=np.zeros(3))
    cases.append((str(keys), f"{keys}: has arrays ['features', 'labels'], expected x and y (or x_train, y_train, "
                             "x_test, y_test; x0, x1... for several inputs)."))
    lengths = tmp_path / "lengths.npz"
    np.savez(lengths, x=np.zeros((5, 2)), y=np.zeros(4))
    cases.append((str(lengths), f"{lengths}: 5 inputs but 4 labels; x and y must have the same length."))
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 2)), y=np.zeros(0))
    cases.append((str(empty), f"{empty}: the dataset is empty; give at least 2 samples."))
    text = tmp_path / "text.csv"
    text.write_text("a,b,label\n1,2,0\n3,red,1\n")
    cases.append((str(text), f"{text}: line 3, column 'b': 'red' is not a number; encode text columns as "
                             "numbers first."))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,label\n1,2,0\n3,1\n")
    cases.append((str(ragged), f"{ragged}: line 3 has 2 fields, the header has 3; give every row one value "
                               "per column."))
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,label\n")
    cases.append((str(header_only), f"{header_only}: no data rows; expected a header line and at least one row."))
    no_images = tmp_path / "no_images"
    (no_images / "cat").mkdir(parents=True)
    cases.append((str(no_images), f"{no_images}: no images in class subfolders (expected {no_images}/CLASS/IMAGE.png); "
                                  "check the folder."))
    for spec, expected in cases:
        with pytest.raises(WeightkitError) as error:
            load_data(spec)
        assert message(error) == expected


def test_unknown_csv_target_lists_the_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    with pytest.raises(WeightkitError) as error:
        load_data(str(path), target="class")
    assert message(error) == f"{path}: no column named 'class' for --target; columns: a, b, label."


def test_corrupt_image_is_named_with_the_fix(keras, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(WeightkitError) as error:
        load_data(str(tmp_path), image_size=(8, 8))
    assert message(error) == (f"{tmp_path}: image {tmp_path / 'cat' / 'broken.png'} could not be decoded; remove "
                              "or replace corrupt images.")


def test_a_csv_over_the_size_limit_is_refused_unread(tmp_path):
    from weightkit.analysis.files.limits import MAX_CSV_BYTES

    path = tmp_path / "huge.csv"
    with open(path, "wb") as handle:
        handle.truncate(MAX_CSV_BYTES + 1)  # sparse: nothing on disk, and reading it would take minutes
    with pytest.raises(WeightkitError) as info:
        load_data(str(path))
    assert str(info.value) == (f"--data {path}: is 2.0 GiB, over the limit of 2 GiB for a CSV; save the data as .npz "
                               "(np.savez) or give a smaller sample.")


@pytest.mark.parametrize("suffix", ["csv", "npz"])
def test_a_fifo_is_refused_as_data_without_opening_it(tmp_path, suffix):
    import os

    path = tmp_path / f"pipe.{suffix}"
    os.mkfifo(path)  # opening it for reading would wait for a writer forever
    with pytest.raises(WeightkitError) as info:
        load_data(str(path))
    assert str(info.value) == f"--data {path}: is a FIFO, not a regular file; give the path of a saved file."


def test_csv_streamed_in_blocks_keeps_every_row_in_order(tmp_path):
    rows = np.arange(3 * 4096 + 7 * 3, dtype=np.float64).reshape(-1, 3)  # more rows than one block, and a rest
    text = "a,b,label\n" + "".join(f"{a:g},{b:g},{int(c)}\n" for a, b, c in rows)
    (tmp_path / "long.csv").write_text(text)
    dataset = load_data(str(tmp_path / "long.csv"), test_fraction=0.1)
    x = np.concatenate([dataset.x_train, dataset.x_test])
    y = np.concatenate([dataset.y_train, dataset.y_test])
    order = np.argsort(y)
    np.testing.assert_array_equal(x[order], rows[:, :2].astype(np.float32))
    np.testing.assert_array_equal(y[order], rows[:, 2].astype(np.int64))


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_an_image_that_is_not_a_regular_file_is_refused_unread(tmp_path, kind):
    import os

    from PIL import Image

    (tmp_path / "cats").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "cats" / "a.png")
    bad = tmp_path / "cats" / "b.png"
    os.mkfifo(bad) if kind == "fifo" else os.symlink("/dev/zero", bad)
    with pytest.raises(WeightkitError) as info:
        load_data(str(tmp_path))
    what = "a FIFO" if kind == "fifo" else "a character device"
    assert str(info.value) == f"--data {bad}: is {what}, not a regular file; give the path of a saved file."


def test_a_wide_csv_is_read_in_blocks_under_the_memory_budget(tmp_path, monkeypatch):
    """2,000 columns: each block holds what 32 MiB allows (2,097 rows), not 4,096 x columns up front."""
    from weightkit.analysis.data import csv_data

    shapes = []
    real_empty = np.empty
    monkeypatch.setattr(csv_data.np, "empty", lambda shape, *a, **k: shapes.append(shape) or real_empty(shape, *a, **k))
    columns = 2000
    (tmp_path / "wide.csv").write_text(",".join(f"c{i}" for i in range(columns)) + "\n" + ("1," * columns)[:-1] + "\n")
    header, values = csv_data.read_csv_numbers(str(tmp_path / "wide.csv"))
    assert (len(header), values.shape) == (columns, (1, columns))
    assert shapes == [((32 << 20) // (8 * columns), columns)]
