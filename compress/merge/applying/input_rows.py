"""How a consumer's input-channel rows absorb a folded relation: Dense, Conv, TimeDistributed, recurrent layers.

Every layer that can absorb a merged producer's channels reads them through kernels whose
second-to-last axis is the input channel: a Dense kernel ``(n_in, out)``, a Conv kernel
``(*k, n_in, out)``, a TimeDistributed layer's wrapped kernel, a recurrent layer's input kernel
``(n_in, gates · units)`` (rows are inputs, every gate's columns side by side) and, for a
Bidirectional layer, the input kernels of both halves. Folding ``a[removed] ≈ β a[kept] + shift``
into such a kernel is ``W[kept] += βᵀ W[removed]``, ``b += shiftᵀ W[removed]``; a GRU with
``reset_after`` keeps two bias rows and the input offset goes to the first (the input bias).

:class:`weightkit.compress.merge.applying.rebuild.WeightState` keys a Bidirectional layer's arrays as
``forward/<variable>`` and ``backward/<variable>``.
"""

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.registry import KINDS, kind_for
from weightkit.compress.merge.applying.folding import fold_rows

__all__ = ["RECURRENT_GATES", "add_to_bias", "consumer_kernel", "fold_input_rows", "input_kernels", "input_row_block",
           "two_row_bias"]

#: Recurrent layer classes whose units fold by data, and their gates (from the layer kinds).
RECURRENT_GATES = {name: kind.gate_count() for name, kind in KINDS.items() if kind.gate_count() is not None}


def two_row_bias(layer):
    """Whether a recurrent layer keeps an input and a recurrent bias row (GRU with ``reset_after``)."""
    return kind_for(layer).two_row_bias(layer)


def input_kernels(layer):
    """The kernels of a consumer whose rows are its input channels.

    Parameters
    ----------
    layer : keras.layers.Layer
        Dense, Conv, TimeDistributed(Dense/Conv), SimpleRNN/LSTM/GRU or Bidirectional of one.

    Returns
    -------
    list of (str, str, int or None)
        ``(kernel key, bias key, bias row)`` in :class:`weightkit.compress.merge.applying.rebuild.WeightState`'s keys;
        the bias row is 0 for a two-row GRU bias (the input bias), None for a 1-D bias.
    """
    return kind_for(layer).input_kernels(layer)


def consumer_kernel(layer):
    """A consumer's input kernel as float64, both halves of a Bidirectional side by side on the last axis.

    Returns
    -------
    ndarray of shape (..., n_in, n_outputs)
    """
    keras = import_keras()
    arrays = [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)
              for v in kind_for(layer).input_kernel_variables(layer)]
    return np.concatenate(arrays, axis=-1)


def input_row_block(state, layer, keys, channels, offset, n):
    """The weights leaving ``n`` input channels (from ``offset``) in every kernel of ``keys``: ``(n, outputs)``."""
    blocks = []
    for kernel_key, _, _ in keys:
        kernel = np.asarray(state.arrays[layer][kernel_key], dtype=np.float64)
        view = kernel.reshape(-1, channels, kernel.shape[-1])[:, offset:offset + n, :]
        blocks.append(np.moveaxis(view, 1, 0).reshape(n, -1))
    return np.concatenate(blocks, axis=1)


def add_to_bias(state, layer, bias_key, bias_row, kernel_key, offset):
    """Add ``offset`` (out,) to a layer's bias (row ``bias_row`` of a two-row one), giving it one when needed."""
    arrays = state.arrays[layer]
    if bias_key not in arrays:
        if not np.any(offset != 0):
            return
        shape = (2, offset.size) if bias_row is not None else (offset.size,)
        arrays[bias_key] = np.zeros(shape, dtype=arrays[kernel_key].dtype)
        state.added_bias.add(layer)
    bias = np.asarray(arrays[bias_key], dtype=np.float64).copy()
    if bias.ndim == 2:
        bias[0 if bias_row is None else bias_row] += offset
    else:
        bias += offset
    arrays[bias_key] = bias.astype(np.float32)


def fold_input_rows(state, layer, keys, relation, *, channels, offset=0):
    """Fold ``relation`` into a consumer's input rows at channel ``offset``; the cut is deferred.

    Parameters
    ----------
    state : weightkit.compress.merge.applying.rebuild.WeightState
        Updated in place; the removed rows are cut by
        :meth:`weightkit.compress.merge.applying.rebuild.WeightState.apply_cuts`.
    layer : str
    keys : list of (str, str, int or None)
        From :func:`input_kernels`.
    relation : weightkit.compress.merge.applying.math.Relation
        In the producer's channel indices (``0 .. relation.n``).
    channels : int
        Input channels of the tensor the consumer reads (several producers' side by side).
    offset : int, default=0
        Where the producer's channels start in that tensor.
    """
    if relation.removed.size == 0:
        return
    for kernel_key, bias_key, bias_row in keys:
        state.arrays[layer][kernel_key], bias_offset = fold_rows(state.arrays[layer][kernel_key], relation,
                                                                 channels=channels, offset=offset)
        add_to_bias(state, layer, bias_key, bias_row, kernel_key, bias_offset)
        state.cut(layer, kernel_key, -2, channels, offset + relation.removed)
