"""Neuron weight rows of a live Keras layer, as the layer registry says to read them.

Each layer kind (:mod:`weightkit.analysis.kinds`) reads its rows as a pure function of the layer's
config and weight arrays; this module reads those arrays off a built layer, adds the parameter and MAC
counts, and gives one :class:`NeuronRows` entry per part (a SeparableConv's two kernels, an RNN's
gates). Anything else with weights is reported as skipped, with the reason.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.kinds.registry import skip_reason as _kind_skip_reason
from weightkit.analysis.kinds.layers import kind_rows

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


def composite_leaves(layer, prefix=None):
    """``[(path, sublayer)]`` of a composite layer's sublayers with neuron rows, at any depth.

    A composite layer is one of no registered kind that owns sublayers (keras-hub's
    TransformerEncoder, a decoder block, a user's own block layer): each sublayer with rows is
    named by its path under the layer (``enc0/feedforward_intermediate_dense``), as Keras names its
    variables. Sublayers of no kind are opened in turn.
    """
    prefix = layer.name if prefix is None else prefix
    leaves = []
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}/{sub.name}"
        kind = kind_for(sub)
        if kind is None:
            leaves.extend(composite_leaves(sub, path))
        elif kind.has_neurons and kind.wrapped_reason(sub) is None and sub.weights:
            leaves.append((path, sub))
    return leaves


def skip_reason(layer):
    """Why a layer with weights has no neuron rows, or None (a composite layer with such sublayers has them)."""
    reason = _kind_skip_reason(layer)
    if reason is not None and kind_for(layer) is None and composite_leaves(layer):
        return None
    return reason


def layer_neuron_rows(layer, graph=None):
    """The neuron rows of a layer, one entry per analyzable part.

    Parameters
    ----------
    layer : keras.layers.Layer
        A built layer.
    graph : weightkit.analysis.structure.graph.ModelGraph, default=None
        The graph of the model holding the layer: MACs count the positions of the layer's first
        call there. Without it, the layer's own first call is used.

    Returns
    -------
    entries : list of NeuronRows or None
        None when the layer's class has no rows, or it wraps a layer that has none (see
        :func:`skip_reason`).
    """
    kind = kind_for(layer)
    if kind is None and composite_leaves(layer):
        return _composite_rows(layer)
    if kind is None or not kind.has_neurons or kind.wrapped_reason(layer) is not None:
        return None
    rows_kind, config = kind.rows_source(layer)
    applications = kind.applications(*_shapes(layer, graph))
    entries = []
    for part, rows, bias in kind_rows(rows_kind, config, kind.layer_arrays(layer)):
        kernel_size = int(rows.size)
        bias_size = 0 if bias is None else int(np.asarray(bias).size)
        entries.append(NeuronRows(name=kind.entry_name(layer, part), layer_name=layer.name,
                                  type=kind.entry_type(layer), rows=rows, bias=bias,
                                  params=kernel_size + bias_size, macs=kernel_size * applications))
    return entries


def _composite_rows(layer):
    """The entries of a composite layer's sublayers, named and attributed by their paths under it."""
    entries = []
    for path, sub in composite_leaves(layer):
        for entry in layer_neuron_rows(sub):
            entry.name = f"{path.rsplit('/', 1)[0]}/{entry.name}"
            entry.layer_name = path
            entries.append(entry)
    return entries
