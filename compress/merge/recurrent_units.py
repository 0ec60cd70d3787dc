"""A recurrent layer's own units: who reads its hidden state, its states on calibration data, its own folds.

Shared by :mod:`weightkit.compress.merge.recurrent` (SimpleRNN, LSTM, GRU) and
:mod:`weightkit.compress.merge.bidirectional` (each half of a Bidirectional layer). The readers of a hidden
state are the layers whose input rows absorb a folded unit (see
:mod:`weightkit.compress.merge.applying.input_rows`): Dense, Conv1D, TimeDistributed(Dense/Conv), another recurrent
layer's input kernel, a Bidirectional layer's two input kernels.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.activations.collect import sample_indices
from weightkit.analysis.data.batches import n_samples, rows, take
from weightkit.analysis.kinds.base import channels_last
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.channels import ChannelGroup, ChannelUse, channel_groups
from weightkit.compress.merge.applying.apply_group import cut_outputs
from weightkit.compress.merge.planning.consumers import neuron_layer, recurrent_target
from weightkit.compress.merge.planning.plan import dead_end
from weightkit.compress.merge.applying.rebuild import find_layer

__all__ = ["MAX_ROWS", "PADDING_NOTE", "RecurrentSite", "cut_own_units",
           "follow_readers", "padded_readers", "sequence_states"]

#: Said when an intercept is folded into a convolution that pads with zeros.
PADDING_NOTE = "intercepts folded into a zero-padding convolution's bias are exact only away from the borders"

MAX_ROWS = 50_000  # calibration rows (sequence steps) kept for the fit, a seeded sample beyond


@dataclass
class RecurrentSite:
    """A recurrent layer (or a Bidirectional one), the layers reading its hidden state, or why it is left alone.

    Attributes
    ----------
    layer, type : str
    n_units : int
        Per half for a Bidirectional layer.
    consumers : list of (str, str)
        ``(layer name, kind)``, kind ``"dense"`` (Dense, TimeDistributed(Dense)), ``"conv"``
        (Conv1D, TimeDistributed(Conv)), ``"rnn"`` or ``"bidirectional"``.
    reason : str or None
    merge_mode : str or None
        A Bidirectional layer's: ``concat``, ``sum`` or ``ave``.
    two_row_bias : bool
        A GRU with ``reset_after`` (bias rows: input, recurrent).
    """

    layer: str
    type: str
    n_units: int = 0
    consumers: list = field(default_factory=list)
    reason: str = None
    merge_mode: str = None
    two_row_bias: bool = False

    def channel_group(self):
        """The layer's units as a channel group with one producer (its recurrent kernel reads them too), for
        :func:`weightkit.compress.merge.applying.apply_group.apply_group`."""
        n = self.n_units
        uses = [ChannelUse(self.layer, self.type, "producer", -1, output=(None, 0))]
        uses += [ChannelUse(name, "", "consumer", -1, inputs=[(None, 0)], channels=n, layout=kind)
                 for name, kind in self.consumers]
        return ChannelGroup(n, [self.layer], uses)


def _consumer_kind(layer):
    target = recurrent_target(layer)
    if target is not None:
        return target, None
    inner = neuron_layer(layer)
    if inner is None:
        return None, None
    kind = kind_for(inner)
    if kind.consumer_problem(inner, False) is not None:
        return None, f"{layer.name} ({type(layer).__name__}) is a grouped or channels_first convolution"
    return kind.input_layout(False), None


def call_reason(graph, layer, site, one_unit):
    """Why ``layer``'s call leaves it alone (``one_unit`` when it has under two units), else its readers' reason.

    Fills ``site.consumers`` through :func:`follow_readers` when the call itself is mergeable, from the channel
    walk's group on the layer's output (:func:`weightkit.analysis.structure.channels.channel_groups`).
    """
    nodes = graph.nodes_of(layer)
    if len(nodes) != 1:
        return "called at several places in the model"
    if any(graph.dtype(t) != "bool" for t in nodes[0].inputs[1:]):  # a mask (bool) is fine
        return "called with an initial state or several tensors"
    if site.n_units < 2:
        return one_unit
    groups = [g for g in channel_groups(graph, readers_of=(layer.name,)) if layer.name in g.producers]
    return follow_readers(graph, nodes[0].outputs[0], site, groups[0] if groups else None)


def follow_readers(graph, tensor, site, group):
    """Collect the consumers reached from ``tensor`` through identity and linear steps (dropout, average
    pooling over time, cropping); the reason to stop, or None.

    Only the calls the channel walk's ``group`` records as carrying the channels lead on (a
    :class:`weightkit.analysis.structure.channels.ChannelGroup` opened on the layer's output, or None).
    """
    recorded = {}
    for use in [] if group is None else group.uses:
        for read, _ in use.inputs:
            recorded.setdefault((use.node, read), use)
    return _read(graph, tensor, site, group, recorded)


def _unrecorded(group, layer):
    """Why the readers stop at ``layer``, a call the channel walk does not carry the units through."""
    return (group.reason if group is not None and group.reason else
            f"{layer.name} ({type(layer).__name__}) reads its channels and weightkit cannot follow them through it")


def _read(graph, tensor, site, group, recorded):
    reason = dead_end(graph, tensor)
    if reason is not None:
        return reason
    for node in graph.readers(tensor):
        layer = node.layer
        label = f"{layer.name} ({type(layer).__name__})"
        if node.inputs[0] != tensor or any(graph.dtype(t) != "bool" for t in node.inputs[1:]):  # masks pass
            return f"its output feeds {label}, which combines several tensors"
        kind, reason = _consumer_kind(layer)
        if reason:
            return f"its output feeds {reason}"
        use = recorded.get((node.index, tensor))
        if kind is not None:
            if graph.is_shared(layer):
                return f"its output feeds {layer.name}, a layer shared with other inputs"
            if use is None or use.role != "consumer":
                return _unrecorded(group, layer)
            site.consumers.append((layer.name, kind))
            continue
        spec = kind_for(layer)
        linear = spec is not None and spec.merge == "linear" and channels_last(layer)
        if spec is None or not (spec.merge == "identity" or linear):  # averages keep h_j = Σ β h_k + c
            return f"its output feeds {label}, which cannot absorb a folded unit"
        if use is None or use.output is None:
            return _unrecorded(group, layer)
        reason = _read(graph, use.output[0], site, group, recorded)
        if reason:
            return reason
    return None


def padded_readers(model, site):
    """The site's convolution readers that pad with zeros (``same``/``causal``): a folded intercept is exact
    only away from their borders."""
    names = []
    for name, kind in site.consumers:
        inner = neuron_layer(find_layer(model, name)) if kind == "conv" else None
        if inner is not None and getattr(inner, "padding", "valid") in ("same", "causal"):
            names.append(name)
    return names


def sequence_states(graph, node, config, x, *, widths, samples, seed, batch_size=256):
    """Run a copy of ``node``'s layer built from ``config`` on the same call; its outputs at every step.

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph
    node : weightkit.analysis.structure.graph.GraphNode
        The layer's one call.
    config : dict
        The copy's config (``return_sequences=True``; a Bidirectional copy with ``merge_mode=None``
        returns each half).
    x : ndarray or list of ndarray
    widths : list of int
        Units of each output of the copy.
    samples, seed : int

    Returns
    -------
    list of ndarray of shape (n_rows, width), float64
        One per output; masked steps left out; at most :data:`MAX_ROWS` rows (the same seeded rows
        for every output).
    """
    keras = import_keras()
    flat, tensors = graph.flat_model(outputs=[node.inputs[0]])
    layer = node.layer
    copy = layer.__class__.from_config(config)
    sequences = dataclasses.replace(node, layer=copy).replay(tensors)  # the same call, mask included
    copy.set_weights(layer.get_weights())
    masks = [tensors[t] for t in node.inputs[1:]]
    probe = keras.Model(flat.input, list(sequences) + masks)
    chosen = take(x, sample_indices(n_samples(x), samples, seed))
    parts = [[] for _ in widths]
    for start in range(0, n_samples(chosen), batch_size):  # called directly: predict would trace a function
        outputs = probe(rows(chosen, start, start + batch_size), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # a one-output list is unwrapped
        keep = None
        if masks:  # masked steps carry no state of their own (Keras returns zeros there)
            keep = np.asarray(keras.ops.convert_to_numpy(outputs[len(widths)]), dtype=bool).reshape(-1)
        for index, width in enumerate(widths):
            batch = np.asarray(keras.ops.convert_to_numpy(outputs[index]), dtype=np.float64).reshape(-1, width)
            parts[index].append(batch if keep is None else batch[keep])
    states = [np.concatenate(p, axis=0) for p in parts]
    if states[0].shape[0] > MAX_ROWS:
        kept = np.sort(np.random.default_rng(seed).choice(states[0].shape[0], MAX_ROWS, replace=False))
        states = [s[kept] for s in states]
    return states


def cut_own_units(state, layer, units, removed, *, prefix="", two_row_bias=False):
    """Cut units from every gate of a layer: kernel columns, recurrent kernel rows and columns, bias
    (:func:`weightkit.compress.merge.applying.apply_group.cut_outputs`; ``two_row_bias`` is the kind's)."""
    cut_outputs(state, layer, units, np.asarray(removed, dtype=np.int64), prefix=prefix)
