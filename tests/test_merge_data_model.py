"""Data-aware merging of Keras models: relations fitted on activations, folded into the consumers."""

import numpy as np
import pytest

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.merge.by_data import consumer_weights, merge_by_data
from weightkit.compress.merge.planning.plan import find_merge_sites

# Outputs of a merge that only removes dead or exactly dependent neurons must not move: float32
# rounding of the folded weights is about 1e-6 of the outputs here.
EXACT = 1e-5


def _assert_same_outputs(original, merged, x):
    np.testing.assert_allclose(merged.predict(x, verbose=0), original.predict(x, verbose=0), atol=EXACT, rtol=0)


def _mlp(keras, rng, hidden_activation="relu", units=(8, 6), name="mlp"):
    inputs = keras.Input((5,), name="x")
    x = keras.layers.Dense(units[0], activation=hidden_activation, name="h1")(inputs)
    x = keras.layers.Dense(units[1], activation="relu", name="h2")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    model = keras.Model(inputs, outputs, name=name)
    for layer in model.layers[1:]:
        kernel, bias = layer.get_weights()
        scale = 1.0 / np.sqrt(kernel.shape[0])  # outputs of order 1, so 1e-5 is float32 rounding
        layer.set_weights([(scale * rng.normal(size=kernel.shape)).astype(np.float32),
                           (0.1 * rng.normal(size=bias.shape)).astype(np.float32)])
    return model


def _set_h1(model, kernel, bias):
    model.get_layer("h1").set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])


def test_dead_neurons_planted_by_a_negative_bias_are_removed_exactly(keras, rng):
    model = _mlp(keras, rng)
    kernel, bias = model.get_layer("h1").get_weights()
    kernel, bias = np.abs(kernel), np.abs(bias)  # every other neuron fires on positive inputs
    bias[[2, 5]] = -100.0  # inputs in [0, 1): these ReLUs never fire
    _set_h1(model, kernel, bias)
    x = rng.random((300, 5)).astype(np.float32)
    merged, report = merge_by_data(model, x[:200], max_error=0.0, layers=["h1"])
    layer = report.layers[0]
    assert [item["neuron"] for item in layer.removed] == [2, 5]
    assert all(item["dead"] and item["r2"] == 1.0 for item in layer.removed)
    assert merged.get_layer("h1").units == 6
    _assert_same_outputs(model, merged, x[200:])  # held-out inputs


def test_an_exact_linear_combination_is_removed_exactly(keras, rng):
    model = _mlp(keras, rng, hidden_activation="linear", units=(5, 6))
    kernel, bias = model.get_layer("h1").get_weights()
    kernel[:, 4] = 0.5 * kernel[:, 0] - 2.0 * kernel[:, 1]  # neuron 4 = 0.5 a0 - 2 a1 + 0.3
    bias[4] = 0.5 * bias[0] - 2.0 * bias[1] + 0.3
    _set_h1(model, kernel, bias)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    merged, report = merge_by_data(model, x[:300], max_error=1e-6, layers=["h1"])
    layer = report.layers[0]
    # Exactly one of the three dependent neurons can go (any of them rebuilds from the others).
    assert layer.n_removed == 1 and layer.removed[0]["neuron"] in (0, 1, 4)
    assert layer.removed[0]["r2"] == pytest.approx(1.0, abs=1e-6)
    _assert_same_outputs(model, merged, x[300:])


def test_saturated_tanh_is_folded_into_the_consumer_bias(keras, rng):
    model = _mlp(keras, rng, hidden_activation="tanh")
    kernel, bias = model.get_layer("h1").get_weights()
    bias[3] = 50.0  # tanh(≈50) = 1 on every input: a constant the next layer still adds
    _set_h1(model, kernel, bias)
    x = rng.random((200, 5)).astype(np.float32)
    merged, report = merge_by_data(model, x, max_error=0.0, layers=["h1"])
    assert report.layers[0].removed == [{"neuron": 3, "r2": 1.0, "dead": True}]
    _assert_same_outputs(model, merged, x)


def test_constant_after_batch_normalization_is_fitted_at_the_tap(keras, rng):
    inputs = keras.Input((5,))
    x = keras.layers.Dense(6, name="h1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="act")(x)
    outputs = keras.layers.Dense(3, name="out")(x)
    model = keras.Model(inputs, outputs)
    kernel = rng.normal(size=(5, 6)).astype(np.float32)
    kernel[:, 1] = 0.0  # neuron 1 is its bias: constant before and after the normalization
    model.get_layer("h1").set_weights([kernel, rng.normal(size=6).astype(np.float32)])
    bn = model.get_layer("bn")
    # γ, β, moving mean, moving variance; β = 5 keeps every other neuron above zero after the ReLU.
    bn.set_weights([rng.uniform(0.5, 2, 6), np.full(6, 5.0), rng.normal(size=6), rng.uniform(0.5, 2, 6)])
    x_data = rng.random((200, 5)).astype(np.float32)
    merged, report = merge_by_data(model, x_data, max_error=0.0)
    layer = report.layers[0]
    assert layer.tap == "act"
    assert [item["neuron"] for item in layer.removed] == [1]
    assert merged.get_layer("bn").get_weights()[0].shape == (5,)
    _assert_same_outputs(model, merged, x_data)


def _conv_model(keras, rng, head):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(5, 3, activation="linear", name="conv")(inputs)
    x = keras.layers.Flatten(name="flat")(x) if head == "flatten" else keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="out")(keras.layers.Dense(4, activation="relu", name="dense")(x))
    model = keras.Model(inputs, outputs)
    kernel = (rng.normal(size=(3, 3, 2, 5)) / np.sqrt(18)).astype(np.float32)  # outputs of order 1
    bias = (0.1 * rng.normal(size=5)).astype(np.float32)
    kernel[..., 3] = kernel[..., 0] + kernel[..., 2]  # channel 3 = channel 0 + channel 2 + 1 everywhere
    bias[3] = bias[0] + bias[2] + 1.0
    model.get_layer("conv").set_weights([kernel, bias])
    return model


@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_conv_channel_combination_removed_exactly(keras, rng, head):
    model = _conv_model(keras, rng, head)
    x = rng.normal(size=(120, 6, 6, 2)).astype(np.float32)
    merged, report = merge_by_data(model, x[:80], max_error=1e-6, layers=["conv"], positions=8)
    layer = report.layers[0]
    assert layer.n_removed == 1 and layer.removed[0]["neuron"] in (0, 2, 3)
    assert layer.rows == (80 * 8 if head == "flatten" else 80)
    assert merged.get_layer("conv").filters == 4
    _assert_same_outputs(model, merged, x[80:])


def test_ratio_removes_the_requested_count_and_reports_r2(trained_mlp, digits):
    model, _ = trained_mlp
    merged, report = merge_by_data(model, digits.x_train, ratio=0.5, samples=500)
    assert [(l.name, l.n_removed, l.requested) for l in report.layers] == [("hidden1", 32, 32), ("hidden2", 32, 32)]
    assert [(s.name, s.reason) for s in report.skipped] == [("classes", "its output is (on the way to) a model output")]
    assert merged.get_layer("hidden1").units == 32 and merged.get_layer("hidden2").units == 32
    for layer in report.layers:
        assert all(item["r2"] <= 1.0 for item in layer.removed)
        assert 0.0 <= layer.error <= 1.0
    assert report.samples == 500
    assert report.params_after < report.params_before
    document = report.to_dict()
    assert document["mode"] == "data" and document["totals"]["neurons_removed"] == 64
    assert document["layers"][0]["removed_neurons"][0].keys() == {"neuron", "r2", "dead"}


def test_input_model_is_untouched_and_merge_is_deterministic(keras, rng):
    model = _mlp(keras, rng)
    before = [w.copy() for w in model.get_weights()]
    x = rng.random((100, 5)).astype(np.float32)
    first, report_a = merge_by_data(model, x, ratio=0.5)
    second, report_b = merge_by_data(model, x, ratio=0.5)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert report_a.to_dict() == report_b.to_dict()
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_consumer_weights_line_up_with_channels(keras, rng):
    model = _conv_model(keras, rng, "flatten")
    site = find_merge_sites(model)["conv"]
    weights = consumer_weights(model, site)
    kernel = model.get_layer("dense").get_weights()[0]  # (16 positions * 5 channels, 4), channels fastest
    assert weights.shape == (5, 16 * 4)
    np.testing.assert_array_equal(weights[2].reshape(16, 4), kernel[2::5])


@pytest.mark.parametrize("kwargs, message", [
    ({"ratio": 0.5, "max_error": 0.1}, "--ratio and --max-error: give one of them, not both; --ratio removes a fixed "
                                       "share of each layer, --max-error removes neurons while the reconstruction "
                                       "stays that good."),
    ({"ratio": 1.5}, "--ratio 1.5: must be between 0 and 1 (the share of each layer's neurons to remove), e.g. 0.5."),
    ({"max_error": -0.1}, "--max-error -0.1: must be between 0 and 1 (the fraction of each consumer's input variance "
                          "allowed to be lost), e.g. 0.01."),
    ({"layers": ["nope"]}, "--layers: no analyzable layer named 'nope'; available: h1, h2, out."),
])
def test_bad_options_are_one_clear_line(keras, rng, kwargs, message):
    model = _mlp(keras, rng)
    with pytest.raises(WeightkitError) as error:
        merge_by_data(model, rng.random((20, 5)).astype(np.float32), **kwargs)
    assert str(error.value) == message
