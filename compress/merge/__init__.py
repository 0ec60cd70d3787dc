"""Merge redundant neurons into their twins, with compensation in the layers that read them.

:func:`merge_neurons` is the verb: ``mode="weights"`` dispatches to :func:`merge_redundant`
(rows that are scaled copies of each other), ``mode="data"`` to :func:`merge_by_data` (a neuron
rebuilt from others by least squares on activations). Both plan the model's merge sites
(:mod:`~weightkit.compress.merge.planning.plan`), fold the removed neurons into the consumers
(:mod:`~weightkit.compress.merge.applying.math`, :mod:`~weightkit.compress.merge.fitting.data_fit`) and rebuild a smaller model
(:mod:`~weightkit.compress.merge.applying.rebuild`). Channels tied by residual joins, concatenations and depthwise
filters merge as one coupled group (:mod:`~weightkit.compress.merge.planning.groups`, on
:func:`weightkit.analysis.structure.channels.channel_groups`); :func:`apply_relations` applies an explicit removal plan.
Attention heads merge as units of their own (:func:`merge_heads_by_weights`, :func:`merge_heads_by_data`,
:func:`remove_heads`; :mod:`~weightkit.compress.merge.heads`), before the neurons in :func:`merge_neurons`.
Their reports share :class:`BaseMergeReport`
(:mod:`~weightkit.compress.merge.reporting.report`).
"""

from weightkit.compress.merge.api import MERGE_MODES, merge_neurons
from weightkit.compress.merge.applying.heads import remove_heads
from weightkit.compress.merge.heads import merge_heads_by_data, merge_heads_by_weights
from weightkit.compress.merge.by_data import DataMergeReport, LayerDataMerge, merge_by_data
from weightkit.compress.merge.by_weights import MERGE_METRICS, apply_relations, merge_redundant
from weightkit.compress.merge.planning.groups import plan_groups
from weightkit.compress.merge.planning.plan import find_merge_sites
from weightkit.compress.merge.reporting.report import BaseMergeReport, LayerMerge, MergeReport, compare_models, evaluate_merge

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
    "merge_heads_by_data",
    "merge_heads_by_weights",
    "merge_neurons",
    "merge_redundant",
    "plan_groups",
    "remove_heads",
]
