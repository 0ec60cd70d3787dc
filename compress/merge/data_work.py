"""What a data-aware merge does with each producer: which path merges it, or why it is left alone.

:func:`sort_work` splits a model's merge plan (:func:`weightkit.compress.merge.planning.groups.plan_groups`)
into the paths of :func:`weightkit.compress.merge.merge_by_data`: plain sites fitted one-shot, coupled
groups fitted one-shot at their taps, groups refitted on the model merged so far (plain sites become
one-producer groups there), and recurrent layers folded on their hidden states. Left-alone producers go
to the report's ``skipped`` with the reason.
"""

from dataclasses import dataclass, field

from weightkit.analysis.results import SkippedLayer
from weightkit.compress.merge.applying.rebuild import find_layer
from weightkit.compress.merge.group_data import group_taps
from weightkit.compress.merge.recurrent import folds_by_data, recurrent_site
from weightkit.compress.merge.refit import plain_groups, refittable

__all__ = ["DataWork", "sort_work"]


@dataclass
class DataWork:
    """The producers of one data-aware merge, by path.

    Attributes
    ----------
    targets : list of MergeSite
        Plain sites fitted one-shot on the original model's activations at their tap.
    groups : list of ChannelGroup
        Coupled groups fitted one-shot at their taps.
    taps : dict of int to dict
        ``id(group) ->`` its taps (:func:`weightkit.compress.merge.group_data.group_taps`).
    refitted : list of ChannelGroup
        Groups (one-producer ones for plain sites) refitted sequentially.
    recurrent : list of RecurrentSite
    """

    targets: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    taps: dict = field(default_factory=dict)
    refitted: list = field(default_factory=list)
    recurrent: list = field(default_factory=list)

    @property
    def tap_layers(self):
        """The layers whose outputs the one-shot fits read, each once."""
        names = [site.tap for site in self.targets] + [name for group in self.groups
                                                       for names in self.taps[id(group)].values() for name in names]
        return list(dict.fromkeys(names))


def sort_work(model, plan, wanted, report, refit):
    """Sort the producers of ``plan`` (those in ``wanted``, every one when None) by merge path.

    Parameters
    ----------
    model : keras.Model
    plan : GroupPlan
    wanted : set of str or None
    report : DataMergeReport
        Its ``skipped`` gets every producer left alone, with the reason.
    refit : bool
        Plain sites and refittable groups go to the sequential refit.

    Returns
    -------
    DataWork
    """
    sites, work = plan.sites, DataWork()
    for group in plan.groups:
        if wanted is not None and not wanted & set(group.producers):
            continue
        taps, reason = group_taps(group, plan.graph)
        if reason is None:
            work.groups.append(group)
            work.taps[id(group)] = taps
        else:
            report.skipped.extend(SkippedLayer(name, sites[name].type, reason) for name in group.producers)
    grouped = {name for group in plan.groups for name in group.producers}
    members = {u.layer for group in plan.groups for u in group.members}
    for name, site in sites.items():
        if (wanted is not None and name not in wanted) or name in grouped or name in members:
            continue
        if folds_by_data(find_layer(model, name)):  # units folded into every gate (compress.merge.recurrent)
            unit_site = recurrent_site(plan.graph, find_layer(model, name))
            if unit_site.reason is None:
                work.recurrent.append(unit_site)
            else:
                report.skipped.append(SkippedLayer(name, site.type, unit_site.reason))
        elif not site.mergeable:
            report.skipped.append(SkippedLayer(name, site.type, plan.blocked.get(name, site.reason)))
        elif site.n_neurons < 2:
            report.skipped.append(SkippedLayer(name, site.type, "only one neuron: nothing to merge"))
        else:
            work.targets.append(site)
    if refit:  # plain producers become one-producer groups; every group is refitted sequentially
        plain, alone = plain_groups(model, plan, [site.layer for site in work.targets])
        work.refitted = plain + [group for group in work.groups if refittable(model, group)]
        work.groups = [group for group in work.groups if not refittable(model, group)]
        work.targets = [site for site in work.targets if site.layer in alone]
    return work
