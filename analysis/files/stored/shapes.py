"""Input and output shapes of a stored layer's first call, from the configuration alone (for MACs).

Keras 3 writes what is needed: each call's input tensors with their shapes in ``inbound_nodes``
(Functional models) and each built layer's ``build_config`` input shape (Sequential models). A
Keras 2 file has neither: there the input shape is propagated from the model's input through
the layers' configs with their kinds' output-shape rules
(:meth:`~weightkit.analysis.kinds.config_rules.ConfigRules.output_shape`,
:func:`weightkit.analysis.files.stored.nodes.walk_calls`); a layer whose kind does not know leaves the shapes
after it unknown, and an unknown size counts one position in the MACs (the convention of
:class:`weightkit.analysis.rows.NeuronRows`).
"""

from weightkit.analysis.kinds.registry import kind_named

__all__ = ["expected_weight_shapes", "first_input_shape", "output_shape"]


def _shape(value):
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _first_tensor_shape(value):
    """Shape of the first ``__keras_tensor__`` in a serialized call argument, or None."""
    stack = [value]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            if item.get("class_name") == "__keras_tensor__":
                return _shape((item.get("config") or {}).get("shape"))
            stack[:0] = list(item.values())
        elif isinstance(item, list):
            stack[:0] = item
    return None


def first_input_shape(layer, propagated=None):
    """The input shape of the layer's first call (batch axis included), or None when unknown."""
    nodes = layer.item.get("inbound_nodes")
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict):
        shape = _first_tensor_shape(nodes[0].get("args"))
        if shape is not None:
            return shape
    build = layer.item.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if isinstance(shape, list) and shape and isinstance(shape[0], list):
        shape = shape[0]
    shape = _shape(shape)
    return shape if shape is not None else (propagated or {}).get(layer.name)


def output_shape(class_name, config, input_shape):
    """The output shape of one call given its input shape, or None where its kind does not know it."""
    kind = kind_named(class_name)
    if input_shape is None or kind is None:
        return None
    return kind.output_shape(config, input_shape)


def expected_weight_shapes(class_name, config, input_shape):
    """The shapes Keras' ``build`` gives a layer's weights, by registry key (None: a dimension not known here).

    Parameters
    ----------
    class_name : str
        A class with neuron rows (:func:`weightkit.analysis.kinds.registry.kind_named`).
    config : dict
    input_shape : tuple or None
        Of its first call, batch axis included; None leaves the input dimensions unknown.

    Returns
    -------
    dict of str to tuple, or None
        None for a class these rules do not know.
    """
    kind = kind_named(class_name)
    return None if kind is None else kind.weight_shapes(config, input_shape)
