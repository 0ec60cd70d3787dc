"""The layer registry: every supported layer class turns its weights into the right neuron rows.

Kernels are set to known values (``np.arange``-based, so every weight is distinct) and each row
is compared with the kernel slice it must be. MACs are checked against hand counts.
"""

import numpy as np
import pytest

from weightkit.analysis import layer_neuron_rows, supported_layer_types, walk_layers
from weightkit.analysis.rows import skip_reason


def _distinct(shape):
    """Distinct float32 values in ``shape``: each weight can be told apart."""
    return (np.arange(int(np.prod(shape)), dtype=np.float32) / 1000.0 - 0.5).reshape(shape)


def _only(entries):
    assert entries is not None and len(entries) == 1
    return entries[0]


def _built(keras, layer, input_shape):
    """Call ``layer`` on a symbolic input so it is built and has a graph node."""
    inputs = keras.Input(input_shape)
    keras.Model(inputs, layer(inputs))
    return layer


def test_registry_lists_every_supported_class():
    assert supported_layer_types() == sorted([
        "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "SimpleRNN", "LSTM",
        "GRU", "Bidirectional", "TimeDistributed", "EinsumDense", "MultiHeadAttention"])


def test_dense_rows_are_kernel_columns(keras):
    layer = _built(keras, keras.layers.Dense(5, name="d"), (7,))
    layer.kernel.assign(_distinct((7, 5)))
    layer.bias.assign(np.arange(5, dtype=np.float32))
    entry = _only(layer_neuron_rows(layer))
    assert (entry.name, entry.layer_name, entry.type) == ("d", "d", "Dense")
    assert entry.rows.shape == (5, 7) and entry.rows.dtype == np.float32
    np.testing.assert_array_equal(entry.rows, _distinct((7, 5)).T)
    assert (entry.params, entry.macs) == (40, 35)
    with_bias = entry.with_bias()
    assert with_bias.shape == (5, 8)
    np.testing.assert_array_equal(with_bias[:, :7], entry.rows)
    np.testing.assert_array_equal(with_bias[:, 7], np.arange(5))


def test_dense_on_a_sequence_counts_every_position(keras):
    layer = _built(keras, keras.layers.Dense(4, use_bias=False), (6, 3))
    entry = _only(layer_neuron_rows(layer))
    assert entry.bias is None and entry.with_bias() is entry.rows
    assert (entry.params, entry.macs) == (12, 12 * 6)


@pytest.mark.parametrize("cls, kernel_size, input_shape, output_positions", [
    ("Conv1D", (3,), (10, 2), 8),
    ("Conv2D", (3, 2), (6, 5, 2), 4 * 4),
    ("Conv3D", (2, 2, 2), (4, 4, 3, 2), 3 * 3 * 2),
])
def test_conv_rows_are_flattened_filters(keras, cls, kernel_size, input_shape, output_positions):
    layer = _built(keras, getattr(keras.layers, cls)(4, kernel_size, name="c"), input_shape)
    shape = tuple(kernel_size) + (2, 4)
    layer.kernel.assign(_distinct(shape))
    entry = _only(layer_neuron_rows(layer))
    fan_in = int(np.prod(kernel_size)) * 2
    assert entry.rows.shape == (4, fan_in)
    for f in range(4):
        np.testing.assert_array_equal(entry.rows[f], _distinct(shape)[..., f].ravel())
    assert entry.params == 4 * fan_in + 4
    assert entry.macs == 4 * fan_in * output_positions


def test_conv2d_macs_by_hand(keras):
    # 9x9x3 input, 3x3 kernel, stride 2, valid padding: 4x4 output positions;
    # each of 6 filters has 3*3*3 = 27 weights: 27 * 6 * 16 = 2592 MACs.
    layer = _built(keras, keras.layers.Conv2D(6, 3, strides=2), (9, 9, 3))
    entry = _only(layer_neuron_rows(layer))
    assert (entry.params, entry.macs) == (27 * 6 + 6, 2592)


@pytest.mark.parametrize("cls, kernel_size, input_shape, input_positions", [
    ("Conv1DTranspose", (3,), (5, 2), 5),
    ("Conv2DTranspose", (3, 3), (4, 3, 2), 12),
    ("Conv3DTranspose", (2, 2, 2), (2, 3, 2, 2), 12),
])
def test_conv_transpose_rows_are_output_channels(keras, cls, kernel_size, input_shape, input_positions):
    layer = _built(keras, getattr(keras.layers, cls)(4, kernel_size, strides=2, name="t"), input_shape)
    shape = tuple(kernel_size) + (4, 2)  # Keras 3: (*kernel_size, filters, in_channels)
    assert tuple(layer.kernel.shape) == shape
    layer.kernel.assign(_distinct(shape))
    entry = _only(layer_neuron_rows(layer))
    fan_in = int(np.prod(kernel_size)) * 2
    assert entry.rows.shape == (4, fan_in)
    for f in range(4):
        np.testing.assert_array_equal(entry.rows[f], _distinct(shape)[..., f, :].ravel())
    # A transposed convolution applies every weight once per *input* position.
    assert entry.macs == 4 * fan_in * input_positions
    assert entry.params == 4 * fan_in + 4


@pytest.mark.parametrize("cls, kernel_size, input_shape, output_positions", [
    ("DepthwiseConv1D", (3,), (9, 3), 7),
    ("DepthwiseConv2D", (3, 3), (5, 6, 3), 3 * 4),
])
def test_depthwise_rows_are_one_per_output_channel(keras, cls, kernel_size, input_shape, output_positions):
    layer = _built(keras, getattr(keras.layers, cls)(kernel_size, depth_multiplier=2, name="dw"), input_shape)
    shape = tuple(kernel_size) + (3, 2)
    layer.kernel.assign(_distinct(shape))
    entry = _only(layer_neuron_rows(layer))
    k = int(np.prod(kernel_size))
    assert entry.rows.shape == (6, k)
    for channel in range(3):
        for m in range(2):
            # Output channel c * multiplier + m comes from input channel c, multiplier m.
            np.testing.assert_array_equal(entry.rows[channel * 2 + m], _distinct(shape)[..., channel, m].ravel())
    assert (entry.params, entry.macs) == (6 * k + 6, 6 * k * output_positions)


@pytest.mark.parametrize("cls, kernel_size, input_shape, output_positions", [
    ("SeparableConv1D", (3,), (8, 3), 6),
    ("SeparableConv2D", (3, 3), (5, 5, 3), 9),
])
def test_separable_conv_gives_two_entries(keras, cls, kernel_size, input_shape, output_positions):
    layer = _built(keras, getattr(keras.layers, cls)(5, kernel_size, depth_multiplier=2, name="sep"),
                   input_shape)
    depth_shape = tuple(kernel_size) + (3, 2)
    point_shape = (1,) * len(kernel_size) + (6, 5)
    layer.depthwise_kernel.assign(_distinct(depth_shape))
    layer.pointwise_kernel.assign(_distinct(point_shape))
    depthwise, pointwise = layer_neuron_rows(layer)
    assert (depthwise.name, pointwise.name) == ("sep/depthwise", "sep/pointwise")
    assert depthwise.layer_name == pointwise.layer_name == "sep"
    k = int(np.prod(kernel_size))
    assert depthwise.rows.shape == (6, k) and pointwise.rows.shape == (5, 6)
    np.testing.assert_array_equal(depthwise.rows[2 * 2 + 1], _distinct(depth_shape)[..., 2, 1].ravel())
    np.testing.assert_array_equal(pointwise.rows, _distinct(point_shape).reshape(6, 5).T)
    assert depthwise.bias is None and pointwise.bias.shape == (5,)
    assert depthwise.params + pointwise.params == layer.count_params()
    assert depthwise.macs == 6 * k * output_positions
    assert pointwise.macs == 6 * 5 * output_positions


def _rnn_layer(keras, cls, **kwargs):
    return _built(keras, getattr(keras.layers, cls)(3, name="rnn", **kwargs), (6, 4))


@pytest.mark.parametrize("cls, gates", [
    ("SimpleRNN", [None]),
    ("LSTM", ["input", "forget", "cell", "output"]),
    ("GRU", ["update", "reset", "candidate"]),
])
def test_rnn_gates_are_separate_entries_with_input_and_recurrent_weights(keras, cls, gates):
    layer = _rnn_layer(keras, cls)
    cell = layer.cell
    kernel = _distinct(tuple(cell.kernel.shape))  # (4, gates * 3)
    recurrent = -_distinct(tuple(cell.recurrent_kernel.shape))  # (3, gates * 3)
    cell.kernel.assign(kernel)
    cell.recurrent_kernel.assign(recurrent)
    entries = layer_neuron_rows(layer)
    assert [entry.name for entry in entries] == ["rnn" if gate is None else f"rnn/{gate}" for gate in gates]
    for index, entry in enumerate(entries):
        assert entry.rows.shape == (3, 4 + 3)
        for unit in range(3):
            column = index * 3 + unit
            expected = np.concatenate([kernel[:, column], recurrent[:, column]])
            np.testing.assert_array_equal(entry.rows[unit], expected)
        # Input and recurrent weights are applied once per timestep (6 of them).
        assert entry.macs == 3 * 7 * 6
    assert sum(entry.params for entry in entries) == layer.count_params()


def test_lstm_macs_by_hand(keras):
    # LSTM(8) on 5 timesteps of 3 features: 4 gates * 8 units * (3 + 8) weights per timestep.
    layer = _built(keras, keras.layers.LSTM(8), (5, 3))
    entries = layer_neuron_rows(layer)
    assert sum(entry.macs for entry in entries) == 4 * 8 * (3 + 8) * 5
    assert sum(entry.params for entry in entries) == 4 * (8 * (3 + 8) + 8)


@pytest.mark.parametrize("reset_after, bias_shape, with_bias_fan_in", [(True, (3, 2), 9), (False, (3,), 8)])
def test_gru_bias_per_gate(keras, reset_after, bias_shape, with_bias_fan_in):
    layer = _rnn_layer(keras, "GRU", reset_after=reset_after)
    bias = _distinct(tuple(layer.cell.bias.shape))
    layer.cell.bias.assign(bias)
    entries = layer_neuron_rows(layer)
    for index, entry in enumerate(entries):
        assert entry.bias.shape == bias_shape
        columns = slice(index * 3, (index + 1) * 3)
        expected = bias[:, columns].T if reset_after else bias[columns]
        np.testing.assert_array_equal(entry.bias, expected)
        with_bias = entry.with_bias()
        assert with_bias.shape == (3, with_bias_fan_in)
        np.testing.assert_array_equal(with_bias[:, 7:], np.reshape(expected, (3, -1)))


def test_bidirectional_has_forward_and_backward_gates(keras):
    layer = _built(keras, keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi"), (10, 4))
    forward_kernel = _distinct(tuple(layer.forward_layer.cell.kernel.shape))
    layer.forward_layer.cell.kernel.assign(forward_kernel)
    entries = layer_neuron_rows(layer)
    names = [f"bi/{direction}/{gate}" for direction in ("forward", "backward")
             for gate in ("input", "forget", "cell", "output")]
    assert [entry.name for entry in entries] == names
    assert {entry.layer_name for entry in entries} == {"bi"}
    assert {entry.type for entry in entries} == {"Bidirectional"}
    np.testing.assert_array_equal(entries[1].rows[:, :4], forward_kernel[:, 3:6].T)
    # The wrapped LSTMs have no graph node of their own: timesteps come from the wrapper (10).
    assert {entry.macs for entry in entries} == {3 * 7 * 10}
    assert sum(entry.params for entry in entries) == layer.count_params()


def test_time_distributed_dense_counts_every_timestep(keras):
    inner = keras.layers.Dense(3, name="inner")
    layer = _built(keras, keras.layers.TimeDistributed(inner, name="td"), (7, 5))
    inner.kernel.assign(_distinct((5, 3)))
    entry = _only(layer_neuron_rows(layer))
    assert (entry.name, entry.layer_name, entry.type) == ("td/inner", "td", "TimeDistributed(Dense)")
    np.testing.assert_array_equal(entry.rows, _distinct((5, 3)).T)
    assert (entry.params, entry.macs) == (18, 15 * 7)


def test_time_distributed_of_an_unsupported_layer_is_skipped(keras):
    layer = _built(keras, keras.layers.TimeDistributed(keras.layers.BatchNormalization(), name="tdbn"), (4, 3))
    assert layer_neuron_rows(layer) is None
    assert skip_reason(layer) == (
        "wraps BatchNormalization: normalization layer: per-channel scale and shift, no neurons")


def test_bidirectional_of_a_generic_rnn_is_skipped(keras):
    rnn = keras.layers.RNN(keras.layers.SimpleRNNCell(3))
    layer = _built(keras, keras.layers.Bidirectional(rnn, name="birnn"), (5, 2))
    assert layer_neuron_rows(layer) is None
    assert skip_reason(layer) == "wraps RNN: only SimpleRNN, LSTM and GRU are supported"


def test_subclass_of_a_registered_class_uses_its_parents_adapter(keras):
    class ScaledDense(keras.layers.Dense):
        pass

    layer = _built(keras, ScaledDense(4, name="scaled"), (3,))
    entry = _only(layer_neuron_rows(layer))
    assert entry.rows.shape == (4, 3) and entry.type == "ScaledDense"


@pytest.mark.parametrize("make, input_shape, reason", [
    (lambda L: L.BatchNormalization(), (4,), "normalization layer: per-channel scale and shift, no neurons"),
    (lambda L: L.LayerNormalization(), (4,), "normalization layer: per-feature scale and shift, no neurons"),
    (lambda L: L.Embedding(10, 4), (3,), "embedding table: rows are tokens, not neurons"),
    (lambda L: L.PReLU(), (4,), "activation parameters, no neurons"),
])
def test_known_layers_without_neurons_have_a_reason(keras, make, input_shape, reason):
    layer = _built(keras, make(keras.layers), input_shape)
    assert layer.weights
    assert layer_neuron_rows(layer) is None
    assert skip_reason(layer) == reason


def test_unknown_layer_with_weights_names_its_class(keras):
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    layer = _built(keras, Scale(), (4,))
    assert skip_reason(layer) == "no neuron-row adapter for Scale; supported: Dense, Conv, RNN families"


def test_walk_layers_expands_nested_models_and_lists_a_shared_layer_once(keras):
    L = keras.layers
    inner = keras.Sequential([L.Dense(4, name="a"), L.Dense(3, name="b")], name="inner")
    inputs = keras.Input((6,))
    shared = L.Dense(6, name="shared")
    outputs = inner(shared(shared(inputs)))
    model = keras.Model(inputs, outputs)
    names = [layer.name for layer in walk_layers(model)]
    assert [name for name in names if name != "input_layer" and not name.startswith("input")] == ["shared", "a", "b"]
