"""MultiHeadAttention: the heads are the neurons.

Head ``i``'s row is its query, key and value kernels (``[:, i, :]`` of each ``(d, heads, key_dim)``
kernel) and its slice ``[i]`` of the output kernel ``(heads, value_dim, d)``, flattened; its bias is
its query, key and value biases (the output bias is shared by every head). Subclasses such as
keras-hub's CachedMultiHeadAttention resolve to this kind through their MRO.
"""

import numpy as np

from weightkit.analysis.kinds.base import LayerKind, count

__all__ = ["KINDS", "MultiHeadAttentionKind", "head_rows"]

#: The projections whose kernels make a head's row, in row order, and the sublayer attribute holding each.
PROJECTIONS = (("query", "query_dense"), ("key", "key_dense"), ("value", "value_dense"),
               ("output", "output_dense"))
#: Legacy ``.h5`` weight names use the sublayers' names (``mha/attention_output/kernel:0``).
_LEGACY_NAMES = {"query": "query", "key": "key", "value": "value", "output": "attention_output"}


def head_rows(arrays):
    """``(rows, bias)`` of a MultiHeadAttention's heads from its projections' arrays.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``query_kernel``, ``key_kernel``, ``value_kernel`` of shape (d, heads, key_dim or value_dim),
        ``output_kernel`` of shape (heads, value_dim, ...); ``query_bias``, ``key_bias``, ``value_bias``
        of shape (heads, dim) when the layer has biases.

    Returns
    -------
    rows : ndarray of shape (heads, fan_in)
    bias : ndarray of shape (heads, key_dim + key_dim + value_dim) or None

    Raises
    ------
    ValueError
        When the projections disagree on the number of heads (grouped-query attention).
    """
    heads = [np.moveaxis(arrays[f"{name}_kernel"], 1, 0) for name in ("query", "key", "value")]
    heads.append(np.asarray(arrays["output_kernel"]))
    counts = sorted({part.shape[0] for part in heads})
    if len(counts) > 1:
        raise ValueError(f"its projections hold {counts} heads: grouped-query attention is not read as heads")
    rows = np.concatenate([part.reshape(part.shape[0], -1) for part in heads], axis=1)
    biases = [arrays.get(f"{name}_bias") for name in ("query", "key", "value")]
    bias = None if any(b is None for b in biases) else np.concatenate(
        [np.asarray(b).reshape(b.shape[0], -1) for b in biases], axis=1)
    return rows, bias


class MultiHeadAttentionKind(LayerKind):
    """A MultiHeadAttention layer: one entry ``name/heads`` whose neurons are its heads.

    Analyzed only for now: merging heads rebuilds the layer with fewer heads (issue 27's merge part).
    """

    family = "attention"
    variables = {f"{key}_{variable}": f"{attr}.{variable}" for key, attr in PROJECTIONS
                 for variable in ("kernel", "bias")}
    has_neurons = True
    internal = ("heads",)  # a head's output is inside the layer, not its output tensor
    #: With data, its heads' outputs are replayed from its inputs (weightkit.analysis.activations.heads).
    head_probe = True
    order = 9
    #: Where a Keras 3 file keeps each array: (sublayer group, index in its ``vars``).
    stored_vars = {f"{key}_{variable}": (attr, index) for key, attr in PROJECTIONS
                   for index, variable in enumerate(("kernel", "bias"))}
    #: Where a legacy ``.h5`` names each array: (sublayer name, variable name).
    legacy_vars = {f"{key}_{variable}": (_LEGACY_NAMES[key], variable) for key, _ in PROJECTIONS
                   for variable in ("kernel", "bias")}

    def neuron_rows(self, config, arrays):
        rows, bias = head_rows(arrays)
        return [("heads", rows, bias)]

    def entry_parts(self, config):
        """The entry parts its config gives, before any array is read."""
        return ["heads"]

    def applications(self, input_shape, output_shape):
        """The query's positions (its first input between the batch and the last axis)."""
        return count(None if input_shape is None else input_shape[1:-1])

    def unmergeable_reason(self, layer):
        return "attention heads are analyzed, not merged yet"

    def support(self, name):
        return dict(super().support(name), activations="each head's output, replayed from the layer's inputs (with attention entropy and contribution)")

    def entries_text(self):
        return "one per head (query, key, value and output slices)"

    def merge_support(self):
        return "no (analyzed only)"


KINDS = {"MultiHeadAttention": MultiHeadAttentionKind()}
