"""Fold the linear chains of a Keras model: each chain becomes one Dense or convolution layer.

:func:`fold_linear` finds the chains (:func:`weightkit.analysis.structure.linear_chains.find_linear_chains`), decides
which to fold (exact ones that do not grow; inexact ones only with ``approximate``; growing ones
only with ``always``), computes each folded layer's weights (:mod:`weightkit.compress.fold.math`) and
rebuilds the model around them: a Sequential stays Sequential, anything else becomes one
functional model of its leaf layers. The unchanged layers are the input model's own objects.
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.inputs import as_inputs, as_model
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.structure.linear_chains import conv_geometry, find_linear_chains, nodes_from_graph, padding_of
from weightkit.compress.fold.math import batchnorm_affine, fold_conv, fold_dense
from weightkit.compress.fold.report import ChainFold, FoldReport

__all__ = ["DEFAULT_SAMPLES", "fold_linear"]

#: Inputs the outputs are compared on.
DEFAULT_SAMPLES = 256


#: Chain steps a kind gives in terms of its own weights, as :mod:`weightkit.compress.fold.math` takes them.
_AS_FOLD_STEP = {"batchnorm": lambda *weights: ("affine", *batchnorm_affine(*weights))}


def _step(layer):
    """The layer's step for :func:`fold_dense` / :func:`fold_conv` (its kind's :meth:`chain_step`)."""
    name, *weights = kind_for(layer).chain_step(layer)
    return _AS_FOLD_STEP[name](*weights) if name in _AS_FOLD_STEP else (name, *weights)


def _role(layer):
    """The layer's part in a linear chain (``weighted``, ``affine``, ``pass``...), from its kind."""
    return kind_for(layer).chain_role(layer.get_config())


def _folded_layer(chain, layers):
    """A new, unbuilt layer for ``chain`` and the weights to give it once built."""
    members = [layer for layer in layers if _role(layer) in ("weighted", "affine")]
    weighted = [layer for layer in members if _role(layer) == "weighted"]
    steps = [_step(layer) for layer in members]
    last = weighted[-1]
    config = dict(last.get_config(), name=layers[-1].name)
    if _role(layers[-1]) != "weighted":
        config["activation"] = "linear"
    if chain.kind == "dense":
        kernel, bias = fold_dense(steps)
    else:
        kernel_size, strides, dilation, _ = conv_geometry([layer.get_config() for layer in weighted])
        kernel, bias = fold_conv(steps, dilation)
        config.update(kernel_size=kernel_size, strides=strides, dilation_rate=dilation,
                      padding=padding_of(weighted[0].get_config()) if chain.exact else "same")
    config["use_bias"] = bias is not None
    for key in ("kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint"):
        config[key] = None
    return type(last).from_config(config), [kernel] + ([] if bias is None else [bias])


def _decide(chain, approximate, always):
    """None to fold ``chain``, or why it is left alone."""
    if not chain.exact and not (approximate and chain.approximable):
        return chain.reason + ("" if not chain.approximable else "; pass --approximate to fold it anyway")
    if chain.grows and not always:
        return (f"folding would grow it from {chain.params_before:,} to {chain.params_after:,} parameters; "
                "pass --always to fold it anyway")
    return None


def _rebuild(model, graph, replace):
    """The model with each chain's nodes replaced: ``replace`` maps a chain's last node index to
    ``(first node, new layer)``; the other members' indices map to None."""
    keras = import_keras()
    if isinstance(model, keras.Sequential) and not graph.nested_models():
        layers = []
        for node in graph.nodes:
            if node.index in replace:
                if replace[node.index] is not None:
                    layers.append(replace[node.index][1])
            else:
                layers.append(node.layer)
        tid = graph.input_ids[0]
        start = keras.Input(batch_shape=graph.shape(tid), dtype=graph.dtype(tid), name=graph.input_names[0])
        return keras.Sequential([start, *layers], name=model.name)
    tensors, inputs = {}, []
    for tid, name in zip(graph.input_ids, graph.input_names):
        tensors[tid] = keras.Input(batch_shape=graph.shape(tid), dtype=graph.dtype(tid), name=name)
        inputs.append(tensors[tid])
    for node in graph.nodes:
        if node.index in replace:
            if replace[node.index] is not None:
                first, layer = replace[node.index]
                tensors[node.outputs[0]] = layer(tensors[first.inputs[0]])
            continue
        tensors.update(zip(node.outputs, node.replay(tensors)))
    outputs = [tensors[tid] for tid in graph.output_ids]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                       name=model.name)


def _probe_inputs(graph, data, model, samples, seed):
    """Inputs to compare the models on: ``data``'s (first ``samples``), or seeded random ones."""
    if data is not None:
        x, source = as_inputs(data, model)
        x = [a[:samples] for a in x] if isinstance(x, list) else x[:samples]
        return x, source or "the given inputs"
    rng = np.random.default_rng(seed)
    arrays = []
    for tid in graph.input_ids:
        shape = tuple(8 if d is None else int(d) for d in graph.shape(tid)[1:])
        if "int" in str(graph.dtype(tid)):
            arrays.append(rng.integers(0, 2, size=(samples, *shape)).astype(graph.dtype(tid)))
        else:
            arrays.append(rng.normal(size=(samples, *shape)).astype("float32"))
    return (arrays if len(arrays) > 1 else arrays[0]), f"{samples} seeded standard-normal inputs"


def _max_difference(model, folded, x):
    keras = import_keras()

    arrays = x if isinstance(x, list) else [x]
    n = len(arrays[0])

    def run(m):  # eager calls in batches of 64: no tracing, which costs more than the call on small models
        parts = []
        for start in range(0, n, 64):
            batch = [a[start:start + 64] for a in arrays]
            out = m(batch if len(batch) > 1 else batch[0], training=False)
            parts.append([keras.ops.convert_to_numpy(t).astype(np.float64) for t in keras.tree.flatten(out)])
        return [np.concatenate(column) for column in zip(*parts)]

    before, after = run(model), run(folded)
    diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(before, after))
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in before)
    return diff, scale


def fold_linear(model, *, approximate=False, always=False, data=None, samples=DEFAULT_SAMPLES, seed=0,
                unsafe=False):
    """Replace each linear chain of a model by the one layer it computes.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        A path is loaded in safe mode (unless ``unsafe``).
    approximate : bool, default=False
        Also fold chains whose fold is not exact but close ('same'-padded convolution chains:
        the outputs near the borders change); the report gives the output error.
    always : bool, default=False
        Also fold chains whose folded layer holds more weights than the chain.
    data : Dataset, ndarray, str or os.PathLike, default=None
        Inputs to compare the outputs on (see :func:`weightkit.analysis.data.inputs.as_inputs`); seeded
        standard-normal inputs when None.
    samples : int, default=256
    seed : int, default=0
    unsafe : bool, default=False

    Returns
    -------
    folded : keras.Model
        The model with its chains folded (the input model when nothing was folded).
    report : FoldReport
        Every chain, folded or left alone with the reason; parameters; the output difference.

    Examples
    --------
    >>> folded, report = fold_linear("model.keras")   # doctest: +SKIP
    >>> report.max_abs_difference < 1e-5               # doctest: +SKIP
    True
    """
    loaded = as_model(model, unsafe=unsafe)
    model = loaded.model
    graph = ModelGraph(model)
    chains = find_linear_chains(nodes_from_graph(graph))
    by_name = {node.name: node for node in graph.nodes}
    replace, pending, folds = {}, [], []
    for chain in chains:
        why = _decide(chain, approximate, always)
        folds.append(ChainFold(chain, folded=why is None, why_not=why))
        if why is not None:
            continue
        nodes = [by_name[name] for name in chain.layers]
        layer, weights = _folded_layer(chain, [node.layer for node in nodes])
        for node in nodes[:-1]:
            replace[node.index] = None
        replace[nodes[-1].index] = (nodes[0], layer)
        pending.append((layer, weights))
    report = FoldReport(model=model.name, chains=folds, params_before=int(model.count_params()),
                        notes=list(loaded.notes))
    if not pending:
        report.params_after = report.params_before
        return model, report
    folded = _rebuild(model, graph, replace)
    for layer, weights in pending:
        layer.set_weights(weights)
    report.params_after = int(folded.count_params())
    x, report.inputs = _probe_inputs(graph, data, model, samples, seed)
    report.max_abs_difference, report.output_scale = _max_difference(model, folded, x)
    return folded, report
