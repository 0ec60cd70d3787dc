"""Methods of a model's layers swapped for the export only, then given back: the mechanism of
:mod:`~weightkit.compress.quantize.norms` and :mod:`~weightkit.compress.quantize.rotary`.

A rewrite is ``(class, method name, function)``. Only layers whose class is exactly ``class``
change (a user's subclass keeps its own code); nested sublayers count (keras-hub keeps its layers
as attributes). The model is never changed outside the ``with`` block.
"""

import contextlib

__all__ = ["layer_path", "rewritten_paths", "sublayers", "swapped_methods"]


def sublayers(model):
    """Every layer inside ``model``, nested ones included, in Keras' order.

    Keras' own recursive walk (nested models and layers kept as attributes); Keras 3.15 has no
    public equivalent.
    """
    return model._flatten_layers(include_self=False, recursive=True)


def layer_path(layer):
    """The layer's path (``"enc0/self_attention_layer_norm"`` inside a keras-hub layer), or its name."""
    return getattr(layer, "path", None) or layer.name


def rewritten_paths(model, rewrites):
    """Paths, in model order, of the layers of ``model`` that ``rewrites`` would change.

    Parameters
    ----------
    model : keras.Model
    rewrites : iterable of (type, str, callable)

    Returns
    -------
    list of str
    """
    classes = {cls for cls, _, _ in rewrites}
    return [layer_path(layer) for layer in sublayers(model) if type(layer) in classes]


@contextlib.contextmanager
def swapped_methods(model, rewrites):
    """Within the block, each layer of an exactly rewritten class runs the rewrite's functions.

    Parameters
    ----------
    model : keras.Model
    rewrites : iterable of (type, str, callable)
        ``(class, method name, function taking the layer as self)``.

    Yields
    ------
    paths : list of str
        The paths of the layers changed, in model order, each once; restored when the block ends.
    """
    by_class = {}
    for cls, method, function in rewrites:
        by_class.setdefault(cls, []).append((method, function))
    swapped = []
    try:
        for layer in sublayers(model):
            for method, function in by_class.get(type(layer), ()):
                setattr(layer, method, function.__get__(layer))
                swapped.append((layer, method))
        yield list(dict.fromkeys(layer_path(layer) for layer, _ in swapped))
    finally:
        for layer, method in swapped:
            delattr(layer, method)
