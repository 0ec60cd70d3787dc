"""The layer registry: one table that rows, penalty kernels, probes, merging and rebuilding all read."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from weightkit.analysis.kinds.layers import LAYERS, MERGE_STEPS, neuron_rows, registered_name, spec_for, supported_layer_types
from weightkit.analysis.rows import layer_neuron_rows
from weightkit.reports.support_matrix import support_matrix_markdown

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _built(keras, layer, input_shape):
    inputs = keras.Input(input_shape)
    keras.Model(inputs, layer(inputs, inputs) if isinstance(layer, keras.layers.MultiHeadAttention) else layer(inputs))
    return layer


_LAYERS_WITH_NEURONS = [
    ("Dense", lambda L: L.Dense(5), (7,)),
    ("Conv1D", lambda L: L.Conv1D(4, 3), (9, 2)),
    ("Conv2D", lambda L: L.Conv2D(4, 3), (6, 6, 2)),
    ("Conv3D", lambda L: L.Conv3D(3, 2), (4, 4, 4, 2)),
    ("Conv1DTranspose", lambda L: L.Conv1DTranspose(3, 2), (5, 2)),
    ("Conv2DTranspose", lambda L: L.Conv2DTranspose(3, 2), (4, 4, 2)),
    ("Conv3DTranspose", lambda L: L.Conv3DTranspose(3, 2), (3, 3, 3, 2)),
    ("DepthwiseConv1D", lambda L: L.DepthwiseConv1D(3, depth_multiplier=2), (8, 3)),
    ("DepthwiseConv2D", lambda L: L.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 3)),
    ("SeparableConv1D", lambda L: L.SeparableConv1D(4, 3), (8, 3)),
    ("SeparableConv2D", lambda L: L.SeparableConv2D(4, 3), (6, 6, 3)),
    ("SimpleRNN", lambda L: L.SimpleRNN(3), (5, 2)),
    ("LSTM", lambda L: L.LSTM(3), (5, 2)),
    ("GRU", lambda L: L.GRU(3), (5, 2)),
    ("Bidirectional", lambda L: L.Bidirectional(L.LSTM(3)), (5, 2)),
    ("TimeDistributed", lambda L: L.TimeDistributed(L.Dense(4)), (5, 2)),
    ("EinsumDense", lambda L: L.EinsumDense("btd,dnh->btnh", (5, 3, 2), bias_axes="nh"), (5, 4)),
    ("MultiHeadAttention", lambda L: L.MultiHeadAttention(3, 2), (5, 4)),
]


def test_every_entry_names_a_public_keras_layer_class(keras):
    missing = [name for name in LAYERS if not isinstance(getattr(keras.layers, name, None), type)]
    assert missing == []
    assert all(spec.merge in MERGE_STEPS + ("neurons", None) for spec in LAYERS.values())


def test_every_class_with_neurons_is_exercised_here():
    assert sorted(name for name, _, _ in _LAYERS_WITH_NEURONS) == supported_layer_types()


@pytest.mark.parametrize("name, make, input_shape", _LAYERS_WITH_NEURONS, ids=[n for n, _, _ in _LAYERS_WITH_NEURONS])
def test_pure_rows_from_config_and_arrays_equal_the_live_layers(keras, name, make, input_shape):
    keras.utils.set_random_seed(0)
    layer = _built(keras, make(keras.layers), input_shape)
    live = layer_neuron_rows(layer)
    # The same arrays, read by name from the weights alone: no Keras object reaches neuron_rows.
    spec = LAYERS[name]
    if spec.family == "bidirectional":
        arrays = {f"{direction}/{variable.name}": np.asarray(variable.numpy())
                  for direction, sub in (("forward", layer.forward_layer), ("backward", layer.backward_layer))
                  for variable in sub.weights}
        class_name, config = name, layer.get_config()
    elif spec.family == "attention":  # four sublayers, each with a kernel and a bias: keyed by sublayer
        names = {"query": "query", "key": "key", "value": "value", "attention_output": "output"}
        arrays = {f"{names[variable.path.split('/')[-2]]}_{variable.name}": np.asarray(variable.numpy())
                  for variable in layer.weights}
        class_name, config = name, layer.get_config()
    elif spec.family == "time_distributed":
        arrays = {variable.name: np.asarray(variable.numpy()) for variable in layer.layer.weights}
        class_name, config = name, layer.get_config()
    else:
        arrays = {variable.name: np.asarray(variable.numpy()) for variable in layer.weights}
        class_name, config = name, layer.get_config()
    pure = neuron_rows(class_name, config, arrays)
    assert len(pure) == len(live)
    for (part, rows, bias), entry in zip(pure, live):
        assert entry.name.endswith(part) if part else "/" not in entry.name or spec.family == "time_distributed"
        np.testing.assert_array_equal(rows, entry.rows)
        if bias is None:
            assert entry.bias is None
        else:
            np.testing.assert_array_equal(bias, entry.bias)


@pytest.mark.parametrize("name, make, input_shape", _LAYERS_WITH_NEURONS, ids=[n for n, _, _ in _LAYERS_WITH_NEURONS])
def test_penalty_kernels_and_neuron_counts_exist_on_the_built_layer(keras, name, make, input_shape):
    layer = _built(keras, make(keras.layers), input_shape)
    spec = LAYERS[name]
    if spec.wraps:
        return  # a wrapper's kernels are its wrapped layers'
    for kernel in spec.kernels:
        owner = layer
        for attribute in filter(None, kernel.owner.split(".")):
            owner = getattr(owner, attribute)
        assert getattr(owner, kernel.variable) is not None
        assert hasattr(owner, kernel.regularizer)
    if spec.units_key:
        assert spec.units_key in layer.get_config()


def test_a_subclass_uses_its_parents_entry_and_a_namesake_matches_nothing(keras):
    class ScaledDense(keras.layers.Dense):
        pass

    class Dense(keras.layers.Layer):  # the same name, not a Keras Dense
        pass

    assert registered_name(ScaledDense(3)) == "Dense"
    assert spec_for(ScaledDense(3)) is LAYERS["Dense"]
    assert registered_name(Dense()) is None


def test_registry_module_imports_without_keras():
    # The file reader of weight analysis needs the table and the row functions without TensorFlow.
    code = ("import sys; import weightkit.analysis.kinds.layers as L; import numpy as np; "
            "rows = L.neuron_rows('Dense', {}, {'kernel': np.ones((3, 2)), 'bias': np.zeros(2)}); "
            "assert rows[0][1].shape == (2, 3); "
            "assert not any(m.startswith(('keras', 'tensorflow')) for m in sys.modules), 'keras imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(README))


def test_the_readme_support_matrix_is_the_registrys():
    text = open(README, encoding="utf-8").read()
    match = re.search(r"<!-- support-matrix -->\n(.*?)\n<!-- /support-matrix -->", text, re.S)
    assert match, "README.md lacks the generated support matrix"
    assert match.group(1) == support_matrix_markdown(), "regenerate it: python -m weightkit.reports.support_matrix"
