"""Data-aware merging of a coupled channel group: fit on the tensors the consumers read, fold, cut.

For a group (:func:`weightkit.analysis.structure.channels.channel_groups`), each tensor its consumers read (after the
residual Add, the concatenation, the pooling before a Flatten) is a *tap*. The consumers of one
tap share one reconstruction ``a_j ≈ Σ β_jk a_k + c_j`` fitted there; the channels to remove are
chosen by the summed error over every tap's consumers (:func:`weightkit.compress.merge.fitting.group_fit.plan_group_fit`)
and removed from every producer and member of the group at once. A SeparableConv consumer reads
its depthwise half's output, which is internal: the relation is fitted on its input and carried
through the depthwise filters (exact only where they are scaled copies; the report says so).
"""

import numpy as np

from weightkit.compress.merge.reporting.data_report import LayerDataMerge
from weightkit.compress.merge.fitting.group_fit import plan_group_fit
from weightkit.compress.merge.applying.group_fold import consumer_block, depthwise_rows, propagate_depthwise
from weightkit.compress.merge.applying.apply_group import apply_group
from weightkit.compress.merge.planning.groups import group_members
from weightkit.compress.merge.applying.math import Relation

__all__ = ["group_taps", "merge_group_by_data"]


def group_taps(group, graph):
    """``(consumer layer, offset) -> list of tap layer names`` of a group, or (None, reason)."""
    taps = {}
    for use in group.consumers:
        node = graph.producer(use.tap)
        if node is None:
            return None, "its consumers read a model input"
        if graph.is_shared(node.layer):
            return None, f"its consumers read the output of {node.layer.name}, a layer called at several places"
        taps.setdefault((use.layer, use.inputs[0][1]), [])
        if node.layer.name not in taps[(use.layer, use.inputs[0][1])]:
            taps[(use.layer, use.inputs[0][1])].append(node.layer.name)
    return taps, None


def merge_group_by_data(plan, group, state, activations, taps, *, ratio, max_error, ridge, weigh_by_consumer):
    """Fit, fold and cut one coupled group; its report entry.

    Parameters
    ----------
    plan : weightkit.compress.merge.planning.groups.GroupPlan
    group : ChannelGroup
    state : WeightState
        Updated in place.
    activations : dict of str to ActivationSample
        Calibration samples of every tap layer.
    taps : dict
        From :func:`group_taps`.
    ratio, max_error, ridge, weigh_by_consumer
        As for :func:`weightkit.compress.merge.merge_by_data`.

    Returns
    -------
    LayerDataMerge
    """
    graph, n = plan.graph, group.n
    consumers = {(u.layer, u.inputs[0][1]): u for u in group.consumers}
    tap_names = list(dict.fromkeys(name for names in taps.values() for name in names))
    first = graph.nodes[group.uses[0].node].layer
    report = LayerDataMerge(name=group.producers[0], type=type(first).__name__, tap=", ".join(tap_names),
                            consumers=list(dict.fromkeys(layer for layer, _ in consumers)), neurons_before=n,
                            neurons_after=n, producers=list(group.producers), members=group_members(group))
    units = {}
    for key, names in taps.items():
        units.setdefault(tuple(names), []).append(key)
    arrays, keys = [], []
    for names, members in units.items():
        offset = members[0][1]
        rows = np.concatenate([activations[name].values[offset:offset + n].T for name in names], axis=0)
        weights = np.concatenate([consumer_block(state, consumers[k], k[1], n) for k in members], axis=1) \
            if weigh_by_consumer else None
        arrays.append((rows, weights))
        keys.append(members)
    report.rows = int(sum(a.shape[0] for a, _ in arrays))
    if not all(np.isfinite(a).all() for a, _ in arrays):
        report.notes.append("activations contain NaN or Inf on the calibration sample: left alone")
        return report
    count = None if ratio is None else min(n - 1, round(ratio * n))
    report.requested = count
    fit = plan_group_fit(arrays, count=count, max_error=None if count is not None else max_error, ridge=ridge)
    at_consumers = {}
    approximate = False
    for members, beta, intercept in zip(keys, fit.beta, fit.intercept):
        relation = Relation(fit.remove, fit.keep, beta, intercept)
        for key in members:
            use = consumers[key]
            if use.layout == "separable":
                filters = depthwise_rows(state.arrays[use.layer]["depthwise_kernel"], key[1], n)
                carried, inexact = propagate_depthwise(relation, filters)
                approximate = approximate or bool(inexact)
                at_consumers[key] = carried
            else:
                at_consumers[key] = relation
    if approximate:
        report.notes.append("carried through a SeparableConv's depthwise filters, which are not scaled copies: "
                            "approximate")
    if len(tap_names) > 1 or tap_names[0] != group.producers[0]:
        report.notes.append(f"fitted on the output of {', '.join(tap_names)}")
    dead = set(fit.dead.tolist())
    report.removed = [{"neuron": int(j), "r2": round(float(r2), 6), "dead": int(j) in dead}
                      for j, r2 in zip(fit.remove, fit.r2)]
    report.error = float(fit.error)
    apply_group(state, group, at_consumers, fit.remove)
    report.neurons_after = int(fit.keep.size)
    return report
