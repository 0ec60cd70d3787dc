"""Merge redundant neurons into their twins, with compensation in the layers that read them.

:func:`merge_redundant` merges by weights (rows that are scaled copies of each other);
:func:`merge_by_data` by activations on data (a neuron rebuilt from others by least squares).
Both plan the model's merge sites (:mod:`~compress.merge.plan`), fold the removed neurons into
the consumers (:mod:`~compress.merge.math`, :mod:`~compress.merge.data_fit`) and rebuild a
smaller model (:mod:`~compress.merge.rebuild`); the reports share :mod:`~compress.merge.report`.
"""

from compress.merge.by_data import DataMergeReport, LayerDataMerge, merge_by_data
from compress.merge.by_weights import MERGE_METRICS, merge_redundant
from compress.merge.plan import find_merge_sites
from compress.merge.report import LayerMerge, MergeReport, compare_models

__all__ = [
    "MERGE_METRICS",
    "DataMergeReport",
    "LayerDataMerge",
    "LayerMerge",
    "MergeReport",
    "compare_models",
    "find_merge_sites",
    "merge_by_data",
    "merge_redundant",
]
