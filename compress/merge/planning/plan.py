"""Where neurons can be merged: each Dense/Conv layer's path to the layers that consume its output.

A site is read off its producer's channel group (:func:`weightkit.analysis.structure.channels.channel_groups`, the
one walk of the graph): only the calls that walk records as carrying the producer's channels lead on.
For every producer (Dense, Conv, a TimeDistributed one) we follow its output tensor through the
layers in between (the *steps*: activations, BatchNormalization, dropout, pooling, padding,
Flatten, and the same wrapped in TimeDistributed) to the *consumers* whose input-channel weights
absorb the merged neurons: Dense, Conv, TimeDistributed(Dense/Conv), and the input kernels of
SimpleRNN/LSTM/GRU and Bidirectional layers (:mod:`weightkit.compress.merge.planning.consumers`). Anything that mixes
channels or meets other tensors (Add, Concatenate, a LayerNormalization, the model output) stops
the walk, and the layer is left alone with the reason (joins are coupled groups:
:mod:`weightkit.compress.merge.planning.groups`).
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.structure.channels import ChannelGroup, ChannelUse, channel_groups
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.base import LayerKind, channels_last
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.rows import skip_reason
from weightkit.analysis.selection import check_layer_names
from weightkit.compress.merge.planning.consumers import Consumer, consumer_of, neuron_layer, recurrent_target

__all__ = [
    "ELEMENTWISE_ACTIVATIONS",
    "HOMOGENEOUS_ACTIVATIONS",
    "Consumer",
    "find_merge_sites",
    "selected_sites",
]

#: Activations with f(a·x) = a·f(x) for a > 0: a positively scaled copy merges exactly.
HOMOGENEOUS_ACTIVATIONS = ("linear", "relu", "leaky_relu")
#: Other element-by-element activations: only twins (α ≈ 1) merge.
ELEMENTWISE_ACTIVATIONS = ("sigmoid", "tanh", "elu", "selu", "gelu", "swish", "silu", "softplus", "softsign",
                           "hard_sigmoid", "hard_silu", "hard_swish", "mish", "exponential", "relu6", "celu",
                           "log_sigmoid", "hard_tanh", "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus",
                           "sparse_plus", "sparse_sigmoid")


@dataclass
class Step:
    """One layer between a producer and its consumers (or the producer's own activation).

    Attributes
    ----------
    layer : str
    type : str
    kind : {"identity", "affine", "activation", "max", "linear", "zero_pad", "flatten"}
    homogeneous : bool
        For ``activation``: positively homogeneous.
    description : str
        ``relu``, ``sigmoid``, ``BatchNormalization``...
    function : callable or None
        The activation on a float64 ndarray (for constant relation rows).
    wrapped : bool
        The layer is a TimeDistributed one: its wrapped layer acts on each step (a Flatten keeps
        the time axis).
    """

    layer: str
    type: str
    kind: str
    homogeneous: bool = True
    description: str = ""
    function: object = None
    wrapped: bool = False

    @property
    def nonlinear(self):
        return self.kind in ("activation", "max") and not (self.kind == "activation" and self.description == "linear")


@dataclass
class MergeSite:
    """A producer layer, the steps after it and its consumers; or the reason it is left alone.

    Attributes
    ----------
    layer : str
    type : str
    n_neurons : int
    steps : list of Step
        The producer's own activation first (when not linear), then the layers on the way to the
        consumers, Flatten excluded.
    consumers : list of Consumer
    tap : str
        The layer whose output is the last per-channel tensor before the consumers (the producer
        itself when nothing is in between): a data-aware merge fits its relation there.
    reason : str or None
        Why the layer cannot be merged; None when it can.
    """

    layer: str
    type: str
    n_neurons: int = 0
    steps: list = field(default_factory=list)
    consumers: list = field(default_factory=list)
    tap: str = ""
    reason: str = None

    @property
    def mergeable(self):
        return self.reason is None

    @property
    def folded_steps(self):
        """Leading steps folded into the producer's rows: BatchNormalization (and identities) before any
        other step."""
        count = 0
        for step in self.steps:
            if step.kind not in ("identity", "affine"):
                break
            count += 1
        return count

    @property
    def channel_layers(self):
        """Steps with per-channel weights that lose the removed channels too."""
        return [step.layer for step in self.steps if step.kind == "affine"]

    @property
    def requirement(self):
        """``linear``, ``positive`` or ``twin``: what the steps allow (see :mod:`weightkit.compress.merge.applying.math`)."""
        later = self.steps[self.folded_steps:]
        if any(s.kind == "activation" and not s.homogeneous for s in later):
            return "twin"
        if any(s.nonlinear for s in later):
            return "positive"
        return "linear"

    @property
    def activation(self):
        """A short description of the nonlinearities on the way, e.g. ``relu`` or ``linear``."""
        names = [s.description for s in self.steps if s.nonlinear]
        return " → ".join(names) if names else "linear"

    def channel_group(self):
        """The site as a channel group with one producer, for
        :func:`weightkit.compress.merge.applying.apply_group.apply_group`: its per-channel steps are members, its
        consumers read its channels alone (offset 0)."""
        n = self.n_neurons
        uses = [ChannelUse(self.layer, self.type, "producer", -1, output=(None, 0))]
        uses += [ChannelUse(s.layer, s.type, "affine", -1, inputs=[(None, 0)], channels=n)
                 for s in self.steps if s.kind == "affine"]
        uses += [ChannelUse(c.layer, c.type, "consumer", -1, inputs=[(None, 0)], channels=n, positions=c.positions,
                            layout=c.layout if c.target == "plain" else c.target) for c in self.consumers]
        return ChannelGroup(n, [self.layer], uses)


def _activation_step(layer, name, keras):
    if not isinstance(name, str):
        return None, f"custom activation {name!r} is not supported"
    function = None
    if name in HOMOGENEOUS_ACTIVATIONS or name in ELEMENTWISE_ACTIVATIONS:
        fn = keras.activations.get(name)

        def function(x, fn=fn):
            return np.asarray(keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(x, "float32"))),
                              dtype=np.float64)

        return Step(layer.name, type(layer).__name__, "activation", name in HOMOGENEOUS_ACTIVATIONS, name,
                    function), None
    return None, f"activation {name!r} does not act on each neuron separately"


def _activation_layer_step(layer, keras):
    """The Step of an activation layer (Activation, ReLU, LeakyReLU, ELU), or (None, reason)."""
    description, homogeneous, function = kind_for(layer).elementwise(layer)
    if function is None:
        return _activation_step(layer, description, keras)
    return Step(layer.name, type(layer).__name__, "activation", homogeneous, description, function), None


def _classify_step(layer, keras, rank):
    """A Step for a layer between producer and consumer, or (None, reason); its kind is the registry's."""
    name = type(layer).__name__
    kind = kind_for(layer)
    if kind is not None and kind.wrapped_step(layer) is not None:  # the wrapped step, on each time step
        step, reason = _classify_step(layer.layer, keras, rank - 1)
        if step is None:
            return None, reason and reason.replace(layer.layer.name, layer.name, 1)
        return dataclasses.replace(step, layer=layer.name, type=name, wrapped=True), None
    role = None if kind is None else kind.merge
    if role not in ("identity", "affine", "activation", "max", "linear", "zero_pad", "flatten"):
        return None, None
    if not channels_last(layer):
        return None, f"{layer.name} ({name}) uses channels_first"
    if role == "activation":
        return _activation_layer_step(layer, keras)
    problem = kind.step_problem(layer, rank)  # BatchNormalization: the axis it normalizes
    if problem:
        return None, f"{layer.name} ({name}) {problem}"
    descriptions = {"max": "max pooling"}
    return Step(layer.name, name, role, True, descriptions.get(role, name)), None


def _producer_reason(layer, keras):
    inner = neuron_layer(layer)
    if inner is None:
        return (kind_for(layer) or LayerKind()).unmergeable_reason(layer)
    return kind_for(inner).layout_problem(inner)


def join_reason(graph, node):
    """Why a producer read by a join (an Add, a Concatenate) is left alone: the join, and what reads the result.

    In a transformer the result is the residual stream: ``"its output feeds b0_res2 (Add), which combines several
    tensors into a stream that final_ln (LayerNormalization) reads: the stream through Add + LayerNormalization is
    left alone"``.
    """
    join = f"{node.layer.name} ({type(node.layer).__name__})"
    readers = [reader.layer for output in node.outputs for reader in graph.readers(output)]
    if not readers:
        return f"its output feeds {join}, which combines several tensors"
    names = ", ".join(f"{reader.name} ({type(reader).__name__})" for reader in readers)
    classes = " + ".join(dict.fromkeys([type(node.layer).__name__] + [type(reader).__name__ for reader in readers]))
    return (f"its output feeds {join}, which combines several tensors into a stream that {names} "
            f"read{'s' if len(readers) == 1 else ''}: the stream through {classes} is left alone")


def dead_end(graph, tensor):
    """Why nothing can be folded into the readers of flat tensor ``tensor`` (a model output, no reader), or None."""
    if graph.is_output(tensor):
        return "its output is (on the way to) a model output"
    if not graph.readers(tensor):
        return "its output is not used by any layer"
    return None


class _Reading:
    """One producer's site, read off its channel group: the group's uses, in the order of the graph's readers.

    The channel walk (:func:`weightkit.analysis.structure.channels.channel_groups`) says which calls carry the
    producer's channels (``recorded``); the reading adds what a plain site needs of them (one path of steps, the
    consumers' layouts, no Flatten twice) and words why the producer is left alone where it stops.
    """

    def __init__(self, graph, keras, group):
        self.graph, self.keras, self.group = graph, keras, group
        self.layers = {layer.name: layer for layer in graph.layers}
        self.paths = []  # (steps, after_flatten, Consumer)
        self.reached = set()  # ids of the nodes reached: a shared layer must be reached at every call
        self.recorded = {}  # (node index, tensor read) -> the group's use
        for use in [] if group is None else group.uses:
            for tensor, _ in use.inputs:
                self.recorded.setdefault((use.node, tensor), use)

    def unrecorded(self, node):
        """Why the producer stops at ``node``, a call the channel walk does not carry its channels through."""
        layer = node.layer
        return (self.group.reason if self.group is not None and self.group.reason else
                f"{layer.name} ({type(layer).__name__}) reads its channels and weightkit cannot follow them through it")

    def follow(self, tensor, steps, after_flatten, positions, rank):
        """Read the group's uses from flat tensor ``tensor`` to its consumers; the reason it cannot be merged, or
        None."""
        graph, keras = self.graph, self.keras
        reason = dead_end(graph, tensor)
        if reason is not None:
            return reason
        for node in graph.readers(tensor):
            layer = node.layer
            self.reached.add(id(node))
            masks = [t for t in node.inputs[1:] if graph.dtype(t) == "bool"]
            if len(node.inputs) - len(masks) != 1 or node.inputs[0] != tensor or \
                    (masks and recurrent_target(layer) is None):  # a recurrent layer may read a mask
                return join_reason(graph, node)
            consumer, reason = consumer_of(layer, after_flatten, positions)
            if reason:
                return reason
            use = self.recorded.get((node.index, tensor))
            if consumer is not None:
                if use is None or use.role != "consumer":
                    return self.unrecorded(node)
                self.paths.append((list(steps), after_flatten, consumer))
                continue
            step, reason = _classify_step(layer, keras, rank)
            if step is None:
                return reason or (f"{layer.name} ({type(layer).__name__}) between it and a Dense or Conv layer is "
                                  "not supported")
            if use is None or use.output is None:
                return self.unrecorded(node)
            output = use.output[0]
            if step.kind == "flatten":
                if after_flatten:
                    return f"{layer.name}: a second Flatten on the way"
                shape = graph.shape(tensor)
                if any(d is None for d in shape[1:]):
                    return f"{layer.name} (Flatten) has an input of unknown size {shape}"
                first = 2 if step.wrapped else 1  # TimeDistributed(Flatten) keeps the time axis
                count = int(np.prod(shape[first:-1], dtype=np.int64)) if len(shape) > first + 1 else 1
                reason = self.follow(output, steps, True, count, rank)
            else:
                if after_flatten and step.kind != "identity":
                    return f"{layer.name} ({type(layer).__name__}) after a Flatten mixes positions and channels"
                new_steps = steps if after_flatten else steps + [step]
                reason = self.follow(output, new_steps, after_flatten, positions, len(graph.shape(output)))
            if reason:
                return reason
        return None

    def shared_reason(self, layer_names):
        """Why a shared layer on the way (a consumer, or a step with weights) blocks the merge, or None."""
        for name in layer_names:
            layer = self.layers[name]
            if layer.weights and any(id(node) not in self.reached for node in self.graph.nodes_of(layer)):
                return (f"its output feeds {name}, a layer shared with other inputs (merging would change "
                        "its other calls)")
        return None


def _site(layer, graph, keras, group):
    site = MergeSite(layer.name, type(layer).__name__)
    reason = _producer_reason(layer, keras)
    if reason:
        site.reason = reason
        return site
    inner = neuron_layer(layer)  # a TimeDistributed layer's neurons are its wrapped layer's
    site.n_neurons = int(inner.get_config()[kind_for(inner).units_key])
    if any(graph.is_output(node.outputs[0]) for node in graph.nodes_of(layer)):
        site.reason = "its output is (on the way to) a model output"
        return site
    activation, reason = _activation_step(layer, inner.get_config()["activation"], keras)
    if activation is None:
        site.reason = reason
        return site
    first = [] if activation.description == "linear" else [activation]
    walk = _Reading(graph, keras, group)
    for node in graph.nodes_of(layer):  # a shared producer: every call's output, folded alike
        tensor = node.outputs[0]
        reason = walk.follow(tensor, first, False, 1, len(graph.shape(tensor)))
        if reason:
            site.reason = reason
            return site
    paths = walk.paths
    step_lists = {tuple(s.layer for s in steps) for steps, _, _ in paths}
    if len(step_lists) != 1:
        site.reason = "its consumers are reached through different layers; each path would need its own merge"
        return site
    on_the_way = [c.layer for _, _, c in paths] + [s.layer for s in paths[0][0] if s.layer != layer.name]
    reason = walk.shared_reason(dict.fromkeys(on_the_way))
    if reason:
        site.reason = reason
        return site
    site.steps = paths[0][0]
    site.consumers = list({consumer.layer: consumer for _, _, consumer in paths}.values())
    between = [s for s in site.steps if s.layer != layer.name]
    site.tap = between[-1].layer if between else layer.name
    return site


def find_merge_sites(model, graph=None, groups=None):
    """Every Dense/Conv layer of a model with its steps and consumers, or why it is left alone.

    Each site is read off its producer's channel group (:func:`weightkit.analysis.structure.channels.channel_groups`,
    the one walk of the model's own graph, :class:`weightkit.analysis.structure.graph.ModelGraph`): nested models
    are unwrapped, so their layers merge where they are, and a layer called at several places
    merges when every call leads to the same kind of consumers.

    Parameters
    ----------
    model : keras.Model
        Sequential or Functional, loaded or built in memory.
    graph : ModelGraph, default=None
        The model's graph, when the caller has it already.
    groups : list of ChannelGroup, default=None
        The channel walk's groups of ``graph``, when the caller has them already.

    Returns
    -------
    sites : dict
        ``layer name -> MergeSite`` in model order, for every layer with neuron rows (see
        :func:`weightkit.analysis.rows.layer_neuron_rows`).
    """
    keras = import_keras()
    graph = ModelGraph(model) if graph is None else graph
    groups = channel_groups(graph) if groups is None else groups
    group_of = {name: group for group in groups for name in group.producers}
    sites = {}
    for node in graph.nodes:
        layer = node.layer
        if layer.name in sites or not getattr(layer, "weights", None):
            continue
        if skip_reason(layer) is not None:
            continue  # no neurons (BatchNormalization, Embedding...): nothing to merge
        sites[layer.name] = _site(layer, graph, keras, group_of.get(layer.name))
    return sites


def selected_sites(sites, layers):
    """The ``--layers`` names as a set (None for every layer), each checked to be a merge site.

    Parameters
    ----------
    sites : dict of str to MergeSite
        From :func:`find_merge_sites`.
    layers : list of str or None

    Returns
    -------
    set of str or None

    Raises
    ------
    WeightkitError
        Naming the unknown layers and the available ones.
    """
    return check_layer_names(layers, sites)
