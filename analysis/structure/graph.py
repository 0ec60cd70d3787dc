"""The graph of a Keras model as one flat list of layer calls: the only reader of Keras' private graph.

Keras 3 records every symbolic call of a layer as a ``Node`` in ``layer._inbound_nodes``, whatever
graph it was made for. A ``keras.Sequential`` loaded from a file carries leftovers of the graphs it
built while its layers were added ([3, 2, 1] nodes for a three-layer MLP), and a layer reused by
another model carries that model's nodes too. :class:`ModelGraph` reads only the nodes of the
model's own graph (``model._nodes_by_depth``; a Sequential keeps its graph in ``model._functional``)
and unwraps nested Sequential and Functional models, so the rest of weightkit asks it, never the
layers: who produces or reads a tensor, which calls a layer has in this model, what shapes they see.

Tensors of the flat graph are named by integer ids ``0, 1, ...`` in order of creation: the model's
inputs first, then each node's outputs. A nested model's inputs are the outer tensors that feed it
and its outputs are the outer call's outputs, so an id means the same tensor at every level.
"""

import dataclasses

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError

__all__ = ["GraphNode", "ModelGraph"]


class _Ref:
    """Placeholder for a flat tensor inside a node's recorded call arguments."""

    __slots__ = ("tid",)

    def __init__(self, tid):
        self.tid = tid

    def __repr__(self):
        return f"<tensor {self.tid}>"


@dataclasses.dataclass(frozen=True, eq=False)
class GraphNode:
    """One call of a leaf layer in the flat graph.

    Parameters
    ----------
    layer : keras.layers.Layer or keras.Operation
        The layer that was called (a raw ``keras.ops`` call in a functional model appears as its
        ``Operation``). Never a nested model: those are unwrapped.
    inputs : tuple of int
        Flat ids of the tensors the call reads, in the order Keras flattens the call arguments
        (positional arguments first, then keyword arguments by name).
    outputs : tuple of int
        Flat ids of the tensors it returns, flattened (an ``LSTM(return_state=True)`` has 3).
    index : int
        Position of the node in the topological order of :attr:`ModelGraph.nodes`.
    path : tuple of str, default=()
        Names of the nested models the call sits in, outermost first (``("encoder",)``).
    """

    layer: object
    inputs: tuple
    outputs: tuple
    index: int
    path: tuple = ()
    _args: tuple = dataclasses.field(default=(), repr=False)
    _kwargs: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def name(self):
        """str : The layer's name qualified by its path, ``"encoder/dense"``."""
        return "/".join(self.path + (self.layer.name,))

    def arguments(self, positional=()):
        """The call's tensor arguments by name: ``{name: set of flat tensor ids}``.

        Parameters
        ----------
        positional : sequence of str
            Names of the positional arguments in order (``("query", "value", "key")``); ``arg<i>`` beyond them.
            Keyword arguments keep their keyword.
        """
        keras = import_keras()
        named = [(positional[i] if i < len(positional) else f"arg{i}", value) for i, value in enumerate(self._args)]
        found = {}
        for name, value in named + list(self._kwargs.items()):
            ids = {x.tid for x in keras.tree.flatten(value) if isinstance(x, _Ref)}
            if ids:
                found[name] = ids
        return found

    def replay(self, tensors):
        """Call the layer again on new tensors, with the node's other arguments unchanged.

        Parameters
        ----------
        tensors : dict of int to tensor
            A tensor (symbolic or concrete) for every flat id in :attr:`inputs`.

        Returns
        -------
        list of tensor
            The call's outputs, flattened, one per id in :attr:`outputs`.
        """
        keras = import_keras()

        def fill(x):
            return tensors[x.tid] if isinstance(x, _Ref) else x

        args = keras.tree.map_structure(fill, self._args)
        kwargs = keras.tree.map_structure(fill, self._kwargs)
        return keras.tree.flatten(self.layer(*args, **kwargs))


def _graph_of(model):
    """The ``Function`` holding a model's own graph, or None for a model without one."""
    keras = import_keras()
    if isinstance(model, keras.Sequential):
        return model._functional
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    return None


def _ordered_nodes(graph):
    """The nodes of ``graph`` in execution order: by decreasing depth, then as ``graph.operations``."""
    rank = {id(op): i for i, op in enumerate(graph.operations)}
    ordered = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        ordered.extend(sorted(graph._nodes_by_depth[depth],
                              key=lambda n: (rank.get(id(n.operation), -1),
                                             n.operation._inbound_nodes.index(n))))
    return ordered


def _context_of(node):
    """Call-context arguments (``training``) a nested model's call passes to every layer inside."""
    names = getattr(node.operation, "_call_context_args", ())
    return {k: v for k, v in node.arguments.kwargs.items() if k in names and v is not None}


class ModelGraph:
    """The flat graph of a Keras model: its leaf layer calls, nested models unwrapped.

    Built once per model; the model is only read. Works for Functional models and Sequential
    models, built in code or loaded from ``.keras`` / ``.h5``, with nested models at any depth,
    shared layers, several inputs and outputs, and layers returning several tensors.

    Parameters
    ----------
    model : keras.Model
        A Functional or Sequential model (a subclassed model has no graph to read).

    Attributes
    ----------
    model : keras.Model
        The model given.
    nodes : list of GraphNode
        Every leaf layer call, in topological order (``nodes[i].index == i``).
    layers : list of keras.layers.Layer
        Unique leaf layers in order of their first node (no InputLayer, no raw operation).
    input_ids, output_ids : list of int
        Flat ids of the model's inputs and outputs, in the model's order.
    input_names, output_names : list of str
        Their names as Keras reports them.

    Raises
    ------
    WeightkitError
        If the model has no graph that can be read (a subclassed model, an unbuilt Sequential).

    Examples
    --------
    >>> from weightkit.analysis._tf import import_keras
    >>> keras = import_keras()
    >>> inp = keras.Input((4,), name="x")
    >>> dense = keras.layers.Dense(2, name="shared")
    >>> model = keras.Model(inp, keras.layers.Add(name="add")([dense(inp), dense(inp)]))
    >>> graph = ModelGraph(model)
    >>> [node.name for node in graph.nodes]
    ['shared', 'shared', 'add']
    >>> graph.is_shared(dense), graph.output_shapes(dense)
    (True, [[(None, 2)], [(None, 2)]])
    """

    def __init__(self, model):
        graph = _graph_of(model)
        if graph is None:
            raise WeightkitError(_no_graph_message(model))
        self.model = model
        self.nodes = []
        self._tensors = []  # flat id -> the KerasTensor that defined it
        self._nested = []
        self.input_ids = [self._new_tensor(kt) for kt in graph.inputs]
        self.output_ids = list(self._walk(graph, self.input_ids, (), {}))
        self._outputs_struct = graph._outputs_struct
        self._inputs_struct = graph._inputs_struct
        self.input_names = _names(getattr(model, "input_names", None), graph.inputs)
        self.output_names = _names(getattr(model, "output_names", None), graph.outputs)
        self._producer = {}
        self._readers = {}
        self._by_layer = {}
        for node in self.nodes:
            for tid in node.outputs:
                self._producer[tid] = node
            for tid in dict.fromkeys(node.inputs):
                self._readers.setdefault(tid, []).append(node)
            self._by_layer.setdefault(id(node.layer), []).append(node)
        keras = import_keras()
        self.layers = [ns[0].layer for ns in self._by_layer.values()
                       if isinstance(ns[0].layer, keras.layers.Layer)]

    def _new_tensor(self, kt):
        self._tensors.append(kt)
        return len(self._tensors) - 1

    def _walk(self, graph, input_ids, path, context):
        """Append the leaf nodes of ``graph`` fed by ``input_ids``; return its output ids."""
        local = {id(kt): tid for kt, tid in zip(graph.inputs, input_ids)}
        for node in _ordered_nodes(graph):
            if node.is_input:
                continue
            op = node.operation
            ins = tuple(local[id(kt)] for kt in node.arguments.keras_tensors)
            inner = _graph_of(op)
            if inner is not None:
                if len(ins) != len(inner.inputs):
                    raise WeightkitError(
                        f"Nested model '{op.name}' in '{'/'.join(path) or graph.name}' is called with "
                        f"{len(ins)} tensors but has {len(inner.inputs)} inputs; weightkit can only "
                        "unwrap a nested model called on its inputs alone.")
                if op.name not in self._nested:
                    self._nested.append(op.name)
                outs = self._walk(inner, ins, path + (op.name,), {**_context_of(node), **context})
            else:
                outs = tuple(self._new_tensor(kt) for kt in node.outputs)
                self.nodes.append(self._leaf(node, local, ins, outs, path, context))
            local.update((id(kt), tid) for kt, tid in zip(node.outputs, outs))
        return tuple(local[id(kt)] for kt in graph.outputs)

    def _leaf(self, node, local, ins, outs, path, context):
        keras = import_keras()

        def ref(x):
            return _Ref(local[id(x)]) if isinstance(x, keras.KerasTensor) else x

        args = keras.tree.map_structure(ref, node.arguments.args)
        kwargs = dict(keras.tree.map_structure(ref, node.arguments.kwargs))
        names = getattr(node.operation, "_call_context_args", ())
        kwargs.update((k, v) for k, v in context.items() if k in names)
        return GraphNode(node.operation, ins, outs, len(self.nodes), path, args, kwargs)

    def __repr__(self):
        return (f"<ModelGraph of '{self.model.name}': {len(self.nodes)} nodes, "
                f"{len(self.layers)} layers, {len(self.input_ids)} inputs, "
                f"{len(self.output_ids)} outputs>")

    def nodes_of(self, layer):
        """The calls of ``layer`` in this model.

        Parameters
        ----------
        layer : keras.layers.Layer

        Returns
        -------
        list of GraphNode
            In topological order; empty if the layer is not in the model.
        """
        return list(self._by_layer.get(id(layer), ()))

    def is_shared(self, layer):
        """Whether ``layer`` is called more than once in this model."""
        return len(self._by_layer.get(id(layer), ())) > 1

    def readers(self, tensor_id):
        """The nodes that read tensor ``tensor_id`` (each once), in topological order."""
        return list(self._readers.get(tensor_id, ()))

    def producer(self, tensor_id):
        """The node that returns tensor ``tensor_id``, or None for a model input."""
        self._check(tensor_id)
        return self._producer.get(tensor_id)

    def shape(self, tensor_id):
        """Static shape of tensor ``tensor_id``: a tuple with None for unknown dimensions."""
        self._check(tensor_id)
        return tuple(self._tensors[tensor_id].shape)

    def dtype(self, tensor_id):
        """Dtype of tensor ``tensor_id`` as a string (``"float32"``, ``"int32"``)."""
        self._check(tensor_id)
        return self._tensors[tensor_id].dtype

    def input_shapes(self, layer):
        """Shapes read by ``layer``: one list of shapes per node, in :meth:`nodes_of` order."""
        return [[self.shape(t) for t in node.inputs] for node in self.nodes_of(layer)]

    def output_shapes(self, layer):
        """Shapes returned by ``layer``: one list of shapes per node, in :meth:`nodes_of` order."""
        return [[self.shape(t) for t in node.outputs] for node in self.nodes_of(layer)]

    def is_output(self, tensor_id):
        """Whether tensor ``tensor_id`` is one of the model's outputs."""
        return tensor_id in self.output_ids

    def output_layers(self):
        """The leaf layers whose call returns a model output, in output order, each once."""
        found = {}
        for tid in self.output_ids:
            node = self._producer.get(tid)
            if node is not None:
                found.setdefault(id(node.layer), node.layer)
        return list(found.values())

    def nested_models(self):
        """Names of the nested models that were unwrapped, in order of first call."""
        return list(self._nested)

    def flat_model(self, outputs=None):
        """Rebuild the model as one functional model of its leaf layers (weights shared).

        Fresh ``keras.Input`` tensors (same names, shapes and dtypes as the model's) are fed
        through the same layer objects, node by node, with each call's other arguments
        (``training``, keyword tensors, lists) as recorded. Each call adds an inbound node to its
        layer: harmless, since weightkit reads graphs through :class:`ModelGraph` only.

        Parameters
        ----------
        outputs : list of int, default=None
            Flat ids to return instead of the model's outputs (e.g. a layer's outputs at every
            call site, for activation probes).

        Returns
        -------
        flat_model : keras.Model
            Takes the same inputs as the model; returns its outputs in the same structure, or
            the tensors of ``outputs`` as a list.
        tensors : dict of int to KerasTensor
            The new symbolic tensor of every flat id.

        Raises
        ------
        WeightkitError
            If two different layers share a name (possible across nested models), which a
            single functional model cannot hold, or if ``outputs`` names an unknown id.
        """
        keras = import_keras()
        self._check_unique_names()
        tensors = {}
        for tid, name in zip(self.input_ids, self.input_names):
            kt = self._tensors[tid]
            tensors[tid] = keras.Input(batch_shape=kt.shape, dtype=kt.dtype, sparse=kt.sparse, name=name)
        for node in self.nodes:
            tensors.update(zip(node.outputs, node.replay(tensors)))
        pack = keras.tree.pack_sequence_as
        inputs = pack(self._inputs_struct, [tensors[t] for t in self.input_ids])
        if outputs is None:
            result = pack(self._outputs_struct, [tensors[t] for t in self.output_ids])
        else:
            for tid in outputs:
                self._check(tid)
            result = [tensors[t] for t in outputs]
        return keras.Model(inputs, result, name=f"{self.model.name}_flat"), tensors

    def _check(self, tensor_id):
        if not (isinstance(tensor_id, int) and 0 <= tensor_id < len(self._tensors)):
            raise WeightkitError(
                f"Unknown tensor id {tensor_id!r} in the graph of model '{self.model.name}': "
                f"expected an int in [0, {len(self._tensors)}). Take ids from GraphNode.inputs/outputs "
                "or ModelGraph.input_ids/output_ids.")

    def _check_unique_names(self):
        where = {name: f"input '{name}'" for name in self.input_names}
        for calls in self._by_layer.values():
            name, here = calls[0].layer.name, f"layer '{calls[0].name}'"
            if name in where:
                raise WeightkitError(
                    f"Cannot flatten model '{self.model.name}': the name '{name}' is used by "
                    f"{where[name]} and {here}, and one functional model needs unique names. "
                    "Rename one of them in the model and save it again.")
            where[name] = here


def _names(reported, tensors):
    """Keras' names for ``tensors`` when it reports them, else each producing layer's name."""
    if isinstance(reported, (list, tuple)) and len(reported) == len(tensors):
        return [str(n) for n in reported]
    return [kt._keras_history.operation.name if getattr(kt, "_keras_history", None) else kt.name
            for kt in tensors]


def _no_graph_message(model):
    keras = import_keras()
    name = getattr(model, "name", type(model).__name__)
    if isinstance(model, keras.Sequential):
        return (f"Sequential model '{name}' is not built, so it has no graph to read. Start it with "
                "keras.Input(shape=...) or call model.build((None, ...)) before passing it.")
    if isinstance(model, keras.Model):
        return (f"Model '{name}' ({type(model).__name__}) is a subclassed model without a functional "
                "graph, so weightkit cannot see its layers. Wrap it in a functional model: "
                "inp = keras.Input(shape=...); model = keras.Model(inp, sub.call(inp)).")
    return f"Expected a keras.Model (Functional or Sequential). Received: {type(model).__name__}."
