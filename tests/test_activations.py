"""Functional redundancy from activations: dead neurons, activation Pearson/MAD, groups."""

import json

import numpy as np
import pytest

from weightkit.analysis.activations.analyze import analyze_activations, attach_activations
from weightkit.analysis.activations.collect import (
    SKIP_RNN_GATE,
    SKIP_SEPARABLE_DEPTHWISE,
    _batch_size,
    collect_activations,
    sample_indices,
)
from weightkit.analysis.activations.stats import analyze_activation_matrix, dead_neurons
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.model_analysis import analyze_model


def _dense_model(keras, weights, bias, activation="relu", n_inputs=None, name="probe_me"):
    """Input -> Dense(given weights) -> Dense(3) with fixed, seeded weights."""
    weights = np.asarray(weights, dtype=np.float32)
    inputs = keras.Input((weights.shape[0],))
    hidden = keras.layers.Dense(weights.shape[1], activation=activation, name="hidden")
    outputs = keras.layers.Dense(3, name="out")(hidden(inputs))
    model = keras.Model(inputs, outputs, name=name)
    hidden.set_weights([weights, np.asarray(bias, dtype=np.float32)])
    return model


def test_dead_neuron_planted_by_negative_bias_is_found(keras, rng):
    weights = rng.normal(size=(6, 5))
    bias = np.zeros(5)
    bias[3] = -100.0  # inputs in [0, 1): w·x + b < 0 always, so ReLU never fires
    model = _dense_model(keras, weights, bias)
    x = rng.random((300, 6)).astype(np.float32)
    result = analyze_activations(model, x, samples=200)
    assert result.layer("hidden").dead == [3]
    assert result.layer("out").dead == []
    assert result.layer("hidden").samples == 200


def test_activations_equal_the_layer_output_on_the_sample(keras, rng):
    model = _dense_model(keras, rng.normal(size=(6, 5)), rng.normal(size=5), activation="tanh")
    x = rng.random((120, 6)).astype(np.float32)
    activations, skipped = collect_activations(model, x, samples=50, seed=3)
    assert skipped == []
    chosen = x[sample_indices(len(x), 50, seed=3)]
    reference = keras.Model(model.inputs, model.get_layer("hidden").output).predict(chosen, verbose=0)
    sample = activations["hidden"]
    assert sample.summary == "values"
    np.testing.assert_allclose(sample.values, reference.T, rtol=1e-6, atol=1e-6)  # neurons as rows
    np.testing.assert_allclose(sample.minimum, reference.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(sample.maximum, reference.max(axis=0), rtol=1e-6)


def test_functional_twins_with_unrelated_weights(keras, rng):
    # Inputs 0 and 1 always carry the same value; neuron 0 reads input 0, neuron 1 reads input 1.
    # Their weight rows are uncorrelated, their activations identical.
    weights = rng.normal(size=(6, 5)) * 0.1
    weights[:, :2] = 0.0
    weights[0, 0] = weights[1, 1] = 2.0
    bias = np.full(5, 0.5)
    model = _dense_model(keras, weights, bias)
    x = rng.random((400, 6)).astype(np.float32)
    x[:, 1] = x[:, 0]
    weight_analysis = analyze_model(model)
    activation_analysis = analyze_activations(model, x)
    assert [0, 1] not in weight_analysis.layer("hidden").groups
    assert [0, 1] in activation_analysis.layer("hidden").groups
    assert activation_analysis.layer("hidden").pearson_max_offdiag == pytest.approx(1.0, abs=1e-5)


def test_activation_matrices_match_references(rng):
    values = rng.normal(size=(7, 300)).astype(np.float32)
    summary = analyze_activation_matrix(values, keep_matrices=True)
    reference = np.corrcoef(values.astype(np.float64))
    np.testing.assert_allclose(summary["matrices"].pearson, reference, atol=1e-5)  # float32 product
    mad = np.abs(values[:, None, :] - values[None, :, :]).mean(axis=2)
    np.testing.assert_allclose(summary["matrices"].mad, mad, rtol=1e-5, atol=1e-6)
    assert summary["matrices"].rows.shape == (7, 300)


@pytest.mark.parametrize("minimum, maximum, expected", [
    ([0.0, 0.0, -2.0], [0.0, 1e-3, -2.0], [0, 2]),
    ([5e5, 0.0], [5e5 + 0.1, 0.0], [0, 1]),  # constant at float32 resolution of its size
    ([0.0], [1e-5], []),
])
def test_dead_means_constant(minimum, maximum, expected):
    assert dead_neurons(minimum, maximum) == expected


def test_samples_are_seeded_and_bounded():
    first, again, other = sample_indices(500, 100, seed=1), sample_indices(500, 100, seed=1), sample_indices(500, 100, seed=2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len(np.unique(first)) == 100 and np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(sample_indices(30, 1000), np.arange(30))


def _conv_model(keras, rng):
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    bias = np.zeros(4, dtype=np.float32)
    bias[1] = -100.0  # channel 1 never fires anywhere
    kernel[..., 2] = 0.0
    kernel[1, 1, 0, 2] = 1.0  # channel 2 copies input channel 0, minus 0.95: fires only where x > 0.95
    bias[2] = -0.95
    conv.set_weights([kernel, bias])
    return model


def test_conv_spatial_means_and_exact_dead_channels(keras, rng):
    model = _conv_model(keras, rng)
    x = rng.random((64, 6, 6, 2)).astype(np.float32)
    activations, _ = collect_activations(model, x)
    sample = activations["conv"]
    assert sample.summary == "mean"
    full = keras.Model(model.inputs, model.get_layer("conv").output).predict(x, verbose=0)
    np.testing.assert_allclose(sample.values, full.mean(axis=(1, 2)).T, rtol=1e-5, atol=1e-6)
    # Dead is judged on every position: channel 2 fires at a few positions only and is alive.
    result = analyze_activations(model, x)
    assert result.layer("conv").dead == [1]
    assert result.layer("conv").summary == "mean"


def test_conv_sampled_positions(keras, rng):
    model = _conv_model(keras, rng)
    x = rng.random((40, 6, 6, 2)).astype(np.float32)
    activations, _ = collect_activations(model, x, summary="positions", positions=5, seed=0)
    sample = activations["conv"]
    assert sample.summary == "positions"
    assert sample.values.shape == (4, 40 * 5)
    full = keras.Model(model.inputs, model.get_layer("conv").output).predict(x, verbose=0)
    per_input = full.reshape(40, 36, 4)
    # Each column is one real (input, position) of the full output.
    for column in range(0, 200, 37):
        candidates = per_input[column // 5]
        assert np.any(np.all(np.isclose(candidates, sample.values[:, column], atol=1e-6), axis=1))
    again, _ = collect_activations(model, x, summary="positions", positions=5, seed=0)
    np.testing.assert_array_equal(again["conv"].values, sample.values)


def test_batching_under_a_small_memory_budget_changes_nothing(keras, rng):
    model = _conv_model(keras, rng)
    x = rng.random((50, 6, 6, 2)).astype(np.float32)
    big, _ = collect_activations(model, x)
    small, _ = collect_activations(model, x, memory_budget=4 * 6 * 6 * 4 * 3)  # about 3 inputs a batch
    for name in big:
        np.testing.assert_allclose(small[name].values, big[name].values, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(small[name].maximum, big[name].maximum)


def test_batch_size_follows_the_memory_budget(keras, rng):
    from weightkit.analysis.activations.collect import _probes
    from weightkit.analysis.structure.graph import ModelGraph
    from weightkit.analysis.model_analysis import collect_entries

    model = _conv_model(keras, rng)
    probes, _ = _probes(model, collect_entries(model)[0], ModelGraph(model))
    per_sample = 4 * (6 * 6 * 4 + 2)  # conv output and the Dense output, float32
    assert _batch_size(probes, 256, 10 * per_sample) == 10
    assert _batch_size(probes, 256, 1) == 1
    assert _batch_size(probes, 8, 2**30) == 8


def test_parts_without_an_output_are_skipped_with_reasons(keras, rng):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.SeparableConv2D(4, 3, activation="relu", name="sep")(inputs)
    x = keras.layers.Reshape((36, 4))(x)
    x = keras.layers.LSTM(5, name="lstm")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    result = analyze_activations(model, rng.random((30, 8, 8, 3)).astype(np.float32))
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["sep/depthwise"] == SKIP_SEPARABLE_DEPTHWISE
    assert all(reasons[f"lstm/{gate}"] == SKIP_RNN_GATE.format(name="lstm")
               for gate in ("input", "forget", "cell", "output"))
    # The LSTM's output, its hidden state, is probed as one more entry named after the layer.
    assert [layer.name for layer in result.layers] == ["sep/pointwise", "lstm", "out"]
    assert result.layer("sep/pointwise").neurons == 4
    assert (result.layer("lstm").neurons, result.layer("lstm").type) == (5, "LSTM (hidden state)")


def test_nested_model_layers_are_probed_where_they_are(keras, rng):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu", name="inner_dense")],
                             name="inner")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="top")(inner(inputs))
    model = keras.Model(inputs, outputs)
    x = rng.random((20, 4)).astype(np.float32)
    samples, skipped = collect_activations(model, x)
    assert skipped == []
    assert list(samples) == ["inner_dense", "top"]
    np.testing.assert_allclose(samples["inner_dense"].values, inner.predict(x, verbose=0).T, rtol=1e-6)


def test_a_shared_layer_stacks_the_activations_of_every_call(keras, rng):
    shared = keras.layers.Dense(3, activation="relu", name="shared")
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    model = keras.Model([a, b], keras.layers.Add(name="sum")([shared(a), shared(b)]))
    xa, xb = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(10, 4)).astype(np.float32) + 5
    samples, _ = collect_activations(model, [xa, xb])
    both = np.concatenate([shared(xa).numpy(), shared(xb).numpy()])  # 20 observations of 3 neurons
    np.testing.assert_allclose(samples["shared"].values, both.T, rtol=1e-6)


def test_entries_line_up_with_the_weight_analysis(trained_mlp, digits):
    model, _ = trained_mlp
    weights = analyze_model(model)
    activations = analyze_activations(model, digits.x_train, samples=300)
    assert [(a.name, a.neurons) for a in activations.layers] == [(w.name, w.neurons) for w in weights.layers]


def test_dead_neurons_of_a_trained_mlp_match_a_direct_computation(keras, trained_mlp, digits):
    model, _ = trained_mlp
    result = analyze_activations(model, digits.x_train, samples=10_000)  # every training input
    for name in ("hidden1", "hidden2"):
        values = keras.Model(model.inputs, model.get_layer(name).output).predict(digits.x_train, verbose=0)
        assert result.layer(name).dead == np.flatnonzero(values.max(axis=0) <= 0).tolist()


def test_json_gains_dead_and_activation_with_weight_fields_unchanged(trained_mlp, digits):
    model, _ = trained_mlp
    analysis = analyze_model(model)
    before = json.loads(json.dumps(analysis.to_dict()))
    attach_activations(analysis, analyze_activations(model, digits.x_train, samples=200))
    after = analysis.to_dict()
    json.dumps(after, allow_nan=False)
    for old, new in zip(before["layers"], after["layers"]):
        assert {k: new[k] for k in old} == old
        assert set(new) - set(old) == {"dead", "activation"}
        assert isinstance(new["dead"], list)
        activation = new["activation"]
        assert set(activation) >= {"groups", "removable", "pearson"}
        assert set(activation["pearson"]) == {"mean_abs_offdiag", "max_offdiag"}
        assert activation["removable"] == sum(len(g) - 1 for g in activation["groups"])
        assert activation["summary"] == "values" and activation["samples"] == 200


def test_attach_marks_skipped_entries(keras, rng):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.SeparableConv2D(4, 3, name="sep")(inputs)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    analysis = analyze_model(model)
    attach_activations(analysis, analyze_activations(model, rng.random((10, 8, 8, 3)).astype(np.float32)))
    document = {layer["name"]: layer for layer in analysis.to_dict()["layers"]}
    assert document["sep/depthwise"]["dead"] is None
    assert document["sep/depthwise"]["activation"] == {"skipped": SKIP_SEPARABLE_DEPTHWISE}
    assert isinstance(document["sep/pointwise"]["dead"], list)


@pytest.mark.parametrize("kwargs, message", [
    ({"samples": 0}, "--samples must be at least 1, got 0."),
    ({"summary": "max"}, "Invalid value for summary. Expected one of ['mean', 'positions']. Received: summary='max'."),
    ({"metric": "cosine"}, "Invalid value for metric. Expected one of ['pearson', 'mad']. Received: metric='cosine'."),
])
def test_bad_options_are_one_clear_line(keras, rng, kwargs, message):
    model = _dense_model(keras, rng.normal(size=(6, 5)), np.zeros(5))
    with pytest.raises(WeightkitError) as error:
        analyze_activations(model, rng.random((10, 6)).astype(np.float32), **kwargs)
    assert str(error.value) == message


def test_a_multi_input_model_takes_one_array_per_input(keras, rng):
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], keras.layers.Dense(2, name="out")(keras.layers.Concatenate()([a, b])), name="two")
    with pytest.raises(WeightkitError) as error:
        analyze_activations(model, rng.random((10, 3)))
    assert str(error.value) == ("--data: one input array for a model with 2 inputs; give one array per input "
                                "(x0, x1, ... or x_<input name>).")
    samples, _ = collect_activations(model, [rng.random((10, 3)), rng.random((10, 3))])
    assert list(samples) == ["out"] and samples["out"].values.shape == (2, 10)


# --------------------------------------------------------------------------------------------------
# Recurrent layers: their output, the hidden state, is an entry of its own (issue 29 item 14)


def _copy_unit(layer, source, target, gates):
    """Make unit ``target`` of a recurrent layer compute exactly what unit ``source`` does, in every gate."""
    kernel, recurrent, bias = layer.get_weights()
    units = recurrent.shape[0]
    for gate in range(gates):
        kernel[:, gate * units + target] = kernel[:, gate * units + source]
        recurrent[:, gate * units + target] = recurrent[:, gate * units + source]
        bias[..., gate * units + target] = bias[..., gate * units + source]
    layer.set_weights([kernel, recurrent, bias])


@pytest.fixture(scope="module")
def recurrent_path(keras, tmp_path_factory):
    """LSTM -> GRU -> Bidirectional(LSTM) -> SimpleRNN -> Dense, saved. LSTM unit 0 never opens its output gate
    (a dead unit), LSTM unit 4 copies unit 1 and GRU unit 3 copies unit 0 (activation twins)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 3), name="sequence")
    lstm = keras.layers.LSTM(5, return_sequences=True, name="lstm")
    gru = keras.layers.GRU(4, return_sequences=True, name="gru")
    x = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), name="bi")(gru(lstm(inputs)))
    x = keras.layers.SimpleRNN(4, name="rnn")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x), name="recurrent")
    _copy_unit(lstm, 1, 4, 4)
    kernel, recurrent, bias = lstm.get_weights()
    bias[3 * 5 + 0] = -60.0  # output gate (input, forget, cell, output) of unit 0: h0 = sigmoid(-60) * tanh(c0)
    lstm.set_weights([kernel, recurrent, bias])
    _copy_unit(gru, 0, 3, 3)
    path = tmp_path_factory.mktemp("recurrent") / "recurrent.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def recurrent_result(recurrent_path):
    from weightkit.analysis import analyze

    x = np.random.default_rng(1).normal(size=(120, 6, 3)).astype(np.float32)
    return analyze(recurrent_path, data=x, samples=1000), x


def test_recurrent_hidden_states_are_entries_of_their_own(recurrent_result):
    result, _ = recurrent_result
    assert [(s.name, s.type, s.neurons, s.summary) for s in result.states] == [
        ("lstm", "LSTM (hidden state)", 5, "mean"), ("gru", "GRU (hidden state)", 4, "mean"),
        ("bi", "Bidirectional (hidden state)", 6, "mean")]
    lstm, gru, _ = result.states
    assert lstm.dead == [0] and any({1, 4} <= set(group) for group in lstm.groups)
    assert any({0, 3} <= set(group) for group in gru.groups)
    # A SimpleRNN's one entry is its hidden state already: probed there, no second entry.
    assert result.layer("rnn").extras["activation"]["summary"] == "values"
    assert result.layer("lstm/forget").extras["activation"] == {"skipped": SKIP_RNN_GATE.format(name="lstm")}
    document = json.loads(json.dumps(result.to_dict()))
    assert [(s["name"], s["dead"]) for s in document["states"]] == [("lstm", [0]), ("gru", []), ("bi", [])]


def test_a_hidden_state_is_the_layer_output_averaged_over_time(keras, recurrent_path, recurrent_result):
    """Reference: the Bidirectional output on every input, its per-unit mean over the six steps, np.corrcoef."""
    result, x = recurrent_result
    model = keras.saving.load_model(recurrent_path)
    probe = keras.Model(model.inputs, model.get_layer("bi").output)
    means = probe.predict(x, verbose=0).mean(axis=1)  # (inputs, 6 units)
    pearson = np.corrcoef(means.T)
    off = ~np.eye(6, dtype=bool)
    state = result.states[2]
    # float32 activations and Pearson through a float32 matrix product (NOTES.md): 1e-5 is ample.
    assert state.pearson_mean_abs_offdiag == pytest.approx(np.abs(pearson[off]).mean(), abs=1e-5)
    assert state.pearson_max_offdiag == pytest.approx(pearson[off].max(), abs=1e-5)


def test_analyze_and_report_show_the_hidden_states(capsys, recurrent_path, tmp_path):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    x = np.random.default_rng(1).normal(size=(40, 6, 3)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.zeros(40, dtype=np.int64))
    capsys.readouterr()
    assert run_cli(cli, ["analyze", recurrent_path, "--data", str(tmp_path / "data.npz"),
                         "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    table = out[out.index("recurrent: what neurons do on "):]
    rows = [line.strip("│ ").split("│")[0].strip() for line in table.splitlines() if line.startswith("│")]
    bi = [f"bi/{d}/{g}" for d in ("forward", "backward") for g in ("input", "forget", "cell", "output")]
    assert rows == ["lstm/input", "lstm/forget", "lstm/cell", "lstm/output", "lstm", "gru/update", "gru/reset",
                    "gru/candidate", "gru", *bi, "bi", "rnn", "out"]
    assert "lstm: dead on the sample (constant): 0" in out
    assert [s["name"] for s in json.loads((tmp_path / "a.json").read_text())["states"]] == ["lstm", "gru", "bi"]
    assert run_cli(cli, ["report", recurrent_path, "--data", str(tmp_path / "data.npz"), "-o",
                         str(tmp_path / "report"), "--layers", "lstm/forget,gru/reset,bi/forward/cell"]) == 0
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert '<section id="states"><h2>Hidden states of recurrent layers</h2>' in page
    assert '<td class="text">lstm</td><td class="text">LSTM (hidden state)</td><td>5</td><td>1</td>' in page
    report_json = json.loads((tmp_path / "report" / "analysis.json").read_text())
    assert [s["name"] for s in report_json["states"]] == ["lstm", "gru", "bi"]
