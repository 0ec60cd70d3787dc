"""The one table of layer kinds: Keras layer class name -> :class:`~weightkit.analysis.kinds.base.LayerKind`,
plus the classes a user registers.

The table is keyed by the exact name of a public Keras layer class (``"Dense"``), so it can be read
without importing Keras (the file reader does). A live layer is resolved through its class's MRO:
a class registered with :func:`register_layer_kind` matches itself and its subclasses; a Keras
name matches only the class that *is* the public Keras class of that name, so a subclass of
``Dense`` uses Dense's kind and a user class merely named ``Dense`` matches nothing. A new kind is
one module and one line in :data:`_MODULES`.
"""

import importlib

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.base import GENERIC_SKIP, LayerKind

__all__ = ["KINDS", "kind_for", "kind_named", "register_layer_kind", "registered_name", "skip_reason",
           "skip_reason_named"]

#: The modules whose ``KINDS`` tables make up the registry, in support-matrix order.
_MODULES = ("dense", "conv", "depthwise", "recurrent", "wrappers", "einsum", "attention", "normalization", "weights",
            "preprocessing", "masking", "activations", "pooling", "reshape", "joins")


def _table():
    table = {}
    for module in _MODULES:
        kinds = importlib.import_module(f"weightkit.analysis.kinds.{module}").KINDS
        clash = sorted(set(table) & set(kinds))
        if clash:
            raise RuntimeError(f"layer kinds registered twice: {clash}")
        table.update(kinds)
    return table


#: Keras layer class name -> its :class:`LayerKind`.
KINDS = _table()

#: Classes registered by :func:`register_layer_kind` -> their kind.
_CUSTOM = {}


def register_layer_kind(cls, kind):
    """Tell weightkit how to analyze and merge a layer class of your own.

    Parameters
    ----------
    cls : type
        A ``keras.layers.Layer`` subclass. Its subclasses use the same kind unless registered
        themselves.
    kind : LayerKind
        What weightkit knows about it: an instance of a kind of
        :mod:`weightkit.analysis.kinds` (``DenseKind()`` for a layer with a ``kernel`` of shape
        ``(fan_in, units)``, a ``bias``, a ``units`` and an ``activation`` in its config) or of
        your own :class:`LayerKind` subclass.

    Returns
    -------
    type
        ``cls``, so the function can decorate the class.

    Raises
    ------
    TypeError
        When ``cls`` is not a class or ``kind`` not a LayerKind.

    Examples
    --------
    >>> from weightkit.analysis import register_layer_kind
    >>> from weightkit.analysis.kinds import DenseKind
    >>> from weightkit.analysis._tf import import_keras
    >>> keras = import_keras()
    >>> class MyDense(keras.layers.Layer):
    ...     pass
    >>> register_layer_kind(MyDense, DenseKind()) is MyDense
    True
    """
    if not isinstance(cls, type):
        raise TypeError(f"Expected a layer class for `cls`. Received: {cls!r} ({type(cls).__name__}).")
    if not isinstance(kind, LayerKind):
        raise TypeError(f"Expected a LayerKind instance for `kind` (for example DenseKind()). Received: {kind!r} "
                        f"({type(kind).__name__}).")
    _CUSTOM[cls] = kind
    return cls


def _match(layer):
    """``(name, kind)`` of a live layer's class through its MRO, or (None, None)."""
    keras_layers = import_keras().layers
    for cls in type(layer).__mro__:
        if cls in _CUSTOM:
            return cls.__name__, _CUSTOM[cls]
        if cls.__name__ in KINDS and getattr(keras_layers, cls.__name__, None) is cls:
            return cls.__name__, KINDS[cls.__name__]
    return None, None


def registered_name(layer):
    """The name a live layer's class is registered under (a Keras class name, or a registered class's name);
    None when none matches (see the module docstring)."""
    return _match(layer)[0]


def kind_for(layer):
    """The :class:`LayerKind` of a live layer, or None."""
    return _match(layer)[1]


def kind_named(class_name):
    """The kind of a Keras layer class name (no Keras needed), or None."""
    return KINDS.get(class_name)


def skip_reason(layer):
    """Why a layer with weights has no neuron rows, or None when it has them."""
    kind = kind_for(layer)
    if kind is not None and kind.has_neurons:
        return kind.wrapped_reason(layer)
    if kind is not None and kind.skip:
        return kind.skip
    return GENERIC_SKIP.format(name=type(layer).__name__)


def skip_reason_named(class_name, config):
    """:func:`skip_reason` of a stored layer, from its Keras class name and config alone (no Keras needed)."""
    kind = KINDS.get(class_name)
    if kind is not None and kind.has_neurons:
        return kind.wrapped_config_reason(config)
    if kind is not None and kind.skip:
        return kind.skip
    return GENERIC_SKIP.format(name=class_name)
