"""ONNX export of models with GELU: Keras' exact GELU reaches tf2onnx as Erfc, which onnxruntime cannot load;
the export writes it with Erf (weightkit.compress.quantize.onnx_export)."""

import numpy as np
import pytest


def test_erf_gelu_is_keras_exact_gelu(keras):
    from weightkit.compress.quantize.onnx_export import erf_gelu

    x = np.linspace(-8, 8, 20001).astype("float32")
    # Measured max |diff| 9.5e-7 at |x| near 8: float32 rounding of outputs up to 8 (the tanh form is 4.7e-4 off).
    np.testing.assert_allclose(np.asarray(erf_gelu(x)), np.asarray(keras.activations.gelu(x)), rtol=0, atol=2e-6)


def test_a_gelu_model_exports_to_onnx_runs_and_matches_keras(keras):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from weightkit.compress.quantize.onnx_export import convert_onnx

    rng = np.random.default_rng(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="gelu", name="hidden")
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden(inputs)))
    x = rng.normal(size=(32, 8)).astype("float32") * 3
    expected = np.asarray(model(x))
    conversion, runner, note = convert_onnx(model)
    assert conversion.ok, conversion.error
    np.testing.assert_allclose(runner.predict(x), expected, rtol=0, atol=1e-5)  # measured 4.8e-7
    assert note.startswith("onnx: GELU of hidden exported as 0.5·x·(1 + erf(x/√2))")
    assert hidden.activation is keras.activations.gelu  # the user's model is given back unchanged


def test_a_constant_the_model_captures_becomes_an_initializer_not_an_input(keras):
    """Position ids from ``keras.ops.arange`` (evaluated when the model is built) reach tf2onnx as a captured
    placeholder; ``model.export(format="onnx")`` leaves it a graph input that onnxruntime is never fed."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from weightkit.compress.quantize.onnx_export import convert_onnx

    length = 6
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    positions = keras.ops.add(keras.ops.arange(length, dtype="int32")[None, :], keras.ops.zeros_like(tokens))
    x = keras.layers.Embedding(10, 4)(tokens) + keras.layers.Embedding(length, 4)(positions)
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    ids = np.random.default_rng(0).integers(0, 10, size=(8, length)).astype("int32")
    conversion, runner, _ = convert_onnx(model, input_dtypes=["int32"])
    assert conversion.ok, conversion.error
    assert [i.name for i in runner.inputs] == ["tokens"]
    np.testing.assert_allclose(runner.predict(ids), np.asarray(model(ids)), rtol=0, atol=1e-6)
