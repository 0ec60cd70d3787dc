"""Keras 3 LSTM layers converted to TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (weightkit.compress.quantize.fused).

Models are tiny, saved and reloaded before use; the trained one learns a synthetic sequence task in a
few epochs, so agreement with Keras means something.
"""

import numpy as np
import pytest

from tests.zoo import reloaded, sequence_task

FAST = {"latency_repeats": 2, "throughput_repeats": 1, "calibration_samples": 50}
STEPS = 12


@pytest.fixture(scope="module")
def sequences():
    """(n, 12, 2) series; class 1 when the first feature's second half sums above its first half."""
    return sequence_task(STEPS)


@pytest.fixture(scope="module")
def fused_report(keras, sequences, tmp_path_factory):
    """A trained LSTM classifier converted in float32 and int8: (model, contents, report)."""
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((STEPS, 2), name="series"), keras.layers.LSTM(8, name="lstm"),
                              keras.layers.Dense(2, activation="softmax", name="probs")])
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(sequences.x_train, sequences.y_train, epochs=6, batch_size=32, verbose=0)
    model = reloaded(model, tmp_path_factory.mktemp("quantize_fused"), "lstm")
    contents, report = quantize_model(keras_source(model), ["float32", "int8"], sequences, **FAST)
    return model, contents, report


def test_a_trained_lstm_converts_to_the_fused_op_equal_to_keras_in_float32_and_agreeing_in_int8(fused_report,
                                                                                                  sequences):
    from weightkit.compress.quantize import TFLiteModel
    from weightkit.compress.quantize.fused import fused_op_counts

    model, contents, report = fused_report
    assert report.reference.accuracy > 0.8  # the task is learnt
    for mode in ("float32", "int8"):
        row = report.mode(mode)
        assert row.ok and row.converter == "fused", (mode, row.error)
        assert fused_op_counts(contents[mode]) == {"UNIDIRECTIONAL_SEQUENCE_LSTM": 1}
    assert report.mode("int8").agreement >= 0.95
    # float32: the same math as Keras' LSTMCell, reordered by the fused kernel (float rounding only)
    expected = model.predict(sequences.x_test, verbose=0)
    assert np.abs(TFLiteModel(contents["float32"]).predict(sequences.x_test) - expected).max() < 1e-5
    assert any(note.startswith("recurrent layers (lstm) converted to TFLite's fused recurrent op (1 "
                               "UNIDIRECTIONAL_SEQUENCE_LSTM) in float32, int8: exported at a static batch of 1 "
                               "and 12 steps") for note in report.notes)


def test_sensitivity_from_python_quantizes_a_fused_lstm(fused_report, sequences):
    # ai-edge-quantizer has no recipe for the fused op: quantize_sensitivity must hand it the unrolled float32
    # model, as the CLI does, or the LSTM row reads the float model's ~1e-8 (measured 2.6e-08 before the mend).
    from weightkit.compress.quantize import quantize_sensitivity

    report, _ = quantize_sensitivity(fused_report[0], sequences, calibration_samples=40)
    (lstm,) = [row for row in report.layers if row.name == "lstm"]
    assert lstm.mean_abs_diff > 1e-5


def test_the_fused_op_state_is_reset_between_invokes(fused_report, sequences):
    from weightkit.compress.quantize import TFLiteModel

    _, contents, _ = fused_report
    tflite = TFLiteModel(contents["float32"])
    sample = sequences.x_test[:1]
    first = tflite.predict(sample)
    tflite.predict(sequences.x_test[1:5])
    np.testing.assert_array_equal(tflite.predict(sample), first)  # without the reset, the old state leaks in


def test_a_200_step_lstm_converts_fused_in_int8(keras, tmp_path_factory):
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((200, 2), name="series"), keras.layers.LSTM(4, name="long_lstm"),
                              keras.layers.Dense(2, name="head")])
    model = reloaded(model, tmp_path_factory.mktemp("quantize_fused"), "long")
    x = np.random.default_rng(0).normal(size=(30, 200, 2)).astype("float32")
    _, report = quantize_model(keras_source(model), ["int8"], x, **FAST)
    row = report.mode("int8")
    assert row.ok and row.converter == "fused", row.error
    assert row.mean_abs_diff < 0.05  # int8 activations; outputs of about unit scale


def test_fused_copy_computes_what_keras_computes(keras, tmp_path_factory):
    """Stacked, go_backwards, no bias, Bidirectional (concat and sum): the copy's outputs equal Keras'."""
    from weightkit.compress.quantize.fused import fused_copy

    keras.utils.set_random_seed(1)
    inputs = keras.Input((7, 3), name="series")
    hidden = keras.layers.LSTM(5, return_sequences=True, go_backwards=True, use_bias=False, name="back")(inputs)
    hidden = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="bi")(hidden)
    hidden = keras.layers.Bidirectional(keras.layers.LSTM(3), merge_mode="sum", name="bi_sum")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))
    for weight in model.weights:  # non-trivial biases too
        weight.assign(np.random.default_rng(2).normal(scale=0.5, size=weight.shape).astype("float32"))
    model = reloaded(model, tmp_path_factory.mktemp("quantize_fused"), "stack")
    x = np.random.default_rng(3).normal(size=(5, 7, 3)).astype("float32")
    copy = fused_copy(model)
    np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(model(x)), rtol=0, atol=1e-6)  # eager: no tracing


def test_a_simple_rnn_converts_to_the_fused_rnn_op_equal_to_keras_in_float32(keras, tmp_path_factory):
    from weightkit.compress.quantize import TFLiteModel, keras_source, quantize_model
    from weightkit.compress.quantize.fused import fused_op_counts

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((90, 2), name="series"),
                              keras.layers.SimpleRNN(5, go_backwards=True, name="rnn"), keras.layers.Dense(2)])
    model = reloaded(model, tmp_path_factory.mktemp("quantize_fused"), "rnn")
    x = np.random.default_rng(0).normal(size=(10, 90, 2)).astype("float32")
    contents, report = quantize_model(keras_source(model), ["float32"], x, **FAST)
    assert report.mode("float32").converter == "fused"
    assert fused_op_counts(contents["float32"]) == {"UNIDIRECTIONAL_SEQUENCE_RNN": 1}
    assert np.abs(TFLiteModel(contents["float32"]).predict(x) - model.predict(x, verbose=0)).max() < 1e-5


@pytest.mark.parametrize(("layers", "reason"), [
    (lambda k: [k.layers.GRU(4, name="gru")], ("layer gru: GRU has no fused TFLite op that the converter emits (LSTM and "
                                               "SimpleRNN have)")),
    (lambda k: [k.layers.LSTM(4, activation="relu", name="relu_lstm")],
     "layer relu_lstm: activation='relu', and the fused op computes activation='tanh' only"),
    (lambda k: [k.layers.Masking(name="mask"), k.layers.LSTM(4, name="lstm")],
     "layer mask: produces a mask, and the fused op has no mask input (a masked step keeps the previous state)"),
    (lambda k: [k.layers.LSTM(4, return_sequences=True, name="lstm"), k.layers.SimpleRNN(4, name="rnn")],
     ("layer rnn: a SimpleRNN beside an LSTM (lstm), and their fused ops need different converter inputs (a frozen "
      "graph, a SavedModel)")),
    (lambda k: [k.layers.LSTM(4, stateful=True, name="kept")],
     "layer kept: stateful=True, and the fused op returns the output sequence only, starting from zeros"),
])
def test_what_the_fused_op_cannot_compute_is_named(keras, layers, reason):
    from weightkit.compress.quantize.fused import fusion_refusal

    model = keras.Sequential([keras.Input((5, 2), batch_size=1), *layers(keras), keras.layers.Dense(1)])
    assert fusion_refusal(model) == reason


@pytest.mark.slow  # 4 s: an export and a conversion, a canary for a TensorFlow upgrade
def test_the_modes_tf_cannot_fuse_are_listed_as_measured(keras):
    """What KNOWN_UNFUSED skips still fails when tried (TF 2.21): int16x8 of a fused LSTM."""
    from weightkit.compress.quantize.convert import convert_mode, exported_saved_model, representative_dataset
    from weightkit.compress.quantize.fused import fused_copy, static_signature
    from weightkit.compress.quantize.fused_plan import KNOWN_UNFUSED

    assert set(KNOWN_UNFUSED["saved_model"]) == {"int16x8"}
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(3), keras.layers.Dense(2)])
    copy = fused_copy(model)
    x = np.random.default_rng(0).normal(size=(4, 4, 2)).astype("float32")
    with exported_saved_model(copy, input_signature=static_signature(copy, [(None, 4, 2)])) as (directory, _):
        conversion = convert_mode("int16x8", saved_model_dir=directory, representative=representative_dataset(x),
                                  select_tf_ops=False)
    assert conversion.error == ("RuntimeError: Quantization to 16x8-bit not yet supported for op: "
                                "'UNIDIRECTIONAL_SEQUENCE_LSTM'.")


@pytest.mark.slow  # 5-6 s on a loaded 2-core machine: two exports and two conversions
def test_int16x8_falls_back_to_unrolling_and_says_why(keras, tmp_path_factory):
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 2), name="series"), keras.layers.LSTM(3, name="lstm"),
                              keras.layers.Dense(2, name="head")])
    model = reloaded(model, tmp_path_factory.mktemp("quantize_fused"), "short")
    x = np.random.default_rng(0).normal(size=(20, 4, 2)).astype("float32")
    _, report = quantize_model(keras_source(model), ["int16x8"], x, **FAST)
    assert report.mode("int16x8").ok and report.mode("int16x8").converter == "saved_model"
    assert ("int16x8 not fused (TF 2.21 has no 16x8 quantization for UNIDIRECTIONAL_SEQUENCE_LSTM): recurrent "
            "layers (lstm) unrolled over their 4 steps for the converter (TF 2.21 cannot convert the rolled loop)"
            ) in report.notes
