"""One apply for every merge of a producer's channels: fold into each consumer's rows, cut from every member.

A channel group (:class:`weightkit.analysis.structure.channels.ChannelGroup`; a plain producer -> consumer
site is a group with one producer, :meth:`weightkit.compress.merge.planning.plan.MergeSite.channel_group`) is
merged by one relation per tensor a consumer reads (``out[removed] ≈ β out[kept] + shift`` in the group's
own channel indices). :func:`apply_group` folds each into its consumer's input rows at the group's
channel offset (:func:`weightkit.compress.merge.applying.input_rows.fold_input_rows`, every kernel the
consumer's kind names: a recurrent layer's every gate, both halves of a Bidirectional one, a
SeparableConv's pointwise kernel), then cuts the removed channels from every producer's outputs, every
member's per-channel weights (BatchNormalization statistics, depthwise filters, a SeparableConv's depthwise
half) and the consumers' rows. The cuts wait in the
:class:`~weightkit.compress.merge.applying.rebuild.WeightState` (offsets into concatenated tensors stay valid
while several groups fold) unless ``at_once``.
"""

import numpy as np

from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.merge.applying.folding import fold_rows
from weightkit.compress.merge.applying.input_rows import add_to_bias, fold_input_rows

__all__ = ["apply_group", "cut_group", "cut_outputs", "fold_consumer", "fold_own", "input_keys"]


def input_keys(state, layer):
    """``[(kernel key, bias key, bias row)]`` whose rows are ``layer``'s input channels (its kind's
    :meth:`~weightkit.analysis.kinds.LayerKind.input_kernels`)."""
    keras_layer = state.layers[layer]
    return kind_for(keras_layer).input_kernels(keras_layer)


def fold_consumer(state, use, relation):
    """Fold ``relation`` into one consumer's rows at the group's channel offset in the tensor it reads; cut later.

    Parameters
    ----------
    state : weightkit.compress.merge.applying.rebuild.WeightState
    use : weightkit.analysis.structure.channels.ChannelUse
        A ``consumer`` use: ``inputs[0][1]`` is the offset, ``channels`` the width of the tensor read.
    relation : weightkit.compress.merge.applying.math.Relation
    """
    fold_input_rows(state, use.layer, input_keys(state, use.layer), relation, channels=use.channels,
                    offset=use.inputs[0][1])


def _owner(state, name, prefix=""):
    """``(layer, kind)`` holding arrays ``prefix*`` of layer ``name``: the layer, or its half named by ``prefix``."""
    layer = state.layers[name]
    kind = kind_for(layer)
    for half_prefix, half, half_kind in (kind.halves(layer) or []) if prefix else []:
        if half_prefix == prefix:
            return half, half_kind
    return layer, kind


def cut_outputs(state, name, n, removed, *, prefix="", kind=None):
    """Cut output channels ``removed`` of a producer's ``n`` from every array its kind names (deferred).

    Parameters
    ----------
    state : weightkit.compress.merge.applying.rebuild.WeightState
    name : str
    n : int
    removed : ndarray of int
    prefix : str, default=""
        ``forward/`` or ``backward/``: the half of a Bidirectional layer.
    kind : LayerKind, default=None
        The producer's kind (:meth:`~weightkit.analysis.kinds.LayerKind.output_cuts`); None: its registered one.
    """
    layer, own_kind = _owner(state, name, prefix)
    for key, axis in (kind or own_kind).output_cuts(layer, prefix):
        state.cut(name, key, axis, n, removed)
    state.resized[name] = n - int(np.asarray(removed).size)


def fold_own(state, name, relation, *, prefix=""):
    """Fold ``relation`` into the kernels that read the producer's own outputs (a recurrent kernel, every gate).

    Nothing for a layer whose kind names none; the rows are cut by :func:`cut_outputs`.
    """
    layer, kind = _owner(state, name, prefix)
    arrays = state.arrays[name]
    for kernel_key, bias_key, bias_row in kind.own_input_kernels(layer, prefix):
        arrays[kernel_key], offset = fold_rows(arrays[kernel_key], relation, channels=relation.n)
        add_to_bias(state, name, bias_key, bias_row, kernel_key, offset)


def cut_group(state, group, removed, producer_kinds=None):
    """Cut ``removed`` (group channel indices) from every producer's outputs and member's channels.

    Parameters
    ----------
    state : WeightState
    group : weightkit.analysis.structure.channels.ChannelGroup
    removed : ndarray of int
    producer_kinds : dict of str to LayerKind, default=None
        ``producer layer -> its kind`` (:mod:`weightkit.analysis.kinds`): the kernel it cuts; None: each
        producer's registered kind.
    """
    removed = np.asarray(removed, dtype=np.int64)
    if removed.size == 0:
        return
    for name in group.producers:
        cut_outputs(state, name, group.n, removed, kind=None if producer_kinds is None else producer_kinds[name])
    for use in group.members:
        indices = (use.inputs[0][1] if use.inputs else 0) + removed
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


def apply_group(state, group, relations, removed=None, *, at_once=False):
    """Fold a group's relations into its consumers and cut its removed channels everywhere.

    Parameters
    ----------
    state : weightkit.compress.merge.applying.rebuild.WeightState
        Updated in place.
    group : weightkit.analysis.structure.channels.ChannelGroup
    relations : Relation or dict of (str, int) to Relation
        One relation holding at every tensor the consumers read, or ``(consumer layer, channel offset) ->``
        the relation of the tensor it reads.
    removed : array-like of int, default=None
        The channels to remove (group indices); each relation's other removed rows are kept instead.
        None: the relation's (one relation only).
    at_once : bool, default=False
        Carry out this group's cuts now, not when rebuilding (a plain site: later merges read its consumers'
        rows already cut).
    """
    if removed is None:
        removed = relations.removed
    removed = np.asarray(sorted(int(j) for j in removed), dtype=np.int64)
    if removed.size == 0:
        return
    pending = state.cuts
    if at_once:
        state.cuts = {}
    consumers = {}
    for use in group.consumers:  # a shared consumer reading the group twice at one offset folds once
        consumers.setdefault((use.layer, use.inputs[0][1]), use)
    at = relations if isinstance(relations, dict) else dict.fromkeys(consumers, relations)
    if not isinstance(relations, dict):  # a recurrent producer reads its own outputs too
        for name in group.producers:
            fold_own(state, name, relations.without(np.flatnonzero(~np.isin(relations.removed, removed))))
    for key, relation in at.items():
        drop = np.flatnonzero(~np.isin(relation.removed, removed))
        fold_consumer(state, consumers[key], relation.without(drop))
    cut_group(state, group, removed)
    if at_once:
        state.apply_cuts()
        state.cuts = pending
