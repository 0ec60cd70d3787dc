"""Channel dependency groups: the channels of a Keras model that must be removed together.

Like Torch-Pruning's DepGraph, for Keras 3, on :class:`weightkit.analysis.structure.graph.ModelGraph`. Every call of a
producer (Dense, Conv, SeparableConv's pointwise half) opens a *channel space*: its output
channels. A space flows unchanged through pass-through layers (BatchNormalization, activations,
dropout, pooling, padding, DepthwiseConv, a SeparableConv's depthwise half, global pooling,
Flatten/Reshape); the inputs of an elementwise join (Add, Subtract, Multiply, Average, Maximum,
Minimum) share channel indices, so their spaces are united; a Concatenate lays its inputs'
spaces side by side (its readers' rows split by input). A *group* is a union of spaces: output
channel ``j`` of every producer in it is the same channel, and removing it removes it from every
member layer and every consumer's rows. Anything the walk cannot follow leaves the whole group
alone, with the reason.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis.structure.channel_roles import RECURRENT_LAYOUTS, absorbing_layout
from weightkit.analysis.kinds.registry import kind_for

__all__ = ["ChannelGroup", "ChannelUse", "channel_groups"]

_PASS = ("identity", "affine", "activation", "max", "linear", "zero_pad", "depthwise")


@dataclass
class ChannelUse:
    """One call of a layer that touches a group's channels.

    Attributes
    ----------
    layer : str
    type : str
    role : str
        ``producer``, ``consumer`` (rows absorb a relation), or a step role of
        :data:`weightkit.analysis.kinds.layers.MERGE_STEPS` (``affine``, ``depthwise``, ``couple``...).
    node : int
        Index of the call in :attr:`weightkit.analysis.structure.graph.ModelGraph.nodes`.
    inputs : list of (int, int)
        ``(tensor id, channel offset of the group in it)`` for the inputs carrying the group.
    output : (int, int) or None
        The same for the output.
    layout : str
        Consumers: ``dense``, ``conv``, ``flatten`` (a Dense after a Flatten), ``separable``,
        ``rnn`` (a recurrent layer's input kernel) or ``bidirectional`` (both halves' input kernels).
    channels : int
        Consumers and members: channels of the tensor read (all groups, concatenated).
    positions : int
        Consumers after a Flatten: positions per channel.
    tap : int or None
        Consumers: the last per-channel tensor before them (before a Flatten).
    """

    layer: str
    type: str
    role: str
    node: int
    inputs: list = field(default_factory=list)
    output: tuple = None
    layout: str = ""
    channels: int = 0
    positions: int = 1
    tap: int = None


@dataclass
class ChannelGroup:
    """Channels removed together: output channel ``j`` of every producer is the same channel.

    Attributes
    ----------
    n : int
        Channels in the group.
    producers : list of str
        Producer layers, in model order.
    uses : list of ChannelUse
        Every call touching the group, in topological order (producers, steps, consumers).
    reason : str or None
        Why the group is left alone; None when it can be merged.
    """

    n: int
    producers: list = field(default_factory=list)
    uses: list = field(default_factory=list)
    reason: str = None

    @property
    def mergeable(self):
        return self.reason is None

    @property
    def name(self):
        return self.producers[0] if len(self.producers) == 1 else "+".join(self.producers[:3]) + (
            f"+{len(self.producers) - 3} more" if len(self.producers) > 3 else "")

    @property
    def consumers(self):
        return [u for u in self.uses if u.role == "consumer"]

    @property
    def members(self):
        """Layers with per-channel weights that lose the removed channels (BN, depthwise filters)."""
        return [u for u in self.uses if u.role in ("affine", "depthwise", "separable")]

    @property
    def coupled(self):
        """Whether merging needs the group machinery: several producers, joins, concatenations, depthwise."""
        if len(self.producers) > 1:
            return True
        return any(u.role in ("couple", "concatenate", "depthwise", "separable", "reshape") or u.channels != self.n
                   for u in self.uses if u.role != "producer")


class _Spaces:
    """Union-find over channel spaces, with a size and a block reason per root."""

    def __init__(self):
        self.parent, self.size, self.reason = [], [], {}

    def new(self, n):
        self.parent.append(len(self.parent))
        self.size.append(int(n))
        return len(self.parent) - 1

    def find(self, s):
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] != self.size[b]:
            self.block(a, f"channels of sizes {self.size[a]} and {self.size[b]} meet")
        self.parent[b] = a
        if b in self.reason:
            self.reason.setdefault(a, self.reason[b])

    def block(self, s, reason):
        self.reason.setdefault(self.find(s), reason)


class _Walk:
    def __init__(self, graph, readers_of=()):
        self.graph = graph
        self.sources = set(readers_of)  # layers with no neuron role whose output opens a space too
        self.spaces = _Spaces()
        self.layout = {}  # tensor id -> tuple of (space or None, size)
        self.flat = {}  # tensor id -> (positions, tensor before the Flatten)
        self.uses = []  # (space, ChannelUse with offsets)
        self.layer_spaces = {}  # (layer id, slot) -> layout of its first call, to unite shared layers
        self.producer_of = {}  # space -> layer name

    def block_layout(self, layout, reason):
        for space, _ in layout or ():
            if space is not None:
                self.spaces.block(space, reason)

    def segments(self, layout):
        offset = 0
        for space, size in layout:
            yield space, offset, size
            offset += size

    def unite_calls(self, layer, slot, layout):
        """A shared layer with per-channel weights: every call's channels must be the same ones."""
        key = (id(layer), slot)
        first = self.layer_spaces.setdefault(key, layout)
        if first is layout:
            return
        if [s for _, s in first] != [s for _, s in layout]:
            self.block_layout(layout, f"{layer.name} is called on tensors whose channels do not line up")
            self.block_layout(first, f"{layer.name} is called on tensors whose channels do not line up")
            return
        for (a, _), (b, _) in zip(first, layout):
            if a is None or b is None:
                self.block_layout(first if b is None else layout, f"{layer.name} is shared with other inputs")
            else:
                self.spaces.union(a, b)

    def untracked_call(self, layer, node):
        """A call of a layer with weights whose input carries no group: its other calls' channels stay.

        A shared layer's weights serve every call, so a group reaching one call while another call
        reads channels no group holds (another model input) cannot cut the layer's input rows.
        """
        if not node.inputs or not getattr(layer, "weights", None) or not self.graph.is_shared(layer):
            return
        shape = self.graph.shape(node.inputs[0])
        if shape and shape[-1] is not None:
            self.unite_calls(layer, "in", ((None, int(shape[-1])),))

    def record(self, layout, use, tensor_in=None, tensor_out=None):
        for space, offset, size in self.segments(layout):
            if space is None:
                continue
            u = ChannelUse(use.layer, use.type, use.role, use.node, layout=use.layout, channels=use.channels,
                           positions=use.positions, tap=use.tap)
            if tensor_in is not None:
                u.inputs = [(tensor_in, offset)]
            if tensor_out is not None:
                u.output = (tensor_out, offset)
            self.uses.append((space, u))

    def run(self):
        for node in self.graph.nodes:
            self.visit(node)
        for tid in self.graph.output_ids:
            self.block_layout(self.layout.get(tid), "its channels reach a model output")

    def visit(self, node):
        self.call(node)
        if node.layer.name in self.sources and len(node.outputs) == 1:
            self.open(node)

    def read(self, node):
        """How many tensors a call reads; given ``readers_of``, masks (bool tensors after the first) left out."""
        return len(node.inputs) - (sum(self.graph.dtype(t) == "bool" for t in node.inputs[1:]) if self.sources else 0)

    def open(self, node):
        """Open a space on the output of a layer with no neuron role (a recurrent one): to find who reads it."""
        out, n, layer = node.outputs[0], int(self.graph.shape(node.outputs[0])[-1]), node.layer
        self.layout[out] = ((self.spaces.new(n), n),)
        self.uses.append((self.layout[out][0][0], ChannelUse(layer.name, type(layer).__name__, "producer", node.index,
                                                             output=(out, 0))))

    def call(self, node):
        layer = node.layer
        spec = kind_for(layer) if hasattr(layer, "get_config") else None
        role = None if spec is None else spec.merge
        inner, wrapped_step = layer, False
        if spec is not None and spec.wrapped_producer(layer) is not None:  # TimeDistributed(Dense/Conv)
            inner = spec.wrapped_producer(layer)
            spec, role = kind_for(inner), "neurons"
        elif spec is not None and spec.wrapped_step(layer) is not None:  # a step on every time step
            inner, wrapped_step = layer.layer, True
            role = spec.wrapped_step(layer).merge
        layouts = [self.layout.get(t) for t in node.inputs]
        known = [lay for lay in layouts if lay is not None]
        if not known:
            self.untracked_call(layer, node)
        if not known and role not in ("neurons", "separable"):
            return
        name, kind = layer.name, type(layer).__name__
        if role in ("neurons", "separable"):
            self.producer(node, layer, spec, role, layouts, inner)
        elif role in _PASS or role in ("flatten", "reshape"):
            self.step(node, layer, role, layouts, inner, wrapped_step)
        elif role == "couple":
            self.couple(node, layer, layouts)
        elif role == "concatenate":
            self.concatenate(node, layer, layouts)
        elif absorbing_layout(layer) is not None:
            self.absorb(node, layer, layouts, absorbing_layout(layer))
        else:
            for lay in known:
                self.block_layout(lay, f"{name} ({kind}) reads its channels and weightkit cannot follow them "
                                       "through it")

    def producer(self, node, layer, spec, role, layouts, inner):
        name, kind = layer.name, type(layer).__name__
        problem = spec.producer_problem(inner)
        layout = layouts[0] if layouts else None
        if layout is not None:
            reason = problem or spec.consumer_problem(inner, node.inputs[0] in self.flat)
            if self.read(node) != 1:
                reason = f"{name} ({kind}) reads several tensors"
            if reason:
                self.block_layout(layout, f"{name} ({kind}): {reason}")
            else:
                tid = node.inputs[0]
                positions, tap = self.flat.get(tid, (1, tid))
                layout_kind = spec.input_layout(tid in self.flat)
                channels = sum(s for _, s in layout)
                self.unite_calls(layer, "in", layout)
                self.record(layout, ChannelUse(name, kind, "consumer", node.index, layout=layout_kind,
                                               channels=channels, positions=positions, tap=tap), tensor_in=tid)
                if role == "separable":
                    self.record(layout, ChannelUse(name, kind, "separable", node.index, channels=channels), tid)
        if problem or len(node.outputs) != 1:
            return
        n = int(inner.get_config()[spec.units_key])
        space = self.spaces.new(n)
        self.producer_of[space] = name
        out = ((space, n),)
        self.unite_calls(layer, "out", out)
        self.layout[node.outputs[0]] = out
        self.uses.append((space, ChannelUse(name, kind, "producer", node.index, output=(node.outputs[0], 0))))
        if not self.graph.readers(node.outputs[0]) and not self.graph.is_output(node.outputs[0]):
            self.spaces.block(space, f"the output of {name} is not used by any layer")

    def absorb(self, node, layer, layouts, layout_kind):
        """A consumer that opens no group: a recurrent layer or a Bidirectional one."""
        name, kind = layer.name, type(layer).__name__
        layout, tid = layouts[0], node.inputs[0]
        masks = all(self.graph.dtype(t) == "bool" for t in node.inputs[1:])
        reason = None
        if layout is None or not masks or (len(node.inputs) > 1 and layout_kind not in RECURRENT_LAYOUTS):
            reason = f"{name} ({kind}) reads several tensors"
        if reason:
            for lay in layouts:
                self.block_layout(lay, reason)
            return
        channels = sum(s for _, s in layout)
        positions, tap = self.flat.get(tid, (1, tid))  # after a TimeDistributed(Flatten): positions x channels
        self.unite_calls(layer, "in", layout)
        self.record(layout, ChannelUse(name, kind, "consumer", node.index, layout=layout_kind, channels=channels,
                                       positions=positions, tap=tap), tensor_in=tid)

    def step(self, node, layer, role, layouts, inner, wrapped):
        """A pass-through layer (``inner`` is the layer a TimeDistributed one wraps, ``wrapped`` True then)."""
        name, kind = layer.name, type(layer).__name__
        layout = layouts[0]
        tid = node.inputs[0]
        if self.read(node) != 1 or len(node.outputs) != 1 or layout is None:
            for lay in layouts:
                self.block_layout(lay, f"{name} ({kind}) reads several tensors")
            return
        shape_in, shape_out = self.graph.shape(tid), self.graph.shape(node.outputs[0])
        flat = tid in self.flat
        first = 2 if wrapped else 1  # a wrapped step acts on each time step: axis 1 is time
        problem = kind_for(inner).step_problem(inner, len(shape_in) - first + 1)
        if role == "reshape":
            if shape_out[-1] == shape_in[-1] and len(shape_out) > 2 and not flat:
                role = "linear"
            elif len(shape_out) == 2:
                role = "flatten"
            else:
                problem = f"reshapes {shape_in} to {shape_out}, mixing channels and positions"
        if flat and role not in ("identity", "flatten"):
            problem = problem or "mixes positions and channels after a Flatten"
        if role == "flatten":
            if flat:
                problem = problem or "a second Flatten"
            elif any(d is None for d in shape_in[1:]):
                problem = problem or f"has an input of unknown size {shape_in}"
        if problem:
            self.block_layout(layout, f"{name} ({kind}) {problem}")
            return
        out = node.outputs[0]
        self.layout[out] = layout
        if role == "flatten":
            positions = int(np.prod(shape_in[first:-1], dtype=np.int64)) if len(shape_in) > first + 1 else 1
            self.flat[out] = (positions, tid)
        elif flat:
            self.flat[out] = self.flat[tid]
        if role in ("affine", "depthwise"):
            self.unite_calls(layer, "in", layout)
        self.record(layout, ChannelUse(name, kind, role, node.index, channels=sum(s for _, s in layout)),
                    tensor_in=tid, tensor_out=out)

    def couple(self, node, layer, layouts):
        name, kind = layer.name, type(layer).__name__
        sizes = {tuple(s for _, s in lay) for lay in layouts if lay is not None}
        known = [lay for lay in layouts if lay is not None]
        problem = None
        if len(known) != len(layouts):
            problem = f"{name} ({kind}) joins them with a tensor weightkit cannot follow"
        elif len(sizes) != 1:
            problem = f"{name} ({kind}) joins tensors whose channels do not line up"
        elif any(t in self.flat for t in node.inputs) or len(node.outputs) != 1:
            problem = f"{name} ({kind}) joins flattened tensors"
        if problem:
            for lay in known:
                self.block_layout(lay, problem)
            return
        first = known[0]
        for lay in known[1:]:
            for (a, _), (b, _) in zip(first, lay):
                if (a is None) != (b is None):
                    self.block_layout(lay if b is not None else first, f"{name} ({kind}) joins them with "
                                                                       "channels weightkit cannot follow")
                elif a is not None:
                    self.spaces.union(a, b)
        out = node.outputs[0]
        self.layout[out] = first
        for space, offset, _ in self.segments(first):
            if space is not None:
                self.uses.append((space, ChannelUse(name, kind, "couple", node.index,
                                                    inputs=[(t, offset) for t in node.inputs], output=(out, offset),
                                                    channels=sum(s for _, s in first))))

    def concatenate(self, node, layer, layouts):
        name, kind = layer.name, type(layer).__name__
        rank = len(self.graph.shape(node.outputs[0]))
        axis = layer.get_config().get("axis", -1)
        known = [lay for lay in layouts if lay is not None]
        if axis not in (-1, rank - 1) or any(t in self.flat for t in node.inputs):
            for lay in known:
                self.block_layout(lay, f"{name} ({kind}) concatenates on axis {axis}, not the channels")
            return
        out_layout, offset = [], 0
        out = node.outputs[0]
        for tid, lay in zip(node.inputs, layouts):
            if lay is None:
                lay = ((None, int(self.graph.shape(tid)[-1])),)
            for space, inner, size in self.segments(lay):
                if space is not None:
                    self.uses.append((space, ChannelUse(name, kind, "concatenate", node.index,
                                                        inputs=[(tid, inner)], output=(out, offset + inner))))
            out_layout.extend(lay)
            offset += sum(s for _, s in lay)
        self.layout[out] = tuple(out_layout)


def channel_groups(graph, readers_of=()):
    """Every channel group of a model's graph, with its member layers and why it may be left alone.

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph
    readers_of : collection of str, default=()
        Layers with no neuron role (recurrent ones) whose output opens a group too, to read off who reads it
        (:func:`weightkit.compress.merge.recurrent_units.follow_readers`); a reader that also takes a mask carries it.

    Returns
    -------
    list of ChannelGroup
        In order of each group's first producer. A group's ``uses`` list every call touching its
        channels with the channel offset of the group in each tensor.

    Examples
    --------
    >>> from weightkit.analysis._tf import import_keras
    >>> from weightkit.analysis.structure.graph import ModelGraph
    >>> keras = import_keras()
    >>> inp = keras.Input((6,))
    >>> a = keras.layers.Dense(4, name="a")(inp)
    >>> b = keras.layers.Dense(4, name="b")(inp)
    >>> out = keras.layers.Dense(2, name="head")(keras.layers.Add()([a, b]))
    >>> [(g.producers, g.n, g.mergeable) for g in channel_groups(ModelGraph(keras.Model(inp, out)))]
    [(['a', 'b'], 4, True), (['head'], 2, False)]
    """
    walk = _Walk(graph, readers_of)
    walk.run()
    spaces = walk.spaces
    groups = {}
    for space, use in walk.uses:
        root = spaces.find(space)
        group = groups.setdefault(root, ChannelGroup(spaces.size[root]))
        group.uses.append(use)
        if use.role == "producer" and use.layer not in group.producers:
            group.producers.append(use.layer)
    for root, group in groups.items():
        group.reason = spaces.reason.get(root)
        group.uses.sort(key=lambda u: (u.node, u.role != "consumer"))
    return list(groups.values())
