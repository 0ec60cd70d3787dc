"""Apply merges to a model's weights and rebuild it with smaller layers.

:class:`WeightState` holds every layer's weights as numpy arrays, with the channel cuts still to make;
:func:`weightkit.compress.merge.applying.apply_group.apply_group` folds a merge into it; :func:`rebuild_model`
clones the model with the new ``units``/``filters`` (Keras recomputes every downstream shape) and sets
the weights. The input model is never modified.
"""

import numpy as np

from weightkit.analysis._tf import import_keras, recreating_loaded_layers
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.base import LayerKind
from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.files.loading import walk_layers
from weightkit.compress.merge.applying.folding import cut_channels

__all__ = ["WeightState", "batchnorm_affine", "effective_rows", "find_layer", "rebuild_model",
           "weight_keys"]


class WeightState:
    """The weights of every layer of a model, by layer and variable name, as numpy arrays.

    Parameters
    ----------
    model : keras.Model
    """

    def __init__(self, model):
        self.arrays = {}
        self.resized = {}  # producer name -> new units / filters
        self.added_bias = set()  # consumers that get a bias they did not have
        self.untouched = {}  # layers whose variables share a name: copied as they are
        self.cuts = {}  # (layer, variable, axis) -> (width, set of indices): deleted when rebuilding
        self.layers = {}  # name -> the original layer (its kind says which arrays fold and cut)
        self.reconfigured = {}  # name -> config_change(config, layer) -> config, beyond ``resized``
        self.replaced = {}  # name -> make(layer) -> a layer of another class in its place (a sliced stream's norms)
        for layer in walk_layers(model):
            self.layers[layer.name] = layer
            names = weight_keys(layer)
            if names and len(set(names)) == len(names):
                self.arrays[layer.name] = dict(zip(names, layer.get_weights()))
            elif names:
                self.untouched[layer.name] = layer.get_weights()

    def get(self, layer, name, default=None):
        return self.arrays.get(layer, {}).get(name, default)

    def cut(self, layer, name, axis, width, indices):
        """Delete ``indices`` of a variable's axis when rebuilding (coupled groups fold first, cut last).

        ``width`` is the channel count on that axis; an axis holding ``positions · width`` entries
        (a Dense after a Flatten, channels fastest) loses the indices at every position.
        """
        entry = self.cuts.setdefault((layer, name, axis), (int(width), set()))
        entry[1].update(int(i) for i in indices)

    def apply_cuts(self):
        """Carry out the pending :meth:`cut` deletions (once)."""
        for (layer, name, axis), (width, indices) in self.cuts.items():
            if name not in self.arrays[layer]:
                continue  # a bias that no fold gave the layer
            self.arrays[layer][name] = cut_channels(self.arrays[layer][name], axis, width, indices)
        self.cuts = {}


def weight_keys(layer):
    """The keys of a layer's weight arrays, in ``layer.weights`` order: variable names, a Bidirectional
    layer's prefixed by its half (``forward/kernel``, ``backward/recurrent_kernel``)."""
    kind = kind_for(layer)
    return [variable.name for variable in layer.weights] if kind is None else kind.weight_keys(layer)


def find_layer(model, name):
    """The layer (or nested model) called ``name`` anywhere in ``model`` (``get_layer`` sees the top only)."""
    keras = import_keras()
    pending = list(model.layers)
    while pending:
        layer = pending.pop(0)
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            pending.extend(layer.layers)
    raise ValueError(f"No layer named {name!r} in model {model.name!r} or its nested models.")


def batchnorm_affine(state, layer, keras_layer):
    """A BatchNormalization's inference map as ``(scale, offset)``, each of shape (n_channels,)."""
    weights = state.arrays[layer]
    mean = weights["moving_mean"].astype(np.float64)
    variance = weights["moving_variance"].astype(np.float64)
    gamma = weights.get("gamma", np.ones_like(mean)).astype(np.float64)
    beta = weights.get("beta", np.zeros_like(mean)).astype(np.float64)
    epsilon = getattr(keras_layer, "layer", keras_layer).epsilon  # a TimeDistributed(BatchNormalization) too
    scale = gamma / np.sqrt(variance + float(epsilon))
    return scale, beta - mean * scale


def effective_rows(state, site, model):
    """The producer's rows with the bias as last column, leading BatchNormalizations folded in.

    Returns
    -------
    rows : ndarray of shape (n_neurons, fan_in + 1), float64
    """
    kernel = state.get(site.layer, "kernel")
    n = kernel.shape[-1]
    rows = kernel.reshape(-1, n).T.astype(np.float64)
    bias = state.get(site.layer, "bias")
    bias = np.zeros(n) if bias is None else bias.astype(np.float64)
    rows = np.concatenate([rows, bias[:, None]], axis=1)
    for step in site.steps[:site.folded_steps]:
        if step.kind == "affine":
            scale, offset = batchnorm_affine(state, step.layer, find_layer(model, step.layer))
            rows = rows * scale[:, None]
            rows[:, -1] += offset
    return rows


def rebuild_model(model, state):
    """A new model with the state's layer sizes and weights; layer names kept.

    Parameters
    ----------
    model : keras.Model
        The original (unchanged).
    state : WeightState

    Returns
    -------
    keras.Model
        Uncompiled.
    """

    def clone(layer):
        if layer.name in state.replaced:
            return state.replaced[layer.name](layer)
        config = layer.get_config()
        kind = kind_for(layer) or LayerKind()
        wrapped = kind.wrapped_configs(config)
        for inner in wrapped:
            inner.pop("build_config", None)  # built again on the (maybe narrower) input it gets
        if layer.name in state.resized:
            kind.resized_config(config, state.resized[layer.name])
        if layer.name in state.reconfigured:
            config = state.reconfigured[layer.name](config, layer)
        if layer.name in state.added_bias:
            for target in [inner["config"] for inner in wrapped] or [config]:
                target["use_bias"] = True
        return layer.__class__.from_config(config)

    state.apply_cuts()
    with recreating_loaded_layers():  # a TFSMLayer or Lambda the load admitted (--unsafe) is re-created too
        new = _clone(model, clone, None, {})
    for layer in walk_layers(new):
        weights = state.arrays.get(layer.name)
        if weights is None:
            if layer.name in state.untouched:
                layer.set_weights(state.untouched[layer.name])
            continue
        layer.set_weights([_array_for(weights, key, variable, layer.name in state.added_bias)
                           for key, variable in zip(weight_keys(layer), layer.weights)])
    return new


def _array_for(weights, key, variable, bias_added):
    """The array of one variable; zeros for a bias the rebuild added but no fold filled (a Bidirectional's
    other half)."""
    if key not in weights and bias_added and key.rsplit("/", 1)[-1] == "bias":
        return np.zeros(tuple(variable.shape), dtype=np.float32)
    return weights[key]


def _clone(model, clone_layer, input_tensors, cache):
    """Clone ``model`` layer by layer; a nested model is cloned on the tensors it now receives.

    Keras' ``clone_model(recursive=True)`` keeps a nested model's own input shapes, which no
    longer fit once the layer feeding it lost neurons: here each nested model is cloned when the
    outer graph calls it, on fresh inputs of the shapes that call receives, so it stays nested.
    """
    keras = import_keras()

    def clone_function(layer):
        return layer if isinstance(layer, keras.Model) else clone_layer(layer)

    def call_function(layer, *args, **kwargs):
        if isinstance(layer, keras.Model):
            key = id(layer)
            if key not in cache:
                arrived = args[0] if args else next(iter(kwargs.values()))
                # A model whose config does not list its layers (keras-hub's GemmaBackbone builds them in its
                # own code, some not serializable one by one) is re-created from its config.
                cache[key] = (_clone(layer, clone_layer, _fresh_inputs(layer, arrived), cache)
                              if "layers" in layer.get_config() else layer.__class__.from_config(layer.get_config()))
            layer = cache[key]
        return layer(*args, **kwargs)

    if isinstance(model, keras.Sequential):
        if any(isinstance(layer, keras.Model) for layer in model.layers):
            return _clone_sequential(model, clone_layer, input_tensors, cache)
        return keras.models.clone_model(model, input_tensors=input_tensors, clone_function=clone_function)
    if input_tensors is None:
        # Keep the input layers' names too (clone_model would name them after the tensors).
        names = ModelGraph(model).input_names
        fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name) for t, name in zip(model.inputs, names)]
        input_tensors = keras.tree.pack_sequence_as(model.input, fresh)
    return keras.models.clone_model(model, input_tensors=input_tensors, clone_function=clone_function,
                                    call_function=call_function)


def _fresh_inputs(model, arrived):
    """New Input tensors for a nested ``model`` shaped like the tensors a call hands it, with its input names."""
    keras = import_keras()
    structure = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
    originals = keras.tree.flatten(structure)
    tensors = keras.tree.flatten(arrived)
    fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=o.name.split(":")[0])
             for o, t in zip(originals, tensors)]
    return fresh[0] if isinstance(model, keras.Sequential) else keras.tree.pack_sequence_as(structure, fresh)


def _clone_sequential(model, clone_layer, input_tensors, cache):
    """A Sequential whose layers include models: each layer cloned on what the previous one gives."""
    keras = import_keras()
    x = input_tensors if input_tensors is not None else keras.Input(batch_shape=model.inputs[0].shape,
                                                                    dtype=model.inputs[0].dtype)
    layers = []
    for layer in model.layers:
        new = (_clone(layer, clone_layer, _fresh_inputs(layer, x), cache) if isinstance(layer, keras.Model)
               else clone_layer(layer))
        x = new(x)
        layers.append(new)
    return keras.Sequential([keras.Input(tensor=input_tensors)] + layers if input_tensors is not None
                            else [keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)]
                            + layers, name=model.name)
