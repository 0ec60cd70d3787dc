"""What works for each Keras layer class with neurons, from the kinds: the README's support matrix."""

from weightkit.analysis.kinds.registry import KINDS

__all__ = ["support_matrix", "supported_layer_types"]


def supported_layer_types():
    """Names of the Keras layer classes whose neurons can be analyzed."""
    return sorted(name for name, kind in KINDS.items() if kind.has_neurons)


def support_matrix():
    """What works for each layer class with neurons: rows for the README's support matrix.

    Returns
    -------
    list of dict
        One per class (sorted by family, then name): ``layer``, ``analyze`` (the entries:
        ``layer``, ``layer/<gate>``...), ``activations`` (which entries can be probed),
        ``decorrelate`` (the kernels the penalty sees), ``merge`` (yes or no).
    """
    names = sorted(supported_layer_types(), key=lambda n: (KINDS[n].order, n))
    return [KINDS[name].support(name) for name in names]
