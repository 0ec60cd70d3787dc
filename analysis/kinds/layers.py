"""The layer registry's compatibility facade: the names callers used before :mod:`weightkit.analysis.kinds`.

Every layer class weightkit knows has a :class:`~weightkit.analysis.kinds.LayerKind` (one module
per family in :mod:`weightkit.analysis.kinds`); :data:`LAYERS` is the table of Keras class name ->
kind, and :func:`spec_for` resolves a live layer through its class's MRO (a subclass of ``Dense``
uses Dense's kind, a user class merely named ``Dense`` matches nothing; a class registered with
:func:`weightkit.analysis.register_layer_kind` matches itself and its subclasses). New code asks
the kinds directly. This module imports without Keras.
"""

import numpy as np

from weightkit.analysis.kinds.base import GENERIC_SKIP, MERGE_STEPS, Kernel, LayerKind
from weightkit.analysis.kinds.registry import KINDS, kind_for, kind_named, registered_name
from weightkit.analysis.kinds.support import support_matrix, supported_layer_types

__all__ = [
    "GENERIC_SKIP",
    "LAYERS",
    "MERGE_STEPS",
    "Kernel",
    "LayerSpec",
    "neuron_rows",
    "registered_name",
    "spec_for",
    "spec_named",
    "support_matrix",
    "supported_layer_types",
]

#: The kind of a layer class (the table's entries were called specs).
LayerSpec = LayerKind

#: Keras layer class name -> :class:`~weightkit.analysis.kinds.LayerKind`.
LAYERS = KINDS


def neuron_rows(class_name, config, arrays):
    """The neuron rows of a layer, from its class name, config and weight arrays alone.

    Parameters
    ----------
    class_name : str
        A key of :data:`LAYERS` (``"Dense"``, ``"LSTM"``...).
    config : dict
        The layer's config (``layer.get_config()``, or ``config`` of its entry in a saved file).
    arrays : dict of str to ndarray
        Weight arrays by the keys of the kind's ``variables`` (``kernel``, ``bias``,
        ``recurrent_kernel``; ``forward/kernel`` ... for Bidirectional; a TimeDistributed layer
        takes its wrapped layer's keys).

    Returns
    -------
    list of (str or None, ndarray of shape (n_neurons, fan_in), ndarray or None)
        Per analysis entry: the part name (None for the whole layer), its rows and its bias.

    Raises
    ------
    KeyError
        When ``class_name`` has no rows (see :attr:`LayerKind.skip`).
    """
    return kind_rows(LAYERS[class_name], config, arrays)


def kind_rows(kind, config, arrays):
    """:func:`neuron_rows` of a kind object (a registered class of a user's has no name in :data:`LAYERS`)."""
    if not kind.has_neurons:
        raise KeyError(type(kind).__name__)
    arrays = {key: np.asarray(value, dtype=np.float32) for key, value in arrays.items()}
    return [(part, np.ascontiguousarray(rows, dtype=np.float32), bias)
            for part, rows, bias in kind.neuron_rows(config, arrays)]


def spec_named(class_name):
    """The kind of a Keras layer class name, or None."""
    return kind_named(class_name)


def spec_for(layer):
    """The kind of a live layer (see :func:`registered_name`), or None."""
    return kind_for(layer)
