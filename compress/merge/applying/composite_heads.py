"""The query heads of grouped-query attention inside composite layers, as arrays: find them, read them, cut them.

A composite layer whose kind describes its attention (:func:`weightkit.analysis.kinds.composites.composite_heads`:
Gemma's, Mistral's and Qwen3's decoder blocks) holds query, key, value and output projections; query head ``i``
reads key/value head ``i // group_size``. Removing query heads slices the query kernel along its head axis (Gemma's
``(heads, d, head_dim)``: the first; Mistral's and Qwen3's ``(d, heads, head_dim)``: the second) and the output
kernel ``(heads, head_dim, d_out)`` along its first; the composite (or the model that builds it from its own config,
keras-hub's GemmaBackbone) is re-created with the smaller head count and the same head size
(:func:`~weightkit.compress.merge.applying.composite_rebuild.rebuild_with`). Nothing here runs the model.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.kinds.base import value_of
from weightkit.analysis.kinds.composites import composite_heads
from weightkit.compress.merge.applying.composite_ffn import described_layers
from weightkit.compress.merge.applying.composite_rebuild import rebuild_with

__all__ = ["HeadSite", "cut_composite_heads", "head_sites"]


def _numpy(variable):
    return np.asarray(value_of(variable), dtype=np.float64)


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
        return int(self.sub("query").kernel.shape[self.heads.head_axis])

    @property
    def n_groups(self):
        return int(self.sub("key").kernel.shape[self.heads.head_axis])

    @property
    def head_dim(self):
        """Each head's size: the query kernel's last axis."""
        return int(self.sub("query").kernel.shape[-1])

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
        """Why the query heads cannot be removed by slicing the kernels' head axes, or None."""
        query, output = self.sub("query"), self.sub("output")
        n, groups = self.n_heads, self.n_groups
        if len(query.kernel.shape) != 3 or len(output.kernel.shape) != 3 or int(output.kernel.shape[0]) != n:
            heads = "(heads, d, head_dim)" if self.heads.head_axis == 0 else "(d, heads, head_dim)"
            return (f"its query kernel {tuple(query.kernel.shape)} and output kernel {tuple(output.kernel.shape)} "
                    f"are not {heads} and (heads, head_dim, d_out)")
        if getattr(query, "bias", None) is not None:
            return "its query projection has a bias: weightkit slices kernels only"
        if groups < 1 or n % groups:
            return f"{n} query heads are no multiple of its {groups} key/value heads"
        if self.group_size < 2:
            return f"one query head per key/value head ({n} and {groups}): nothing to merge"
        return None

    def query_kernel(self):
        """ndarray of shape (heads, d, head_dim), float64, whatever the kernel's head axis (a copy)."""
        return np.moveaxis(_numpy(self.sub("query").kernel), self.heads.head_axis, 0).copy()

    def set_query_kernel(self, kernel):
        """Assign ``kernel``, of shape (heads, d, head_dim) as :meth:`query_kernel` gives it, to the query kernel."""
        variable = self.sub("query").kernel
        variable.assign(np.moveaxis(np.asarray(kernel), 0, self.heads.head_axis).astype(variable.dtype))

    def output_kernel(self):
        """ndarray of shape (heads, head_dim, d_out), float64."""
        return _numpy(self.sub("output").kernel)

    def per_head(self):
        """Parameters one query head holds: its query slice and its output rows."""
        query, output = self.sub("query").kernel.shape, self.sub("output").kernel.shape
        return int(np.prod(query) // self.n_heads + np.prod(output[1:]))

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
        kept rows are written; ``output_bias``: ndarray of shape (d_out,), or None to leave it. A holder whose
        config leaves the head size to ``hidden_dim // heads`` (its ``head_dim_key`` None: keras-hub's Mistral)
        gets the size its heads have.

    Returns
    -------
    keras.Model
        Uncompiled, names kept; ``model`` itself when no site loses a head.
    """
    configs, arrays = {}, {}
    for site, kept, output_kernel, output_bias in cuts:
        kept = np.asarray(kept, dtype=np.int64)
        arrays[id(site.sub("query").kernel)] = np.take(_numpy(site.sub("query").kernel), kept, site.heads.head_axis)
        arrays[id(site.sub("output").kernel)] = np.asarray(output_kernel)[kept]
        if output_bias is not None and site.output_has_bias:
            arrays[id(site.sub("output").bias)] = np.asarray(output_bias)
        if kept.size < site.n_heads:
            holder = site.owner or site.layer
            config = configs.setdefault(id(holder), holder.get_config())
            config[site.heads.heads_key] = int(kept.size)
            if site.heads.head_dim_key is not None and config.get(site.heads.head_dim_key) is None:
                config[site.heads.head_dim_key] = site.head_dim
    return rebuild_with(model, configs, arrays) if configs else model
