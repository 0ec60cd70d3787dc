"""Merge redundant neurons into their twins, with compensation in the layers that read them.

:func:`merge_neurons` is the verb: ``mode="weights"`` dispatches to :func:`merge_redundant`
(rows that are scaled copies of each other), ``mode="data"`` to :func:`merge_by_data` (a neuron
rebuilt from others by least squares on activations). Both plan the model's merge sites
(:mod:`~compress.merge.plan`), fold the removed neurons into the consumers
(:mod:`~compress.merge.math`, :mod:`~compress.merge.data_fit`) and rebuild a smaller model
(:mod:`~compress.merge.rebuild`). Channels tied by residual joins, concatenations and depthwise
filters merge as one coupled group (:mod:`~compress.merge.groups`, on
:func:`analysis.channels.channel_groups`); :func:`apply_relations` applies an explicit removal plan.
Their reports share :class:`BaseMergeReport`
(:mod:`~compress.merge.report`).
"""

from compress.merge.api import MERGE_MODES, merge_neurons
from compress.merge.by_data import DataMergeReport, LayerDataMerge, merge_by_data
from compress.merge.by_weights import MERGE_METRICS, apply_relations, merge_redundant
from compress.merge.groups import plan_groups
from compress.merge.plan import find_merge_sites
from compress.merge.report import BaseMergeReport, LayerMerge, MergeReport, compare_models, evaluate_merge

__all__ = [
    "MERGE_METRICS",
    "MERGE_MODES",
    "BaseMergeReport",
    "DataMergeReport",
    "LayerDataMerge",
    "LayerMerge",
    "MergeReport",
    "apply_relations",
    "compare_models",
    "evaluate_merge",
    "find_merge_sites",
    "merge_by_data",
    "merge_neurons",
    "merge_redundant",
    "plan_groups",
]
