"""keras-hub's rotary attention written, for the export only, as ops TFLite's int8 quantizer quantizes.

Three parts of keras-hub's Gemma attention stop TF 2.21's int8 conversion from being integer-only or accurate:

- ``RotaryEmbedding`` rotates half of each head with ``ops.stack((-x2, x1), axis=-2)`` and a reshape:
  NEG has no int8 kernel, and the PACK it feeds stays float with it. The same rotation is written
  ``concatenate([x2 * -1, x1], axis=-1)`` (MUL by a constant and CONCATENATION, both with int8 kernels);
  stacking on the second-last axis and reshaping back is that concatenation, so the values are equal.
- ``CachedGemmaAttention`` wipes the attention output of a query that attends no key with
  ``where(no_attended, zeros_like(vec), vec)`` (SELECT_V2 with ZEROS_LIKE, float). Its own masked softmax
  (Keras' ``Softmax`` with a mask) already gives such a query all-zero weights, so the wiped output is
  zero before the wipe: the rewrite leaves the wipe out, on the path without a cache that an export traces,
  and keeps the class's own ``call`` for a cache.
- Its masked softmax (Keras' ``Softmax``) sets masked logits to -1e9 with a SELECT_V2 that shares one int8
  scale with the logits: every real logit quantizes to the same value and int8 attends uniformly (measured on
  the zoo's Gemma: agreement 0.93, max |diff| 0.93). The rewrite sets a masked logit :data:`MASK_DEPTH` below
  the row's lowest instead, and zeroes masked weights after the softmax as Keras does (int8: agreement 1.0,
  max |diff| 0.004); in float the weights differ by under exp(-30) of the largest.

:func:`integer_friendly_attention` swaps those methods on every such layer of a model (nested
sublayers included) for the duration of a ``with`` block and gives the model back unchanged, as
:func:`~weightkit.compress.quantize.norms.integer_friendly_norms` does for the normalization layers.
"""

import contextlib
import sys

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.compress.quantize.export_swaps import rewritten_paths, swapped_methods

__all__ = ["MASK_DEPTH", "attention_note", "integer_friendly_attention", "rewritten_attention"]


def _apply_rotary_pos_emb(self, tensor, cos_emb, sin_emb):
    ops = import_keras().ops
    x1, x2 = ops.split(tensor, 2, axis=-1)
    half_rot_tensor = ops.concatenate([x2 * -1.0, x1], axis=-1)
    return (tensor * cos_emb) + (half_rot_tensor * sin_emb)


def _gemma_attention_call(self, x, attention_mask=None, cache=None, cache_update_index=0, training=False):
    # A fused attention op (GPU, TPU) may give a query with no key uniform weights: keep the wipe there.
    if cache is not None or attention_mask is None or self._use_fused_attention_op():
        return type(self).call(self, x, attention_mask=attention_mask, cache=cache,
                               cache_update_index=cache_update_index, training=training)
    query = self._apply_rope(self.query_dense(x), cache_update_index)
    key = self._apply_rope(self.key_dense(x), cache_update_index)
    value = self.value_dense(x)
    attention_vec = self._compute_attention(query, key, value, attention_mask, training=training,
                                            cache_update_index=cache_update_index)
    return self.output_dense(attention_vec)


#: How far below a row's lowest logit a masked key's logit is set: its softmax weight is below exp(-30) = 9e-14
#: of the row's largest, under float32 rounding for up to a million keys, while the int8 scale of the logits
#: spans 30 more instead of Keras' 1e9 (which quantizes every real logit to one value).
MASK_DEPTH = 30.0


def _masked_softmax(logits, mask):
    ops = import_keras().ops
    keep = mask if mask.dtype == "bool" else ops.greater(mask, 0)
    fill = ops.min(logits, axis=-1, keepdims=True) - MASK_DEPTH
    return ops.where(keep, ops.softmax(ops.where(keep, logits, fill), axis=-1), 0.0)


def _gemma_compute_attention(self, q, k, v, attention_mask, training=False, cache_update_index=0):
    ops = import_keras().ops
    if self._use_fused_attention_op() or attention_mask is None:
        return type(self)._compute_attention(self, q, k, v, attention_mask, training=training,
                                             cache_update_index=cache_update_index)
    head_dim = self.head_dim if self.query_head_dim_normalize else self.hidden_dim // self.num_query_heads
    if self.use_sliding_window_attention:
        attention_mask = self._mask_sliding_window(attention_mask, cache_update_index=cache_update_index)
    q = q * ops.cast(1 / np.sqrt(head_dim), dtype=q.dtype)
    q_shape = ops.shape(q)
    groups = self.num_query_heads // self.num_key_value_heads
    q = ops.reshape(q, (*q_shape[:-2], self.num_key_value_heads, groups, q_shape[-1]))
    b, q_len, _, _, h = ops.shape(q)
    logits = ops.einsum("btkgh,bskh->bkgts", q, k)
    if self.logit_soft_cap is not None:
        logits = ops.multiply(ops.tanh(ops.divide(logits, self.logit_soft_cap)), self.logit_soft_cap)
    weights = ops.cast(_masked_softmax(ops.cast(logits, "float32"), attention_mask[:, None, None, :, :]),
                       logits.dtype)
    if self.dropout:
        weights = self.dropout_layer(weights, training=training)
    results = ops.einsum("bkgts,bskh->btkgh", weights, v)
    return ops.reshape(results, (b, q_len, self.num_query_heads, h))


def _rewrites():
    """``(class, method name, integer-friendly method)`` for the keras-hub classes this process has imported."""
    if "keras_hub" not in sys.modules:  # a model holding keras-hub layers has imported it; never import it here
        return []
    from keras_hub.src.layers.modeling.rotary_embedding import RotaryEmbedding
    from keras_hub.src.models.gemma.gemma_attention import CachedGemmaAttention

    return [(RotaryEmbedding, "_apply_rotary_pos_emb", _apply_rotary_pos_emb),
            (CachedGemmaAttention, "call", _gemma_attention_call),
            (CachedGemmaAttention, "_compute_attention", _gemma_compute_attention)]


def rewritten_attention(model):
    """Paths of the layers of ``model`` that :func:`integer_friendly_attention` rewrites (their exact class only).

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of str
        ``"gemma/decoder_block_0/attention"``, ``"gemma/decoder_block_0/attention/rotary_embedding"``, ...
    """
    return rewritten_paths(model, _rewrites())


@contextlib.contextmanager
def integer_friendly_attention(model):
    """Within the block, keras-hub's rotary embedding and Gemma attention compute with ops that have int8 kernels.

    Parameters
    ----------
    model : keras.Model

    Yields
    ------
    names : list of str
        The paths of the layers whose methods were swapped, restored when the block ends.
    """
    with swapped_methods(model, _rewrites()) as names:
        yield names


def attention_note(model):
    """A one-sentence note naming the attention layers the export rewrote, as a list (empty when none).

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of str
    """
    names = rewritten_attention(model)
    if not names:
        return []
    return [f"keras-hub attention layers ({', '.join(names)}) exported with the rotary embedding's NEG written as a "
            "MUL by -1 and its PACK as a CONCATENATION, Gemma's SELECT_V2 wipe of queries that attend no key left "
            "out (the masked softmax already gives them zero weights) and masked logits set 30 below the row's "
            "lowest instead of to -1e9 (which leaves int8 no resolution for the real ones), so int8 has a kernel "
            "for every op; in float a masked key's weight moves by under 1e-13"]
