"""Linear chains of a stored model: the plain layer-call records of :mod:`analysis.linear_chains`, from its config.

:func:`stored_nodes` gives the same :class:`~analysis.linear_chains.LayerNode` records as
:func:`analysis.linear_chains.nodes_from_graph` gives for the loaded model's flat graph
(:class:`analysis.graph.ModelGraph`): one per leaf layer call, nested models unwrapped and their
layers named ``"block/dense"``, in execution order (per graph by decreasing depth, then by the
layer's place in the config and the call's index, as Keras orders ``_nodes_by_depth``). The calls
and their inputs come from each layer's ``inbound_nodes`` (Keras 3: ``keras_history`` of each
``__keras_tensor__`` argument; Keras 2: ``[[name, node, tensor, kwargs], ...]``) or, in a
Sequential, from the order of its layers.
"""

from analysis.linear_chains import LayerNode, find_linear_chains
from analysis.stored.layout import is_model, model_entries
from analysis.stored.shapes import output_shape

__all__ = ["stored_linear_chains", "stored_nodes"]


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


def _weight_shapes(model, entry):
    layer = next((item for item in model.layers if item.item is entry), None)
    return () if layer is None else model.weight_shapes(layer)


def stored_nodes(model):
    """The :class:`LayerNode` records of a stored model's flat graph.

    Parameters
    ----------
    model : analysis.stored.StoredModel

    Returns
    -------
    list of LayerNode
        One per leaf layer call, in execution order.
    """
    records = []
    outputs = set()

    def leaf(entry, path, inbound, shape_in, shape_out, ref_count):
        config = entry.get("config") or {}
        class_name = str(entry.get("class_name"))
        module = entry.get("module")
        if isinstance(module, str) and not (module == "keras" or module.startswith("keras.")):
            class_name = f"custom:{class_name}"
        name = "/".join(path + (str(config.get("name")),))
        if shape_out is None and ref_count <= 1:
            shape_out = output_shape(class_name, config, shape_in)
        records.append([name, class_name, config, tuple(inbound), _weight_shapes(model, entry),
                        None if shape_out is None or ref_count > 1 else tuple(shape_out[1:])])
        return name

    def functional(item, path, inputs):
        inner = item.get("config") or {}
        entries = [e for e in model_entries(item) or [] if isinstance(e, dict) and isinstance(e.get("config"), dict)]
        local, shapes = {}, {}
        for ref, name in zip(_refs(inner.get("input_layers")), inputs):
            local[ref] = name
        for entry in entries:
            for call in _calls(entry):
                _shapes(call, shapes)
        output_refs = _refs(inner.get("output_layers"))
        counts = {}
        for entry in entries:
            for call in _calls(entry):
                for ref in _refs(call):
                    counts[ref[:2]] = max(counts.get(ref[:2], 0), ref[2] + 1)
        for ref in output_refs:
            counts[ref[:2]] = max(counts.get(ref[:2], 0), ref[2] + 1)
        for _, entry, k in _ordered_calls(entries, output_refs):
            config = entry["config"]
            name = config.get("name")
            if entry.get("class_name") == "InputLayer":  # its tensor is the graph's input, named above
                continue
            call = _calls(entry)[k]
            refs = _refs(call)
            ins = [local.get(ref) for ref in refs]
            if is_model(entry):
                outs = graph(entry, path + (name,), ins)
                for t, out in enumerate(outs):
                    local[(name, k, t)] = out
                continue
            shape_in = next((shapes.get(ref) for ref in refs if ref in shapes), None)
            flat = leaf(entry, path, ins, shape_in, shapes.get((name, k, 0)), counts.get((name, k), 1))
            for t in range(max(counts.get((name, k), 1), 1)):
                local[(name, k, t)] = flat
        return [local.get(ref) for ref in output_refs]

    def sequential(item, path, inputs):
        entries = [e for e in model_entries(item) or [] if isinstance(e, dict) and isinstance(e.get("config"), dict)]
        current = inputs[0] if inputs else None
        shape = None
        for position, entry in enumerate(entries):
            config = entry["config"]
            if entry.get("class_name") == "InputLayer":
                current = current or config.get("name")
                batch = config.get("batch_shape") or config.get("batch_input_shape")
                shape = tuple(batch) if isinstance(batch, list) else None
                continue
            build = entry.get("build_config") or {}
            if isinstance(build.get("input_shape"), list):
                shape = tuple(build["input_shape"])
            following = next((e.get("build_config", {}).get("input_shape") for e in entries[position + 1:]
                              if isinstance(e.get("build_config"), dict)), None)
            following = tuple(following) if isinstance(following, list) and position + 1 < len(entries) else None
            if is_model(entry):
                current = graph(entry, path + (config.get("name"),), [current])[0]
                shape = following
                continue
            current = leaf(entry, path, [current], shape, following, 1)
            shape = following if following is not None else output_shape(entry.get("class_name"), config, shape)
        return [current]

    def graph(item, path, inputs):
        if item.get("class_name") == "Sequential":
            return sequential(item, path, inputs)
        return functional(item, path, inputs)

    config = model.config
    inner = config.get("config") or {}
    top_inputs = [ref[0] for ref in _refs(inner.get("input_layers"))] if isinstance(inner, dict) else []
    outputs.update(name for name in graph(config, (), top_inputs) if name is not None)
    return [LayerNode(name, class_name, cfg, inbound, weights, shape, name in outputs)
            for name, class_name, cfg, inbound, weights, shape in records]


def stored_linear_chains(model):
    """The linear chains of a stored model (:func:`~analysis.linear_chains.find_linear_chains` over its config)."""
    return find_linear_chains(stored_nodes(model))
