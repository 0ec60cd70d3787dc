"""Input and output shapes of a stored layer's first call, from the configuration alone (for MACs).

Keras 3 writes what is needed: each call's input tensors with their shapes in ``inbound_nodes``
(Functional models) and each built layer's ``build_config`` input shape (Sequential models). A
Keras 2 file has neither: there the input shape is propagated from the model's input through
the layers' configs with the output-shape rules below (:func:`weightkit.analysis.files.stored.nodes.walk_calls`);
a layer these rules do not know leaves the shapes after it unknown, and an unknown size counts
one position in the MACs (the convention of :class:`weightkit.analysis.rows.NeuronRows`).
"""

import math
import re

from weightkit.analysis.kinds.layers import spec_named

__all__ = ["applications", "expected_weight_shapes", "first_input_shape", "output_shape"]


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


def _tuple(value, rank):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def _conv_spatial(spatial, config, transpose=False):
    rank = len(spatial)
    kernel, strides = _tuple(config.get("kernel_size", 1), rank), _tuple(config.get("strides", 1), rank)
    dilation, padding = _tuple(config.get("dilation_rate", 1), rank), config.get("padding", "valid")
    out = []
    for size, k, s, d in zip(spatial, kernel, strides, dilation):
        if size is None:
            out.append(None)
        elif transpose:
            effective = (k - 1) * d + 1
            out.append(size * s + max(effective - s, 0) if padding == "valid" else size * s)
        elif padding == "valid":
            out.append((size - d * (k - 1) - 1) // s + 1)
        else:
            out.append((size - 1) // s + 1)
    return tuple(out)


def output_shape(class_name, config, input_shape):
    """The output shape of one call given its input shape, or None where these rules do not know it."""
    if input_shape is None:
        return None
    spec = spec_named(class_name)
    family = spec.family if spec is not None else None
    first = config.get("data_format") == "channels_first"
    if family == "dense":
        return input_shape[:-1] + (config.get("units"),)
    if family in ("conv", "conv_transpose", "depthwise", "separable"):
        spatial = input_shape[2:] if first else input_shape[1:-1]
        out = _conv_spatial(spatial, config, transpose=family == "conv_transpose")
        channels = config.get("filters")
        if family == "depthwise":
            channel_in = input_shape[1] if first else input_shape[-1]
            channels = None if channel_in is None else channel_in * config.get("depth_multiplier", 1)
        return (input_shape[0], channels) + out if first else (input_shape[0],) + out + (channels,)
    if family == "rnn":
        units = config.get("units")
        return input_shape[:2] + (units,) if config.get("return_sequences") else (input_shape[0], units)
    if family == "time_distributed":
        inner = config.get("layer") or {}
        out = output_shape(inner.get("class_name"), inner.get("config", {}), (input_shape[0],) + input_shape[2:])
        return None if out is None else input_shape[:2] + out[1:]
    if family == "bidirectional":
        inner = (config.get("layer") or {}).get("config", {})
        out = output_shape((config.get("layer") or {}).get("class_name"), inner, input_shape)
        if out is None or config.get("merge_mode", "concat") != "concat":
            return out
        return out[:-1] + (None if out[-1] is None else 2 * out[-1],)
    if class_name == "Embedding":
        return input_shape + (config.get("output_dim"),)
    if class_name == "Flatten":
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))
    if class_name == "Reshape":
        target = config.get("target_shape")
        return (input_shape[0],) + tuple(target) if isinstance(target, (list, tuple)) and -1 not in target else None
    if class_name.startswith("Global") and "Pooling" in class_name:
        if config.get("keepdims"):
            return None
        return (input_shape[0], input_shape[1] if first else input_shape[-1])
    if "Pooling" in class_name:
        pool = config.get("pool_size", 2)
        pooled = dict(config, kernel_size=pool, strides=config.get("strides") or pool)
        spatial = input_shape[2:] if first else input_shape[1:-1]
        out = _conv_spatial(spatial, pooled)
        return input_shape[:2] + out if first else (input_shape[0],) + out + (input_shape[-1],)
    if family in ("weights", "step") and (spec.merge in ("identity", "activation", "affine") or
                                           class_name in ("LayerNormalization", "Softmax", "PReLU")):
        return input_shape
    return None


def _count(dims):
    if dims is None or any(d is None for d in dims):
        return 1
    return int(math.prod(dims)) if dims else 1


def applications(family, class_name, config, input_shape):
    """How many times per sample each kernel weight is used (the MACs per weight).

    The same rule as :mod:`weightkit.analysis.rows` applies to a live layer's first call: a recurrent
    layer's timesteps, a transposed convolution's input positions, the output positions otherwise
    (``output_shape[1:-1]``).
    """
    if family in ("rnn", "bidirectional", "time_distributed"):
        return _count(input_shape[1:2]) if input_shape is not None and len(input_shape) > 2 else 1
    if family == "conv_transpose":
        return _count(None if input_shape is None else input_shape[1:-1])
    out = output_shape(class_name, config, input_shape)
    return _count(None if out is None else out[1:-1])


def _rank(class_name):
    digit = re.search(r"(\d)D", class_name)
    return int(digit.group(1)) if digit else 1


def _recurrent_shapes(spec, config, features):
    units = config.get("units")
    width = None if units is None else len(spec.gates) * units
    shapes = {"kernel": (features, width), "recurrent_kernel": (units, width)}
    if config.get("use_bias", True):
        two_rows = spec.gates == ("update", "reset", "candidate") and config.get("reset_after", True)
        shapes["bias"] = (2, width) if two_rows else (width,)
    return shapes


def expected_weight_shapes(class_name, config, input_shape):
    """The shapes Keras' ``build`` gives a layer's weights, by registry key (None: a dimension not known here).

    Parameters
    ----------
    class_name : str
        A class with neuron rows (:func:`weightkit.analysis.kinds.layers.spec_named`).
    config : dict
    input_shape : tuple or None
        Of its first call, batch axis included; None leaves the input dimensions unknown.

    Returns
    -------
    dict of str to tuple, or None
        None for a class these rules do not know.
    """
    spec = spec_named(class_name)
    family = spec.family if spec is not None else None
    first = config.get("data_format") == "channels_first"
    last = None
    if input_shape is not None and len(input_shape) > 1:
        last = input_shape[1] if first and family != "dense" else input_shape[-1]
    bias = config.get("use_bias", True)
    if family == "dense":
        units = config.get("units")
        shapes = {"kernel": (last, units), "bias": (units,)}
    elif family in ("conv", "conv_transpose", "depthwise", "separable"):
        rank = _rank(class_name)
        kernel = _tuple(config.get("kernel_size", 1), rank)
        filters = config.get("filters")
        if family == "conv":
            groups = config.get("groups", 1) or 1
            shapes = {"kernel": kernel + (None if last is None else last // groups, filters), "bias": (filters,)}
        elif family == "conv_transpose":
            shapes = {"kernel": kernel + (filters, last), "bias": (filters,)}
        else:
            multiplier = config.get("depth_multiplier", 1)
            depthwise = kernel + (last, multiplier)
            channels = None if last is None else last * multiplier
            if family == "depthwise":
                shapes = {"kernel": depthwise, "bias": (channels,)}
            else:
                shapes = {"depthwise_kernel": depthwise, "pointwise_kernel": (1,) * rank + (channels, filters),
                          "bias": (filters,)}
    elif family == "rnn":
        return _recurrent_shapes(spec, config, last)
    elif family == "bidirectional":
        inner = config.get("layer") or {}
        sub = expected_weight_shapes(inner.get("class_name"), inner.get("config") or {}, input_shape)
        return None if sub is None else {f"{d}/{key}": shape for d in ("forward", "backward")
                                         for key, shape in sub.items()}
    elif family == "time_distributed":
        inner = config.get("layer") or {}
        inner_shape = None if input_shape is None or len(input_shape) < 3 else (input_shape[0],) + input_shape[2:]
        return expected_weight_shapes(inner.get("class_name"), inner.get("config") or {}, inner_shape)
    else:
        return None
    if not bias:
        del shapes["bias"]
    return shapes
