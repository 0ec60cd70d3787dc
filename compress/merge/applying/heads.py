"""Rebuild MultiHeadAttention layers with fewer heads: their projections sliced on the head axis.

A head ``h`` of a ``keras.layers.MultiHeadAttention`` owns the slices ``[:, h, :]`` of the query,
key and value kernels (``(d, heads, key_dim)``, ``(d, heads, value_dim)``), ``[h]`` of their biases
(``(heads, key_dim)``) and ``[h]`` of the output kernel (``(heads, value_dim, *output)``); the output
bias is shared. Removing heads keeps the kept slices, adds the merge's compensation to the kept
heads' output kernel (and to the shared output bias), and rebuilds the layer from its config with
``num_heads`` changed (key_dim and value_dim kept: the layer kind's ``resized_config``), through the
same :class:`~weightkit.compress.merge.applying.rebuild.WeightState` and
:func:`~weightkit.compress.merge.applying.rebuild.rebuild_model` as neurons.
"""

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.merge.applying.rebuild import WeightState, find_layer, rebuild_model

__all__ = ["HEAD_AXES", "cut_heads", "remove_heads", "slice_heads"]

#: The head axis of every per-head array of a MultiHeadAttention (its kind's keys); ``output_bias`` has none.
HEAD_AXES = {"query_kernel": 1, "key_kernel": 1, "value_kernel": 1, "query_bias": 0, "key_bias": 0,
             "value_bias": 0, "output_kernel": 0}


def slice_heads(arrays, kept):
    """The arrays of the same layer with only the ``kept`` heads.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``query_kernel`` (d, heads, key_dim), ``query_bias`` (heads, key_dim), ... ``output_kernel``
        (heads, value_dim, *output), ``output_bias`` (*output,): the layer kind's keys.
    kept : sequence of int
        Kept head indices, increasing.

    Returns
    -------
    dict of str to ndarray
        Head axes of length ``len(kept)``; ``output_bias`` (and anything without a head axis) as it was.
    """
    kept = np.asarray(kept, dtype=np.int64)
    return {key: np.take(value, kept, axis=HEAD_AXES[key]) if key in HEAD_AXES else value
            for key, value in arrays.items()}


def cut_heads(state, layer_name, kept, *, output_kernel_update=None, output_bias_update=None,
              value_kernel_update=None):
    """Keep only ``kept`` heads of one layer in a weight state and add the merge's compensation.

    Parameters
    ----------
    state : WeightState
        Updated in place (its arrays, and ``resized``: the layer's new ``num_heads``).
    layer_name : str
    kept : sequence of int
        Increasing head indices.
    output_kernel_update : ndarray of shape (n_kept, value_dim, *output) or (n_kept * value_dim, n_output), default=None
        Added to the kept heads' output kernel (after slicing).
    output_bias_update : ndarray of shape (*output,), default=None
        Added to the output bias (a layer without biases must not need one: refused).
    value_kernel_update : ndarray of shape (d_in, n_kept, value_dim), default=None
        Added to the kept heads' value kernel (a refit of the kept heads' values).
    """
    arrays = slice_heads(state.arrays[layer_name], kept)
    kernel = arrays["output_kernel"]
    if output_kernel_update is not None:
        update = np.asarray(output_kernel_update, dtype=np.float64)
        if update.size != kernel.size:
            raise WeightkitError(f"{layer_name}: output_kernel_updates holds {update.shape} values; the kept heads' "
                                 f"output kernel is {kernel.shape} (n_kept, value_dim, output).")
        arrays["output_kernel"] = (kernel + update.reshape(kernel.shape)).astype(kernel.dtype)
    if output_bias_update is not None and np.any(output_bias_update):
        if "output_bias" not in arrays:
            raise WeightkitError(f"{layer_name}: an output bias update for a layer built with use_bias=False.")
        bias = arrays["output_bias"]
        arrays["output_bias"] = (bias + np.asarray(output_bias_update).reshape(bias.shape)).astype(bias.dtype)
    if value_kernel_update is not None:
        value = arrays["value_kernel"]
        update = np.asarray(value_kernel_update, dtype=np.float64)
        if update.shape != value.shape:
            raise WeightkitError(f"{layer_name}: value_kernel_updates holds {update.shape} values; the kept heads' "
                                 f"value kernel is {value.shape} (d_in, n_kept, value_dim).")
        arrays["value_kernel"] = (value + update).astype(value.dtype)
    state.arrays[layer_name] = arrays
    state.resized[layer_name] = int(len(kept))


def _checked_heads(model, name, kept):
    try:
        layer = find_layer(model, name)
    except ValueError as error:
        raise WeightkitError(f"{name}: {error}") from None
    kind = kind_for(layer)
    if not getattr(kind, "merges_heads", False):
        raise WeightkitError(f"{name}: a {type(layer).__name__}, not an attention layer whose heads can be removed "
                             "(keras.layers.MultiHeadAttention or a subclass).")
    problem = kind.heads_problem(layer)
    if problem is not None:
        raise WeightkitError(f"{name}: its heads cannot be removed: {problem}.")
    heads = int(layer.get_config()["num_heads"])
    kept = sorted({int(h) for h in kept})
    if not kept or kept[0] < 0 or kept[-1] >= heads:
        raise WeightkitError(f"{name}: kept heads {kept} must be a non-empty set of indices in [0, {heads}).")
    return kept


def remove_heads(model, kept_heads, *, output_kernel_updates=None, output_bias_updates=None,
                 value_kernel_updates=None):
    """A new model whose attention layers keep only the given heads.

    Parameters
    ----------
    model : keras.Model
        Functional or Sequential (loaded from a file or built in code); not modified.
    kept_heads : dict of str to sequence of int
        Attention layer name -> the head indices it keeps (any order, at least one). The other heads'
        query/key/value slices and output-kernel rows are dropped.
    output_kernel_updates : dict of str to ndarray, default=None
        Layer name -> added to its kept heads' output kernel, shape ``(n_kept, value_dim, *output)``
        (or ``(n_kept * value_dim, n_output)``): the compensation of a merge (a duplicate head's
        ``W_o[j]`` folded into its twin's rows; a least-squares rebuild of the removed heads). None:
        plain head pruning.
    output_bias_updates : dict of str to ndarray of shape (*output,), default=None
        Layer name -> added to its output bias (an intercept of a data fit).
    value_kernel_updates : dict of str to ndarray of shape (d_in, n_kept, value_dim), default=None
        Layer name -> added to its kept heads' value kernel (a data fit that refits the values too).

    Returns
    -------
    keras.Model
        The attention layers rebuilt from their config with ``num_heads = len(kept)`` (key_dim,
        value_dim and every other setting kept), all weights set; names kept; uncompiled.

    Raises
    ------
    WeightkitError
        A name that is not an attention layer of the model, a layer whose heads cannot be sliced (a
        gated attention), kept indices out of range or empty, an update of the wrong size.

    Examples
    --------
    >>> from weightkit.compress.merge.applying.heads import remove_heads
    >>> smaller = remove_heads(model, {"b0_mha": [0, 2, 3]})        # doctest: +SKIP
    >>> smaller.get_layer("b0_mha").num_heads                       # doctest: +SKIP
    3
    """
    output_kernel_updates = output_kernel_updates or {}
    output_bias_updates = output_bias_updates or {}
    value_kernel_updates = value_kernel_updates or {}
    unknown = sorted((set(output_kernel_updates) | set(output_bias_updates) | set(value_kernel_updates))
                     - set(kept_heads))
    if unknown:
        raise WeightkitError(f"updates for {', '.join(unknown)}, which kept_heads does not name.")
    state = WeightState(model)
    for name, kept in kept_heads.items():
        cut_heads(state, name, _checked_heads(model, name, kept), output_kernel_update=output_kernel_updates.get(name),
                  output_bias_update=output_bias_updates.get(name), value_kernel_update=value_kernel_updates.get(name))
    return rebuild_model(model, state)
