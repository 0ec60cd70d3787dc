"""MultiHeadAttention: the heads are the neurons.

Head ``i``'s row is its query, key and value kernels (``[:, i, :]`` of each ``(d, heads, key_dim)``
kernel) and its slice ``[i]`` of the output kernel ``(heads, value_dim, d)``, flattened; its bias is
its query, key and value biases (the output bias is shared by every head). Subclasses such as
keras-hub's CachedMultiHeadAttention resolve to this kind through their MRO.
"""

import numpy as np

from weightkit.analysis.kinds.base import LayerKind, attribute, count

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

    Merging removes heads (:mod:`weightkit.compress.merge.heads`): the layer is rebuilt from its config
    with fewer ``num_heads`` (:meth:`resized_config`; key_dim and value_dim kept) and its arrays sliced
    on the head axis, under :meth:`weight_keys`.
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

    #: Its heads merge as units of their own (weightkit.compress.merge.heads), not as neurons of its output.
    merges_heads = True

    def weight_keys(self, layer):
        """``query_kernel``, ``query_bias``, ... in ``layer.weights`` order (the sublayers' variables share names)."""
        keys = {id(attribute(layer, path)): key for key, path in self.variables.items()
                if attribute(layer, path) is not None}
        return [keys.get(id(variable), variable.path) for variable in layer.weights]

    def resized_config(self, config, units):
        """The config of a copy with ``units`` heads (key_dim and value_dim kept)."""
        config["num_heads"] = int(units)
        return config

    def heads_problem(self, layer):
        """Why its heads cannot be removed by slicing its projections on the head axis, or None."""
        if layer.get_config().get("use_gate"):
            return "its gate projection (use_gate=True) is not sliced by head yet"
        extra = [v.path for v in layer.weights if id(v) not in
                 {id(attribute(layer, path)) for path in self.variables.values()}]
        if extra:
            return f"it holds weights no head slice covers ({', '.join(extra[:3])})"
        return None

    call_arguments = ("query", "value", "key")

    def stream_writes(self, layer):
        """Its output projection's columns (``output_kernel`` of shape (heads, value_dim, d))."""
        return [("output_kernel", -1)] + ([("output_bias", 0)] if layer.get_config().get("use_bias") else [])

    def stream_width_config(self, config, width):
        config["output_shape"] = int(width)
        return config

    def stream_read_config(self, config, layer):
        """Its output width pinned to what it is (``output_shape`` None follows the query's width)."""
        if config.get("output_shape") is None:
            config["output_shape"] = int(attribute(layer, "output_dense.kernel").shape[-1])
        return config

    def stream_reads(self, layer, carried, passed):
        """The query, value and key projections reading the stream (the key is the value when not given)."""
        use_bias = layer.get_config().get("use_bias")
        names = set(carried) | ({"key"} if "value" in carried and "key" not in passed else set())
        if names - {"query", "value", "key"}:
            return None  # a mask
        return [(f"{name}_kernel", f"{name}_bias" if use_bias else None) for name in ("query", "key", "value")
                if name in names]

    def unmergeable_reason(self, layer):
        return "its heads merge as heads (merge_neurons, name/heads), not as neurons of its output"

    def support(self, name):
        return dict(super().support(name), activations="each head's output, replayed from the layer's inputs (with attention entropy and contribution)")

    def entries_text(self):
        return "one per head (query, key, value and output slices)"

    def merge_support(self):
        return ("its heads (`name/heads`): exact duplicates fold by weights; by data (`--mode data`) the removed "
                "heads' output is rebuilt in the kept heads' output projection; key_dim kept")


KINDS = {"MultiHeadAttention": MultiHeadAttentionKind()}
