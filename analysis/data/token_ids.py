"""Token ids against the vocabularies they index: checked before a model runs on ``--data``.

An id at or beyond an ``Embedding``'s ``input_dim`` (or below 0) makes TensorFlow fail deep inside the
model (``InvalidArgumentError ... GatherV2``) or, on some devices, read zeros silently. The data is
checked instead against every Embedding each model input reaches through the model graph
(:class:`weightkit.analysis.structure.graph.ModelGraph`): directly, or through layers whose outputs stay within
the range of what they read (dropout, reshaping, padding with zeros, cropping, pooling,
concatenation: the steps whose kind :meth:`~weightkit.analysis.kinds.config_rules.ConfigRules.keeps_value_range`;
their merge roles are :data:`RANGE_KEEPING`). Which layers take token ids, and how many, their kinds say
(:meth:`~weightkit.analysis.kinds.data_rules.DataRules.vocabulary_size`).
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.config_rules import RANGE_KEEPING
from weightkit.analysis.kinds.layers import spec_for

__all__ = ["RANGE_KEEPING", "check_token_ids", "embedding_vocabularies"]


def embedding_vocabularies(model):
    """The Embeddings each model input reaches, with their vocabulary sizes.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of list of (str, int)
        One list per model input, in input order: ``(layer name, input_dim)`` of each Embedding
        (or subclass) its values reach. Empty lists for a model without a readable graph.
    """
    layer_class = import_keras().layers.Layer
    try:
        graph = ModelGraph(model)
    except WeightkitError:  # a subclassed model or a SavedModel's shape view: nothing to follow
        return [[] for _ in getattr(model, "inputs", None) or [None]]
    found = []
    for tid in graph.input_ids:
        reached, seen, frontier = {}, {tid}, [tid]
        while frontier:
            for node in graph.readers(frontier.pop()):
                kind = spec_for(node.layer) if isinstance(node.layer, layer_class) else None
                vocabulary = None if kind is None else kind.vocabulary_size(node.layer)
                if vocabulary is not None:
                    reached.setdefault(node.name, vocabulary)
                    continue
                if kind is not None and kind.keeps_value_range():
                    fresh = [out for out in node.outputs if out not in seen]
                    seen.update(fresh)
                    frontier.extend(fresh)
        found.append(list(reached.items()))
    return found


def check_token_ids(source, model, inputs, names=None, *, prefix="--data "):
    """Refuse token ids outside the vocabulary of an Embedding they reach, in one line.

    Parameters
    ----------
    source : str
        The ``--data`` specification, named in the message.
    model : keras.Model
    inputs : list of list of ndarray
        For each model input, in order, the arrays fed to it (training and held-out split).
    names : list of str, default=None
        The inputs' names; default the model graph's.
    prefix : str, default="--data "
        Put before ``source`` in the message (``""`` for an argument of the Python API).

    Raises
    ------
    WeightkitError
        Naming the input, the largest (or negative) id, the Embedding and its vocabulary size.
    """
    vocabularies = embedding_vocabularies(model)
    if names is None:
        names = [getattr(t, "name", f"input_{i}") for i, t in enumerate(getattr(model, "inputs", None) or [])]
    for index, reached in enumerate(vocabularies):
        arrays = [np.asarray(a) for a in inputs[index]] if index < len(inputs) else []
        arrays = [a for a in arrays if a.size and (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_)]
        if not reached or not arrays:
            continue
        low = min(int(np.trunc(a.min())) for a in arrays)  # Embedding casts to an integer, towards zero
        high = max(int(np.trunc(a.max())) for a in arrays)
        name = names[index] if index < len(names) else f"input_{index}"
        layer, size = min(reached, key=lambda item: item[1])
        if high >= size:
            raise WeightkitError(
                f"{prefix}{source}: input {name!r} holds token id {high}, but Embedding {layer!r} has a vocabulary "
                f"of {size} (ids 0 to {size - 1}); give ids below {size} (map unknown tokens to a reserved id) or "
                "the model the data was made for."
            )
        if low < 0:
            raise WeightkitError(
                f"{prefix}{source}: input {name!r} holds token id {low}, but Embedding {layer!r} takes ids 0 to "
                f"{size - 1} (a vocabulary of {size}); give non-negative ids."
            )
