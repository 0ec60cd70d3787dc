"""The contract every layer kind with neurons keeps (issue 26): a planted duplicate merges exactly, or the layer
is left whole with its kind's reason.

For each registered class with neuron rows, a tiny model holds one layer of that class (``unit``)
whose output channel ``j`` is an exact copy (times 2, through a ReLU; times 1 for recurrent units)
of channel ``k``. Merging by weights and by data, then rebuilding, saving and reloading, must
give the same outputs within float32 rounding, with one channel fewer where the kind merges in
that mode; where it does not, the kind's reason is reported and the model is unchanged. A new kind
needs its case here (the first test checks the list against the registry).
"""

import numpy as np
import pytest

from tests.zoo import reloaded, scaled_weights
from weightkit.analysis import supported_layer_types
from weightkit.analysis._tf import import_keras

keras = import_keras()
L = keras.layers

# Outputs of order 1; an exact fold changes them by float32 rounding only.
ATOL = 1e-5
# The planted copies are exact, so the data fit needs no regularization: at the default ridge (1e-6) a
# SeparableConv2D's fold was off by 2.9e-5, at 1e-9 by 7e-7.
RIDGE = 1e-9


def _copy_channel(weights, j, k, alpha, axis=-1):
    """Channel j of every array becomes alpha times channel k on ``axis`` (the bias on its only axis)."""
    out = []
    for w in weights:
        w = np.array(w)
        a = axis if w.ndim > 1 else 0
        index_j, index_k = [slice(None)] * w.ndim, [slice(None)] * w.ndim
        index_j[a], index_k[a] = j, k
        w[tuple(index_j)] = alpha * w[tuple(index_k)]
        out.append(w)
    return out


def _copy_unit(layer, j, k):
    """Recurrent unit j becomes an exact copy of unit k: the same incoming columns in every gate."""
    kernel, recurrent, bias = layer.get_weights()
    units = recurrent.shape[0]
    for g in range(kernel.shape[1] // units):
        for array in (kernel, recurrent, bias):
            array[..., g * units + j] = array[..., g * units + k]
    layer.set_weights([kernel, recurrent, bias])


def _plant_plain(model):
    layer = model.get_layer("unit")
    layer.set_weights(_copy_channel(layer.get_weights(), 4, 1, 2.0))


def _plant_depthwise(model):
    feed, unit = model.get_layer("feed"), model.get_layer("unit")
    feed.set_weights(_copy_channel(feed.get_weights(), 4, 1, 2.0))
    kernel, bias = unit.get_weights()  # (*k, channels, 1): the same filter, twice the bias
    kernel[..., 4, :] = kernel[..., 1, :]
    bias[4] = 2.0 * bias[1]
    unit.set_weights([kernel, bias])


def _plant_separable(model):
    layer = model.get_layer("unit")
    depthwise, pointwise, bias = layer.get_weights()
    pointwise, bias = _copy_channel([pointwise, bias], 4, 1, 2.0)
    layer.set_weights([depthwise, pointwise, bias])


def _plant_time_distributed(model):
    layer = model.get_layer("unit").layer
    layer.set_weights(_copy_channel(layer.get_weights(), 4, 1, 2.0))


def _plant_recurrent(model):
    _copy_unit(model.get_layer("unit"), 4, 1)


def _plant_bidirectional(model):
    unit = model.get_layer("unit")
    for half in (unit.forward_layer, unit.backward_layer):
        _copy_unit(half, 4, 1)


def _dense_head(x):
    return L.Dense(3, name="head")(L.Flatten(name="flat")(x) if len(x.shape) > 2 else x)


def _build(shape, body):
    inputs = keras.Input(shape)
    return keras.Model(inputs, _dense_head(body(inputs)))


_RELU = {"activation": "relu"}
_WEIGHTS_ONLY_BY_DATA = "merge by data only"

#: class -> (input shape, body, plant, merged layer, its channels, by weights, by data): ``True`` merges one
#: channel; a string is the start of the reason the layer is left alone.
CASES = {
    "Dense": ((6,), lambda x: L.Dense(8, name="unit", **_RELU)(x), _plant_plain, "unit", 8, True, True),
    "Conv1D": ((9, 2), lambda x: L.Conv1D(6, 3, name="unit", **_RELU)(x), _plant_plain, "unit", 6, True, True),
    "Conv2D": ((6, 6, 2), lambda x: L.Conv2D(6, 3, name="unit", **_RELU)(x), _plant_plain, "unit", 6, True, True),
    "Conv3D": ((4, 4, 4, 2), lambda x: L.Conv3D(6, 2, name="unit", **_RELU)(x), _plant_plain, "unit", 6, True,
               True),
    "DepthwiseConv1D": ((8, 3), lambda x: L.DepthwiseConv1D(3, name="unit")(L.Conv1D(6, 1, name="feed", **_RELU)(x)),
                        _plant_depthwise, "feed", 6, True, True),
    "DepthwiseConv2D": ((6, 6, 3), lambda x: L.DepthwiseConv2D(3, name="unit")(
        L.Conv2D(6, 1, name="feed", **_RELU)(x)), _plant_depthwise, "feed", 6, True, True),
    "SeparableConv1D": ((8, 3), lambda x: L.SeparableConv1D(6, 3, name="unit", **_RELU)(x), _plant_separable, "unit",
                        6, True, True),
    "SeparableConv2D": ((6, 6, 3), lambda x: L.SeparableConv2D(6, 3, name="unit", **_RELU)(x), _plant_separable,
                        "unit", 6, True, True),
    "TimeDistributed": ((5, 3), lambda x: L.TimeDistributed(L.Dense(6, **_RELU), name="unit")(x),
                        _plant_time_distributed, "unit", 6, True, True),
    "SimpleRNN": ((5, 3), lambda x: L.SimpleRNN(6, name="unit")(x), _plant_recurrent, "unit", 6,
                  "recurrent layers (SimpleRNN) merge by data only", True),
    "LSTM": ((5, 3), lambda x: L.LSTM(6, name="unit")(x), _plant_recurrent, "unit", 6,
             "recurrent layers (LSTM) merge by data only", True),
    "GRU": ((5, 3), lambda x: L.GRU(6, name="unit")(x), _plant_recurrent, "unit", 6,
            "recurrent layers (GRU) merge by data only", True),
    "Bidirectional": ((5, 3), lambda x: L.Bidirectional(L.LSTM(6), name="unit")(x), _plant_bidirectional, "unit",
                      6, "the halves of a Bidirectional layer merge by data only", True),
}
# Analyzed, not merged yet (issue 27): the layer stays whole with its kind's reason.
CASES["EinsumDense"] = ((5, 3), lambda x: L.EinsumDense("btd,df->btf", (5, 6), bias_axes="f", name="unit")(x),
                        None, "unit", 6, "EinsumDense layers are analyzed, not merged yet",
                        "EinsumDense layers are analyzed, not merged yet")
CASES["MultiHeadAttention"] = ((5, 4), lambda x: L.MultiHeadAttention(2, 3, name="unit")(x, x), None, "unit", 2,
                               "its heads merge as heads (merge_neurons",
                               "its heads merge as heads (merge_neurons")
for _n, _shape in (("1D", (5, 2)), ("2D", (4, 4, 2)), ("3D", (3, 3, 3, 2))):
    CASES[f"Conv{_n}Transpose"] = (_shape, lambda x, n=_n: getattr(L, f"Conv{n}Transpose")(4, 2, name="unit")(x),
                                   None, "unit", 4, "merging supports Dense, Conv1D/2D/3D and SeparableConv layers",
                                   "merging supports Dense, Conv1D/2D/3D and SeparableConv layers")


def test_every_kind_with_neurons_has_a_contract_case():
    assert sorted(CASES) == supported_layer_types()


def _channels(model, name):
    layer = model.get_layer(name)
    inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None) or layer
    config = inner.get_config()
    width = config.get("num_heads", (config.get("output_shape") or [None])[-1])  # attention, EinsumDense
    return config.get("units", config.get("filters", width))


@pytest.mark.parametrize("mode", ["weights", "data"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_planted_duplicate_merges_exactly_or_the_kind_says_why(tmp_path, name, mode):
    from weightkit.compress.merge import merge_by_data, merge_redundant

    shape, body, plant, target, n, by_weights, by_data = CASES[name]
    model = _build(shape, body)
    scaled_weights(model, np.random.default_rng(0))
    if plant is not None:
        plant(model)
    model = reloaded(model, tmp_path, "planted")
    x = np.random.default_rng(1).normal(size=(64, *shape)).astype("float32")
    expected = by_weights if mode == "weights" else by_data
    if mode == "weights":
        merged, report = merge_redundant(model, threshold=0.999, layers=[target])
    else:
        merged, report = merge_by_data(model, x, ratio=1.0 / n, layers=[target], ridge=RIDGE)
    merged = reloaded(merged, tmp_path, "merged")
    if expected is True:
        assert _channels(merged, target) == n - 1
    else:
        reasons = {skip.name: skip.reason for skip in report.skipped}
        assert reasons[target].startswith(expected), reasons
        assert _channels(merged, target) == n
    np.testing.assert_allclose(merged.predict(x, verbose=0), model.predict(x, verbose=0), atol=ATOL)
