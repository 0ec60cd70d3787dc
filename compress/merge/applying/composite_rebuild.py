"""Rebuild a model whose composite layers (or the models that build them) get new configs and new arrays.

The composite layers whose FFN lost neurons are re-created from their config with the smaller width
(:mod:`~weightkit.compress.merge.applying.composite_ffn`); a model that builds its blocks from its own config
(keras-hub's GemmaBackbone) is re-created from its config as a whole, since its inner layers need not
be serializable one by one. Every other layer is re-created from its own config; the weights are copied
in ``model.weights`` order, the given arrays replacing theirs. The input model is never modified.
"""

import numpy as np

from weightkit.analysis._tf import import_keras, recreating_loaded_layers
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["rebuild_with"]


def _holds(model, targets):
    """Whether ``model`` (a container) holds a layer or model of ``targets`` at any depth."""
    keras = import_keras()
    for layer in model.layers:
        if id(layer) in targets or (isinstance(layer, keras.Model) and _holds(layer, targets)):
            return True
    return False


def rebuild_with(model, configs, arrays):
    """A copy of ``model`` with some layers' configs and some variables' values replaced.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    configs : dict
        ``id(layer or nested model) -> config`` to re-create it from.
    arrays : dict
        ``id(variable of model) -> ndarray``: the copy's value of that variable.

    Returns
    -------
    keras.Model
        Uncompiled, layer names kept.

    Raises
    ------
    ValueError
        When the copy's variables do not line up with the original's (count, or a shape no array explains).
    """
    keras = import_keras()

    def clone(layer):
        if id(layer) in configs:
            return layer.__class__.from_config(configs[id(layer)])
        if isinstance(layer, keras.Model) and _holds(layer, configs):
            return _clone(layer, None)
        return layer.__class__.from_config(layer.get_config())

    def _clone(container, input_tensors):
        if isinstance(container, keras.Sequential):
            return keras.models.clone_model(container, clone_function=clone)
        if input_tensors is None:
            names = ModelGraph(container).input_names  # clone_model would name them after the tensors
            fresh = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=name)
                     for t, name in zip(container.inputs, names)]
            input_tensors = keras.tree.pack_sequence_as(container.input, fresh)
        return keras.models.clone_model(container, input_tensors=input_tensors, clone_function=clone)

    with recreating_loaded_layers():  # a TFSMLayer or Lambda the load admitted (--unsafe) is re-created too
        new = _clone(model, None)
    old_variables, new_variables = model.weights, new.weights
    if len(old_variables) != len(new_variables):
        raise ValueError(f"the rebuilt {model.name} has {len(new_variables)} variables, the original "
                         f"{len(old_variables)}")
    for old, variable in zip(old_variables, new_variables):
        value = arrays[id(old)] if id(old) in arrays else keras.ops.convert_to_numpy(old)
        if tuple(np.shape(value)) != tuple(variable.shape):
            raise ValueError(f"{old.path}: the rebuilt variable has shape {tuple(variable.shape)}, its value "
                             f"{tuple(np.shape(value))}")
        variable.assign(value)
    return new
