"""The query heads of grouped-query attention inside composite layers, as arrays: find them, read them, cut them.

A composite layer whose kind describes its attention (:func:`weightkit.analysis.kinds.composites.composite_heads`:
Gemma's decoder block) holds query, key, value and output projections; query head ``i`` reads key/value head
``i // group_size``. Removing query heads slices the query kernel ``(heads, d, head_dim)`` and the output kernel
``(heads, head_dim, d_out)`` along their first axis; the composite (or the model that builds it from its own
config, keras-hub's GemmaBackbone) is re-created with the smaller head count
(:func:`~weightkit.compress.merge.applying.composite_rebuild.rebuild_with`). Nothing here runs the model.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.composites import composite_heads
from weightkit.compress.merge.applying.composite_ffn import described_layers
from weightkit.compress.merge.applying.composite_rebuild import rebuild_with

__all__ = ["HeadSite", "cut_composite_heads", "head_sites"]


def _numpy(variable):
    return np.asarray(import_keras().ops.convert_to_numpy(variable), dtype=np.float64)


@dataclass
class HeadSite:
    """One composite layer's grouped-query attention.

    Attributes
    ----------
    layer : keras.layers.Layer
        The composite layer (a decoder block).
    owner : keras.Model or None
        The innermost model holding ``layer`` whose config has the head-count key: its config, not the
        layer's, sets the head count, one for all its blocks.
    heads : CompositeHeads
    attention : keras.layers.Layer
        The attention sublayer.
    """

    layer: object
    owner: object
    heads: object
    attention: object

    @property
    def name(self):
        return self.layer.name

    @property
    def path(self):
        """The attention sublayer's path (``decoder_block_0/attention``); the report's entry is ``path/heads``."""
        return f"{self.layer.name}/{self.attention.name}"

    def sub(self, role):
        """The projection of ``role`` (``"query"``, ``"key"``, ``"value"`` or ``"output"``)."""
        return getattr(self.attention, getattr(self.heads, role))

    @property
    def n_heads(self):
        return int(self.sub("query").kernel.shape[0])

    @property
    def n_groups(self):
        return int(self.sub("key").kernel.shape[0])

    @property
    def group_size(self):
        """Query heads per key/value head."""
        return self.n_heads // self.n_groups

    def group_of(self, head):
        return int(head) // self.group_size

    @property
    def output_has_bias(self):
        return getattr(self.sub("output"), "bias", None) is not None

    def problem(self):
        """Why the query heads cannot be removed by slicing the kernels' first axis, or None."""
        query, output = self.sub("query"), self.sub("output")
        n, groups = self.n_heads, self.n_groups
        if len(query.kernel.shape) != 3 or len(output.kernel.shape) != 3 or int(output.kernel.shape[0]) != n:
            return (f"its query kernel {tuple(query.kernel.shape)} and output kernel {tuple(output.kernel.shape)} "
                    "are not (heads, d, head_dim) and (heads, head_dim, d_out)")
        if getattr(query, "bias", None) is not None:
            return "its query projection has a bias: weightkit slices kernels only"
        if groups < 1 or n % groups:
            return f"{n} query heads are no multiple of its {groups} key/value heads"
        if self.group_size < 2:
            return f"one query head per key/value head ({n} and {groups}): nothing to merge"
        return None

    def query_kernel(self):
        """ndarray of shape (heads, d, head_dim), float64."""
        return _numpy(self.sub("query").kernel)

    def output_kernel(self):
        """ndarray of shape (heads, head_dim, d_out), float64."""
        return _numpy(self.sub("output").kernel)

    def per_head(self):
        """Parameters one query head holds: its query slice and its output rows."""
        return int(np.prod(self.sub("query").kernel.shape[1:]) + np.prod(self.sub("output").kernel.shape[1:]))

    def params(self, heads):
        """The attention sublayer's parameters with ``heads`` query heads."""
        return int(self.attention.count_params()) - (self.n_heads - int(heads)) * self.per_head()


def head_sites(model):
    """Every composite layer's grouped-query attention in ``model`` (nested models opened), in model order.

    Returns
    -------
    list of HeadSite
    """
    return [HeadSite(layer, owner, heads, getattr(layer, heads.attention))
            for layer, owner, heads in described_layers(model, composite_heads, lambda heads: heads.heads_key)]


def cut_composite_heads(model, cuts):
    """A copy of ``model`` whose sites keep some query heads, with new output kernels.

    Parameters
    ----------
    model : keras.Model
        Not modified.
    cuts : list of (HeadSite, kept, output_kernel, output_bias)
        ``kept``: sorted query heads kept (the same count in every site of an owner, the same count from every
        key/value group); ``output_kernel``: ndarray of shape (heads, head_dim, d_out), the full kernel whose
        kept rows are written; ``output_bias``: ndarray of shape (d_out,), or None to leave it.

    Returns
    -------
    keras.Model
        Uncompiled, names kept; ``model`` itself when no site loses a head.
    """
    configs, arrays = {}, {}
    for site, kept, output_kernel, output_bias in cuts:
        kept = np.asarray(kept, dtype=np.int64)
        arrays[id(site.sub("query").kernel)] = _numpy(site.sub("query").kernel)[kept]
        arrays[id(site.sub("output").kernel)] = np.asarray(output_kernel)[kept]
        if output_bias is not None and site.output_has_bias:
            arrays[id(site.sub("output").bias)] = np.asarray(output_bias)
        if kept.size < site.n_heads:
            holder = site.owner or site.layer
            configs.setdefault(id(holder), holder.get_config())[site.heads.heads_key] = int(kept.size)
    return rebuild_with(model, configs, arrays) if configs else model
