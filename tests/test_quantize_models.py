"""Quantization of the models people bring: recurrent, integer inputs, Keras-native, ONNX, per-layer sensitivity.

Models are tiny and trained for a few epochs on synthetic tasks (seconds); each is saved and
reloaded before use. Timing repeats are minimal: these tests check what is measured, not speed.
"""

import json

import numpy as np
import pytest

from weightkit.analysis.data.datasets import Dataset
from tests.zoo import reloaded, sequence_task

FAST = {"latency_repeats": 2, "throughput_repeats": 1, "calibration_samples": 50}
STEPS = 6


@pytest.fixture(scope="module")
def sequences():
    """(n, 6, 2) series; class 1 when the first feature's second half sums above its first half."""
    return sequence_task(STEPS)


@pytest.fixture(scope="module")
def tokens():
    """(n, 10) token ids in [0, 20); class 1 when token 3 occurs."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 20, size=(480, 10)).astype("int32")
    y = (x == 3).any(axis=1).astype("int64")
    return Dataset(x[:360], y[:360], x[360:], y[360:], "synthetic tokens", "classification")


def _train(keras, model, data, epochs):
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def recurrent_report(keras, sequences, tmp_path_factory):
    """One classifier with an LSTM and a GRU stacked: one training and one conversion cover both layers."""
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((STEPS, 2), name="series"),
                              keras.layers.LSTM(8, return_sequences=True, name="lstm"),
                              keras.layers.GRU(8, name="gru"),
                              keras.layers.Dense(2, activation="softmax", name="probs")])
    model = reloaded(_train(keras, model, sequences, 6), tmp_path_factory.mktemp("quantize_models"), "lstm_gru")
    return quantize_model(keras_source(model), ["float32", "dynamic", "int8"], sequences, **FAST)[1]


def test_trained_lstm_and_gru_agree_with_keras_in_float_dynamic_and_int8(recurrent_report):
    report = recurrent_report
    assert report.reference.accuracy > 0.8  # the task is learnt, so agreement means something
    for row in report.modes:
        assert row.ok, (row.mode, row.error)
        assert row.agreement >= 0.95, (row.mode, row.agreement)
    assert any(note.startswith("recurrent layers (lstm, gru) unrolled over their 6 steps") for note in report.notes)


def test_embedding_model_keeps_its_accuracy_under_int8_and_its_ids_stay_integers(keras, tokens, tmp_path_factory):
    from weightkit.compress.quantize import TFLiteModel, keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,), dtype="int32", name="ids"),
                              keras.layers.Embedding(20, 8, name="embed"),
                              keras.layers.GlobalMaxPooling1D(name="pool"),
                              keras.layers.Dense(2, activation="softmax", name="probs")])
    model = reloaded(_train(keras, model, tokens, 15), tmp_path_factory.mktemp("quantize_models"), "embedding")
    contents, report = quantize_model(keras_source(model), ["float32", "int8"], tokens, **FAST)
    assert report.reference.accuracy > 0.9
    assert report.mode("int8").ok and report.mode("int8").drop <= 1.0
    assert TFLiteModel(contents["int8"]).input_dtype == np.int32
    assert ("input ids (int32, feeding Embedding embed) stays int32 in every mode: integer inputs such as token ids "
            "are never quantized; the integer modes quantize the rest of the model") in report.notes


@pytest.mark.slow  # 20 s on a loaded 2-core machine: the rolled conversion is the slow one
def test_a_long_sequence_stays_rolled_and_the_integer_modes_name_the_layer(keras, tmp_path_factory):
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((70, 2), name="series"), keras.layers.GRU(4, name="long_gru"),
                              keras.layers.Dense(2, name="head")])  # a long LSTM converts fused: test_quantize_fused
    model = reloaded(model, tmp_path_factory.mktemp("quantize_models"), "long")
    x = np.random.default_rng(0).normal(size=(40, 70, 2)).astype("float32")
    _, report = quantize_model(keras_source(model), ["float32", "int8"], x, **FAST)
    assert report.mode("float32").ok and report.mode("float32").converter == "static_batch"
    assert report.mode("float32").agreement == 1.0
    assert report.mode("int8").error == ("layer long_gru: not fused (GRU has no fused TFLite op that the converter "
                                         "emits (LSTM and SimpleRNN have)); 70 steps are too many to unroll (limit 64) and TF 2.21's "
                                         "integer quantizer crashes on the rolled loop; use dynamic or float16")


@pytest.fixture(scope="module")
def native_report(trained_mlp, digits):
    pytest.importorskip("onnxruntime")
    from weightkit.compress.quantize import keras_source, quantize_model

    return quantize_model(keras_source(trained_mlp[0]), ["float32", "keras-int8", "onnx", "int16x8"], digits,
                          int16x8_limit_s=0.0, **FAST)


def test_keras_int8_and_onnx_run_on_the_digits_mlp(native_report):
    contents, report = native_report
    for mode in ("keras-int8", "onnx"):
        row = report.mode(mode)
        assert row.ok, row.error
        assert row.agreement >= 0.97 and row.drop <= 2.0
    assert report.mode("onnx").mean_abs_diff < 1e-5  # the same float graph in another runtime
    assert contents["keras-int8"][:2] == b"PK"  # a .keras (zip) file
    # No size claim here: on a 9k-parameter model the .keras file is mostly HDF5 metadata (about 2 KB per array).
    assert not any(note.startswith("keras-int8: Keras does not quantize") for note in report.notes)  # Dense only
    assert report.exported.mode == "float32"  # the automatic choice stays among the TFLite models


def test_int16x8_is_skipped_with_its_projected_time(native_report):
    row = native_report[1].mode("int16x8")
    assert row.status == "failed" and row.error.startswith("skipped: ")
    assert row.error.endswith("over 0 s; name int16x8 in --modes to measure it anyway")


def test_cli_sensitivity_lists_every_layer_of_the_digits_cnn(cnn_path, tmp_path):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    out = tmp_path / "q"
    code = run_cli(cli, ["quantize", cnn_path, "-o", str(out), "--data", "sklearn:digits", "--modes", "float32",
                         "--sensitivity", "--mixed", "--calibration-samples", "50", "-q"])
    assert code == 0
    document = json.loads((out / "sensitivity.json").read_text())
    rows = document["layers"]
    assert sorted(row["name"] for row in rows) == ["classes", "conv1", "conv2", "dense"]
    assert all(set(row) >= {"name", "mode", "accuracy_drop", "agreement", "mean_abs_diff"} for row in rows)
    # Most sensitive first: the larger of accuracy drop and disagreement, in points.
    keys = [max(row["accuracy_drop"], 100 * (1 - row["agreement"])) for row in rows]
    assert keys == sorted(keys, reverse=True)
    comparison = json.loads((out / "comparison.json").read_text())
    mixed = next(row for row in comparison["modes"] if row["mode"] == "mixed")
    assert mixed["status"] == "ok" and mixed["drop"] <= 1.0
    assert (out / "model_mixed.tflite").exists() and (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"


def test_random_inputs_follow_a_leading_rescaling(keras):
    from weightkit.compress.quantize.sampling import input_sampler, random_inputs

    inputs = keras.Input((4, 4, 1), name="pixels")
    model = keras.Model(inputs, keras.layers.Rescaling(1 / 255, name="rescale")(inputs))
    description, _ = input_sampler(model)
    assert description == "uniform in [0, 255), from Rescaling rescale"
    x = random_inputs((None, 4, 4, 1), 200, model=model)
    assert x.dtype == np.float32 and 200 < x.max() < 255 and x.min() >= 0


def test_log_progress_writes_a_line_per_step_and_while_a_step_runs():
    import time

    from weightkit.console.quantize_progress import LogProgress

    lines = []
    with LogProgress(lines.append, interval=0.05) as progress:
        progress(0, 2, "converting int8")
        progress(0, 2, "converting int8")  # the same step: no new line
        time.sleep(0.2)
        progress(1, 2, "evaluating int8")
    assert lines[0].startswith("converting int8 (1/2) after ")
    assert any(line.startswith("still converting int8: ") for line in lines)
    assert sum(line.startswith("evaluating int8 (2/2)") for line in lines) == 1
