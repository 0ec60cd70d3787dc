"""Data-aware folding of recurrent units (issue 15): SimpleRNN, LSTM and GRU units merged into every gate.

Each model is tiny, gets seeded weights of fan-in scale and is saved and reloaded before merging.
A planted duplicate unit (unit 1 an exact copy of unit 0 in every gate: kernel columns, recurrent
kernel columns and bias, so ``h_1 == h_0`` at every step) is rebuilt exactly from unit 0; the
merged model must then reproduce the original's outputs within float32 rounding plus the recurrent
fit's ridge shrinkage compounded over the steps (1e-7 to 5e-7 measured).
"""

import json

import numpy as np
import pytest

from tests.zoo import scaled_weights
from weightkit._common import run_cli
from weightkit.cli import cli

ATOL = 1e-5
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _plant(layer, gates):
    """Unit 1 of a recurrent layer becomes an exact copy of unit 0 in every gate."""
    kernel, recurrent, bias = layer.get_weights()
    units = recurrent.shape[0]
    for gate in range(gates):
        column, source = gate * units + 1, gate * units
        kernel[:, column] = kernel[:, source]
        recurrent[:, column] = recurrent[:, source]
        bias[..., column] = bias[..., source]
    layer.set_weights([kernel, recurrent, bias])


def _reload(keras, model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return keras.models.load_model(path), str(path)


def _outputs(keras, model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))  # called directly: predict traces a function


def _units(model):
    return {layer.name: layer.get_config()["units"] for layer in model.layers if "units" in layer.get_config()}


@pytest.mark.parametrize("kind", list(GATES))
def test_planted_duplicate_unit_folds_into_every_gate_exactly(keras, tmp_path, kind):
    """Two stacked layers: the first folds into the second's input kernel, the second into a Dense head."""
    L = keras.layers
    layer = getattr(L, kind)
    model = keras.Sequential([keras.Input((6, 3)), layer(4, return_sequences=True, name="first"),
                              layer(4, name="second"), L.Dense(2, name="head")])
    rng = np.random.default_rng(0)
    scaled_weights(model, rng)
    _plant(model.get_layer("first"), GATES[kind])
    _plant(model.get_layer("second"), GATES[kind])
    model, _ = _reload(keras, model, tmp_path, kind)
    x = rng.normal(size=(48, 6, 3)).astype("float32")

    from weightkit.compress.merge import merge_by_data

    merged, report = merge_by_data(model, x, ratio=0.25)
    assert [(layer.name, layer.neurons_after, layer.rows) for layer in report.layers] == [("first", 3, 48 * 6),
                                                                                          ("second", 3, 48 * 6)]
    assert all(layer.removed[0]["neuron"] in (0, 1) for layer in report.layers)
    merged, _ = _reload(keras, merged, tmp_path, f"{kind}_merged")
    assert _units(merged) == {"first": 3, "second": 3, "head": 2}
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


def test_masked_gru_folds_into_a_time_distributed_head(keras, tmp_path):
    """Embedding(mask_zero) -> GRU(return_sequences, reset_after) -> TimeDistributed(Dense without bias)."""
    L = keras.layers
    inp = keras.Input((7,), dtype="int32", name="tokens")
    x = L.GRU(4, return_sequences=True, name="gru")(L.Embedding(9, 3, mask_zero=True, name="embed")(inp))
    model = keras.Model(inp, L.TimeDistributed(L.Dense(2, use_bias=False, name="step"), name="per_step")(x))
    rng = np.random.default_rng(1)
    scaled_weights(model, rng)
    _plant(model.get_layer("gru"), 3)
    model, _ = _reload(keras, model, tmp_path, "masked")
    tokens = rng.integers(1, 9, size=(48, 7)).astype("int32")
    tokens[:, 5:] = 0  # padding: masked steps are left out of the fit

    from weightkit.compress.merge import merge_by_data

    merged, report = merge_by_data(model, tokens, ratio=0.25)
    (layer,) = report.layers
    assert layer.neurons_after == 3 and layer.rows == 48 * 5 and layer.consumers == ["per_step"]
    merged, _ = _reload(keras, merged, tmp_path, "masked_merged")
    np.testing.assert_allclose(_outputs(keras, merged, tokens), _outputs(keras, model, tokens), atol=ATOL)


def test_recurrent_layers_left_alone_say_why(keras):
    from weightkit.analysis.structure.graph import ModelGraph
    from weightkit.compress.merge.recurrent import recurrent_site

    L = keras.layers
    inp = keras.Input((5, 3))
    seq, h, _ = L.LSTM(3, return_sequences=True, return_state=True, name="states")(inp)
    old_gru = L.GRU(3, reset_after=False, name="old_gru")(seq)
    last = L.SimpleRNN(3, name="last")(seq)
    both = L.Bidirectional(L.LSTM(2), name="both")(seq)
    model = keras.Model(inp, [L.Concatenate()([h, old_gru, both]), last])
    graph = ModelGraph(model)
    reasons = {name: recurrent_site(graph, model.get_layer(name)).reason for name in ("states", "old_gru", "last")}
    assert reasons == {
        "states": "it returns its states (return_state): they would need folding too",
        "old_gru": ("a GRU with reset_after=False multiplies the state by the reset gate before the recurrent "
                    "kernel: not linear in the state"),
        "last": "its output is (on the way to) a model output",
    }
    assert recurrent_site(graph, model.get_layer("both")).reason.endswith("(Concatenate), which combines several "
                                                                          "tensors")


def test_trained_lstm_merges_at_ratio_from_the_command_line(keras, tmp_path, capsys):
    """A small LSTM trained on a real signal (no planted copy): --mode data --ratio 0.3 exits 0 and loads back."""
    L = keras.layers
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 8, 2)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > x[:, :, 1].sum(axis=1)).astype("int64")
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((8, 2)), L.LSTM(8, name="lstm"), L.Dense(8, activation="relu", name="hidden"),
                              L.Dense(2, activation="softmax", name="probs")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    _, path = _reload(keras, model, tmp_path, "trained")
    data = tmp_path / "x.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", path, "-o", str(out), "--mode", "data", "--data", str(data), "--ratio", "0.3",
                           "-q"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    document = json.loads((tmp_path / "merged.json").read_text())
    layers = {layer["name"]: layer for layer in document["layers"]}
    assert layers["lstm"]["neurons"] == {"before": 8, "after": 6} and layers["lstm"]["consumers"] == ["hidden"]
    assert _units(keras.models.load_model(out)) == {"lstm": 6, "hidden": 6, "probs": 2}
