"""Merging through wrappers and into recurrent layers (issue 15): TimeDistributed, SimpleRNN/LSTM/GRU, Bidirectional.

Each model is tiny, gets seeded weights of fan-in scale and an exact copy planted (a scaled copy of
a Dense/Conv channel; an exact copy of a recurrent unit in every gate), and is saved and reloaded
before merging and after. A merge that removes only the planted copies must leave the outputs
unchanged within float32 rounding plus, for recurrent units, the recurrent fit's ridge shrinkage
compounded over the steps (at most 1.9e-6 measured on these models, 2026-12-01).
"""

import numpy as np
import pytest

from tests.zoo import scaled_weights

ATOL = 1e-5
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _plant_channel(layer, j, k, alpha):
    """Output channel j of a Dense/Conv (or the layer a TimeDistributed wraps) becomes alpha times channel k."""
    kernel, bias = layer.get_weights()
    kernel[..., j], bias[j] = alpha * kernel[..., k], alpha * bias[k]
    layer.set_weights([kernel, bias])


def _plant_unit(weights, gates, j, k):
    """Unit j of one recurrent layer's (kernel, recurrent kernel, bias) becomes a copy of unit k in every gate."""
    kernel, recurrent, bias = weights
    units = recurrent.shape[0]
    for gate in range(gates):
        kernel[:, gate * units + j] = kernel[:, gate * units + k]
        recurrent[:, gate * units + j] = recurrent[:, gate * units + k]
        bias[..., gate * units + j] = bias[..., gate * units + k]
    return [kernel, recurrent, bias]


def _plant_halves(layer, gates, forward, backward):
    """Plant ``(j, k)`` copies in the forward and backward halves of a Bidirectional layer."""
    weights = layer.get_weights()
    half = len(weights) // 2
    layer.set_weights(_plant_unit(weights[:half], gates, *forward) + _plant_unit(weights[half:], gates, *backward))


def _reload(keras, model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return keras.models.load_model(path)


def _outputs(keras, model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))  # called directly: predict traces a function


def _merge(mode, model, x, layers, ratio):
    from weightkit.compress.merge import merge_by_data, merge_redundant

    if mode == "weights":
        return merge_redundant(model, ratio=ratio, layers=layers)
    return merge_by_data(model, x, ratio=ratio, layers=layers)


@pytest.mark.parametrize("mode", ["weights", "data"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_time_distributed_producer_and_a_recurrent_consumer_merge_exactly(keras, tmp_path, kind, mode):
    """TimeDistributed(Dense) -> Dense -> LSTM/GRU: the Dense folds into every gate's input rows."""
    L = keras.layers
    inputs = keras.Input((6, 3))
    x = L.TimeDistributed(L.Dense(5, activation="relu", name="inner"), name="per_step")(inputs)
    x = L.Dense(5, activation="relu", name="dense")(x)
    x = getattr(L, kind)(4, name="rnn")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    rng = np.random.default_rng(0)
    scaled_weights(model, rng)
    _plant_channel(model.get_layer("per_step").layer, 3, 1, 2.0)
    _plant_channel(model.get_layer("dense"), 4, 0, 0.5)
    model = _reload(keras, model, tmp_path, f"{kind}_{mode}")
    x = rng.normal(size=(32, 6, 3)).astype("float32")

    merged, report = _merge(mode, model, x, ["per_step", "dense"], 0.2)
    assert [(layer.name, layer.neurons_after, layer.consumers) for layer in report.layers] == [
        ("per_step", 4, ["dense"]), ("dense", 4, ["rnn"])]
    merged = _reload(keras, merged, tmp_path, f"{kind}_{mode}_merged")
    assert merged.get_layer("per_step").layer.units == 4 and merged.get_layer("rnn").get_weights()[0].shape[0] == 4
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


def test_time_distributed_conv_folds_into_a_time_distributed_conv(keras, tmp_path):
    L = keras.layers
    inputs = keras.Input((3, 5, 5, 2))
    x = L.TimeDistributed(L.Conv2D(4, 3, padding="same", activation="relu", name="c1"), name="frames1")(inputs)
    model = keras.Model(inputs, L.TimeDistributed(L.Conv2D(3, 3, name="c2"), name="frames2")(x))
    rng = np.random.default_rng(1)
    scaled_weights(model, rng)
    _plant_channel(model.get_layer("frames1").layer, 2, 0, 3.0)
    model = _reload(keras, model, tmp_path, "frames")
    x = rng.normal(size=(8, 3, 5, 5, 2)).astype("float32")

    merged, report = _merge("weights", model, x, None, 0.25)
    assert [(layer.name, layer.neurons_after) for layer in report.layers] == [("frames1", 3)]
    merged = _reload(keras, merged, tmp_path, "frames_merged")
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_halves_fold_their_own_units_exactly(keras, tmp_path, merge_mode):
    """Dense -> Bidirectional(LSTM) -> Dense: the Dense folds into both halves, each half's copy into itself.

    Under ``concat`` each half has its own copy (forward 1 = 0, backward 2 = 3); under ``sum`` the
    same unit is copied in both halves, and one relation serves both.
    """
    L = keras.layers
    inputs = keras.Input((6, 3))
    x = L.Dense(5, name="proj")(inputs)
    x = L.Bidirectional(L.LSTM(4, name="lstm"), merge_mode=merge_mode, name="both")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    rng = np.random.default_rng(2)
    scaled_weights(model, rng)
    _plant_channel(model.get_layer("proj"), 4, 2, -1.5)  # linear: any scale merges
    _plant_halves(model.get_layer("both"), 4, (1, 0), (2, 3) if merge_mode == "concat" else (1, 0))
    model = _reload(keras, model, tmp_path, merge_mode)
    x = rng.normal(size=(32, 6, 3)).astype("float32")

    merged, report = _merge("data", model, x, None, 0.25)
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["proj"].neurons_after == 4 and by_name["proj"].consumers == ["both"]
    both = by_name["both"]
    assert (both.neurons_before, both.neurons_after, both.rows) == (8, 6, 2 * 32 * 6)
    removed = [(item["half"], item["neuron"]) for item in both.removed]  # either unit of a copied pair may go
    if merge_mode == "concat":  # the backward half's units follow the forward half's 4 in the output
        assert [half for half, _ in removed] == ["forward", "backward"] and removed[0][1] in (0, 1) and \
            removed[1][1] in (6, 7)
    else:
        assert removed in ([("both", 0)], [("both", 1)])
    merged = _reload(keras, merged, tmp_path, f"{merge_mode}_merged")
    assert merged.get_layer("both").forward_layer.units == merged.get_layer("both").backward_layer.units == 3
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


def test_a_recurrent_unit_folds_into_a_conv1d_and_a_bidirectional_consumer(keras, tmp_path):
    """GRU(return_sequences) -> Conv1D -> Bidirectional(GRU) -> Dense, copies planted in the GRU and the Conv1D."""
    L = keras.layers
    inputs = keras.Input((6, 3))
    x = L.GRU(4, return_sequences=True, name="gru")(inputs)
    x = L.Conv1D(4, 2, padding="same", name="conv")(x)
    x = L.Bidirectional(L.GRU(3, name="inner"), name="both")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    rng = np.random.default_rng(3)
    scaled_weights(model, rng)
    gru = model.get_layer("gru")
    gru.set_weights(_plant_unit(gru.get_weights(), 3, 1, 0))
    _plant_channel(model.get_layer("conv"), 3, 0, 2.0)
    model = _reload(keras, model, tmp_path, "chain")
    x = rng.normal(size=(32, 6, 3)).astype("float32")

    merged, report = _merge("data", model, x, ["gru", "conv"], 0.25)
    assert sorted((layer.name, layer.neurons_after, tuple(layer.consumers)) for layer in report.layers) == [
        ("conv", 3, ("both",)), ("gru", 3, ("conv",))]
    merged = _reload(keras, merged, tmp_path, "chain_merged")
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


def test_bidirectional_layers_left_alone_say_why(keras):
    from weightkit.analysis.structure.graph import ModelGraph
    from weightkit.compress.merge.recurrent import recurrent_site

    L = keras.layers
    inputs = keras.Input((5, 3))
    product = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="mul", name="product")(inputs)
    apart = L.Bidirectional(L.GRU(3, reset_after=False), name="old_gru")(product)
    model = keras.Model(inputs, L.Dense(2, name="head")(apart))
    graph = ModelGraph(model)
    reasons = {name: recurrent_site(graph, model.get_layer(name)).reason for name in ("product", "old_gru")}
    assert reasons == {
        "product": "merge_mode='mul' multiplies the halves' states: the product is not linear in either half's units",
        "old_gru": ("a GRU with reset_after=False multiplies the state by the reset gate before the recurrent "
                    "kernel: not linear in the state"),
    }


@pytest.mark.parametrize(("head", "mode"), [("lstm", "weights"), ("time_distributed", "data"), ("bidirectional", "data")])
def test_a_coupled_group_folds_into_recurrent_and_time_distributed_consumers(keras, tmp_path, head, mode):
    """Conv1D a + Conv1D b -> Add, concatenated with Conv1D c, read by an LSTM, a TimeDistributed(Dense) or a
    Bidirectional(GRU): the copy planted in both branches (and one in c) folds into the reader's input rows."""
    L = keras.layers
    inputs = keras.Input((6, 3))
    joined = L.Add(name="add")([L.Conv1D(5, 2, padding="same", activation="relu", name="a")(inputs),
                                L.Conv1D(5, 1, activation="relu", name="b")(inputs)])
    x = L.Concatenate(name="cat")([joined, L.Conv1D(3, 1, name="c")(inputs)])
    if head == "lstm":
        x = L.LSTM(4, name="reader")(x)
    elif head == "time_distributed":
        x = L.GlobalAveragePooling1D(name="pool")(L.TimeDistributed(L.Dense(4, name="inner"), name="reader")(x))
    else:
        x = L.Bidirectional(L.GRU(3, name="inner"), name="reader")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    rng = np.random.default_rng(4)
    scaled_weights(model, rng)
    for name in ("a", "b"):
        _plant_channel(model.get_layer(name), 3, 1, 2.0)
    _plant_channel(model.get_layer("c"), 2, 0, 0.5)
    model = _reload(keras, model, tmp_path, head)
    x = rng.normal(size=(32, 6, 3)).astype("float32")

    merged, report = _merge(mode, model, x, ["a", "b", "c"], 0.2)
    assert [(layer.name, layer.neurons_after, layer.consumers) for layer in report.layers] == [
        ("a", 4, ["reader"]), ("c", 2, ["reader"])]
    merged = _reload(keras, merged, tmp_path, f"{head}_merged")
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


def _plant_batchnorm(layer, j, k, alpha, rng):
    """Seeded statistics; then a BatchNormalization maps x_j = alpha x_k to y_j = alpha y_k."""
    n = layer.get_weights()[0].shape[0]
    gamma, beta, mean, variance = rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n), \
        rng.uniform(0.5, 2, n)
    gamma[j], variance[j], mean[j], beta[j] = gamma[k], variance[k], alpha * mean[k], alpha * beta[k]
    layer.set_weights([gamma, beta, mean, variance])


@pytest.mark.parametrize("mode", ["weights", "data"])
@pytest.mark.parametrize("form", ["flatten_into_lstm", "batchnorm_into_time_distributed_dense"])
def test_time_distributed_conv_merges_through_time_distributed_steps(keras, tmp_path, form, mode):
    """A CNN over frames: TimeDistributed(Conv2D) through TimeDistributed pooling, Flatten or BN/ReLU/GAP steps
    into an LSTM (its input rows: positions x channels, channels fastest) or a TimeDistributed(Dense)."""
    L = keras.layers
    inputs = keras.Input((3, 6, 6, 2))
    td = L.TimeDistributed
    if form == "flatten_into_lstm":
        x = td(L.Conv2D(4, 3, activation="relu", name="conv"), name="frames")(inputs)
        x = td(L.Flatten(name="flat"), name="flatten")(td(L.MaxPooling2D(2, name="pool"), name="pooling")(x))
        output = L.Dense(2, name="head")(L.LSTM(3, name="reader")(x))
    else:
        x = td(L.Conv2D(4, 3, name="conv"), name="frames")(inputs)
        x = td(L.ReLU(name="relu"), name="relus")(td(L.BatchNormalization(name="bn"), name="norm")(x))
        x = td(L.Dense(3, name="dense"), name="reader")(td(L.GlobalAveragePooling2D(name="gap"), name="gaps")(x))
        output = L.GlobalAveragePooling1D(name="over_time")(x)
    model = keras.Model(inputs, output)
    rng = np.random.default_rng(6)
    scaled_weights(model, rng)
    _plant_channel(model.get_layer("frames").layer, 3, 1, 2.0)
    if form != "flatten_into_lstm":
        _plant_batchnorm(model.get_layer("norm").layer, 3, 1, 2.0, rng)
    model = _reload(keras, model, tmp_path, form)
    x = rng.normal(size=(16, 3, 6, 6, 2)).astype("float32")

    merged, report = _merge(mode, model, x, ["frames"], 0.25)
    assert [(layer.name, layer.neurons_after, layer.consumers) for layer in report.layers] == [
        ("frames", 3, ["reader"])]
    merged = _reload(keras, merged, tmp_path, f"{form}_merged")
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


@pytest.mark.parametrize("mode", ["weights", "data"])
def test_a_time_distributed_producer_merges_inside_a_residual_group(keras, tmp_path, mode):
    """TimeDistributed(Dense) + Dense -> Add -> TimeDistributed(Dense) -> LSTM: a per-step block with a skip."""
    L = keras.layers
    inputs = keras.Input((6, 5))
    block = L.TimeDistributed(L.Dense(5, activation="relu", name="inner"), name="block")(inputs)
    x = L.Add(name="add")([block, L.Dense(5, activation="relu", name="skip")(inputs)])
    x = L.LSTM(3, name="reader")(L.TimeDistributed(L.Dense(4, name="inner2"), name="project")(x))
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    rng = np.random.default_rng(7)
    scaled_weights(model, rng)
    _plant_channel(model.get_layer("block").layer, 3, 1, 2.0)  # the copy in both branches
    _plant_channel(model.get_layer("skip"), 3, 1, 2.0)
    _plant_channel(model.get_layer("project").layer, 2, 0, 0.5)
    model = _reload(keras, model, tmp_path, f"residual_{mode}")
    x = rng.normal(size=(32, 6, 5)).astype("float32")

    merged, report = _merge(mode, model, x, ["block", "skip", "project"], 0.2)
    by_name = {layer.name: layer for layer in report.layers}
    assert (by_name["block"].producers, by_name["block"].neurons_after) == (["block", "skip"], 4)
    assert (by_name["project"].neurons_after, by_name["project"].consumers) == (3, ["reader"])
    merged = _reload(keras, merged, tmp_path, f"residual_{mode}_merged")
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)


def test_a_masked_text_classifier_folds_its_bidirectional_halves_through_average_pooling(keras, tmp_path):
    """Embedding(mask_zero) -> Bidirectional(GRU, sequences) -> GlobalAveragePooling1D -> Dense: the average over
    the unmasked steps keeps each half's relation, so the copies fold into the Dense's rows."""
    L = keras.layers
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    x = L.Embedding(11, 4, mask_zero=True, name="embed")(tokens)
    x = L.Bidirectional(L.GRU(4, return_sequences=True, name="inner"), name="both")(x)
    model = keras.Model(tokens, L.Dense(3, activation="softmax", name="probs")(
        L.GlobalAveragePooling1D(name="average")(x)))
    rng = np.random.default_rng(8)
    scaled_weights(model, rng)
    _plant_halves(model.get_layer("both"), 3, (1, 0), (2, 3))
    model = _reload(keras, model, tmp_path, "text")
    ids = rng.integers(1, 11, size=(48, 7)).astype("int32")
    ids[:, 5:] = 0  # padding, masked

    merged, report = _merge("data", model, ids, None, 0.25)
    (layer,) = report.layers
    assert (layer.name, layer.neurons_after, layer.consumers, layer.rows) == ("both", 6, ["probs"], 2 * 48 * 5)
    merged = _reload(keras, merged, tmp_path, "text_merged")
    np.testing.assert_allclose(_outputs(keras, merged, ids), _outputs(keras, model, ids), atol=ATOL)


@pytest.mark.parametrize("mode", ["weights", "data"])
def test_a_residual_frame_block_merges_through_time_distributed_steps_into_an_lstm(keras, tmp_path, mode):
    """TimeDistributed(Conv2D) a + b -> Add -> TimeDistributed BN, ReLU, MaxPooling2D, Flatten -> LSTM: the
    coupled group walks the wrapped steps, and the LSTM's rows are positions x channels."""
    L = keras.layers
    td = L.TimeDistributed
    inputs = keras.Input((3, 6, 6, 2))
    x = L.Add(name="add")([td(L.Conv2D(4, 3, padding="same", name="c3"), name="a")(inputs),
                           td(L.Conv2D(4, 1, name="c1"), name="b")(inputs)])
    x = td(L.ReLU(name="r"), name="relu")(td(L.BatchNormalization(name="n"), name="norm")(x))
    x = td(L.Flatten(name="f"), name="flatten")(td(L.MaxPooling2D(2, name="p"), name="pool")(x))
    model = keras.Model(inputs, L.Dense(2, name="head")(L.LSTM(3, name="reader")(x)))
    rng = np.random.default_rng(9)
    scaled_weights(model, rng)
    for name in ("a", "b"):
        _plant_channel(model.get_layer(name).layer, 3, 1, 2.0)
    _plant_batchnorm(model.get_layer("norm").layer, 3, 1, 2.0, rng)
    model = _reload(keras, model, tmp_path, f"frames_{mode}")
    x = rng.normal(size=(16, 3, 6, 6, 2)).astype("float32")

    merged, report = _merge(mode, model, x, ["a", "b"], 0.25)
    (layer,) = report.layers
    assert (layer.producers, layer.neurons_after, layer.consumers) == (["a", "b"], 3, ["reader"])
    assert "norm" in layer.members
    merged = _reload(keras, merged, tmp_path, f"frames_{mode}_merged")
    np.testing.assert_allclose(_outputs(keras, merged, x), _outputs(keras, model, x), atol=ATOL)
