"""The one adapter between Keras layers and neuron weight rows.

An explicit registry maps each supported layer *class* to a function that turns the layer's
weights into one or more :class:`NeuronRows` entries (one per part: a SeparableConv's two
kernels, an RNN's gates). Anything else with weights is reported as skipped, with the reason.
No class-name guessing: a subclass of a registered class uses its parent's adapter.
"""

from dataclasses import dataclass

import numpy as np

from analysis._tf import import_keras

__all__ = ["NeuronRows", "layer_neuron_rows", "skip_reason", "supported_layer_types"]


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


def _positions(layer):
    """How many positions the layer's kernel is applied at, per sample."""
    shape = _output_shape(layer)
    if shape is None:
        return 1
    dims = [d for d in shape[1:-1]]
    if any(d is None for d in dims):
        return 1
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _output_shape(layer):
    try:
        node = layer._inbound_nodes[0]
        shape = node.output_tensors[0].shape
        return tuple(shape)
    except (AttributeError, IndexError, TypeError):
        pass
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, TypeError):
        return None


def _bias(layer):
    bias = getattr(layer, "bias", None)
    return None if bias is None else _numpy(bias)


def _entry(layer, name, rows, bias, positions):
    kernel_size = int(rows.size)
    bias_size = 0 if bias is None else int(np.asarray(bias).size)
    return NeuronRows(
        name=name,
        layer_name=layer.name,
        type=type(layer).__name__,
        rows=np.ascontiguousarray(rows, dtype=np.float32),
        bias=bias,
        params=kernel_size + bias_size,
        macs=kernel_size * positions,
    )


def _dense_rows(layer):
    kernel = _numpy(layer.kernel)  # (fan_in, units)
    return [_entry(layer, layer.name, kernel.T, _bias(layer), _positions(layer))]


def _conv_rows(layer):
    kernel = _numpy(layer.kernel)  # (*kernel_size, in_channels / groups, filters)
    rows = kernel.reshape(-1, kernel.shape[-1]).T
    return [_entry(layer, layer.name, rows, _bias(layer), _positions(layer))]


def _conv_transpose_rows(layer):
    kernel = _numpy(layer.kernel)  # (*kernel_size, filters, in_channels)
    rows = np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1)
    positions = _transpose_positions(layer, kernel)
    return [_entry(layer, layer.name, rows, _bias(layer), positions)]


def _transpose_positions(layer, kernel):
    # A transposed convolution applies each filter once per *input* position.
    try:
        shape = tuple(layer._inbound_nodes[0].input_tensors[0].shape)
        dims = shape[1:-1]
        if all(d is not None for d in dims):
            return int(np.prod(dims, dtype=np.int64))
    except (AttributeError, IndexError, TypeError):
        pass
    return 1


def _depthwise_rows(layer):
    kernel = _numpy(layer.kernel)  # (*kernel_size, in_channels, depth_multiplier)
    rows = kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1]).T
    return [_entry(layer, layer.name, rows, _bias(layer), _positions(layer))]


def _separable_rows(layer):
    depthwise = _numpy(layer.depthwise_kernel)  # (*k, in_channels, multiplier)
    pointwise = _numpy(layer.pointwise_kernel)  # (1, ..., in_channels * multiplier, filters)
    positions = _positions(layer)
    depth_rows = depthwise.reshape(-1, depthwise.shape[-2] * depthwise.shape[-1]).T
    point_rows = pointwise.reshape(-1, pointwise.shape[-1]).T
    return [
        _entry(layer, f"{layer.name}/depthwise", depth_rows, None, positions),
        _entry(layer, f"{layer.name}/pointwise", point_rows, _bias(layer), positions),
    ]


_GATES = {
    "SimpleRNN": (None,),
    "LSTM": ("input", "forget", "cell", "output"),
    "GRU": ("update", "reset", "candidate"),
}


def _rnn_rows(layer, prefix=None):
    prefix = prefix or layer.name
    cell = layer.cell
    kernel = _numpy(cell.kernel)  # (features, gates * units)
    recurrent = _numpy(cell.recurrent_kernel)  # (units, gates * units)
    bias = _numpy(cell.bias) if getattr(cell, "bias", None) is not None else None
    units = recurrent.shape[0]
    kind = next(name for name in _GATES if _is_instance_of(layer, name))
    timesteps = _timesteps(layer)
    entries = []
    for index, gate in enumerate(_GATES[kind]):
        columns = slice(index * units, (index + 1) * units)
        rows = np.concatenate([kernel[:, columns].T, recurrent[:, columns].T], axis=1)
        gate_bias = None
        if bias is not None:
            gate_bias = bias[..., columns]
            gate_bias = gate_bias.T if gate_bias.ndim == 2 else gate_bias  # GRU reset_after: (2, u)
        name = prefix if gate is None else f"{prefix}/{gate}"
        entries.append(_entry(layer, name, rows, gate_bias, timesteps))
    return entries


def _timesteps(layer):
    try:
        shape = tuple(layer._inbound_nodes[0].input_tensors[0].shape)
        if shape[1] is not None:
            return int(shape[1])
    except (AttributeError, IndexError, TypeError):
        pass
    return 1


def _is_instance_of(layer, class_name):
    keras = import_keras()
    return isinstance(layer, getattr(keras.layers, class_name))


def _bidirectional_rows(layer):
    # The wrapped RNNs are called inside the wrapper, so they have no graph node of their own:
    # the sequence length comes from the wrapper's input.
    timesteps = _timesteps(layer)
    entries = []
    for direction, sub in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
        for entry in _rnn_rows(sub, prefix=f"{layer.name}/{direction}"):
            entry.layer_name = layer.name
            entry.type = type(layer).__name__
            entry.macs = int(entry.rows.size) * timesteps
            entries.append(entry)
    return entries


def _time_distributed_rows(layer):
    inner = layer.layer
    adapter = _adapter_for(inner)
    if adapter is None:
        return None
    entries = adapter(inner)
    timesteps = _timesteps(layer)
    for entry in entries:
        entry.name = f"{layer.name}/{inner.name}" if entry.name == inner.name else entry.name
        entry.layer_name = layer.name
        entry.type = f"TimeDistributed({entry.type})"
        entry.macs *= timesteps
    return entries


def _registry():
    layers = import_keras().layers
    return {
        layers.Dense: _dense_rows,
        layers.Conv1D: _conv_rows,
        layers.Conv2D: _conv_rows,
        layers.Conv3D: _conv_rows,
        layers.Conv1DTranspose: _conv_transpose_rows,
        layers.Conv2DTranspose: _conv_transpose_rows,
        layers.Conv3DTranspose: _conv_transpose_rows,
        layers.DepthwiseConv1D: _depthwise_rows,
        layers.DepthwiseConv2D: _depthwise_rows,
        layers.SeparableConv1D: _separable_rows,
        layers.SeparableConv2D: _separable_rows,
        layers.SimpleRNN: _rnn_rows,
        layers.LSTM: _rnn_rows,
        layers.GRU: _rnn_rows,
        layers.Bidirectional: _bidirectional_rows,
        layers.TimeDistributed: _time_distributed_rows,
    }


def supported_layer_types():
    """Names of the Keras layer classes whose neurons can be analyzed."""
    return sorted(cls.__name__ for cls in _registry())


def _adapter_for(layer):
    registry = _registry()
    for cls in type(layer).__mro__:
        if cls in registry:
            return registry[cls]
    return None


def _known_skip_reasons():
    layers = import_keras().layers
    return {
        layers.BatchNormalization: "normalization layer: per-channel scale and shift, no neurons",
        layers.LayerNormalization: "normalization layer: per-feature scale and shift, no neurons",
        layers.GroupNormalization: "normalization layer: per-channel scale and shift, no neurons",
        layers.Embedding: "embedding table: rows are tokens, not neurons",
        layers.Normalization: "preprocessing layer: stored statistics, no neurons",
        layers.MultiHeadAttention: "attention layer: not supported yet",
        layers.EinsumDense: "EinsumDense: not supported yet (its neuron axis depends on the equation)",
        layers.PReLU: "activation parameters, no neurons",
    }


def _wrapped_reason(layer):
    """Why a wrapper (TimeDistributed, Bidirectional) cannot be read, or None when it can."""
    layers = import_keras().layers
    if isinstance(layer, layers.TimeDistributed):
        inner = layer.layer
        reason = skip_reason(inner)
        return None if reason is None else f"wraps {type(inner).__name__}: {reason}"
    if isinstance(layer, layers.Bidirectional):
        inner = layer.forward_layer
        if not any(_is_instance_of(inner, name) for name in _GATES):
            return f"wraps {type(inner).__name__}: only SimpleRNN, LSTM and GRU are supported"
    return None


def skip_reason(layer):
    """Why a layer with weights has no neuron rows, or None when it has an adapter."""
    if _adapter_for(layer) is not None:
        return _wrapped_reason(layer)
    for cls in type(layer).__mro__:
        reason = _known_skip_reasons().get(cls)
        if reason is not None:
            return reason
    return f"no neuron-row adapter for {type(layer).__name__}; supported: Dense, Conv, RNN families"


def layer_neuron_rows(layer):
    """The neuron rows of a layer, one entry per analyzable part.

    Parameters
    ----------
    layer : keras.layers.Layer
        A built layer.

    Returns
    -------
    entries : list of NeuronRows or None
        None when the layer's class has no adapter, or it wraps a layer that has none (see
        :func:`skip_reason`).
    """
    adapter = _adapter_for(layer)
    if adapter is None or _wrapped_reason(layer) is not None:
        return None
    return adapter(layer)
