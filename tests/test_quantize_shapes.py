"""Issue 18, the rest: variable-size inputs fixed to the data, int16x8 with token ids, sensitivity of several outputs.

Models are tiny, seeded and saved and reloaded before use; timing repeats are minimal.
"""

import json

import numpy as np
import pytest

from tests.zoo import load_zoo, reloaded, zoo_inputs, zoo_path

FAST = {"latency_repeats": 1, "throughput_repeats": 1, "calibration_samples": 40}
LENGTH = 10  # the data's sequence length; the model takes any


def _saved(model, tmp_path_factory, name):
    directory = tmp_path_factory.mktemp("quantize_shapes")
    return directory / f"{name}.keras", reloaded(model, directory, name)


@pytest.fixture(scope="module")
def variable_lstm(keras, tmp_path_factory):
    """``keras.Input((None, 3))`` -> LSTM -> softmax, seeded weights, saved and reloaded."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, 3), name="series"), keras.layers.LSTM(6, name="lstm"),
                              keras.layers.Dense(3, activation="softmax", name="probs")])
    return _saved(model, tmp_path_factory, "variable_lstm")


@pytest.fixture(scope="module")
def variable_cnn(keras, tmp_path_factory):
    """``keras.Input((None, None, 1))`` -> Conv2D -> global pooling -> softmax: any image size."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))
    return _saved(model, tmp_path_factory, "variable_cnn")


def _cli(argv, capsys):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    code = run_cli(cli, argv)
    return code, capsys.readouterr()


def test_a_variable_length_lstm_converts_at_the_data_length(variable_lstm):
    from weightkit.compress.quantize import TFLiteModel, keras_source, quantize_model

    _, model = variable_lstm
    x = np.random.default_rng(0).normal(size=(60, LENGTH, 3)).astype("float32")
    contents, report = quantize_model(keras_source(model), ["float32", "dynamic", "int8"], x, **FAST)
    assert ("input series: sequence length fixed to 10 from --data (the model takes (None, None, 3)); the .tflite "
            "files take only that length") in report.notes
    reference = model.predict(x, verbose=0)  # Keras at the data's length
    for row in report.modes:
        assert row.ok and row.agreement >= 0.95, (row.mode, row.agreement, row.error)
        runner = TFLiteModel(contents[row.mode])
        assert runner.input_shape == (LENGTH, 3)
        assert np.mean(runner.predict(x).argmax(1) == reference.argmax(1)) >= 0.95, row.mode


def test_a_cnn_of_any_image_size_converts_at_the_data_size_and_says_so(variable_cnn, tmp_path, capsys):
    path, _ = variable_cnn
    x = np.random.default_rng(1).random((60, 8, 6, 1), dtype=np.float32)
    np.savez(tmp_path / "images.npz", x=x)
    out = tmp_path / "q"
    code, captured = _cli(["quantize", str(path), "--data", str(tmp_path / "images.npz"), "-o", str(out), "--modes",
                           "float32,dynamic,int8", "--calibration-samples", "40"], capsys)
    assert code == 0, captured.err
    note = ("input image: image size fixed to 8x6 from --data (the model takes (None, None, None, 1)); the .tflite "
            "files take only that size")
    assert note in " ".join(captured.out.split())  # the console, however it wraps
    document = json.loads((out / "comparison.json").read_text())
    assert note in document["notes"]
    for row in document["modes"]:
        assert row["status"] == "ok" and row["agreement"] >= 0.95, row


def test_without_data_a_variable_size_input_is_refused_naming_it_and_data(variable_lstm, tmp_path, capsys):
    path, _ = variable_lstm
    code, captured = _cli(["quantize", str(path), "-o", str(tmp_path / "q")], capsys)
    assert code == 2 and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.strip().endswith(
        "input series has the shape (None, None, 3), with unknown dimensions besides the batch, so it cannot be "
        "converted as it is; pass --data DATA (training inputs) to fix them to the data's shape, or give the model a "
        "fixed input size (keras.Input(shape=...)).")
    assert not (tmp_path / "q").exists()


def test_int16x8_of_an_embedding_model_keeps_the_token_ids_int32(keras, tmp_path_factory):
    from ai_edge_litert.interpreter import Interpreter

    from weightkit.analysis.data.datasets import Dataset
    from weightkit.compress.quantize import keras_source, quantize_model

    rng = np.random.default_rng(1)  # class 1 when token 3 occurs: trained, so agreement is not decided by near-ties
    x = rng.integers(0, 20, size=(400, 8)).astype("int32")
    y = (x == 3).any(axis=1).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,), dtype="int32", name="ids"), keras.layers.Embedding(20, 6, name="embed"),
                              keras.layers.GlobalAveragePooling1D(name="pool"),
                              keras.layers.Dense(2, activation="softmax", name="probs")])
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    model.fit(x[:300], y[:300], epochs=15, batch_size=32, verbose=0)
    _, model = _saved(model, tmp_path_factory, "embedding")
    data = Dataset(x[:300], y[:300], x[300:], y[300:], "synthetic tokens", "classification")
    contents, report = quantize_model(keras_source(model), ["float32", "int16x8"], data, int16x8_limit_s=None, **FAST)
    row = report.mode("int16x8")
    assert report.reference.accuracy > 0.9
    assert row.ok and row.converter == "ai-edge-quantizer" and row.agreement >= 0.95, (row.error, row.agreement)
    details = Interpreter(model_content=contents["int16x8"]).get_input_details()
    assert [d["dtype"] for d in details] == [np.int32]
    assert any(note.startswith("int16x8: TF 2.21's 16x8 quantizer tries to quantize the integer input (token ids) "
                               "and fails; quantized instead by ai-edge-quantizer") for note in report.notes)


def test_int4_sensitivity_of_a_two_output_model_lists_every_layer_and_each_output(tmp_path, capsys):
    path, model = zoo_path("two_outputs", tmp_path), load_zoo("two_outputs", tmp_path)
    x = zoo_inputs(model, n=60, seed=1)
    np.savez(tmp_path / "inputs.npz", x=x)
    out = tmp_path / "q"
    code, captured = _cli(["quantize", path, "--data", str(tmp_path / "inputs.npz"),
                           "-o", str(out), "--modes", "float32", "--sensitivity", "--mixed", "--sensitivity-mode",
                           "int4", "--calibration-samples", "40"], capsys)
    assert code == 0, captured.err
    document = json.loads((out / "sensitivity.json").read_text())
    assert sorted(row["name"] for row in document["layers"]) == ["class_head", "trunk", "value_head"]
    assert document["combined"].startswith("mean over the outputs")
    assert document["mode"] == "int4" and {row["mode"] for row in document["layers"]} == {"int4"}
    for row in document["layers"]:
        # value_head writes a model output: its op is named after the signature, and was left float before.
        assert row["mean_abs_diff"] > 1e-4, row
        assert set(row["outputs"]) == {"class_head", "value_head"}
        each = [row["outputs"][name]["agreement"] for name in ("class_head", "value_head")]
        assert row["agreement"] == pytest.approx(np.mean(each))
    mixed = next(row for row in json.loads((out / "comparison.json").read_text())["modes"] if row["mode"] == "mixed")
    assert mixed["status"] == "ok"


def test_widen_empty_ranges_gives_a_constant_zero_tensor_a_range_and_leaves_the_rest():
    from weightkit.compress.quantize.litert_quantizer import widen_empty_ranges

    result = {"zeros": {"min": np.zeros(1), "max": np.zeros(1)}, "x": {"min": np.array([-2.0]), "max": np.array([3.0])},
              "weights": {"values": np.ones(3)}}
    widened = widen_empty_ranges(result)
    assert widened["zeros"]["min"].tolist() == [-1.0] and widened["zeros"]["max"].tolist() == [1.0]
    assert widened["x"]["min"].tolist() == [-2.0] and widened["x"]["max"].tolist() == [3.0]
    assert "min" not in widened["weights"]


def test_int16x8_of_a_gru_keeps_its_recurrent_bias(tmp_path):
    """TF 2.21's 16x8 quantizer zeroes a GRU's recurrent bias (NaN scale): 0.71 agreement on this model."""
    from weightkit.compress.quantize import keras_source, quantize_model

    model = load_zoo("gru_sequences", tmp_path)
    x = zoo_inputs(model, n=60, seed=1)
    _, report = quantize_model(keras_source(model), ["float32", "int16x8"], x, int16x8_limit_s=None, **FAST)
    row = report.mode("int16x8")
    assert row.ok and row.converter == "ai-edge-quantizer", row.error
    assert row.agreement >= 0.98 and row.mean_abs_diff < 0.01, (row.agreement, row.mean_abs_diff)
    assert any(note.startswith("int16x8: TF 2.21's 16x8 quantizer gave 1 tensor a NaN scale") for note in report.notes)
