"""Linear chains of a stored model: the plain layer-call records of :mod:`weightkit.analysis.structure.linear_chains`, from its config.

:func:`stored_nodes` gives the same :class:`~weightkit.analysis.structure.linear_chains.LayerNode` records as
:func:`weightkit.analysis.structure.linear_chains.nodes_from_graph` gives for the loaded model's flat graph
(:class:`weightkit.analysis.structure.graph.ModelGraph`): one per leaf layer call, nested models unwrapped and their
layers named ``"block/dense"``, in execution order (per graph by decreasing depth, then by the
layer's place in the config and the call's index, as Keras orders a functional graph by node depth). The calls
and their inputs come from each layer's ``inbound_nodes`` (Keras 3: ``keras_history`` of each
``__keras_tensor__`` argument; Keras 2: ``[[name, node, tensor, kwargs], ...]``) or, in a
Sequential, from the order of its layers.
"""

from dataclasses import dataclass

from weightkit.analysis.structure.linear_chains import LayerNode, find_linear_chains
from weightkit.analysis.files.stored.layout import is_model, model_entries
from weightkit.analysis.files.stored.shapes import output_shape

__all__ = ["Call", "stored_linear_chains", "stored_nodes", "walk_calls"]

_FUNCTIONAL = ("Functional", "Model")  # the classes Keras writes with a construction node of their own


def _refs(value):
    """``(layer, node, tensor)`` of every tensor an argument structure refers to, in Keras' flattening order."""
    found = []

    def visit(item):
        if isinstance(item, dict):
            if item.get("class_name") == "__keras_tensor__":
                history = (item.get("config") or {}).get("keras_history")
                if isinstance(history, list) and len(history) >= 3:
                    found.append((history[0], history[1], history[2]))
                return
            for key in (item.keys() if "args" not in item else ("args", "kwargs")):
                visit(item.get(key))
        elif isinstance(item, (list, tuple)):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int) and isinstance(item[2], int):
                found.append((item[0], item[1], item[2]))  # Keras 2: [name, node, tensor, kwargs]
                return
            for element in item:
                visit(element)

    visit(value)
    return found


def _shapes(value, into):
    """Record the shape of every serialized tensor under ``value`` by its ``keras_history``."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = value.get("config") or {}
            history, shape = config.get("keras_history"), config.get("shape")
            if isinstance(history, list) and len(history) >= 3 and isinstance(shape, list):
                into[tuple(history[:3])] = tuple(shape)
            return
        for item in value.values():
            _shapes(item, into)
    elif isinstance(value, list):
        for item in value:
            _shapes(item, into)


def _calls(entry):
    """The inbound node list of a serialized layer (each: its argument structure)."""
    nodes = entry.get("inbound_nodes")
    return nodes if isinstance(nodes, list) else []


def _graph_refs(refs, entries):
    """``refs`` of a model's ``input_layers``/``output_layers`` as indices into each layer's ``inbound_nodes``.

    Keras counts a nested Functional model's own construction node there (its first call is node 1), but not
    in the ``inbound_nodes`` it writes; this shifts such references back by one.
    """
    functional = {entry["config"].get("name") for entry in entries if entry.get("class_name") in _FUNCTIONAL}
    return [(name, node - 1, tensor) if name in functional and node > 0 else (name, node, tensor)
            for name, node, tensor in refs]


def _ordered_calls(entries, outputs):
    """``(position, entry, node index)`` of a Functional graph's calls in Keras' execution order."""
    index = {entry["config"].get("name"): i for i, entry in enumerate(entries)}
    parents = {}
    for i, entry in enumerate(entries):
        for k, call in enumerate(_calls(entry)):
            parents[(i, k)] = [(index[name], node) for name, node, _ in _refs(call) if name in index]
    order, seen = [], set()

    def visit(node):  # depth-first from the outputs: every node after its parents
        if node in seen:
            return
        seen.add(node)
        for parent in parents.get(node, []):
            visit(parent)
        order.append(node)

    for name, node, _ in outputs:
        if name in index:
            visit((index[name], node))
    depth, layer_depth = {}, {}
    for node in reversed(order):
        value = max(depth.setdefault(node, 0), layer_depth.get(node[0], 0))
        layer_depth[node[0]] = depth[node] = value
        for parent in parents.get(node, []):
            depth[parent] = max(value + 1, depth.get(parent, 0))
    calls = sorted(depth, key=lambda node: (-depth[node], node[0], node[1]))
    return [(i, entries[i], k) for i, k in calls]


@dataclass
class Call:
    """One leaf layer call of a stored model's flat graph.

    Attributes
    ----------
    name : str
        ``"block/dense"``: the layer's name qualified by the nested models it sits in.
    entry : dict
        The layer's serialized entry.
    inbound : tuple of str
        Names of the calls (or model inputs) whose outputs it reads.
    input_shape, output_shape : tuple or None
        Of its first input and its (first) output, batch axis included; None when unknown.
    outputs : int
        How many tensors it returns (as far as the graph reads them).
    """

    name: str
    entry: dict
    inbound: tuple
    input_shape: tuple
    output_shape: tuple
    outputs: int = 1


def _batch_shape(config):
    batch = config.get("batch_shape") or config.get("batch_input_shape")
    return tuple(batch) if isinstance(batch, list) else None


def walk_calls(config):
    """Every leaf layer call of a model configuration, in execution order, and the model's output names.

    Shapes come from Keras 3's serialized tensors and ``build_config`` where the file has them,
    and are otherwise propagated from the inputs' batch shapes with
    :func:`weightkit.analysis.files.stored.shapes.output_shape`.

    Returns
    -------
    calls : list of Call
    outputs : set of str
    """
    calls = []

    def leaf(entry, path, ins, shape_in, shape_out, count):
        name = "/".join(path + (str(entry["config"].get("name")),))
        if shape_out is None:
            shape_out = output_shape(str(entry.get("class_name")), entry["config"], shape_in)
        calls.append(Call(name, entry, tuple(n for n, _ in ins), shape_in, shape_out, count))
        return name, shape_out

    def functional(item, path, inputs):
        inner = item.get("config") or {}
        entries = [e for e in model_entries(item) or [] if isinstance(e, dict) and isinstance(e.get("config"), dict)]
        local, shapes = {}, {}
        for entry in entries:
            for call in _calls(entry):
                _shapes(call, shapes)
            if entry.get("class_name") == "InputLayer":
                local[(entry["config"].get("name"), 0, 0)] = (entry["config"].get("name"),
                                                              _batch_shape(entry["config"]))
        for ref, given in zip(_refs(inner.get("input_layers")), inputs):
            local[ref] = (given[0], given[1] if given[1] is not None else local.get(ref, (None, None))[1])
        output_refs = _graph_refs(_refs(inner.get("output_layers")), entries)
        counts = {}
        for ref in [r for entry in entries for call in _calls(entry) for r in _refs(call)] + output_refs:
            counts[ref[:2]] = max(counts.get(ref[:2], 0), ref[2] + 1)
        for _, entry, k in _ordered_calls(entries, output_refs):
            name = entry["config"].get("name")
            if entry.get("class_name") == "InputLayer":  # its tensor is the graph's input, set above
                continue
            refs = _refs(_calls(entry)[k])
            ins = [local.get(ref, (None, shapes.get(ref))) for ref in refs]
            ins = [(n, shapes.get(ref, shape)) for ref, (n, shape) in zip(refs, ins)]
            if is_model(entry):
                for t, out in enumerate(graph(entry, path + (name,), ins)):
                    local[(name, k, t)] = out
                continue
            count = counts.get((name, k), 1)
            flat, shape_out = leaf(entry, path, ins, ins[0][1] if ins else None, shapes.get((name, k, 0)), count)
            for t in range(max(count, 1)):
                local[(name, k, t)] = (flat, shape_out if t == 0 else shapes.get((name, k, t)))
        return [local.get(ref, (None, None)) for ref in output_refs]

    def sequential(item, path, inputs):
        entries = [e for e in model_entries(item) or [] if isinstance(e, dict) and isinstance(e.get("config"), dict)]
        current, shape = inputs[0] if inputs else (None, None)
        for position, entry in enumerate(entries):
            config = entry["config"]
            if entry.get("class_name") == "InputLayer":
                current = current or config.get("name")
                shape = shape or _batch_shape(config)
                continue
            build = entry.get("build_config") or {}
            if isinstance(build.get("input_shape"), list):
                shape = tuple(build["input_shape"])
            following = None
            if position + 1 < len(entries):
                following = (entries[position + 1].get("build_config") or {}).get("input_shape")
            following = tuple(following) if isinstance(following, list) else None
            if is_model(entry):
                current, shape = graph(entry, path + (config.get("name"),), [(current, shape)])[0]
                shape = following or shape
                continue
            current, shape = leaf(entry, path, [(current, shape)], shape, following, 1)
        return [(current, shape)]

    def graph(item, path, inputs):
        if item.get("class_name") == "Sequential":
            return sequential(item, path, inputs)
        return functional(item, path, inputs)

    inner = config.get("config") or {}
    top_inputs = [(ref[0], None) for ref in _refs(inner.get("input_layers"))] if isinstance(inner, dict) else []
    outputs = {name for name, _ in graph(config, (), top_inputs) if name is not None}
    return calls, outputs


def stored_nodes(model):
    """The :class:`LayerNode` records of a stored model's flat graph.

    Parameters
    ----------
    model : weightkit.analysis.files.stored.StoredModel

    Returns
    -------
    list of LayerNode
        One per leaf layer call, in execution order.
    """
    calls, outputs = walk_calls(model.config)
    by_entry = {id(layer.item): layer for layer in model.layers}
    records = []
    for call in calls:
        entry = call.entry
        class_name = str(entry.get("class_name"))
        module = entry.get("module")
        if isinstance(module, str) and not (module == "keras" or module.startswith("keras.")):
            class_name = f"custom:{class_name}"
        layer = by_entry.get(id(entry))
        weights = () if layer is None else model.weight_shapes(layer)
        shape = None if call.output_shape is None or call.outputs > 1 else tuple(call.output_shape[1:])
        records.append(LayerNode(call.name, class_name, entry["config"], call.inbound, weights, shape,
                                 call.name in outputs))
    return records


def stored_linear_chains(model):
    """The linear chains of a stored model (:func:`~weightkit.analysis.structure.linear_chains.find_linear_chains` over its config)."""
    return find_linear_chains(stored_nodes(model))
