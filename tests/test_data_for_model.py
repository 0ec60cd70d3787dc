"""The --data loader against a model: reshaping, task, inputs and outputs placed, every mismatch as a whole string."""

import numpy as np
import pytest

from weightkit.analysis.data.checks import check_data_against_model, fit_to_model, load_data_for_model
from weightkit.analysis.data.datasets import Dataset, load_data
from weightkit.analysis.errors import WeightkitError


def message(excinfo):
    return str(excinfo.value)


@pytest.fixture(scope="module")
def models(keras):
    layers = keras.layers

    def functional(shape, body):
        inputs = keras.Input(shape)
        return keras.Model(inputs, body(inputs))

    two_inputs_a, two_inputs_b = keras.Input((3,), name="left"), keras.Input((3,), name="right")
    return {
        "mlp": functional((64,), lambda x: layers.Dense(10, activation="softmax")(layers.Dense(8)(x))),
        "lstm": functional((8, 8), lambda x: layers.Dense(10, activation="softmax")(layers.LSTM(4)(x))),
        "cnn": functional((8, 8, 1), lambda x: layers.Dense(10, activation="softmax")(
            layers.Flatten()(layers.Conv2D(2, 3)(x)))),
        "binary": functional((4,), lambda x: layers.Dense(1, activation="sigmoid")(x)),
        "regression": functional((4,), lambda x: layers.Dense(2)(x)),
        "scalar": functional((4,), lambda x: layers.Dense(1)(x)),
        "two_inputs": keras.Model([two_inputs_a, two_inputs_b],
                                  layers.Dense(2)(layers.Concatenate()([two_inputs_a, two_inputs_b]))),
    }


def _data(x, y, task="classification", source="x.npz"):
    x, y = np.asarray(x), np.asarray(y)
    half = len(x) // 2
    return Dataset(x[:half], y[:half], x[half:], y[half:], source, task)


def test_bundled_digits_are_reshaped_for_a_cnn_and_files_are_not(models):
    data = fit_to_model(load_data("sklearn:digits"), models["cnn"])
    assert data.x_train.shape[1:] == (8, 8, 1)
    check_data_against_model(data, models["cnn"])
    flat = _data(np.zeros((6, 64), np.float32), np.zeros(6, np.int64))
    assert fit_to_model(flat, models["cnn"]).x_train.shape == (3, 64)


def test_task_follows_the_models_output(models):
    integers = _data(np.zeros((6, 4), np.float32), np.array([3, 5, 7, 1, 2, 9]))
    assert fit_to_model(integers, models["scalar"]).task == "regression"
    integral_floats = _data(np.zeros((6, 4), np.float32), np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]), "regression")
    fitted = fit_to_model(integral_floats, models["binary"])
    assert fitted.task == "classification" and fitted.y_train.dtype == np.int64


MISMATCHES = {
    "2-D data for a recurrent model": (
        "lstm", np.zeros((6, 64), np.float32), np.zeros(6, np.int64), "classification",
        "--data x.npz: the model expects input of shape (batch, 8, 8), the data has (batch, 64) (2 dimensions "
        "instead of 3). A recurrent model expects (batch, timesteps, features): reshape the data, e.g. "
        "x.reshape(len(x), 8, 8)."),
    "flat data for a CNN": (
        "cnn", np.zeros((6, 64), np.float32), np.zeros(6, np.int64), "classification",
        "--data x.npz: the model expects input of shape (batch, 8, 8, 1), the data has (batch, 64) "
        "(2 dimensions instead of 4). Reshape the data to (n_samples, 8, 8, 1)."),
    "wrong feature count": (
        "mlp", np.zeros((6, 63), np.float32), np.zeros(6, np.int64), "classification",
        "--data x.npz: the model expects input of shape (batch, 64), the data has (batch, 63) (axis 1 is 63, "
        "expected 64); give data of the model's input shape."),
    "NaN in the inputs": (
        "mlp", np.full((6, 64), np.nan, np.float32), np.zeros(6, np.int64), "classification",
        "--data x.npz: x_train contains NaN or Inf; remove or impute those values first."),
    "labels beyond the outputs": (
        "mlp", np.zeros((6, 64), np.float32), np.array([0, 1, 2, 3, 4, 12]), "classification",
        "--data x.npz: labels range from 0 to 12, but the model has 10 outputs (classes 0 to 9); give labels "
        "in that range."),
    "negative labels": (
        "mlp", np.zeros((6, 64), np.float32), np.array([0, -1, 2, 3, 4, 5]), "classification",
        "--data x.npz: labels range from -1 to 5, but the model has 10 outputs (classes 0 to 9); give labels "
        "in that range."),
    "one-hot of the wrong width": (
        "mlp", np.zeros((6, 64), np.float32), np.eye(6, dtype=np.int64), "classification",
        "--data x.npz: one-hot labels have 6 columns but the model outputs 10; give labels for the model's "
        "10 outputs."),
    "multi-class labels for a sigmoid": (
        "binary", np.zeros((6, 4), np.float32), np.array([0, 1, 2, 0, 1, 2]), "classification",
        "--data x.npz: labels range from 0 to 2, but the model has one sigmoid output (classes 0 and 1); give "
        "0/1 labels or a model with one output per class."),
    "regression targets of the wrong width": (
        "regression", np.zeros((6, 4), np.float32), np.zeros((6, 3), np.float32), "regression",
        "--data x.npz: the model outputs shape (batch, 2), the labels have (batch, 3); give 2 target values "
        "per sample."),
    "NaN labels": (
        "regression", np.zeros((6, 4), np.float32), np.full((6, 2), np.nan, np.float32), "regression",
        "--data x.npz: y_train contains NaN or Inf labels; remove those samples."),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_each_mismatch_has_one_message_with_both_shapes_and_the_fix(models, case):
    model, x, y, task, expected = MISMATCHES[case]
    with pytest.raises(WeightkitError) as error:
        check_data_against_model(_data(x, y, task), models[model])
    assert message(error) == expected


def test_a_model_with_two_inputs_needs_one_array_per_input(models):
    with pytest.raises(WeightkitError) as error:
        fit_to_model(_data(np.zeros((6, 3)), np.zeros(6)), models["two_inputs"])
    assert message(error) == ("--data x.npz: one input array for a model with 2 inputs (left, right); give one "
                              "array per input (x0, x1, ... or x_<input name>).")


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_names_place_inputs_and_labels_by_position_or_name(models, tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(10, 3)).astype(np.float32), rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.normal(size=(10, 2)).astype(np.float32)
    by_name = load_data_for_model(_save(tmp_path / "n.npz", x_right=right, x_left=left, y=y), models["two_inputs"])
    by_index = load_data_for_model(_save(tmp_path / "i.npz", x1=right, x0=left, y=y), models["two_inputs"])
    for data in (by_name, by_index):
        assert isinstance(data.x_train, list) and len(data.x_train) == 2
        # The same seeded split of the same rows: left first, then right, labels with the first output.
        joined = np.concatenate([data.x_train[0], data.x_test[0]])
        assert sorted(map(tuple, joined)) == sorted(map(tuple, left))
        order = [np.flatnonzero((left == row).all(1))[0] for row in data.x_train[0]]
        np.testing.assert_array_equal(data.x_train[1], right[order])
        np.testing.assert_array_equal(data.y_train, y[order])
    with pytest.raises(WeightkitError) as error:
        load_data_for_model(_save(tmp_path / "bad.npz", x_left=left, x_up=right), models["two_inputs"])
    assert message(error) == (f"--data {tmp_path / 'bad.npz'}: array x_up names no input of the model; its inputs "
                              "are left, right (x0..x1 or x_<name>).")


def test_labels_of_several_outputs_go_to_their_outputs(keras, tmp_path):
    inputs = keras.Input((4,))
    trunk = keras.layers.Dense(5, activation="relu", name="trunk")(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(3, activation="softmax", name="kind")(trunk),
                                 keras.layers.Dense(1, name="size")(trunk)])
    x, kinds, sizes = np.zeros((8, 4), np.float32), np.arange(8) % 3, np.linspace(0, 1, 8).astype(np.float32)
    data = load_data_for_model(_save(tmp_path / "d.npz", x=x, y_size=sizes, y_kind=kinds), model)
    assert [np.asarray(y).dtype.kind for y in data.y_train] == ["i", "f"]
    assert data.task == "classification"
    only_first = load_data_for_model(_save(tmp_path / "first.npz", x=x, y=kinds), model)
    assert only_first.y_train[1] is None and only_first.y_train[0].shape == (6,)


def test_inputs_without_labels_load_from_npz_csv_and_a_plain_image_folder(keras, models, tmp_path):
    npz = load_data(_save(tmp_path / "x.npz", x=np.zeros((5, 64), np.float32)))
    assert npz.y_train is None and not npz.labelled and npz.n_train + npz.n_test == 5
    csv = tmp_path / "x.csv"
    csv.write_text("a,b,c,d\n" + "\n".join("1,2,3,4" for _ in range(6)) + "\n")
    data = load_data_for_model(str(csv), models["binary"])  # 4 columns, 4 model inputs: no target column
    assert data.y_train is None and data.x_train.shape[1] == 4
    from PIL import Image

    for index in range(3):
        Image.fromarray(np.full((8, 8, 3), index * 40, np.uint8)).save(tmp_path / f"img{index}.png")
    images = load_data(str(tmp_path), image_size=(8, 8))
    assert images.y_train is None and images.n_train + images.n_test == 3


def test_labels_of_an_output_of_any_shape_fit_per_element(keras):
    inputs = keras.Input((6, 6, 2))
    mask = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    classes = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", activation="softmax")(inputs))
    x = np.zeros((6, 6, 6, 2), np.float32)
    check_data_against_model(_data(x, np.ones((6, 6, 6, 1), np.int64)), mask)  # a 0/1 mask per pixel
    check_data_against_model(_data(x, np.full((6, 6, 6), 3, np.int64)), classes)  # a class per pixel
    with pytest.raises(WeightkitError) as error:
        check_data_against_model(_data(x, np.zeros(6, np.int64)), classes)
    assert message(error) == ("--data x.npz: labels of shape (batch,) do not fit the model's output (batch, 6, 6, "
                              "4); give labels of the output's shape per sample, or one class per element "
                              "(batch, 6, 6).")


def test_matching_data_passes(models):
    check_data_against_model(_data(np.zeros((6, 64), np.float32), np.arange(6)), models["mlp"])
    check_data_against_model(_data(np.zeros((6, 8, 8), np.float32), np.arange(6)), models["lstm"])
    check_data_against_model(_data(np.zeros((6, 4), np.float32), np.zeros((6, 2), np.float32), "regression"),
                             models["regression"])


def test_splits_with_samples_of_different_shapes_get_one_line(models, tmp_path):
    # Found by hypothesis: y_train of shape (1,) beside y_test of shape (1, 0) reached an argmax of nothing.
    path = _save(tmp_path / "odd.npz", x_train=np.zeros((2, 64)), x_test=np.zeros((1, 64)), y_train=np.zeros(2, int),
                 y_test=np.zeros((1, 0), int))
    with pytest.raises(WeightkitError) as error:
        load_data_for_model(path, models["mlp"])
    assert message(error) == (f"--data {path}: y_train has samples of shape () but y_test of (0,); give both splits "
                              "samples of one shape.")
    path = _save(tmp_path / "odd_x.npz", x_train=np.zeros((2, 64)), x_test=np.zeros((1, 63)), y_train=np.zeros(2, int),
                 y_test=np.zeros(1, int))
    with pytest.raises(WeightkitError) as error:
        load_data_for_model(path, models["mlp"])
    assert message(error) == (f"--data {path}: x_train has samples of shape (64,) but x_test of (63,); give both "
                              "splits samples of one shape.")


def test_a_csv_too_wide_for_the_model_is_refused_from_its_header(models, tmp_path):
    """The width is checked before any row is parsed: the rows here are not even numbers."""
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(70)) + ",label\n" + "text,\n" * 3)
    with pytest.raises(WeightkitError) as excinfo:
        load_data_for_model(str(path), models["mlp"])
    assert message(excinfo) == (f"--data {path}: the model expects input of shape (batch, 64), the data has (batch, "
                                "70) (axis 1 is 70, expected 64); give data of the model's input shape.")


def test_token_ids_are_checked_against_every_embedding_they_reach(keras):
    """Directly, through a Reshape or a Concatenate of two inputs; the smallest vocabulary reached is named."""
    from weightkit.analysis.data.inputs import as_inputs
    from weightkit.analysis.data.token_ids import check_token_ids, embedding_vocabularies

    layers = keras.layers
    a, b = keras.Input((3,), dtype="int32", name="a"), keras.Input((2,), dtype="int32", name="b")
    joined = layers.Concatenate(name="join")([a, b])
    x = layers.Embedding(10, 2, name="big")(layers.Reshape((5,), name="same")(joined))
    y = layers.Embedding(7, 2, name="small")(b)
    model = keras.Model([a, b], layers.Dense(1)(layers.Concatenate(axis=1)([x, y])))
    assert embedding_vocabularies(model) == [[("big", 10)], [("small", 7), ("big", 10)]]
    ids = np.zeros((4, 3), np.int32), np.full((4, 2), 6, np.int32)
    check_token_ids("d.npz", model, [[ids[0]], [ids[1]]], ["a", "b"])  # 6 < 7: in range everywhere
    with pytest.raises(WeightkitError) as excinfo:
        check_token_ids("d.npz", model, [[ids[0]], [ids[1] + 1]], ["a", "b"])
    assert message(excinfo) == ("--data d.npz: input 'b' holds token id 7, but Embedding 'small' has a vocabulary of 7 "
                                "(ids 0 to 6); give ids below 7 (map unknown tokens to a reserved id) or the model the "
                                "data was made for.")
    with pytest.raises(WeightkitError) as excinfo:  # arrays given to the Python API: the same check
        as_inputs([ids[0], -ids[1]], model)
    assert message(excinfo) == ("data: input 'b' holds token id -6, but Embedding 'small' takes ids 0 to 6 (a "
                                "vocabulary of 7); give non-negative ids.")
