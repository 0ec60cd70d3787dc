"""The layer kinds (issue 26): the registry's extension point, and what each kind answers.

A user's own layer class registered with :func:`weightkit.analysis.register_layer_kind` is analyzed
and merged like the Keras class whose kind it takes; the registry keeps the MRO resolution of
the old table.
"""

import numpy as np
import pytest

from tests.zoo import reloaded, scaled_weights
from weightkit.analysis import LayerKind, analyze, register_layer_kind
from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds import KINDS, DenseKind, kind_for, registered_name
from weightkit.compress.merge import merge_redundant

keras = import_keras()

# Outputs of order 1; folding changes them by float32 rounding only.
ATOL = 1e-5


@keras.saving.register_keras_serializable(package="weightkit_tests")
class Affine(keras.layers.Layer):
    """A user's fully connected layer: ``activation(x @ kernel + bias)``, not a subclass of Dense."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return self.activation(keras.ops.matmul(x, self.kernel) + self.bias)

    def get_config(self):
        return dict(super().get_config(), units=self.units, activation=keras.activations.serialize(self.activation))


register_layer_kind(Affine, DenseKind())


def _affine_model(tmp_path):
    inputs = keras.Input((6,))
    hidden = Affine(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, Affine(3, name="head")(Affine(5, activation="tanh", name="middle")(hidden)))
    scaled_weights(model, np.random.default_rng(0))
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, 6], bias[6] = 2.0 * kernel[:, 1], 2.0 * bias[1]  # unit 6 is twice unit 1: relu folds it exactly
    model.get_layer("hidden").set_weights([kernel, bias])
    return reloaded(model, tmp_path, "affine")


def test_a_registered_custom_layer_is_analyzed_and_merged_by_weights(tmp_path):
    model = _affine_model(tmp_path)
    result = analyze(model, threshold=0.999, include_bias=True)
    hidden = next(layer for layer in result.layers if layer.name == "hidden")
    assert hidden.type == "Affine" and hidden.neurons == 8
    assert [sorted(g) for g in hidden.groups] == [[1, 6]]
    merged, report = merge_redundant(model, threshold=0.999)
    assert {layer.name: layer.removed for layer in report.layers}["hidden"] == 1
    merged = reloaded(merged, tmp_path, "merged")
    assert isinstance(merged.get_layer("hidden"), Affine) and merged.get_layer("hidden").units == 7
    x = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    np.testing.assert_allclose(merged.predict(x, verbose=0), model.predict(x, verbose=0), atol=ATOL)


def test_a_registered_class_resolves_for_its_subclasses_and_not_its_namesakes():
    class Shifted(Affine):
        pass

    class Affine2(keras.layers.Layer):
        pass

    Affine2.__name__ = "Affine"  # the same name, another class
    assert kind_for(Affine(2)) is kind_for(Shifted(2))
    assert registered_name(Shifted(2)) == "Affine"
    assert kind_for(Affine2()) is None


def test_a_subclass_of_a_keras_layer_keeps_the_keras_kind():
    class Residual(keras.layers.Add):
        pass

    assert kind_for(Residual()) is KINDS["Add"]
    assert registered_name(Residual()) == "Add"


@pytest.mark.parametrize("cls, kind, message", [
    ("not a class", DenseKind(), "Expected a layer class for `cls`. Received: 'not a class' (str)."),
    (Affine, "dense", "Expected a LayerKind instance for `kind` (for example DenseKind()). Received: 'dense' (str)."),
])
def test_register_layer_kind_refuses_what_is_not_a_class_and_a_kind(cls, kind, message):
    with pytest.raises(TypeError) as error:
        register_layer_kind(cls, kind)
    assert str(error.value) == message


def test_a_kind_refuses_an_attribute_it_does_not_have():
    with pytest.raises(TypeError, match="LayerKind has no attribute 'familly'"):
        LayerKind(familly="dense")


@keras.saving.register_keras_serializable(package="weightkit_tests")
class Residual(keras.layers.Add):
    """A user's subclass of Add: it must be combined as an Add (it was combined as a Multiply)."""


def test_a_subclass_of_add_carries_a_relation_as_an_add(tmp_path):
    L = keras.layers
    inputs = keras.Input((6,))
    left, right = L.Dense(5, name="left")(inputs), L.Dense(5, name="right")(inputs)
    model = keras.Model(inputs, L.Dense(3, name="head")(Residual(name="residual")([left, right])))
    scaled_weights(model, np.random.default_rng(0))
    for name in ("left", "right"):  # channel 4 is twice channel 1 in both branches: twice it in the sum too
        kernel, bias = model.get_layer(name).get_weights()
        kernel[:, 4], bias[4] = 2.0 * kernel[:, 1], 2.0 * bias[1]
        model.get_layer(name).set_weights([kernel, bias])
    model = reloaded(model, tmp_path, "residual")
    merged, report = merge_redundant(model, threshold=0.999)
    assert merged.get_layer("left").units == 4 and merged.get_layer("right").units == 4
    x = np.random.default_rng(1).normal(size=(32, 6)).astype("float32")
    np.testing.assert_allclose(reloaded(merged, tmp_path, "merged").predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=ATOL)
