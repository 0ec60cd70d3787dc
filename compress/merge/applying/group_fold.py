"""What a coupled group's merge reads of the weights: producer rows, depthwise filters, consumer blocks.

A channel group (:func:`weightkit.analysis.structure.channels.channel_groups`) decides its merges on its
producers' rows (:func:`producer_rows`) and its depthwise filters (:func:`depthwise_rows`, through which
:func:`propagate_depthwise` carries a relation), weighed by the weights leaving its channels in each
consumer (:func:`consumer_block`). Applying the merge is
:func:`weightkit.compress.merge.applying.apply_group.apply_group` (``cut_group`` is its cut, kept here for
the refit).
"""

import numpy as np

from weightkit.compress.merge.applying.apply_group import cut_group, input_keys
from weightkit.compress.merge.applying.input_rows import input_row_block
from weightkit.compress.merge.applying.math import Relation, fold_coefficient

__all__ = ["consumer_block", "cut_group", "depthwise_rows", "producer_rows", "propagate_depthwise"]

_TINY = 1e-30


def producer_rows(state, layer_name, kind):
    """A producer's rows ``(n, fan_in + 1)`` in float64, bias last; a SeparableConv's composite filter.

    ``kind`` is the producer's :class:`weightkit.analysis.kinds.LayerKind`.
    """
    arrays = state.arrays[layer_name]
    kernel = kind.producer_kernel(arrays)
    n = kernel.shape[-1]
    rows = kernel.reshape(-1, n).T
    bias = arrays.get("bias")
    bias = np.zeros(n) if bias is None else bias.astype(np.float64)
    return np.concatenate([rows, bias[:, None]], axis=1)


def depthwise_rows(kernel, offset, n):
    """Per-channel depthwise filters ``(n, taps)`` of the group's channels (depth multiplier 1)."""
    kernel = np.asarray(kernel, dtype=np.float64)[..., offset:offset + n, 0]
    return np.moveaxis(kernel, -1, 0).reshape(n, -1)


def propagate_depthwise(relation, filters, bias=None, *, tolerance=1e-4):
    """Carry a relation through a depthwise filter per channel: ``y_c = d_c * x_c + b_c``.

    Each ``β[j, k]`` becomes ``β[j, k] · γ_jk`` with ``γ_jk`` the least-squares scale of ``d_j`` on
    ``d_k``: exact when the filters are scaled copies. A shift becomes ``shift · Σ d_j`` (exact
    away from zero-padded borders), plus ``b_j − Σ_k β'[j, k] b_k``.

    Parameters
    ----------
    relation : Relation
    filters : ndarray of shape (n, taps)
    bias : ndarray of shape (n,), default=None

    Returns
    -------
    relation : Relation
    inexact : list of (int, str)
        Rows (positions in ``relation.removed``) whose filters are not scaled copies.
    """
    beta = relation.beta.copy()
    inexact = []
    for row, j in enumerate(relation.removed):
        largest = float(np.abs(beta[row]).max(initial=0.0))
        for column in np.flatnonzero(np.abs(beta[row]) > 0):
            k = relation.kept[column]
            gamma = fold_coefficient(filters[j], filters[k])
            error = np.linalg.norm(filters[j] - gamma * filters[k]) / max(np.linalg.norm(filters[j]), _TINY)
            if error > tolerance and abs(beta[row, column]) > 1e-6 * largest:
                reason = f"the depthwise filters of channels {j} and {k} are not scaled copies (residual {error:.2g})"
                inexact.append((row, reason))
            beta[row, column] *= gamma
    shift = relation.shift * filters[relation.removed].sum(axis=1)
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        shift = shift + bias[relation.removed] - beta @ bias[relation.kept]
    return Relation(relation.removed, relation.kept, beta, shift), inexact


def consumer_block(state, use, offset, n):
    """The weights leaving the group's channels in one consumer: ``(n, positions · out)``."""
    return input_row_block(state, use.layer, input_keys(state, use.layer), use.channels, offset, n)
