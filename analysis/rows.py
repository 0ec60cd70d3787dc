"""Neuron weight rows of a live Keras layer, as the layer registry says to read them.

:mod:`weightkit.analysis.layers` maps each supported layer class to a pure function of the layer's config
and weight arrays; this module reads those arrays off a built layer, adds the parameter and MAC
counts, and gives one :class:`NeuronRows` entry per part (a SeparableConv's two kernels, an RNN's
gates). Anything else with weights is reported as skipped, with the reason.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.layers import GENERIC_SKIP, neuron_rows, registered_name, spec_for

__all__ = ["NeuronRows", "layer_neuron_rows", "skip_reason"]


@dataclass
class NeuronRows:
    """The weight rows of one analyzable entry of a layer.

    Attributes
    ----------
    name : str
        ``layer`` or ``layer/part`` (``sep/depthwise``, ``lstm/forget``).
    layer_name : str
        The Keras layer the rows come from.
    type : str
        The Keras layer class name.
    rows : ndarray of shape (n_neurons, fan_in), float32
        One neuron's incoming weights per row (Dense: a kernel column; Conv: a flattened filter).
    bias : ndarray of shape (n_neurons,) or (n_neurons, k), or None
        The bias of each neuron (GRU with ``reset_after`` has two per neuron).
    params : int
        Parameters of this entry (its kernel part and bias).
    macs : int
        Multiply-accumulates per sample: kernel weights times the positions they are applied at
        (output positions for a convolution, input positions for a transposed one, timesteps for
        an RNN). Bias additions are not counted. A layer called at several places of a model is
        counted for its first call; an unknown (None) spatial size or sequence length counts as 1.
    """

    name: str
    layer_name: str
    type: str
    rows: np.ndarray
    bias: object
    params: int
    macs: int

    @property
    def n_neurons(self):
        return self.rows.shape[0]

    @property
    def fan_in(self):
        return self.rows.shape[1]

    def with_bias(self):
        """Rows with the bias appended as extra column(s), shape (n_neurons, fan_in + k)."""
        if self.bias is None:
            return self.rows
        bias = np.asarray(self.bias, dtype=np.float32).reshape(self.n_neurons, -1)
        return np.concatenate([self.rows, bias], axis=1)


def _numpy(variable):
    keras = import_keras()
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def _attribute(obj, path):
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def _arrays(layer, spec):
    """The layer's weight arrays under the registry's keys (see :func:`weightkit.analysis.layers.neuron_rows`)."""
    if spec.family == "time_distributed":
        return _arrays(layer.layer, spec_for(layer.layer))
    if spec.family == "bidirectional":
        arrays = {}
        for direction, sub in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
            arrays.update({f"{direction}/{key}": value for key, value in _arrays(sub, spec_for(sub)).items()})
        return arrays
    arrays = {}
    for key, path in spec.variables.items():
        variable = _attribute(layer, path)
        if variable is not None:
            arrays[key] = _numpy(variable)
    return arrays


def _shapes(layer, graph):
    """(input shape, output shape) of the layer's first call, each None when unknown."""
    if graph is not None and graph.nodes_of(layer):
        return graph.input_shapes(layer)[0][0], graph.output_shapes(layer)[0][0]
    shapes = []
    for attribute in ("input", "output"):  # a layer outside any model graph: its own first call
        try:
            tensor = getattr(layer, attribute)
            shapes.append(tuple((tensor[0] if isinstance(tensor, (list, tuple)) else tensor).shape))
        except (AttributeError, ValueError, TypeError, IndexError):
            shapes.append(None)
    return tuple(shapes)


def _count(dims):
    if dims is None or any(d is None for d in dims):
        return 1
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _applications(layer, spec, graph):
    """How many times per sample each kernel weight is used (the MACs per weight)."""
    input_shape, output_shape = _shapes(layer, graph)
    if spec.family in ("rnn", "bidirectional", "time_distributed"):  # per timestep
        return _count(input_shape[1:2]) if input_shape is not None and len(input_shape) > 2 else 1
    if spec.family == "conv_transpose":  # each filter once per *input* position
        return _count(None if input_shape is None else input_shape[1:-1])
    return _count(None if output_shape is None else output_shape[1:-1])


def _entry_name(layer, spec, part):
    base = layer.name
    if spec.family == "time_distributed":
        base = f"{layer.name}/{layer.layer.name}"
    return base if part is None else f"{base}/{part}"


def _entry_type(layer, spec):
    if spec.family == "time_distributed":
        return f"TimeDistributed({type(layer.layer).__name__})"
    return type(layer).__name__


def _wrapped_reason(layer, spec):
    """Why a wrapper (TimeDistributed, Bidirectional) cannot be read, or None when it can."""
    if spec.family == "time_distributed":
        inner = layer.layer
        reason = skip_reason(inner)
        return None if reason is None else f"wraps {type(inner).__name__}: {reason}"
    if spec.family == "bidirectional":
        inner = spec_for(layer.forward_layer)
        if inner is None or inner.family != "rnn":
            return f"wraps {type(layer.forward_layer).__name__}: only SimpleRNN, LSTM and GRU are supported"
    return None


def skip_reason(layer):
    """Why a layer with weights has no neuron rows, or None when it has them."""
    spec = spec_for(layer)
    if spec is not None and spec.has_neurons:
        return _wrapped_reason(layer, spec)
    if spec is not None and spec.skip:
        return spec.skip
    return GENERIC_SKIP.format(name=type(layer).__name__)


def layer_neuron_rows(layer, graph=None):
    """The neuron rows of a layer, one entry per analyzable part.

    Parameters
    ----------
    layer : keras.layers.Layer
        A built layer.
    graph : weightkit.analysis.graph.ModelGraph, default=None
        The graph of the model holding the layer: MACs count the positions of the layer's first
        call there. Without it, the layer's own first call is used.

    Returns
    -------
    entries : list of NeuronRows or None
        None when the layer's class has no rows, or it wraps a layer that has none (see
        :func:`skip_reason`).
    """
    spec = spec_for(layer)
    if spec is None or not spec.has_neurons or _wrapped_reason(layer, spec) is not None:
        return None
    class_name, config = registered_name(layer), layer.get_config()
    if spec.family == "time_distributed":  # the wrapped layer's rows, by its own entry
        class_name, config = registered_name(layer.layer), layer.layer.get_config()
    elif spec.family == "bidirectional":
        config = dict(config, layer={"class_name": registered_name(layer.forward_layer), "config": {}})
    applications = _applications(layer, spec, graph)
    entries = []
    for part, rows, bias in neuron_rows(class_name, config, _arrays(layer, spec)):
        kernel_size = int(rows.size)
        bias_size = 0 if bias is None else int(np.asarray(bias).size)
        entries.append(NeuronRows(name=_entry_name(layer, spec, part), layer_name=layer.name,
                                  type=_entry_type(layer, spec), rows=rows, bias=bias,
                                  params=kernel_size + bias_size, macs=kernel_size * applications))
    return entries
