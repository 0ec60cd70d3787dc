"""Apply a coupled group's merge to a model's weights: fold into every consumer, cut every member.

A channel group (:func:`weightkit.analysis.structure.channels.channel_groups`) is merged by one relation per tensor a
consumer reads (``out[removed] ≈ β out[kept] + shift`` in the group's own channel indices). Each
consumer folds the relation into its rows at the group's channel offset; then the removed
channels are cut from every producer's outputs, every member's per-channel weights
(BatchNormalization statistics, depthwise filters, a SeparableConv's depthwise half) and the
consumers' rows. Cuts are deferred to :meth:`weightkit.compress.merge.applying.rebuild.WeightState.apply_cuts`, so
offsets into concatenated tensors stay valid while several groups are folded.
"""

import numpy as np

from weightkit.analysis.structure.channel_roles import RECURRENT_LAYOUTS
from weightkit.compress.merge.applying.input_rows import fold_input_rows, input_row_block
from weightkit.compress.merge.applying.math import Relation, fold_coefficient

__all__ = [
    "consumer_block",
    "cut_group",
    "depthwise_rows",
    "fold_group_consumer",
    "producer_rows",
    "propagate_depthwise",
]

_TINY = 1e-30
_KERNEL = {"separable": "pointwise_kernel"}


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


def _input_keys(state, use):
    """A consumer's ``(kernel, bias, bias row)`` keys whose rows are its input channels, from the state's arrays.

    A recurrent (or Bidirectional) consumer's input kernels, every gate's; else the one kernel.
    """
    if use.layout not in RECURRENT_LAYOUTS:
        return [(_KERNEL.get(use.layout, "kernel"), "bias", None)]
    prefixes = ("forward/", "backward/") if use.layout == "bidirectional" else ("",)
    return [(p + "kernel", p + "bias", 0 if np.ndim(state.arrays[use.layer].get(p + "bias")) == 2 else None)
            for p in prefixes]


def consumer_block(state, use, offset, n):
    """The weights leaving the group's channels in one consumer: ``(n, positions · out)``."""
    return input_row_block(state, use.layer, _input_keys(state, use), use.channels, offset, n)


def fold_group_consumer(state, use, offset, relation):
    """Fold ``relation`` into a consumer's rows at channel ``offset`` of the tensor it reads; cut later.

    Every gate's input rows of a recurrent consumer (both halves' of a Bidirectional one).
    """
    fold_input_rows(state, use.layer, _input_keys(state, use), relation, channels=use.channels, offset=offset)


def cut_group(state, group, removed, producer_kinds):
    """Cut ``removed`` (group channel indices) from every producer's outputs and member's channels.

    Parameters
    ----------
    state : WeightState
    group : weightkit.analysis.structure.channels.ChannelGroup
    removed : ndarray of int
    producer_kinds : dict of str to LayerKind
        ``producer layer -> its kind`` (:mod:`weightkit.analysis.kinds`): the kernel it cuts.
    """
    removed = np.asarray(removed, dtype=np.int64)
    if removed.size == 0:
        return
    for name in group.producers:
        state.cut(name, producer_kinds[name].output_kernel, -1, group.n, removed)
        state.cut(name, "bias", 0, group.n, removed)  # also a bias a later fold gives it
        state.resized[name] = group.n - int(removed.size)
    for use in group.members:
        offset = (use.inputs[0][1] if use.inputs else 0)
        indices = offset + removed
        arrays = state.arrays[use.layer]
        if use.role == "affine":
            for variable in arrays:
                state.cut(use.layer, variable, 0, use.channels, indices)
        elif use.role == "depthwise":
            state.cut(use.layer, "kernel", -2, use.channels, indices)
            if "bias" in arrays:
                state.cut(use.layer, "bias", 0, use.channels, indices)
        elif use.role == "separable":
            state.cut(use.layer, "depthwise_kernel", -2, use.channels, indices)
