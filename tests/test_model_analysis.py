"""Whole-model analysis on planted models: the redundancy we put in is exactly what comes out.

The planted layer (Dense or Conv2D, 14 neurons) holds six independent random neurons 0-5 and:

- 6, 7: near-copies of neuron 0 (noise 0.01): redundant under both metrics;
- 8, 9: neuron 1 scaled by 3 and by 0.5: same direction (Pearson group), far in weight units
  (no MAD group);
- 10: neuron 2 negated: perfectly anti-correlated, in no group;
- 11: a constant neuron: Pearson 0 with everything (never NaN), far in MAD;
- 12, 13: two independent neurons with tiny weights: uncorrelated, but close in weight units
  (a MAD group, not a Pearson group).
"""

import json

import numpy as np
import pytest

from weightkit.analysis import SkippedLayer, WeightkitError, analyze, analyze_rows, iter_layer_analyses, layer_neuron_rows

EXPECTED = {
    "pearson": [[0, 6, 7], [1, 8, 9]],
    "mad": [[0, 6, 7], [12, 13]],
}


def planted_rows(fan_in, seed=0):
    """(14, fan_in) rows with the redundancy described in the module docstring."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(6, fan_in))
    rows = np.vstack([
        base,
        base[0] + 0.01 * rng.normal(size=fan_in),
        base[0] + 0.01 * rng.normal(size=fan_in),
        3.0 * base[1],
        0.5 * base[1],
        -base[2],
        np.full(fan_in, 0.3),
        0.005 * rng.normal(size=fan_in),
        0.005 * rng.normal(size=fan_in),
    ])
    return rows.astype(np.float32)


def planted_dense_model(keras, fan_in=32):
    inputs = keras.Input((fan_in,), name="x")
    planted = keras.layers.Dense(14, name="planted")
    hidden = planted(inputs)
    outputs = keras.layers.Dense(3, name="head")(hidden)
    model = keras.Model(inputs, outputs, name="planted_dense")
    planted.kernel.assign(planted_rows(fan_in).T)
    return model


def planted_conv_model(keras, channels=3):
    inputs = keras.Input((6, 6, channels), name="image")
    planted = keras.layers.Conv2D(14, 3, name="planted")
    x = planted(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs, name="planted_conv")
    rows = planted_rows(3 * 3 * channels)
    planted.kernel.assign(rows.T.reshape(3, 3, channels, 14))
    return model


@pytest.fixture(scope="module")
def planted_models(keras):
    return {"dense": planted_dense_model(keras), "conv": planted_conv_model(keras)}


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("metric", ["pearson", "mad"])
def test_planted_groups_are_recovered_exactly(planted_models, kind, metric):
    result = analyze(planted_models[kind], metric=metric, layers=["planted"])
    layer = result.layer("planted")
    assert layer.groups == EXPECTED[metric]
    assert layer.removable == result.removable == {"pearson": 4, "mad": 3}[metric]


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_constant_neuron_never_gives_nan(planted_models, kind):
    # The planted rows are the kernel's; the bias (the default since issue 29) would take them apart.
    layer = next(iter_layer_analyses(planted_models[kind], layers=["planted"], keep_matrices=True, include_bias=False))
    pearson = layer.matrices.pearson
    assert np.isfinite(pearson).all() and np.isfinite(layer.matrices.mad).all()
    assert pearson[11, 11] == 1.0
    np.testing.assert_array_equal(np.delete(pearson[11], 11), 0.0)
    # The negated copy is perfectly anti-correlated, and the scaled copies perfectly correlated.
    assert pearson[2, 10] == pytest.approx(-1.0, abs=1e-6)
    assert pearson[1, 8] == pytest.approx(1.0, abs=1e-6)
    for value in (layer.pearson_mean_abs_offdiag, layer.pearson_max_offdiag,
                  layer.mad_median_offdiag, layer.mad_min_offdiag):
        assert np.isfinite(value)


def test_layer_summaries_match_the_matrices(planted_models):
    layer = next(iter_layer_analyses(planted_models["dense"], layers=["planted"], keep_matrices=True))
    off = ~np.eye(14, dtype=bool)
    assert layer.pearson_mean_abs_offdiag == pytest.approx(np.abs(layer.matrices.pearson[off]).mean())
    assert layer.pearson_max_offdiag == pytest.approx(layer.matrices.pearson[off].max())
    assert layer.mad_median_offdiag == pytest.approx(np.median(layer.matrices.mad[off]))
    assert layer.mad_min_offdiag == pytest.approx(layer.matrices.mad[off].min())
    assert layer.threshold_value == pytest.approx(0.1)
    # fan_in is the row's length: 32 inputs and the bias column (rows carry the bias by default).
    assert (layer.neurons, layer.fan_in, layer.params, layer.macs) == (14, 33, 14 * 33, 14 * 32)
    assert sorted(layer.matrices.order.tolist()) == list(range(14))


def test_thresholds_change_the_groups(planted_models):
    model = planted_models["dense"]
    # r >= -1 puts every neuron in one group.
    assert analyze(model, threshold=-1.0, layers=["planted"]).layer("planted").groups == [list(range(14))]
    # MAD at most 0 x median: nothing is an exact copy.
    assert analyze(model, metric="mad", threshold=0.0, layers=["planted"]).layer("planted").groups == []


def test_include_bias_appends_the_bias(keras, planted_models):
    model = planted_models["dense"]
    layer = model.get_layer("planted")
    original = layer.bias.numpy().copy()
    try:
        # A large bias on neuron 7 breaks it away from 0 and 6 in MAD once the bias is compared.
        bias = np.zeros(14, dtype=np.float32)
        bias[7] = 100.0
        layer.bias.assign(bias)
        without = analyze(model, metric="mad", layers=["planted"], include_bias=False).layer("planted")
        with_bias = analyze(model, metric="mad", layers=["planted"], include_bias=True).layer("planted")
    finally:
        layer.bias.assign(original)
    assert without.fan_in == 32 and with_bias.fan_in == 33
    assert without.groups == EXPECTED["mad"]
    assert with_bias.groups == [[0, 6], [12, 13]]


def test_issue_example_five_parameters_not_seven(keras):
    # Conv1D(filters=1, kernel_size=2) on a length-3 input: 2 weights + 1 bias = 3 parameters,
    # applied at 2 positions (4 MACs). A Dense(1) on its (2, 1) output: 1 weight + 1 bias = 2
    # parameters, applied at each of the 2 positions (2 MACs). The model has 5 parameters.
    inputs = keras.Input((3, 1))
    x = keras.layers.Conv1D(filters=1, kernel_size=2, name="conv")(inputs)
    outputs = keras.layers.Dense(1, name="dense")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    assert model.count_params() == 5
    result = analyze(model)
    assert result.layers == []
    assert result.skipped == [
        SkippedLayer("conv", "Conv1D", "only one neuron: nothing to compare it with", params=3, macs=4),
        SkippedLayer("dense", "Dense", "only one neuron: nothing to compare it with", params=2, macs=2),
    ]
    document = result.to_dict()
    assert document["totals"]["params"] == 5
    assert [(item["params"], item["macs"]) for item in document["skipped"]] == [(3, 4), (2, 2)]


def test_macs_count_kernel_weights_times_positions_not_bias(keras):
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5, name="dense")(x)
    result = analyze(keras.Model(inputs, outputs))
    conv, dense = result.layer("conv"), result.layer("dense")
    assert (conv.params, conv.macs) == (3 * 3 * 2 * 4 + 4, 3 * 3 * 2 * 4 * 64)
    assert (dense.params, dense.macs) == (256 * 5 + 5, 256 * 5)
    assert result.to_dict()["totals"]["params"] == conv.params + dense.params


def test_nan_weights_skip_that_layer_and_the_rest_is_analyzed(keras):
    inputs = keras.Input((4,))
    bad = keras.layers.Dense(3, name="bad")
    good = keras.layers.Dense(3, name="good")
    model = keras.Model(inputs, good(bad(inputs)))
    kernel = bad.kernel.numpy()
    kernel[1, 2] = np.nan
    bad.kernel.assign(kernel)
    result = analyze(model)
    assert [layer.name for layer in result.layers] == ["good"]
    assert result.skipped == [SkippedLayer("bad", "Dense", "weights contain NaN or Inf", params=15, macs=12)]
    inf_bias = np.array([0.0, np.inf, 0.0], dtype=np.float32)
    good.bias.assign(inf_bias)
    result = analyze(model, include_bias=True)
    assert [skipped.name for skipped in result.skipped] == ["bad", "good"]


def test_skipped_layers_are_listed_with_reasons(keras):
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="embed")(inputs)
    x = keras.layers.LSTM(4, name="lstm")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    result = analyze(keras.Model(inputs, outputs))
    assert [(s.name, s.type, s.reason, s.params) for s in result.skipped] == [
        ("embed", "Embedding", "embedding table: rows are tokens, not neurons", 160),
        ("bn", "BatchNormalization", "normalization layer: per-channel scale and shift, no neurons", 16),
    ]
    assert [layer.name for layer in result.layers] == ["lstm/input", "lstm/forget", "lstm/cell", "lstm/output",
                                                       "out"]
    assert all(layer.type == "LSTM" for layer in result.layers[:4])


def test_nested_model_walked_and_shared_layer_analyzed_once(keras):
    L = keras.layers
    inner = keras.Sequential([keras.Input((6,)), L.Dense(4, name="a"), L.Dense(3, name="b")], name="inner")
    inputs = keras.Input((6,))
    shared = L.Dense(6, name="shared")
    model = keras.Model(inputs, inner(shared(shared(inputs))), name="outer")
    result = analyze(model)
    assert [layer.name for layer in result.layers] == ["shared", "a", "b"]
    assert result.to_dict()["totals"]["params"] == 42 + 28 + 15


def test_layers_option_selects_layers_and_parts(keras, planted_models):
    inputs = keras.Input((5, 3))
    x = keras.layers.GRU(4, return_sequences=True, name="gru")(inputs)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    assert [layer.name for layer in analyze(model, layers=["gru"]).layers] == [
        "gru/update", "gru/reset", "gru/candidate"]
    assert [layer.name for layer in analyze(model, layers=["gru/reset", "out"]).layers] == ["gru/reset", "out"]
    with pytest.raises(WeightkitError) as info:
        analyze(model, layers=["nope", "gru"])
    assert str(info.value) == ("--layers: no analyzable layer named 'nope'; available: gru, gru/candidate, "
                               "gru/reset, gru/update, out.")


def test_layers_option_accepts_a_skipped_layer(keras):
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization(name="bn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    result = analyze(model, layers=["bn"])
    assert result.layers == [] and [s.name for s in result.skipped] == ["bn"]
    with pytest.raises(WeightkitError) as info:
        analyze(model, layers=["nope"])
    assert str(info.value) == "--layers: no analyzable layer named 'nope'; available: out."


def test_invalid_metric_is_refused(planted_models):
    with pytest.raises(WeightkitError) as info:
        analyze(planted_models["dense"], metric="cosine")
    assert str(info.value) == "Invalid value for metric. Expected one of ['pearson', 'mad']. Received: metric='cosine'."


def test_analyze_rows_on_a_single_entry(keras, planted_models):
    entry = layer_neuron_rows(planted_models["conv"].get_layer("planted"))[0]
    result = analyze_rows(entry, metric="mad")
    assert result.groups == EXPECTED["mad"] and result.matrices is None


def test_result_is_json_serializable_and_stable(planted_models):
    first = json.dumps(analyze(planted_models["dense"]).to_dict(), allow_nan=False)
    second = json.dumps(analyze(planted_models["dense"]).to_dict(), allow_nan=False)
    assert first == second
