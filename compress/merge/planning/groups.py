"""Which producers merge alone and which merge as a coupled group; merging a group by weights.

:func:`plan_groups` runs the channel walk (:func:`weightkit.analysis.structure.channels.channel_groups`) beside the
plain merge sites (:func:`weightkit.compress.merge.planning.plan.find_merge_sites`): a producer whose site is
mergeable on its own keeps the plain path; the channels tied by joins, concatenations and
depthwise filters merge as one group (:func:`merge_group_by_weights`, and
:func:`weightkit.compress.merge.group_data.merge_group_by_data`), counted once by ``--ratio``.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis.structure.channels import channel_groups
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.kinds.registry import kind_for
from weightkit.compress.merge.applying.apply_group import apply_group
from weightkit.compress.merge.applying.group_weights import (
    carry_group,
    folded_batchnorms,
    greedy_group_merges,
    group_requirement,
    group_similarity,
    member_rows,
)
from weightkit.compress.merge.planning.plan import find_merge_sites
from weightkit.compress.merge.reporting.report import LayerMerge

__all__ = ["GroupPlan", "group_members", "merge_group_by_weights", "plan_groups"]

_DEFAULT_THRESHOLDS = {"pearson": 0.9, "cosine": 0.9, "mad": 0.2}
_EXACT = 1e-4


@dataclass
class GroupPlan:
    """How every producer of a model merges.

    Attributes
    ----------
    graph : ModelGraph
    sites : dict of str to MergeSite
        The plain sites (:func:`weightkit.compress.merge.planning.plan.find_merge_sites`).
    groups : list of ChannelGroup
        The coupled groups merged as a whole, mergeable ones only.
    blocked : dict of str to str
        Producers left alone: the reason of their group (or of their plain site).
    walked : list of ChannelGroup
        Every group of the channel walk (:func:`weightkit.analysis.structure.channels.channel_groups`), mergeable or
        not, one-producer ones included: the walk runs once per plan.
    """

    graph: object
    sites: dict
    groups: list = field(default_factory=list)
    blocked: dict = field(default_factory=dict)
    walked: list = field(default_factory=list)

    def plain(self, name):
        """Whether producer ``name`` merges on the plain path."""
        site = self.sites.get(name)
        return site is not None and site.mergeable and not any(name in g.producers for g in self.groups)


def plan_groups(model):
    """Plain sites and coupled groups of a model (see the module docstring).

    Returns
    -------
    GroupPlan
    """
    graph = ModelGraph(model)
    walked = channel_groups(graph)
    sites = find_merge_sites(model, graph, walked)
    plan = GroupPlan(graph, sites, walked=walked)
    for group in plan.walked:
        single = len(group.producers) == 1 and sites.get(group.producers[0]) is not None and \
            sites[group.producers[0]].mergeable
        if single and not group.coupled:
            continue
        reason = group.reason or _shared_producer_problem(group, graph)
        if reason is None and group.n >= 2 and not single:
            plan.groups.append(group)
        elif reason is None and single:
            continue
        else:
            kinds = _kinds(group, graph)
            for name in group.producers:
                site = sites.get(name)
                own = site.reason if site is not None and kinds[name].merge != "separable" else None
                plan.blocked[name] = own or reason or "only one channel: nothing to merge"
    return plan


def _shared_producer_problem(group, graph):
    """Why a producer called at several places blocks its group, or None.

    The walk unites every call's output channels (:func:`weightkit.analysis.structure.channels.channel_groups`), so a
    channel removed from the producer's kernel leaves every call's output, and each call's
    consumers are folded on their own tensor. Only calls whose outputs the group does not hold
    (the walk gave up on them) block it.
    """
    for use in group.uses:
        layer = graph.nodes[use.node].layer
        if use.role != "producer" or not graph.is_shared(layer):
            continue
        held = {u.node for u in group.uses if u.role == "producer" and u.layer == use.layer}
        if any(node.index not in held for node in graph.nodes_of(layer)):
            return "a producer of the group is called at places outside the group"
    return None


def group_members(group):
    """Every layer whose weights the group changes: producers, members, consumers (each once, in order)."""
    return list(dict.fromkeys(group.producers + [u.layer for u in group.members] + [u.layer for u in group.consumers]))


def _kinds(group, graph):
    """``producer layer -> its kind``."""
    return {u.layer: kind_for(graph.nodes[u.node].layer) for u in group.uses if u.role == "producer"}


def merge_group_by_weights(model, plan, group, state, keras, *, metric, threshold, ratio, twin_tolerance):
    """Merge one coupled group by its producers' weights; the report entry of the group.

    Returns
    -------
    LayerMerge
        Named after the group's first producer; ``producers`` and ``members`` list the group.
    """
    graph = plan.graph
    folded = folded_batchnorms(group, graph)
    rows, extra = member_rows(group, graph, state, model, folded)
    requirement = group_requirement(group, graph, keras)
    first = graph.nodes[group.uses[0].node].layer
    report = LayerMerge(name=group.producers[0], type=type(first).__name__, activation=requirement, rule=requirement,
                        consumers=list(dict.fromkeys(u.layer for u in group.consumers)), neurons_before=group.n,
                        neurons_after=group.n, producers=list(group.producers), members=group_members(group))
    if not all(np.isfinite(r).all() for r in rows.values()):
        report.notes.append("weights contain NaN or Inf: left alone")
        return report
    similarity, higher = group_similarity(list(rows.values()) + extra, metric)
    count = None
    if ratio is not None:
        count = round(float(ratio) * group.n)
        report.requested = count
        threshold = None
    elif threshold is None:
        threshold = _DEFAULT_THRESHOLDS[metric]
    merges = greedy_group_merges(rows, similarity, higher, count, requirement, threshold=threshold,
                                 twin_tolerance=twin_tolerance)
    at_consumers, refused, inexact = carry_group(group, graph, state, model, merges, folded, keras,
                                                 twin_tolerance=twin_tolerance)
    chosen = merges[group.producers[0]]
    removed = [m.removed for m in chosen if m.removed not in refused]
    worst = {}
    for name in group.producers:
        for merge in merges[name]:
            worst[merge.removed] = max(worst.get(merge.removed, 0.0), merge.residual)
    for merge in chosen:
        if merge.removed in refused:
            continue
        exact = worst[merge.removed] <= _EXACT and merge.removed not in inexact
        report.merges.append({"removed": merge.removed, "keeper": merge.keeper, "alpha": round(merge.alpha, 6),
                              "residual": float(f"{worst[merge.removed]:.3g}"), "exact": bool(exact)})
    report.left_alone = [{"neuron": int(j), "keeper": None, "reason": reason} for j, reason in sorted(refused.items())]
    reasons = sorted({reason for j, reason in inexact.items() if j in removed})
    report.notes.extend(f"approximate: {reason}" for reason in reasons)
    if count is not None and len(removed) < count:
        report.notes.append(f"removed {len(removed)} of the {count} requested: only that many pairs meet the "
                            f"{requirement} rule in every producer of the group")
    apply_group(state, group, at_consumers, removed)
    report.neurons_after = group.n - len(removed)
    return report
