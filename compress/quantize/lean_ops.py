"""Dense, Reshape and MultiHeadAttention written, for the export only, as fewer TFLite ops.

On a small transformer the ops, their tensors and those tensors' quantization parameters weigh more
than the weights (the zoo's ViT after ``shrink --max-drop 1``: 166 ops, 33.8 KB of a 40.9 KB int8
file). Three Keras layers trace into ops the converter cannot fold away:

- ``Dense`` on a rank-3 input: Keras' TensorFlow backend writes ``matmul`` as ``tensordot``, which
  computes the flattened shape at run time: SHAPE, two GATHER, two REDUCE_PROD, CONCATENATION, PACK,
  two RESHAPE and a separate bias ADD around the FULLY_CONNECTED, ten ops a layer. The same product
  written ``tf.linalg.matmul(x, kernel)`` (a batched matmul with a constant right-hand side) converts to
  one FULLY_CONNECTED that keeps the leading axes and fuses the bias.
- ``Reshape`` reads the batch size with SHAPE, STRIDED_SLICE and PACK; ``reshape(x, (-1, *target))``
  needs none of them (only a target without a -1 of its own is rewritten).
- ``MultiHeadAttention`` (self- or cross-attention with no mask, no gate, attention over the one
  sequence axis of rank-3 inputs of known length): its einsums convert to three TRANSPOSE, two
  identity RESHAPE and a MUL by ``1/sqrt(key_dim)`` around the two BATCH_MATMUL. The rewrite folds the
  scale into the query kernel and bias, multiplies ``q kᵀ`` with the matmul's own transpose flag,
  and for one head (what shrink leaves in a layer it prunes hardest) has no reshape or transpose at
  all: FULLY_CONNECTED ×3, BATCH_MATMUL, SOFTMAX, BATCH_MATMUL, FULLY_CONNECTED.

Each rewrite computes the layer's function; in float32 the outputs differ by rounding only (measured
on the zoo's ViT: 8e-7 max |diff| on its softmax outputs, from the folded scale). A layer whose call
does something else (a mask, a gate, scores returned, Keras-native quantization, a subclass) keeps
Keras' own code. :func:`fewer_ops` swaps the methods for the duration of a ``with`` block, by the
mechanism of :mod:`~weightkit.compress.quantize.export_swaps`, and gives the model back unchanged.
"""

import contextlib

from weightkit.analysis._tf import import_keras, import_tensorflow
from weightkit.compress.quantize.export_swaps import rewritten_paths, swapped_methods

__all__ = ["fewer_ops", "lean_layers"]


def _dense_call(self, inputs, training=None):
    if len(inputs.shape) <= 2 or self.quantization_mode is not None:
        return type(self).call(self, inputs, training=training)
    tf = import_tensorflow()
    x = tf.linalg.matmul(inputs, tf.cast(self.kernel, inputs.dtype))
    if self.bias is not None:
        x = x + tf.cast(self.bias, x.dtype)
    return x if self.activation is None else self.activation(x)


def _reshape_call(self, inputs):
    target = tuple(self.target_shape)
    if any(dim is None or dim == -1 for dim in target):
        return type(self).call(self, inputs)
    return import_keras().ops.reshape(inputs, (-1,) + target)


def _plain_attention(layer, query, value, key, masks, return_attention_scores, training, use_causal_mask):
    """Whether ``layer`` computes plain softmax attention on these inputs (what the rewrite covers)."""
    from keras.src.backend import get_keras_mask

    axes = layer.attention_axes
    return (not return_attention_scores and not use_causal_mask and not training
            and all(mask is None for mask in masks) and not getattr(layer, "_use_gate", False)
            and getattr(layer, "_sliding_window", None) is None
            and all(get_keras_mask(x) is None for x in (query, value, key))
            and all(len(x.shape) == 3 and x.shape[1] is not None for x in (query, value, key))
            and (axes is None or tuple(axes) == (1,)))


def _projection(dense, x, scale=1.0):
    """``x @ kernel + bias`` of one of the attention's EinsumDense projections, kernel ``(d, heads, dim)``."""
    tf = import_tensorflow()
    kernel = tf.reshape(tf.cast(dense.kernel, x.dtype), (x.shape[-1], -1))
    y = tf.linalg.matmul(x, kernel * scale if scale != 1.0 else kernel)
    if dense.bias is not None:
        bias = tf.reshape(tf.cast(dense.bias, x.dtype), (-1,))
        y = y + (bias * scale if scale != 1.0 else bias)
    return y


def _split_heads(tf, x, length, heads, dim):
    """``(batch, length, heads * dim)`` -> ``(batch, heads, length, dim)``."""
    return tf.transpose(tf.reshape(x, (-1, length, heads, dim)), (0, 2, 1, 3))


def _attention_call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
                    attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False):
    key = value if key is None else key
    masks = (query_mask, value_mask, key_mask, attention_mask)
    if not _plain_attention(self, query, value, key, masks, return_attention_scores, training, use_causal_mask):
        return type(self).call(self, query, value, key=key, query_mask=query_mask, value_mask=value_mask,
                               key_mask=key_mask, attention_mask=attention_mask,
                               return_attention_scores=return_attention_scores, training=training,
                               use_causal_mask=use_causal_mask)
    tf = import_tensorflow()
    heads, key_dim, value_dim = self.num_heads, self.key_dim, self.value_dim
    length, source = query.shape[1], value.shape[1]
    q = _projection(self.query_dense, query, self._inverse_sqrt_key_dim)
    k = _projection(self.key_dense, key)
    v = _projection(self.value_dense, value)
    if heads > 1:
        q, k = _split_heads(tf, q, length, heads, key_dim), _split_heads(tf, k, source, heads, key_dim)
        v = _split_heads(tf, v, source, heads, value_dim)
    attended = tf.linalg.matmul(tf.nn.softmax(tf.linalg.matmul(q, k, transpose_b=True), axis=-1), v)
    if heads > 1:
        attended = tf.reshape(tf.transpose(attended, (0, 2, 1, 3)), (-1, length, heads * value_dim))
    output = self.output_dense
    out_shape = tuple(output.kernel.shape[2:])  # Keras' output_shape: (query's last axis,) unless given
    y = tf.linalg.matmul(attended, tf.reshape(tf.cast(output.kernel, attended.dtype), (heads * value_dim, -1)))
    if output.bias is not None:
        y = y + tf.reshape(tf.cast(output.bias, y.dtype), (-1,))
    return y if len(out_shape) == 1 else tf.reshape(y, (-1, length) + out_shape)


def _rewrites():
    """``(class, "call", leaner call)`` for each Keras layer class this module rewrites."""
    layers = import_keras().layers
    return [(layers.Dense, "call", _dense_call), (layers.Reshape, "call", _reshape_call),
            (layers.MultiHeadAttention, "call", _attention_call)]


def lean_layers(model):
    """Paths of the layers of ``model`` whose class :func:`fewer_ops` rewrites (exact class only).

    A listed layer keeps Keras' own code for a call the rewrite does not cover (a rank-2 Dense, a
    masked attention).

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of str
    """
    return rewritten_paths(model, _rewrites())


@contextlib.contextmanager
def fewer_ops(model):
    """Within the block, ``model``'s Dense, Reshape and MultiHeadAttention layers trace into fewer TFLite ops.

    Parameters
    ----------
    model : keras.Model

    Yields
    ------
    names : list of str
        The paths of the layers whose ``call`` was swapped, restored when the block ends.
    """
    with swapped_methods(model, _rewrites()) as names:
        yield names
