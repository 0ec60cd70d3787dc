"""Weight-based merging of a coupled channel group: one pair choice for every producer, folded everywhere.

A pair ``(j -> k)`` is redundant for the group only when it is redundant in every producer: the
group's similarity is its worst member's (the smallest Pearson/cosine, the largest MAD relative to
each member's median). Each producer gets its own ``α`` (least squares on its rows, a
BatchNormalization right after it folded in); the relation is then carried through the group's
graph (:func:`carry_group`): steps as for a plain merge, depthwise filters scaling ``α``, and at
each elementwise join the inputs' relations must agree. Where the producers' scale factors
differ the merge is not exact: the mean is used and the report says so (``--mode data`` fits the
relation on the tensor read instead).
"""

import numpy as np

from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.numeric.matrices import mad_matrix, pearson_matrix
from weightkit.compress.merge.planning.consumers import neuron_layer
from weightkit.compress.merge.applying.carry import carry_step
from weightkit.compress.merge.applying.group_fold import depthwise_rows, producer_rows, propagate_depthwise
from weightkit.compress.merge.applying.math import (
    Merge,
    Relation,
    cosine_matrix,
    pair_allowed,
    relation_from_merges,
)
from weightkit.compress.merge.planning.pair_rule import allowed_pairs
from weightkit.compress.merge.planning.plan import Step, _activation_layer_step, _activation_step
from weightkit.compress.merge.applying.rebuild import batchnorm_affine

__all__ = ["carry_group", "folded_batchnorms", "greedy_group_merges", "group_requirement", "group_similarity"]

_AGREE = 1e-4


def _similarity(rows, metric):
    if metric == "cosine":
        return cosine_matrix(rows), True
    if metric == "pearson":
        return np.nan_to_num(np.asarray(pearson_matrix(rows.astype(np.float32)), dtype=np.float64)), True
    matrix = np.asarray(mad_matrix(rows.astype(np.float32)), dtype=np.float64)
    off = matrix[~np.eye(len(matrix), dtype=bool)]
    median = float(np.median(off)) if off.size else 1.0
    return matrix / max(median, 1e-30), False


def group_similarity(rows_by_member, metric):
    """The group's similarity matrix: the worst member's value for every pair.

    Parameters
    ----------
    rows_by_member : list of ndarray of shape (n, fan_in_p + 1)
    metric : {"pearson", "mad", "cosine"}

    Returns
    -------
    matrix : ndarray of shape (n, n)
    higher_is_similar : bool
    """
    combined, higher = None, True
    for rows in rows_by_member:
        matrix, higher = _similarity(rows, metric)
        combined = matrix if combined is None else (np.minimum(combined, matrix) if higher else
                                                    np.maximum(combined, matrix))
    return combined, higher


def greedy_group_merges(rows_by_producer, similarity, higher, count, requirement, *, threshold=None,
                        twin_tolerance=0.05):
    """Pairs of the group, most similar first, allowed in every producer.

    Parameters
    ----------
    rows_by_producer : dict of str to ndarray of shape (n, fan_in + 1)
    similarity : ndarray of shape (n, n)
    higher : bool
    count : int or None
        Channels to remove; None with ``threshold``: every pair at least that similar.
    requirement : {"linear", "positive", "twin"}
    threshold : float, default=None

    Returns
    -------
    dict of str to list of Merge
        Per producer, the same pairs with that producer's ``α``.
    """
    names = list(rows_by_producer)
    n = similarity.shape[0]
    limit = n - 1 if count is None else min(int(count), n - 1)
    merges = {name: [] for name in names}
    if limit <= 0:
        return merges
    scale = {name: np.linalg.norm(rows, axis=1) / max(np.linalg.norm(rows, axis=1).max(), 1e-30)
             for name, rows in rows_by_producer.items()}
    norms = sum(scale.values())
    allowed = np.ones((n, n), dtype=bool)
    for rows in rows_by_producer.values():
        allowed &= allowed_pairs(rows, requirement, twin_tolerance)
    i, j = np.triu_indices(n, 1)
    keep = allowed[i, j] | allowed[j, i]
    i, j = i[keep], j[keep]
    values = similarity[i, j]
    order = np.argsort(-values if higher else values, kind="stable")
    removed = np.zeros(n, dtype=bool)
    done = 0
    for index in order:
        if threshold is not None and (values[index] < threshold if higher else values[index] > threshold):
            break
        a, b = int(i[index]), int(j[index])
        if removed[a] or removed[b]:
            continue
        small, large = (a, b) if norms[a] < norms[b] or (norms[a] == norms[b] and a > b) else (b, a)
        found = {}
        for name, rows in rows_by_producer.items():
            merge, _ = pair_allowed(rows[small], rows[large], requirement, twin_tolerance)
            if merge is None:
                break
            found[name] = Merge(small, large, merge.alpha, merge.residual)
        if len(found) != len(names):
            continue
        for name, merge in found.items():
            merges[name].append(merge)
        removed[small] = True
        done += 1
        if done == limit:
            break
    return merges


def _wrapped_step(layer):
    """The step a TimeDistributed layer applies on every time step; any other layer itself."""
    kind = kind_for(layer)
    return layer.layer if kind is not None and kind.wrapped_step(layer) is not None else layer


def _activation_of(producer):
    """A producer's own activation (a TimeDistributed layer's is its wrapped layer's)."""
    inner = neuron_layer(producer) or producer
    return inner.get_config().get("activation", "linear")


def folded_batchnorms(group, graph):
    """``producer -> node index of the BatchNormalization folded into its rows`` (linear producer, sole reader)."""
    folded = {}
    by_node = {(u.node, u.role): u for u in group.uses}
    for use in group.uses:
        if use.role != "producer":
            continue
        node = graph.nodes[use.node]
        if _activation_of(node.layer) != "linear":
            continue
        readers = graph.readers(node.outputs[0])
        if len(readers) == 1 and (readers[0].index, "affine") in by_node and not graph.is_shared(readers[0].layer):
            folded[use.layer] = readers[0].index
    return folded


def group_requirement(group, graph, keras):
    """``linear``, ``positive`` or ``twin``: what the nonlinearities in the group allow a pair."""
    rule = "linear"
    for use in group.uses:
        layer = graph.nodes[use.node].layer
        step = None
        if use.role == "producer":
            step, _ = _activation_step(layer, _activation_of(layer), keras)
        elif use.role == "activation":
            step, _ = _activation_layer_step(_wrapped_step(layer), keras)
        elif use.role in ("max",) or (use.role == "couple" and kind_for(layer).nonlinear):
            rule = "positive" if rule == "linear" else rule
        if step is not None and step.description != "linear":
            if not step.homogeneous:
                return "twin"
            rule = "positive"
    return rule


def _combine(layer, relations):
    """The relation after an elementwise join (its kind's :meth:`~weightkit.analysis.kinds.JoinKind.carry`) of
    tensors with ``relations``; rows that differ reported."""
    first = relations[0]
    beta, shift, notes = kind_for(layer).carry(type(layer).__name__, np.stack([r.beta for r in relations]),
                                                np.stack([r.shift for r in relations]))
    return Relation(first.removed, first.kept, beta, shift), notes


def carry_group(group, graph, state, model, merges, folded, keras, *, twin_tolerance=0.05):
    """Carry each producer's relation through the group to every consumer.

    Returns
    -------
    at_consumers : dict of (str, int) to Relation
        ``(consumer layer, channel offset) -> relation`` of the tensor it reads.
    refused : dict of int to str
        Channels that cannot be merged (kept everywhere), with the reason.
    inexact : dict of int to str
        Channels merged approximately, with the reason.
    """
    from weightkit.compress.merge.applying.rebuild import find_layer

    n = group.n
    relations, at_consumers, refused, inexact = {}, {}, {}, {}
    folded_nodes = set(folded.values())

    def mark(relation, rows, target):
        for row, reason, *hard in rows:
            channel = int(relation.removed[row])
            (refused if (hard and hard[0]) or target is refused else inexact).setdefault(channel, reason)

    references = {}  # tensor id -> the largest normalization offset on the way (see carry_step)
    for use in group.uses:
        node = graph.nodes[use.node]
        layer = node.layer
        if use.role == "producer":
            relation = relation_from_merges(n, merges[use.layer])
            if use.layer not in folded:
                step, _ = _activation_step(layer, _activation_of(layer), keras)
                if step is not None:
                    relation, bad, _ = carry_step(relation, step, twin_tolerance=twin_tolerance)
                    mark(relation, bad, refused)
            relations[use.output[0]], references[use.output[0]] = relation, 1.0
            continue
        source = [relations.get(tid) for tid, _ in use.inputs]
        if any(r is None for r in source):
            continue
        relation = source[0]
        reference = max(references[tid] for tid, _ in use.inputs)
        if use.role == "consumer":
            if use.layout == "separable":
                filters = depthwise_rows(state.arrays[use.layer]["depthwise_kernel"], use.inputs[0][1], n)
                relation, rows = propagate_depthwise(relation, filters)
                mark(relation, rows, inexact)
            key = (use.layer, use.inputs[0][1])
            if key in at_consumers and not np.allclose(at_consumers[key].beta, relation.beta, rtol=_AGREE):
                for row in np.flatnonzero(~np.all(np.isclose(at_consumers[key].beta, relation.beta, rtol=_AGREE),
                                                  axis=1)):
                    inexact.setdefault(int(relation.removed[row]), f"{use.layer} is shared by tensors whose "
                                                                   "relations differ")
            at_consumers.setdefault(key, relation)
            continue
        if use.role == "separable":
            continue
        if use.role in ("affine", "activation", "max", "zero_pad") and use.node not in folded_nodes:
            step, affine = Step(use.layer, use.type, use.role), None
            if use.role == "affine":
                offset = use.inputs[0][1]
                scale, shift = batchnorm_affine(state, use.layer, find_layer(model, use.layer))
                affine = scale[offset:offset + n], shift[offset:offset + n]
            elif use.role == "activation":
                step, _ = _activation_layer_step(_wrapped_step(layer), keras)
            relation, bad, reference = carry_step(relation, step, affine=affine, twin_tolerance=twin_tolerance,
                                                  reference=reference)
            mark(relation, bad, refused)
        elif use.role == "depthwise":
            arrays = state.arrays[use.layer]
            offset = use.inputs[0][1]
            bias = arrays.get("bias")
            relation, rows = propagate_depthwise(relation, depthwise_rows(arrays["kernel"], offset, n),
                                                 None if bias is None else bias[offset:offset + n])
            mark(relation, rows, inexact)
        elif use.role == "couple":
            relation, rows = _combine(layer, source)
            mark(relation, rows, inexact)
        relations[use.output[0]], references[use.output[0]] = relation, reference
    return at_consumers, refused, inexact


def member_rows(group, graph, state, model, folded):
    """Rows that decide similarity: each producer's (BN folded where it follows directly), and depthwise filters."""
    from weightkit.compress.merge.applying.rebuild import find_layer

    rows, extra = {}, []
    for use in group.uses:
        layer = graph.nodes[use.node].layer
        if use.role == "producer" and use.layer not in rows:
            r = producer_rows(state, use.layer, kind_for(layer))
            if use.layer in folded:
                bn = graph.nodes[folded[use.layer]].layer
                scale, offset = batchnorm_affine(state, bn.name, find_layer(model, bn.name))
                r = r * scale[:, None]
                r[:, -1] += offset
            rows[use.layer] = r
        elif use.role == "depthwise":
            extra.append(depthwise_rows(state.arrays[use.layer]["kernel"], use.inputs[0][1], group.n))
    return rows, extra
