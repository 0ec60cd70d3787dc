"""What each kind says from a saved config alone (issue 26), against what Keras itself builds.

The TF-free file reader asks the kinds for a layer's output shape, its weights' shapes and the
parameters its config declares (:class:`weightkit.analysis.kinds.config_rules.ConfigRules`); here
each answer is compared with a real Keras layer built on the same input shape.
"""

import json

import pytest

from weightkit.analysis._tf import import_keras
from weightkit.analysis.files.stored.shapes import expected_weight_shapes, output_shape
from weightkit.analysis.kinds import KINDS, kind_for

keras = import_keras()
layers = keras.layers

#: (layer, input shape of its first call, batch axis included).
CASES = [
    (lambda: layers.Dense(5), (None, 7)),
    (lambda: layers.Dense(3, use_bias=False), (None, 4, 7)),
    (lambda: layers.Conv1D(4, 3), (None, 10, 3)),
    (lambda: layers.Conv2D(6, 3, strides=2, padding="same", groups=3), (None, 9, 9, 3)),
    (lambda: layers.Conv3D(2, 2, dilation_rate=2), (None, 6, 6, 6, 2)),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2), (None, 5, 5, 3)),
    (lambda: layers.Conv1DTranspose(4, 3, padding="same", use_bias=False), (None, 5, 3)),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 8, 8, 3)),
    (lambda: layers.SeparableConv1D(4, 3, depth_multiplier=2, strides=2), (None, 10, 3)),
    (lambda: layers.SimpleRNN(4), (None, 6, 3)),
    (lambda: layers.LSTM(4, return_sequences=True), (None, 6, 3)),
    (lambda: layers.GRU(4), (None, 6, 3)),
    (lambda: layers.GRU(4, reset_after=False), (None, 6, 3)),
    (lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True)), (None, 5, 2)),
    (lambda: layers.Bidirectional(layers.GRU(3), merge_mode="sum"), (None, 5, 2)),
    (lambda: layers.TimeDistributed(layers.Dense(4)), (None, 5, 3)),
    (lambda: layers.TimeDistributed(layers.Conv1D(2, 3)), (None, 4, 8, 3)),
    (lambda: layers.Embedding(11, 5), (None, 7)),
    (lambda: layers.MaxPooling2D(2), (None, 9, 9, 3)),
    (lambda: layers.AveragePooling1D(3, strides=2, padding="same"), (None, 9, 3)),
    (lambda: layers.GlobalAveragePooling1D(), (None, 6, 3)),
    (lambda: layers.Flatten(), (None, 3, 4, 2)),
    (lambda: layers.Reshape((6, 4)), (None, 3, 8)),
    (lambda: layers.LayerNormalization(), (None, 4, 6)),
    (lambda: layers.BatchNormalization(), (None, 4, 6)),
    (lambda: layers.Dropout(0.5), (None, 4, 6)),
    (lambda: layers.Softmax(), (None, 6)),
]


def _built(make, input_shape):
    layer = make()
    layer.build(input_shape)
    return layer, json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))  # as a file stores it


@pytest.mark.parametrize("make, input_shape", CASES)
def test_a_kinds_output_shape_is_the_one_keras_computes(make, input_shape):
    layer, saved = _built(make, input_shape)
    assert output_shape(saved["class_name"], saved["config"], input_shape) == tuple(
        layer.compute_output_shape(input_shape))


@pytest.mark.parametrize("make, input_shape", CASES)
def test_a_kinds_weight_shapes_are_the_ones_keras_builds(make, input_shape):
    layer, saved = _built(make, input_shape)
    kind = kind_for(layer)
    expected = expected_weight_shapes(saved["class_name"], saved["config"], input_shape)
    if not kind.has_neurons:
        assert expected is None
        return
    assert expected == {key: array.shape for key, array in kind.layer_arrays(layer).items()}


@pytest.mark.parametrize("make, input_shape", CASES)
def test_declared_parameters_are_a_lower_bound_short_of_the_biases_at_most(make, input_shape):
    layer, saved = _built(make, input_shape)
    kind = KINDS[saved["class_name"]]
    declared = kind.declared_parameters(saved["config"], input_shape[-1])
    if declared is None:
        assert kind.wraps is not None or not kind.has_neurons  # every plain layer with neurons declares its own
        return
    biases = sum(int(w.numpy().size) for w in layer.weights if "bias" in w.path)
    # A Dense without a bias is declared with one (declared_size's rule as it was; a count of at most `units` over).
    over = saved["config"]["units"] if kind.chain_family == "dense" and not saved["config"]["use_bias"] else 0
    assert layer.count_params() - biases <= declared <= layer.count_params() + over
