"""Linear chains: weighted layers with no nonlinearity between them, which compute one linear map.

Without an activation between them, ``Dense(W1, b1)`` then ``Dense(W2, b2)`` is one layer:
``x @ (W1 @ W2) + (b1 @ W2 + b2)``; two valid-padded convolutions are one convolution whose kernel
is the two kernels composed. This module *finds* such chains; :mod:`weightkit.compress.fold` folds them.

The search is a pure function of a list of plain :class:`LayerNode` records (class name, config,
inbound names, weight shapes): no Keras object is needed, so the same nodes can be built from a
model's saved ``config.json`` as from a live model (:func:`nodes_from_graph`).

What counts as linear between two weighted layers:

- BatchNormalization over the last axis (a per-channel scale and shift: folded into its neighbour);
- Dropout and the other layers that are the identity at inference (GaussianNoise, ...);
- ``Activation("linear")``;
- Flatten and Reshape that leave the shape as it is (anything else would mix positions and channels).

A chain is a single path: each intermediate output is read by the next member alone and is not a
model output, and no member is a layer called at several places.
"""

import math
from dataclasses import dataclass

from weightkit.analysis.kinds.registry import kind_named

__all__ = [
    "LayerNode",
    "LinearChain",
    "conv_geometry",
    "find_linear_chains",
    "model_linear_chains",
    "nodes_from_graph",
    "padding_of",
]


def _family(node):
    """The family a weighted chain member shares with the others (``dense``, ``conv2d``: its kind's
    ``chain_family``), or None for a node that is no weighted member."""
    kind = kind_named(node.class_name)
    return None if kind is None else kind.chain_family


SAME_PADDING = ("'same' padding in {layer}: it pads {previous}'s output with zeros, where one folded "
                "convolution would pad the chain's input, so the outputs near the borders differ")
MIXED_PADDING = ("'same' and 'valid' padding mixed: the folded convolution would need a padding Keras "
                 "cannot express; not folded even with --approximate")
NOT_APPROXIMABLE = ("'same' padding with strides or even kernel sizes: no single 'same' convolution "
                    "reproduces it even approximately")


@dataclass(frozen=True)
class LayerNode:
    """One layer call, as plain data: what :func:`find_linear_chains` reads.

    Parameters
    ----------
    name : str
        Unique per layer (``"dense_1"``, ``"encoder/dense"``). Two nodes with the same name are
        one layer called twice (shared): such a layer is never part of a chain.
    class_name : str
        The Keras class name (``"Dense"``); anything not a Keras class stops a chain.
    config : dict
        The layer's config (``layer.get_config()``, or ``config`` in a saved ``config.json``).
    inbound : tuple of str
        Names of the nodes whose outputs it reads (a model input's name for an input).
    weight_shapes : tuple of tuple of int
        Shapes of its weights, in the layer's order (Dense: kernel ``(fan_in, units)``, bias).
    output_shape : tuple or None, default=None
        Its output shape without the batch axis (None dimensions allowed); None when unknown.
        Only Flatten and Reshape need it (with their input's).
    is_output : bool, default=False
        Whether its output is a model output (then it must end any chain it is in).
    """

    name: str
    class_name: str
    config: dict
    inbound: tuple
    weight_shapes: tuple = ()
    output_shape: tuple = None
    is_output: bool = False

    @property
    def params(self):
        """int : Number of weight values."""
        return int(sum(math.prod(shape) for shape in self.weight_shapes))


@dataclass
class LinearChain:
    """A run of layers that computes one linear map (the last weighted layer's activation aside).

    Attributes
    ----------
    layers : list of str
        Member names, in order (weighted layers, BatchNormalization, dropout... in between).
    kind : {"dense", "conv1d", "conv2d", "conv3d"}
    params_before : int
        Weights of all members (BatchNormalization's moving statistics included).
    params_after : int
        Weights of the one layer that replaces them.
    exact : bool
        Whether the folded layer computes the same outputs (up to rounding).
    reason : str or None
        Why not, when ``exact`` is False.
    approximable : bool
        Whether ``--approximate`` may fold an inexact chain.
    """

    layers: list
    kind: str
    params_before: int
    params_after: int
    exact: bool = True
    reason: str = None
    approximable: bool = False

    @property
    def grows(self):
        """bool : Whether the folded layer would hold more weights than the chain."""
        return self.params_after > self.params_before

    def sentence(self):
        """The chain in one sentence: ``these 3 layers compute one linear map; folded: N parameters instead of M``."""
        text = (f"these {len(self.layers)} layers compute one linear map ({' → '.join(self.layers)}); "
                f"folded: {self.params_after:,} parameters instead of {self.params_before:,}")
        if self.grows:
            text += " (folding would grow it)"
        if not self.exact:
            text += f"; not exact: {self.reason}"
        return text

    def to_dict(self):
        return {"layers": list(self.layers), "kind": self.kind, "params_before": int(self.params_before),
                "params_after": int(self.params_after), "grows": self.grows, "exact": bool(self.exact),
                "reason": self.reason, "approximable": bool(self.approximable)}


def _as_tuple(value, rank):
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def _is_linear(config):
    return config.get("activation") in (None, "linear")


def _bn_ok(node):
    axis = node.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis == -1:
        return True
    return node.output_shape is not None and isinstance(axis, int) and axis == len(node.output_shape)


def _role(node, by_name):
    """``weighted``, ``affine``, ``pass`` or None for a node outside any chain."""
    kind = kind_named(node.class_name)
    if len(node.inbound) != 1 or kind is None:
        return None
    role = kind.chain_role(node.config)
    if role == "weighted":  # a Dense or a convolution of a plain layout, no groups
        return "weighted" if kind.chain_member_ok(node.config, node.weight_shapes) else None
    if role == "affine":
        return "affine" if _bn_ok(node) else None
    if role == "pass":
        return "pass"
    if role == "reshape":
        source = by_name.get(node.inbound[0])
        same = (source is not None and source.output_shape is not None and node.output_shape is not None
                and tuple(source.output_shape) == tuple(node.output_shape))
        return "pass" if same else None
    return None


def conv_geometry(configs):
    """Kernel size, strides and dilation of the one convolution a chain of convolutions folds into.

    Convolution ``l`` reads its input at offsets ``(s_1 ··· s_{l-1}) d_l i`` per axis, so the
    folded kernel spans ``1 + Σ_l (s_1 ··· s_{l-1}) d_l (k_l − 1)`` input positions with strides
    ``s_1 ··· s_L``. With all strides 1 every offset is a multiple of ``g = gcd(d_l)``, and the
    folded convolution keeps dilation ``g`` (Keras allows strides or dilation above 1, not both).

    Parameters
    ----------
    configs : list of dict
        The convolutions' configs, in chain order (``kernel_size``, ``strides``, ``dilation_rate``).

    Returns
    -------
    kernel_size, strides, dilation : tuple of int
        One entry per spatial axis; ``kernel_size`` is in taps of the dilated kernel.
    span : tuple of int
        Input positions the folded kernel covers per axis (``dilation * (kernel_size - 1) + 1``).
    """
    rank = len(_as_tuple(configs[0]["kernel_size"], 1))
    span, stride, steps = [1] * rank, [1] * rank, [[] for _ in range(rank)]
    for config in configs:
        kernel = _as_tuple(config["kernel_size"], rank)
        strides = _as_tuple(config.get("strides", 1), rank)
        dilation = _as_tuple(config.get("dilation_rate", 1), rank)
        for axis in range(rank):
            step = stride[axis] * dilation[axis]
            span[axis] += step * (kernel[axis] - 1)
            steps[axis].append(step)
            stride[axis] *= strides[axis]
    dilation = tuple(math.gcd(*s) if stride[a] == 1 else 1 for a, s in enumerate(steps))
    kernel_size = tuple((span[a] - 1) // dilation[a] + 1 for a in range(rank))
    return kernel_size, tuple(stride), dilation, tuple(span)


def _folded_params(members):
    """Weights of the layer that replaces ``members`` (weighted and affine nodes in order)."""
    weighted = [m for m in members if _family(m)]
    first, last = weighted[0].weight_shapes[0], weighted[-1].weight_shapes[0]
    bias = any(len(m.weight_shapes) > 1 for m in weighted) or len(weighted) < len(members)
    return kind_named(weighted[0].class_name).chain_params([m.config for m in weighted], first, last[-1], bias)


def padding_of(config):
    """A convolution's padding as it acts: ``'same'`` with one-tap kernels pads nothing, so it is ``'valid'``."""
    padding = config.get("padding", "valid")
    if padding == "same" and all(k == 1 for k in _as_tuple(config["kernel_size"], 1)):
        return "valid"
    return padding


def _exactness(members, chain_family):
    """``(exact, reason, approximable)`` of a chain of weighted and affine members.

    Exact: every convolution after the first pads nothing (valid, or one-tap kernels), and a
    'same'-padded first one is neither preceded by a BatchNormalization (its padded zeros would be
    shifted) nor followed by a convolution that widens the kernel.
    """
    convs = [m for m in members if _family(m)]
    if not kind_named(convs[0].class_name).spatial:  # Dense: nothing pads
        return True, None, False
    rank = len(_as_tuple(convs[0].config["kernel_size"], 1))
    approximable = all(c.config.get("padding", "valid") == "same"
                       and _as_tuple(c.config.get("strides", 1), rank) == (1,) * rank
                       and all(k % 2 == 1 for k in _as_tuple(c.config["kernel_size"], rank)) for c in convs)
    for index, member in enumerate(members):
        if _family(member) and index > 0 and padding_of(member.config) == "same":
            reason = SAME_PADDING.format(layer=member.name, previous=members[index - 1].name)
            if approximable:
                return False, reason, True
            mixed = len({padding_of(c.config) for c in convs}) > 1
            return False, f"{reason}; {MIXED_PADDING if mixed else NOT_APPROXIMABLE}", False
    if padding_of(convs[0].config) == "same" and any(any(k > 1 for k in _as_tuple(c.config["kernel_size"], rank))
                                                     for c in convs[1:]):
        return False, f"'same' padding in {convs[0].name} followed by wider kernels; {MIXED_PADDING}", False
    return True, None, False


def _walk(start, role, readers, family):
    """The path of members from ``start``: extended while its output goes to one linear member."""
    path, current = [start], start
    while True:
        if role[current.name] == "weighted" and not _is_linear(current.config):
            break
        if current.is_output or len(readers.get(current.name, ())) != 1:
            break
        following = readers[current.name][0]
        kind = role.get(following.name)
        if kind is None or following.inbound != (current.name,):
            break
        if kind == "weighted" and family[0] is not None and _family(following) != family[0]:
            break
        if kind == "weighted":
            family[0] = _family(following)
        path.append(following)
        current = following
    while path and role[path[-1].name] == "pass":
        path.pop()
    return path


def find_linear_chains(nodes):
    """The linear chains of a model, from its layer calls as plain records.

    Parameters
    ----------
    nodes : sequence of LayerNode
        Every layer call of the model, in topological order.

    Returns
    -------
    list of LinearChain
        In model order. Each holds at least one Dense or convolution and at least two layers
        with weights (a Dense and a BatchNormalization count: the BN folds into it).

    Examples
    --------
    >>> nodes = [LayerNode("a", "Dense", {"activation": None}, ("x",), ((4, 8), (8,))),
    ...          LayerNode("b", "Dense", {"activation": "relu"}, ("a",), ((8, 2), (2,)))]
    >>> [chain.to_dict()["params_after"] for chain in find_linear_chains(nodes)]
    [10]
    """
    counts = {}
    for node in nodes:
        counts[node.name] = counts.get(node.name, 0) + 1
    by_name = {node.name: node for node in nodes}
    role = {}
    for node in nodes:
        kind = _role(node, by_name) if counts[node.name] == 1 else None
        if kind is not None:
            role[node.name] = kind
    readers = {}
    for node in nodes:
        for name in dict.fromkeys(node.inbound):
            readers.setdefault(name, []).append(node)
    chains, used = [], set()
    for node in nodes:
        if node.name in used or role.get(node.name) not in ("weighted", "affine"):
            continue
        family = [_family(node)]
        path = _walk(node, role, readers, family)
        members = [m for m in path if role[m.name] != "pass"]
        if family[0] is None or len(members) < 2:
            continue
        used.update(m.name for m in path)
        exact, reason, approximable = _exactness(members, family[0])
        chains.append(LinearChain([m.name for m in path], family[0], sum(m.params for m in path),
                                  _folded_params(members), exact, reason, approximable))
    return chains


def nodes_from_graph(graph):
    """The :class:`LayerNode` records of a live model's graph.

    Parameters
    ----------
    graph : weightkit.analysis.structure.graph.ModelGraph

    Returns
    -------
    list of LayerNode
        One per layer call, in topological order; a raw ``keras.ops`` call gets its operation's
        class name (not a Keras layer class, so it stops any chain).
    """
    from weightkit.analysis._tf import import_keras

    keras = import_keras()
    names = {tid: name for tid, name in zip(graph.input_ids, graph.input_names)}
    for node in graph.nodes:
        for tid in node.outputs:
            names[tid] = node.name
    records = []
    for node in graph.nodes:
        layer = node.layer
        class_name = type(layer).__name__
        if getattr(keras.layers, class_name, None) is not type(layer):
            class_name = f"custom:{class_name}"
        try:
            config = layer.get_config()
        except (NotImplementedError, TypeError, AttributeError):
            config = {}
        shape = graph.shape(node.outputs[0])[1:] if len(node.outputs) == 1 else None
        records.append(LayerNode(node.name, class_name, config, tuple(names[t] for t in node.inputs),
                                 tuple(tuple(int(d) for d in w.shape) for w in getattr(layer, "weights", ())),
                                 shape, any(graph.is_output(t) for t in node.outputs)))
    return records


def model_linear_chains(model):
    """The linear chains of a live Keras model (:func:`find_linear_chains` over its graph).

    Returns
    -------
    list of LinearChain
        Empty for a model without a readable graph (a subclassed model).
    """
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.structure.graph import ModelGraph

    try:
        graph = ModelGraph(model)
    except WeightkitError:
        return []
    return find_linear_chains(nodes_from_graph(graph))
